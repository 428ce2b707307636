"""Test certificates and TLS clients, shared by the TLS, PROXY-protocol, privileges and HAProxy tests.

`make_certs` makes, with the openssl command: a test CA and another CA, the server's certificate
(localhost, 127.0.0.1, O=first) and a renewed one (O=renewed), client certificates from each CA and
a file that is not PEM. The session fixture `certs` (tests/conftest.py) calls it once per run.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from pathlib import Path

from tests.functional.client import build_request

OPENSSL = shutil.which("openssl")


def _openssl(*args: str, cwd) -> None:
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True)


# What Python 3.13's default contexts (VERIFY_X509_STRICT) require of a chain: a CA with keyUsage,
# and leaves with key identifiers and their own keyUsage
LEAF_EXTENSIONS = ("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                   "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")


def _issue(directory, name: str, ca: str, subject: str, ext: str = "") -> None:
    """name.key + name.pem signed by the CA `ca` (ca.key/ca.pem in `directory`)."""
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", subject, cwd=directory)
    (directory / f"{name}.ext").write_text(LEAF_EXTENSIONS + ext)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
             cwd=directory)


def make_certs(directory: Path) -> dict[str, str]:
    """Write the test certificates into `directory`; returns {file name: path}."""
    assert OPENSSL, "the openssl command is needed for the TLS tests (Debian: apt-get install openssl)"
    for ca in ("ca", "otherca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out",
                 f"{ca}.pem", "-days", "2", "-subj", f"/CN=fastwsgi test {ca}",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    san = "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
    _issue(directory, "server", "ca", "/CN=localhost/O=first", san)
    _issue(directory, "renewed", "ca", "/CN=localhost/O=renewed", san)
    _issue(directory, "client", "ca", "/CN=good client")
    _issue(directory, "stranger", "otherca", "/CN=stranger")
    (directory / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                                           "-----END CERTIFICATE-----\n")
    return {path.name: str(path) for path in directory.iterdir()}


def tls_args(certs, *extra: str) -> tuple:
    return ("--certfile", certs["server.pem"], "--keyfile", certs["server.key"], *extra)


def client_context(certs, cert: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=certs["ca.pem"])
    if cert:
        context.load_cert_chain(certs[f"{cert}.pem"], certs[f"{cert}.key"])
    return context


def peer_organization(port: int, certs) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with client_context(certs).wrap_socket(raw, server_hostname="localhost") as sock:
            subject = dict(item[0] for item in sock.getpeercert()["subject"])
            sock.sendall(build_request("GET", "/pid", headers=[("Connection", "close")]))
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
    assert received.startswith(b"HTTP/1.1 200 OK")
    """The O= of the certificate the server at `port` presents (GET /pid over a new connection)."""
    return subject["organizationName"]
