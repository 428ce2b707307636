"""A real nginx (Debian's /usr/sbin/nginx) in front of real fastwsgi processes, over HTTP/1.1.

Theory of operation: per parser backend, the module fixture starts four fastwsgi processes serving
tests/deploy/probe_app.py (one that trusts nginx's X-Forwarded-* headers, one that does not, and a pair
for load spreading), renders tests/deploy/nginx.conf.in with their ports and starts nginx in its own
prefix. Clients talk to nginx only; the probe application reports what reached it (its pid, the TCP peer
it saw, the headers, the body's size and hash and how it was framed). After every test the new part of
nginx's error log must contain no upstream protocol error, and no fastwsgi process may have logged a
traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time

import pytest

from tests.deploy.conftest import NginxProcess, Target
from tests.functional.serverproc import ServerProcess, server_args

PROBE_APP = "tests.deploy.probe_app:app"
CLIENT_ADDR = "127.0.0.5"  # clients connect from here, so nginx's own address (127.0.0.1) differs
UNTRUSTED_ONLY = "192.0.2.1"  # a --forwarded-allow-ips that does not include nginx


class Stack:
    def __init__(self, nginx: NginxProcess, servers: dict[str, ServerProcess]):
        self.nginx = nginx
        self.servers = servers
        self.front = Target("nginx", "127.0.0.1", nginx.port)
        self.log_checked_up_to = 0  # error-log offset already checked (see clean_logs)

    def get_json(self, path: str, headers=None, source=CLIENT_ADDR) -> dict:
        reply = self.front.request("GET", path, headers=headers, source=source)
        assert reply.status == 200, (reply.status, reply.body[:300])
        return reply.json()


@pytest.fixture(scope="module", params=[("c", 0), ("python", 4)], ids=["c-t0", "python-t4"])
def stack(request, tmp_path_factory):
    parser, threads = request.param
    flags = {"trusted": ["--forwarded-allow-ips", "127.0.0.1"],
             "untrusted": ["--forwarded-allow-ips", UNTRUSTED_ONLY],
             "pair_a": ["--forwarded-allow-ips", UNTRUSTED_ONLY],
             "pair_b": ["--forwarded-allow-ips", UNTRUSTED_ONLY]}
    servers: dict[str, ServerProcess] = {}
    nginx = None
    broken = BrokenUpstream()
    try:
        for name, extra in flags.items():
            # --keep-alive longer than nginx's upstream keepalive_timeout (60 s): nginx never reuses a
            # connection fastwsgi is closing (docs/deployment.md)
            args = server_args(parser, threads, *extra, "--keep-alive", "75", app=PROBE_APP)
            servers[name] = ServerProcess(args).start()
        nginx = NginxProcess(tmp_path_factory.mktemp("nginx"), {
            "PORT_TRUSTED": servers["trusted"].port, "PORT_UNTRUSTED": servers["untrusted"].port,
            "PORT_PAIR_A": servers["pair_a"].port, "PORT_PAIR_B": servers["pair_b"].port,
            "PORT_BROKEN": broken.port}).start()
        yield Stack(nginx, servers)
    finally:
        if nginx is not None:
            nginx.stop()
        broken.close()
        for server in servers.values():
            server.stop()


class BrokenUpstream:
    """A TCP server that answers every request with bytes that are not HTTP, then closes."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(b"NOT-HTTP garbage\r\n\r\n")
                except OSError:
                    pass

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


@pytest.fixture(autouse=True)
def clean_logs(stack):
    stack.log_checked_up_to = len(stack.nginx.log_text())
    yield
    since = stack.log_checked_up_to
    assert stack.nginx.upstream_errors(since) == [], stack.nginx.log_text()[since:][-3000:]
    for name, server in stack.servers.items():
        assert "Traceback" not in server.stderr_text(), f"{name}:\n{server.stderr_text()[-3000:]}"


def test_upstream_keepalive_reuses_one_connection(stack):
    """Separate client connections, one upstream connection: the app sees the same peer port each time."""
    seen = [stack.get_json("/plain/info") for _ in range(8)]
    assert {s["REMOTE_ADDR"] for s in seen} == {"127.0.0.1"}
    assert len({s["REMOTE_PORT"] for s in seen}) == 1, [s["REMOTE_PORT"] for s in seen]
    assert len({s["pid"] for s in seen}) == 1
    assert seen[0]["headers"].get("HTTP_CONNECTION") is None  # proxy_set_header Connection "" removed it


def test_forwarded_headers_from_a_trusted_proxy_are_applied(stack):
    seen = stack.get_json("/trusted/info")
    assert seen["REMOTE_ADDR"] == CLIENT_ADDR  # from X-Forwarded-For, not the TCP peer (nginx)
    assert seen["url_scheme"] == "http"
    assert seen["headers"]["HTTP_X_FORWARDED_FOR"] == CLIENT_ADDR
    assert seen["headers"]["HTTP_X_FORWARDED_PROTO"] == "http"
    # what a TLS-terminating server block sends
    assert stack.get_json("/tls/info")["url_scheme"] == "https"


def test_client_cannot_spoof_its_address_through_a_trusted_proxy(stack):
    seen = stack.get_json("/trusted/info", headers={"X-Forwarded-For": "203.0.113.9"})
    assert seen["headers"]["HTTP_X_FORWARDED_FOR"] == f"203.0.113.9, {CLIENT_ADDR}"
    assert seen["REMOTE_ADDR"] == CLIENT_ADDR  # the walk from the right stops at the first untrusted hop


def test_each_client_through_one_upstream_connection_gets_its_own_address(stack):
    """nginx carries many clients over one keep-alive upstream connection: the server remembers what
    each combination of proxy headers means (fastwsgi.proxy), and must never hand one client's
    address or scheme to another."""
    for round_number in range(3):
        for client in ("127.0.0.5", "127.0.0.6", "127.0.0.7"):
            for path, scheme in (("/trusted/info", "http"), ("/tls/info", "https")):
                info = stack.get_json(path, source=client)
                # X-Forwarded-For carries no port: REMOTE_PORT is "", never nginx's
                assert (info["REMOTE_ADDR"], info["REMOTE_PORT"], info["url_scheme"]) == (client, "", scheme), \
                    (round_number, path)


def test_forwarded_headers_from_an_untrusted_peer_are_removed(stack):
    seen = stack.get_json("/plain/info", headers={"X-Forwarded-Proto": "https"})
    assert seen["REMOTE_ADDR"] == "127.0.0.1"  # the TCP peer: nginx
    assert seen["url_scheme"] == "http"
    assert "HTTP_X_FORWARDED_FOR" not in seen["headers"] and "HTTP_X_FORWARDED_PROTO" not in seen["headers"]


def test_headers_both_ways(stack):
    seen = stack.get_json("/plain/info", headers={"X-Custom-Thing": "a value, with; punctuation",
                                                  "Accept-Language": "fr-CH, fr;q=0.9"})
    assert seen["headers"]["HTTP_X_CUSTOM_THING"] == "a value, with; punctuation"
    assert seen["headers"]["HTTP_ACCEPT_LANGUAGE"] == "fr-CH, fr;q=0.9"
    assert seen["headers"]["HTTP_HOST"] == "127.0.0.1"  # proxy_set_header Host $host: the name, no port
    reply = stack.front.request("GET", "/plain/headers")
    assert reply.status == 200 and reply.body == b"ok"
    assert reply.headers.get_all("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert reply.header("X-Spaced") == "one  two\tthree"


def big_file(tmp_path, size=8 * 1024 * 1024 + 3):
    data = random.Random(size).randbytes(size)
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    return path, data


def test_large_upload_with_content_length(stack, tmp_path):
    _, data = big_file(tmp_path)
    reply = stack.front.request("POST", "/plain/body", body=data, headers={"Content-Type": "application/octet-stream"})
    assert reply.status == 200
    seen = reply.json()
    assert (seen["size"], seen["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert seen["CONTENT_LENGTH"] == str(len(data))


@pytest.mark.parametrize("location, upstream_framing", [("plain", "length"), ("stream", "chunked")])
def test_chunked_upload_from_curl(stack, tmp_path, location, upstream_framing):
    """curl sends 8 MiB chunked. With request buffering (default) nginx collects the body and sends it
    with Content-Length; with `proxy_request_buffering off` it forwards it chunked to fastwsgi."""
    path, data = big_file(tmp_path)
    out = subprocess.run(["curl", "-sS", "--max-time", "30", "-H", "Transfer-Encoding: chunked",
                          "-H", "Content-Type: application/octet-stream", "--data-binary", f"@{path}",
                          f"http://127.0.0.1:{stack.nginx.port}/{location}/body"],
                         capture_output=True, timeout=40, check=True)
    seen = json.loads(out.stdout)
    assert (seen["size"], seen["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    if upstream_framing == "chunked":
        assert seen["headers"].get("HTTP_TRANSFER_ENCODING") == "chunked" and seen["CONTENT_LENGTH"] is None
    else:
        assert seen["CONTENT_LENGTH"] == str(len(data)) and "HTTP_TRANSFER_ENCODING" not in seen["headers"]


@pytest.mark.parametrize("via", ["nginx", "direct"])
def test_streaming_response_reaches_the_client_before_it_ends(stack, via):
    """With proxy_buffering off, the blocks already produced arrive while the application is still
    sleeping before its last one (PEP 3333: a server must not delay the transmission of any block).
    `direct` asks the fastwsgi instance itself, to tell a server problem from an nginx one."""
    port = stack.nginx.port if via == "nginx" else stack.servers["untrusted"].port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        start = time.monotonic()
        sock.sendall(b"GET /stream/stream?n=3&delay=1.5 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        received, first_at = b"", None
        while chunk := sock.recv(65536):
            received += chunk
            if first_at is None and b"chunk 1\n" in received:
                first_at = time.monotonic() - start
        total = time.monotonic() - start
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
    assert b"chunk 0\n" in body and b"chunk 2\n" in body
    assert first_at is not None and total >= 1.4
    assert first_at < total - 0.7, (first_at, total)


def test_buffered_streaming_response_arrives_intact(stack):
    reply = stack.front.request("GET", "/plain/stream?n=20000")
    assert reply.status == 200
    assert reply.body == b"".join(b"chunk %d\n" % i for i in range(20000))


def test_pair_spreads_load_and_skips_a_killed_instance(stack):
    """Round robin over two instances; after one is SIGKILLed every request still succeeds, on the other."""
    pids = {stack.get_json("/pair/info")["pid"] for _ in range(10)}
    a, b = stack.servers["pair_a"], stack.servers["pair_b"]
    assert pids == {a.proc.pid, b.proc.pid}
    b.proc.send_signal(signal.SIGKILL)
    b.proc.wait(5)
    after = [stack.front.request("GET", "/pair/info", source=CLIENT_ADDR) for _ in range(10)]
    assert [r.status for r in after] == [200] * 10
    assert {r.json()["pid"] for r in after} == {a.proc.pid}


def test_nginx_is_our_own(stack):
    """Sanity: the nginx under test is the one this suite started (own prefix, own pid file)."""
    pid = int(stack.nginx.pid_file.read_text())
    assert pid == stack.nginx.proc.pid and os.path.exists(f"/proc/{pid}")


def test_the_error_log_check_detects_a_broken_upstream(stack):
    """The clean-log check is real: an upstream that speaks garbage is reported by nginx (then this test
    moves the checked offset past its own, expected, error)."""
    since = len(stack.nginx.log_text())
    with socket.create_connection(("127.0.0.1", stack.nginx.port), timeout=10) as sock:
        # nginx passes such a reply through as an HTTP/0.9 body, so read raw bytes, not a response
        sock.sendall(b"GET /broken/info HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        while sock.recv(65536):
            pass
    deadline = time.monotonic() + 5
    while not stack.nginx.upstream_errors(since) and time.monotonic() < deadline:
        time.sleep(0.05)
    errors = stack.nginx.upstream_errors(since)
    assert errors and "upstream sent no valid HTTP/1.0 header" in errors[0]
    stack.log_checked_up_to = len(stack.nginx.log_text())
