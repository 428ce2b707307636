"""A real HAProxy (Debian's /usr/sbin/haproxy) in TCP mode in front of fastwsgi --proxy-protocol.

Theory of operation: per parser backend, the module fixture starts two fastwsgi processes with
--proxy-protocol (plain HTTP with an access log, and --certfile), renders tests/deploy/haproxy.cfg.in
with their ports and starts HAProxy in the foreground: `send-proxy` (v1) and `send-proxy-v2` frontends
on 127.0.0.1 and [::1], v2 health checks (`check-send-proxy`, LOCAL command), and a TLS pass-through.
Clients connect to HAProxy from 127.0.0.5 (so the client's address differs from HAProxy's 127.0.0.1)
and the application reports the REMOTE_ADDR/REMOTE_PORT it saw, which must be the client's own. A
missing haproxy binary fails the tests (CI installs it: ci/install_system.sh).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.deploy.conftest import free_port
from tests.functional.serverproc import ServerProcess, _die_with_parent, server_args
from tests.functional.tlscerts import client_context, tls_args
from tests.functional.test_uwsgi import read_all

HAPROXY_BIN = shutil.which("haproxy") or "/usr/sbin/haproxy"
TEMPLATE = Path(__file__).with_name("haproxy.cfg.in")
CLIENT = "127.0.0.5"


class HAProxyProcess:
    def __init__(self, directory: Path, values: dict[str, object]):
        self.ports = {name: free_port() for name in ("PORT_V1", "PORT_V1_6", "PORT_V2", "PORT_V2_6", "PORT_TLS")}
        text = TEMPLATE.read_text()
        for name, value in {**self.ports, **values}.items():
            text = text.replace("{{" + name + "}}", str(value))
        assert "{{" not in text, "unfilled placeholder in haproxy.cfg.in"
        self.conf = directory / "haproxy.cfg"
        self.conf.write_text(text)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> "HAProxyProcess":
        if not os.access(HAPROXY_BIN, os.X_OK):
            pytest.fail(f"haproxy not found at {HAPROXY_BIN} (Debian: apt-get install haproxy)")
        self.proc = subprocess.Popen([HAPROXY_BIN, "-db", "-f", str(self.conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        for name, port in self.ports.items():
            host = "::1" if name.endswith("_6") else "127.0.0.1"
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(f"haproxy exited {self.proc.returncode}: {self.proc.stdout.read().decode()}")
                try:
                    socket.create_connection((host, port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise AssertionError(f"haproxy did not listen on {host}:{port} within {timeout} s")
                    time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Stack:
    def __init__(self, app: ServerProcess, tls_app: ServerProcess, haproxy: HAProxyProcess):
        self.app, self.tls_app, self.haproxy = app, tls_app, haproxy


@pytest.fixture(scope="module", params=[("c", 0), ("python", 4)], ids=["c-t0", "python-t4"])
def stack(request, tmp_path_factory, certs):  # noqa: F811 (the certs fixture)
    parser, threads = request.param
    started = []
    try:
        app = ServerProcess(server_args(parser, threads, "--proxy-protocol", "--access-logfile", "-",
                                        "--access-logformat", "%(h)s %(r)s %(s)s")).start()
        started.append(app)
        tls_app = ServerProcess(server_args(parser, threads, "--proxy-protocol", *tls_args(certs))).start()
        started.append(tls_app)
        haproxy = HAProxyProcess(tmp_path_factory.mktemp("haproxy"),
                                 {"APP_PORT": app.port, "APP_TLS_PORT": tls_app.port})
        started.append(haproxy)
        haproxy.start()
        yield Stack(app, tls_app, haproxy)
    finally:
        for process in reversed(started):
            process.stop()


def connect(port: int, family=socket.AF_INET) -> socket.socket:
    sock = socket.socket(family)
    sock.settimeout(10)
    if family == socket.AF_INET:
        sock.bind((CLIENT, 0))
        sock.connect(("127.0.0.1", port))
    else:
        sock.connect(("::1", port))
    return sock


def read_response(sock, buffer: bytearray) -> dict:
    """One Content-Length-framed response from `sock`; the environ the application reported."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {bytes(buffer)[:300]!r}"
        buffer += chunk
    end = buffer.index(b"\r\n\r\n") + 4
    head = bytes(buffer[:end]).decode("latin-1")
    assert head.startswith("HTTP/1.1 200 "), head
    length = int(next(line.split(":", 1)[1] for line in head.split("\r\n")
                      if line.lower().startswith("content-length:")))
    while len(buffer) < end + length:
        chunk = sock.recv(65536)
        assert chunk, "closed inside a body"
        buffer += chunk
    body = bytes(buffer[end:end + length])
    del buffer[:end + length]
    return json.loads(body)


REQUEST = b"GET /environ HTTP/1.1\r\nHost: app\r\n\r\n"


@pytest.mark.parametrize("frontend, family", [("PORT_V1", socket.AF_INET), ("PORT_V1_6", socket.AF_INET6),
                                              ("PORT_V2", socket.AF_INET), ("PORT_V2_6", socket.AF_INET6)],
                         ids=["send-proxy", "send-proxy-ipv6", "send-proxy-v2", "send-proxy-v2-ipv6"])
def test_the_application_sees_the_client(stack, frontend, family):
    with connect(stack.haproxy.ports[frontend], family) as sock:
        address, port = sock.getsockname()[:2]
        buffer = bytearray()
        for _ in range(3):  # keep-alive: every request of the connection has the client's address
            sock.sendall(REQUEST)
            environ = read_response(sock, buffer)
            assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == (address, str(port))
        sock.sendall(REQUEST * 2)  # pipelined
        for _ in range(2):
            assert read_response(sock, buffer)["REMOTE_ADDR"] == address
    assert address in (CLIENT, "::1")


def test_health_checks_with_the_header_are_served(stack):
    """HAProxy's v2 health checks (check-send-proxy: the LOCAL command) reach the application, from
    the socket's own peer (HAProxy, 127.0.0.1)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any(line.startswith("127.0.0.1 GET /hello?haproxy-check HTTP/1.0 200")
               for line in stack.app.stdout_lines):
            return
        time.sleep(0.1)
    pytest.fail("no health check in the access log:\n" + "".join(stack.app.stdout_lines[-10:])
                + stack.app.stderr_text()[-2000:])


def test_access_log_names_the_client(stack):
    with connect(stack.haproxy.ports["PORT_V2"]) as sock:
        port = sock.getsockname()[1]
        sock.sendall(b"GET /environ?who=%d HTTP/1.1\r\nHost: app\r\n\r\n" % port)
        read_response(sock, bytearray())
    expected = f"{CLIENT} GET /environ?who={port} HTTP/1.1 200"
    deadline = time.monotonic() + 5
    while not any(line.startswith(expected) for line in stack.app.stdout_lines):
        assert time.monotonic() < deadline, "".join(stack.app.stdout_lines[-10:])
        time.sleep(0.05)


def test_tls_passes_through_haproxy(stack, certs):  # noqa: F811 (the certs fixture)
    context = client_context(certs)
    with connect(stack.haproxy.ports["PORT_TLS"]) as raw:
        port = raw.getsockname()[1]
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            buffer = bytearray()
            for _ in range(2):
                sock.sendall(REQUEST)
                environ = read_response(sock, buffer)
                assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == (CLIENT, str(port))
                assert environ["wsgi.url_scheme"] == "https"


def test_direct_connections_without_the_header_are_closed(stack):
    """The application's port expects the header from 127.0.0.1 (--proxy-allow-from's default): a
    client that bypasses HAProxy gets no response."""
    with socket.create_connection(("127.0.0.1", stack.app.port), timeout=10) as sock:
        sock.sendall(REQUEST)
        assert read_all(sock) == b""
