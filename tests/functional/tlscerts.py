"""Test certificates and TLS clients, shared by the TLS, PROXY-protocol, privileges and HAProxy tests.

`make_certs` makes, with the openssl command: a test CA and another CA, the server's certificate
(localhost, 127.0.0.1, O=first) and a renewed one (O=renewed), client certificates from each CA, the
server's key encrypted (passphrase "secret") and a file that is not PEM. The session fixture `certs` (tests/conftest.py) calls it once per run.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
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
    _openssl("pkey", "-in", "server.key", "-aes256", "-passout", "pass:secret", "-out", "encrypted.key",
             cwd=directory)
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
    """The O= of the certificate the server at `port` presents (GET /pid over a new connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with client_context(certs).wrap_socket(raw, server_hostname="localhost") as sock:
            subject = dict(item[0] for item in sock.getpeercert()["subject"])
            sock.sendall(build_request("GET", "/pid", headers=[("Connection", "close")]))
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
    assert received.startswith(b"HTTP/1.1 200 OK")
    return subject["organizationName"]


class MemoryClient:
    """A TLS client over a plain socket with in-memory BIOs: the test decides how the records it
    writes are split into TCP writes."""

    def __init__(self, port: int, context: ssl.SSLContext):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        self.received = b""

    def handshake(self, piece: int = 1 << 20, between=None) -> None:
        while True:
            try:
                self.tls.do_handshake()
                return
            except ssl.SSLWantReadError:
                pass
            data = self.outgoing.read()
            for i in range(0, len(data), piece):
                self.sock.sendall(data[i:i + piece])
                if between is not None:
                    between()
            self.incoming.write(self.sock.recv(65536))

    def send_records(self, *plaintexts: bytes) -> None:
        """One TLS record per plaintext, all in one TCP write."""
        for plaintext in plaintexts:
            self.tls.write(plaintext)
        self.sock.sendall(self.outgoing.read())

    def send_last(self, plaintext: bytes) -> bytes:
        """`plaintext`'s records and close_notify in one TCP write (the server decrypts them at once),
        then everything the server answers (read_to_end)."""
        self.tls.write(plaintext)
        try:
            self.tls.unwrap()
        except ssl.SSLWantReadError:  # (the server's close_notify is not awaited)
            pass
        self.sock.sendall(self.outgoing.read())
        return self.read_to_end()

    def read_until(self, needle: bytes) -> bytes:
        while needle not in self.received:
            data = self.sock.recv(65536)
            assert data, f"EOF before {needle!r}: {self.received[-300:]!r}"
            self.incoming.write(data)
            try:
                while True:
                    plain = self.tls.read(65536)
                    if not plain:  # the server's close_notify: read() says b"" from now on
                        assert needle in self.received, f"closed before {needle!r}: {self.received[-300:]!r}"
                        break
                    self.received += plain
            except ssl.SSLWantReadError:
                pass
        return self.received

    def close(self) -> None:
        self.sock.close()

    def send_stream(self, data: bytes, cuts=(), pause: float = 0.002) -> None:
        """`data` in pieces split at `cuts`, `pause` seconds apart; then close_notify and SHUT_WR at
        once, as a client that has nothing more to say (the server's close_notify is not awaited)."""
        try:
            start = 0
            for cut in [*cuts, len(data)]:
                self.tls.write(data[start:cut])
                self.sock.sendall(self.outgoing.read())
                start = cut
                if cut < len(data):
                    time.sleep(pause)
            try:
                self.tls.unwrap()
            except ssl.SSLWantReadError:
                pass
            self.sock.sendall(self.outgoing.read())
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before all of it is sent: read what it said

    def read_to_end(self) -> bytes:
        """Every plaintext byte until the server's close_notify, its TCP EOF or a reset."""
        while True:
            try:
                plain = self.tls.read(65536)
                if not plain:  # after the close_notify (SSLObject says b"" rather than raising)
                    return self.received
                self.received += plain
                continue
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return self.received
            if self.incoming.eof:
                return self.received
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return self.received
            if data:
                self.incoming.write(data)
            else:
                self.incoming.write_eof()


def stream_over_tls(port: int, data: bytes, context: ssl.SSLContext, cuts=(), pause: float = 0.002) -> bytes:
    """A new TLS connection: `data` (MemoryClient.send_stream), then everything the server answered."""
    client = MemoryClient(port, context)
    try:
        client.handshake()
        client.send_stream(data, cuts, pause)
        return client.read_to_end()
    finally:
        client.close()
