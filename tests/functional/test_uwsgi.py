"""The uwsgi protocol end to end (docs/uwsgi-spec.md, "Server behaviour"): raw uwsgi packets over real
sockets to real `python -m fastwsgi --protocol uwsgi` processes, as nginx `uwsgi_pass` sends them.

Theory of operation: `packet(vars, body)` builds the bytes a front end sends (4-byte header, the
length-prefixed vars, then the body); responses are plain HTTP/1.x read with tests.functional.client's
Conn (a uwsgi response is close-delimited when the application gives no Content-Length, so the
client reads to EOF). Every uwsgi request ends with the server closing: each test checks it, and that
the close is not a reset. The core behaviour runs over the full matrix (both parser backends x threads
0/4); the rest over both backends.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from fastwsgi.server.connection import LOOKAHEAD
from tests.functional.apps import pattern_bytes
from tests.functional.client import Conn, wait_delivered
from tests.functional.conftest import BACKENDS, FULL_MATRIX, server_fixture
from tests.functional.ops import OPS_APP, booted, children, wait_booted
from tests.functional.serverproc import REPO_ROOT, ServerProcess, server_args
from tests.functional.test_sockets import WrappedServer

LISTENING_URLS = re.compile(r"Listening at: (\S+)")

uwsgi_server = server_fixture("--protocol", "uwsgi", matrix=FULL_MATRIX)
uwsgi_read_timeout = server_fixture("--protocol", "uwsgi", "--read-timeout", "1", matrix=FULL_MATRIX)
small_limits = server_fixture("--protocol", "uwsgi", "--limit-request-body", "1000",
                              "--limit-request-head", "2048", "--limit-request-fields", "3",
                              "--limit-request-line", "100")
trusting_all = server_fixture("--protocol", "uwsgi", "--forwarded-allow-ips", "*",
                              "--forwarded-headers", "x-forwarded")
refusing = server_fixture("--protocol", "uwsgi", "--uwsgi-allow-from", "10.1.2.3")
only_127_0_0_2 = server_fixture("--protocol", "uwsgi", "--uwsgi-allow-from", "127.0.0.2, 10.0.0.0/8")
# one HTTP socket (the fixture's --bind 127.0.0.1:0) and one uwsgi socket
mixed = server_fixture("--bind", "uwsgi://127.0.0.1:0")


def pair(key: bytes, value: bytes) -> bytes:
    return struct.pack("<H", len(key)) + key + struct.pack("<H", len(value)) + value


def packet(variables, body: bytes = b"", modifier1: int = 0, modifier2: int = 0) -> bytes:
    """A uwsgi request: variables is a list of (key, value) str or bytes pairs (repeats allowed)."""
    block = b"".join(pair(k.encode("latin-1") if isinstance(k, str) else k,
                          v.encode("latin-1") if isinstance(v, str) else v) for k, v in variables)
    return struct.pack("<BHB", modifier1, len(block), modifier2) + block + body


def request_vars(method="GET", path="/", query="", body: bytes = b"", **extra):
    """The vars nginx's uwsgi_params sends, for a request to `path`?`query`."""
    uri = path + ("?" + query if query else "")
    variables = [("QUERY_STRING", query), ("REQUEST_METHOD", method), ("CONTENT_TYPE", ""),
                 ("CONTENT_LENGTH", str(len(body)) if body else ""), ("REQUEST_URI", uri),
                 ("PATH_INFO", path), ("DOCUMENT_ROOT", "/srv/www"), ("SERVER_PROTOCOL", "HTTP/1.1"),
                 ("REQUEST_SCHEME", "http"), ("REMOTE_ADDR", "203.0.113.7"), ("REMOTE_PORT", "51234"),
                 ("SERVER_PORT", "80"), ("SERVER_NAME", "example.org"), ("HTTP_HOST", "example.org")]
    return variables + [(k, v) for k, v in extra.items()]


def exchange(port: int, data: bytes, method: str = "GET", timeout: float = 10.0):
    """Send `data`, read one response, and check that the server then closed without a reset."""
    with Conn(port, timeout=timeout) as conn:
        conn.send(data)
        resp = conn.read_response(method, timeout=timeout)
        assert conn.read_to_eof(timeout) == b"", "bytes after the response"
        assert not conn.reset, "the server reset the connection instead of closing it"
    return resp


def environ_of(port: int, variables) -> dict:
    resp = exchange(port, packet(variables))
    assert resp.status == 200, (resp.status, resp.body[:300])
    return json.loads(resp.body)


def listening_urls(server: ServerProcess, count: int = 1) -> list[str]:
    """The URLs the server announced, once there are `count` of them (the startup lines)."""
    deadline = time.monotonic() + 5
    while len(LISTENING_URLS.findall(server.stderr_text())) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return LISTENING_URLS.findall(server.stderr_text())


# -- environ ------------------------------------------------------------------------------------------

def test_vars_pass_through_to_the_environ(uwsgi_server):
    variables = request_vars(path="/environ", query="a=1&b=%20x") + [
        ("HTTP_X_REPEATED", "one"), ("HTTP_USER_AGENT", "curl/8"), ("HTTP_X_REPEATED", "two, three"),
        ("HTTP_COOKIE", "a=1"), ("HTTP_COOKIE", "b=2"),  # nginx: one var per Cookie line
        ("UWSGI_CUSTOM", "custom value"), ("CONTENT_TYPE", "text/x")]
    variables.remove(("CONTENT_TYPE", ""))
    seen = environ_of(uwsgi_server.port, variables)
    assert seen["REQUEST_METHOD"] == "GET"
    assert seen["PATH_INFO"] == "/environ" and seen["QUERY_STRING"] == "a=1&b=%20x"
    assert seen["REQUEST_URI"] == seen["RAW_URI"] == "/environ?a=1&b=%20x"
    assert seen["SERVER_PROTOCOL"] == "HTTP/1.1"
    # the front end's values win over the socket's
    assert (seen["REMOTE_ADDR"], seen["REMOTE_PORT"]) == ("203.0.113.7", "51234")
    assert (seen["SERVER_NAME"], seen["SERVER_PORT"]) == ("example.org", "80")
    assert seen["DOCUMENT_ROOT"] == "/srv/www" and seen["UWSGI_CUSTOM"] == "custom value"
    assert seen["CONTENT_TYPE"] == "text/x" and seen["CONTENT_LENGTH"] == ""
    assert seen["HTTP_HOST"] == "example.org" and seen["HTTP_USER_AGENT"] == "curl/8"
    # one var per header line; repeats are joined in order as the HTTP parser joins repeated fields
    assert seen["HTTP_X_REPEATED"] == "one,two, three"
    assert seen["HTTP_COOKIE"] == "a=1; b=2"  # with ",", cookie parsers read one cookie a="1,b=2"
    assert seen["SCRIPT_NAME"] == ""
    assert seen["wsgi.url_scheme"] == "http" and seen["wsgi.version"] == [1, 0]
    assert seen["wsgi.multithread"] is (uwsgi_server.threads > 0)
    assert seen["wsgi.input_terminated"] is True


def test_script_name_and_decoded_path_come_from_the_front_end(uwsgi_server):
    # nginx sends PATH_INFO percent-decoded: its bytes (latin-1) are what the application sees
    path = "/environ/caf\xe9 x"
    variables = request_vars(path=path, SCRIPT_NAME="/mount")
    seen = environ_of(uwsgi_server.port, variables)
    assert seen["SCRIPT_NAME"] == "/mount"
    assert seen["PATH_INFO"] == path


prefixed = server_fixture("--protocol", "uwsgi", "--url-prefix", "/app", matrix=BACKENDS)


@pytest.mark.parametrize("sent, script_name", [("", "/app"), ("/app", "/app"), ("/site", "/site/app")])
def test_url_prefix_under_a_front_ends_script_name(prefixed, sent, script_name):
    """nginx's `uwsgi_param SCRIPT_NAME /app;` leaves PATH_INFO whole (/app/environ): with
    --url-prefix /app the application is mounted once, at /app (it was /app/app)."""
    seen = environ_of(prefixed.port, request_vars(path="/app/environ", SCRIPT_NAME=sent))
    assert (seen["SCRIPT_NAME"], seen["PATH_INFO"]) == (script_name, "/environ")


@pytest.mark.parametrize("extra, scheme", [
    ({"HTTPS": "on"}, "https"), ({"HTTPS": "1"}, "https"), ({"HTTPS": "ON"}, "https"),
    ({"HTTPS": "off"}, "http"), ({"HTTPS": ""}, "http"), ({"UWSGI_SCHEME": "https"}, "https"),
    ({"UWSGI_SCHEME": "http"}, "http"), ({}, "http")])
def test_url_scheme_follows_https_and_uwsgi_scheme(uwsgi_server, extra, scheme):
    seen = environ_of(uwsgi_server.port, request_vars(path="/environ", **extra))
    assert seen["wsgi.url_scheme"] == scheme


def test_a_repeated_cgi_var_takes_its_last_value(uwsgi_server):
    """nginx sends a uwsgi_param that overrides one of uwsgi_params as a second var of the same name:
    the last one wins (as uWSGI takes it), for the Head's vars too; HTTP_ vars are still joined."""
    variables = request_vars(path="/wrong", query="q=0") + [
        ("REMOTE_ADDR", "192.0.2.10"), ("HTTPS", "on"), ("PATH_INFO", "/environ"), ("QUERY_STRING", "q=1"),
        ("SERVER_PROTOCOL", "HTTP/1.0"), ("HTTP_X_A", "1"), ("HTTP_X_A", "2")]
    seen = environ_of(uwsgi_server.port, variables)
    assert (seen["REMOTE_ADDR"], seen["wsgi.url_scheme"]) == ("192.0.2.10", "https")
    assert (seen["PATH_INFO"], seen["QUERY_STRING"]) == ("/environ", "q=1")
    assert seen["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert seen["HTTP_X_A"] == "1,2"


def test_a_repeated_content_length_is_refused(uwsgi_server):
    """Two CONTENT_LENGTH vars would leave the body's framing to a choice: 400, even when equal."""
    data = packet(request_vars(method="POST", path="/echo", body=b"abc") + [("CONTENT_LENGTH", "3")], b"abc")
    assert exchange(uwsgi_server.port, data).status == 400


@pytest.mark.parametrize("client", ["203.0.113.7", "127.0.0.1"])
def test_proxy_headers_never_replace_the_front_ends_address_and_scheme(trusting_all, client):
    """nginx passes a client's X-Forwarded-For/-Proto and Forwarded through verbatim as HTTP_* vars:
    over uwsgi they apply for no peer (here --forwarded-allow-ips '*'), whatever REMOTE_ADDR says,
    and reach the application as sent."""
    forged = {"HTTP_X_FORWARDED_FOR": "6.6.6.6", "HTTP_X_FORWARDED_PROTO": "https",
              "HTTP_X_FORWARDED_HOST": "evil.example", "HTTP_FORWARDED": "for=7.7.7.7;proto=https"}
    variables = [(k, client if k == "REMOTE_ADDR" else v) for k, v in request_vars(path="/environ")]
    seen = environ_of(trusting_all.port, variables + list(forged.items()))
    assert (seen["REMOTE_ADDR"], seen["REMOTE_PORT"]) == (client, "51234")
    assert seen["wsgi.url_scheme"] == "http"
    assert (seen["HTTP_HOST"], seen["SERVER_NAME"], seen["SERVER_PORT"]) == ("example.org", "example.org", "80")
    assert {key: seen.get(key) for key in forged} == forged


def test_minimal_packet_gets_defaults(uwsgi_server):
    """Without the front end's vars: the socket's values, an empty query, HTTP/1.0."""
    seen = environ_of(uwsgi_server.port, [("REQUEST_METHOD", "GET"), ("PATH_INFO", "/environ")])
    assert seen["REQUEST_URI"] == seen["RAW_URI"] == "/environ" and seen["QUERY_STRING"] == ""
    assert seen["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert seen["REMOTE_ADDR"] == "127.0.0.1" and seen["SERVER_NAME"] == "127.0.0.1"
    assert seen["SERVER_PORT"] == str(uwsgi_server.port)
    assert "CONTENT_LENGTH" not in seen and seen["SCRIPT_NAME"] == ""


# -- request bodies -------------------------------------------------------------------------------------

def test_body_with_content_length(uwsgi_server):
    body = b"name=value&x=" + b"y" * 5000
    resp = exchange(uwsgi_server.port, packet(request_vars("POST", "/echo", body=body), body), "POST")
    assert resp.status == 200 and resp.body == body


def test_packet_and_body_arrive_in_pieces(uwsgi_server):
    body = b"0123456789" * 100
    data = packet(request_vars("POST", "/echo", body=body), body)
    with Conn(uwsgi_server.port) as conn:
        for cut in (1, 3, 4, 40, len(data) - len(body) + 10):  # inside the header, the vars, the body
            conn.send(data[:cut])
            data = data[cut:]
            assert conn.read_available(0.05) == b""
        conn.send(data)
        resp = conn.read_response("POST")
        assert conn.read_to_eof() == b"" and not conn.reset
    assert resp.status == 200 and resp.body == body


def test_large_upload_is_streamed(uwsgi_server):
    body = pattern_bytes(8 * 1024 * 1024 + 3)
    resp = exchange(uwsgi_server.port, packet(request_vars("POST", "/hash", body=body), body), "POST",
                    timeout=30)
    assert resp.body.decode() == f"{len(body)} {hashlib.sha256(body).hexdigest()}"


def test_framing_vars_do_not_frame_the_body(uwsgi_server):
    """HTTP_TRANSFER_ENCODING is a header the front end already dealt with: CONTENT_LENGTH frames."""
    body = b"5\r\nhello\r\n0\r\n\r\n"
    variables = request_vars("POST", "/echo", body=body, HTTP_TRANSFER_ENCODING="chunked")
    resp = exchange(uwsgi_server.port, packet(variables, body), "POST")
    assert resp.body == body


@pytest.mark.parametrize("size", [300_000, 16 * 1024 * 1024])
def test_unread_body_is_absorbed_before_the_close(uwsgi_server, size):
    """The application ignores the body; the front end writes all of it before reading the answer
    (as nginx does): it is all read and discarded, so the response arrives whole, without a reset."""
    body = b"z" * size
    resp = exchange(uwsgi_server.port, packet(request_vars("POST", "/ignore-body", body=body), body),
                    "POST", timeout=30)
    assert resp.status == 200 and resp.body == b"ignored"


@pytest.mark.parametrize("body", [b"0123456789" * 10, pattern_bytes(3 * LOOKAHEAD)], ids=["small", "over-lookahead"])
def test_a_trickled_body_is_received_before_the_application(uwsgi_server, events, token, body):
    """As over HTTP (test_body_ahead.py): the application is called once the body has come, and
    another request is answered while it is still coming (the old code called the application on
    the packet, whose read waited for the body on the loop thread or a pool thread; and, past
    LOOKAHEAD, once LOOKAHEAD bytes had come: the part past it is now in a temporary file)."""
    variables = request_vars("POST", "/called-echo", query=f"t={token}", body=body)
    with Conn(uwsgi_server.port, timeout=15) as conn:
        conn.send(packet(variables, body[:len(body) * 2 // 3]))
        wait_delivered(conn.sock)
        assert exchange(uwsgi_server.port, packet(GET)).status == 200
        assert events(token, timeout=0) == [], "the application was called before its body had come"
        conn.send(body[len(body) * 2 // 3:])
        resp = conn.read_response("POST")
    assert resp.status == 200 and resp.body == body


def test_a_body_that_stalls_before_the_application_gets_408(uwsgi_read_timeout, events, token):
    body = b"0123456789" * 10
    variables = request_vars("POST", "/called-echo", query=f"t={token}", body=body)
    with Conn(uwsgi_read_timeout.port) as conn:
        conn.send(packet(variables, body[:50]))
        resp = conn.read_response("POST")
        assert resp.status == 408 and "close" in resp.connection_tokens()
        assert conn.closed_by_server()
    assert events(token, timeout=0.5) == []


def test_body_over_the_limit_is_413_before_the_application(small_limits, events, token):
    body = b"x" * 1001
    variables = request_vars("POST", "/record", query=f"t={token}", body=body)
    resp = exchange(small_limits.port, packet(variables, body), "POST")
    assert resp.status == 413 and "close" in resp.connection_tokens()
    ok = exchange(small_limits.port, packet(request_vars("POST", "/echo", body=b"y" * 1000), b"y" * 1000),
                  "POST")
    assert ok.status == 200 and ok.body == b"y" * 1000
    assert events(token, timeout=0.5) == []


# -- responses -------------------------------------------------------------------------------------------

def test_response_has_connection_close_and_the_connection_closes(uwsgi_server):
    resp = exchange(uwsgi_server.port, packet(request_vars(path="/hello")))
    assert resp.version == "HTTP/1.1" and resp.status == 200 and resp.body == b"hello"
    assert resp.header("Content-Length") == "5"
    assert "close" in resp.connection_tokens()


def test_streaming_response_is_close_delimited_never_chunked(uwsgi_server):
    resp = exchange(uwsgi_server.port, packet(request_vars(path="/chunks", query="n=2000")))
    assert resp.status == 200
    assert resp.framing == "close" and resp.header("Transfer-Encoding") is None
    assert resp.header("Content-Length") is None and "close" in resp.connection_tokens()
    assert resp.body == b"".join(f"piece{i};".encode() for i in range(2000))


def test_large_download_through_the_output_high_water_mark(uwsgi_server):
    size = 3 * 1024 * 1024 + 5
    resp = exchange(uwsgi_server.port, packet(request_vars(path="/download", query=f"n={size}&cl=0")),
                    timeout=30)
    assert resp.framing == "close" and resp.body == pattern_bytes(size)


def test_head_has_no_body(uwsgi_server):
    resp = exchange(uwsgi_server.port, packet(request_vars("HEAD", "/head", query="cl=0")), "HEAD")
    assert resp.status == 200 and resp.header("Transfer-Encoding") is None
    with Conn(uwsgi_server.port) as conn:  # on the wire: the head, then EOF
        conn.send(packet(request_vars("HEAD", "/head")))
        conn.read_head()
        assert conn.read_to_eof() == b""


def test_204_has_no_body(uwsgi_server):
    with Conn(uwsgi_server.port) as conn:
        conn.send(packet(request_vars(path="/status", query="code=204")))
        resp = conn.read_head()
        assert resp.status == 204 and resp.header("Content-Length") is None
        assert conn.read_to_eof() == b""


def test_application_error_is_500(uwsgi_server):
    resp = exchange(uwsgi_server.port, packet(request_vars(path="/raise", query="msg=uwsgi")))
    assert resp.status == 500 and "close" in resp.connection_tokens()


# -- malformed packets -------------------------------------------------------------------------------

GET = request_vars(path="/hello")
MALFORMED = {
    "http-request-on-a-uwsgi-socket": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "modifier1": (packet(GET, modifier1=5), 400),
    "modifier2": (packet(GET, modifier2=1), 400),
    "pair-runs-past-the-block": (struct.pack("<BHB", 0, 6, 0) + pair(b"REQUEST_METHOD", b"GET")[:6], 400),
    "trailing-byte": (struct.pack("<BHB", 0, len(pair(b"REQUEST_METHOD", b"GET")) + 1, 0)
                      + pair(b"REQUEST_METHOD", b"GET") + b"\x01", 400),
    "empty-key": (packet(GET + [("", "x")]), 400),
    "key-with-space": (packet(GET + [("BAD KEY", "x")]), 400),
    "lf-in-value": (packet(GET + [("HTTP_X_A", "a\nb")]), 400),
    "nul-in-value": (packet(GET + [("HTTP_X_A", "a\x00b")]), 400),
    "repeated-content-length": (packet(GET + [("CONTENT_LENGTH", ""), ("CONTENT_LENGTH", "")]), 400),
    "no-request-method": (packet([("PATH_INFO", "/hello")]), 400),
    "empty-packet": (packet([]), 400),
    "bad-method": (packet([("REQUEST_METHOD", "G T")]), 400),
    "bad-content-length": (packet(GET + [("CONTENT_LENGTH", "12a")]), 400),
    "negative-content-length": (packet([("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "-1")]), 400),
    "huge-content-length": (packet([("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "9" * 20)]), 400),
    "bad-protocol": (packet([("REQUEST_METHOD", "GET"), ("SERVER_PROTOCOL", "HTTP/1")]), 400),
    "value-too-long": (packet(GET + [("HTTP_X_LONG", "v" * 9000)]), 431),
    "too-many-cgi-vars": (packet(GET + [(f"V{i}", "x") for i in range(60)]), 431),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_packet_is_answered_and_closed(uwsgi_server, name):
    data, status = MALFORMED[name]
    resp = exchange(uwsgi_server.port, data)
    assert resp.status == status, (resp.status, resp.body)
    assert "close" in resp.connection_tokens() and resp.header("Content-Length") is not None


@pytest.mark.parametrize("data, status", [
    (packet(GET + [(f"HTTP_X_{i}", "v") for i in range(4)]), 431),  # --limit-request-fields 3
    (packet(GET + [("HTTP_X_BIG", "v" * 3000)]), 431),  # --limit-request-head 2048
    (packet([("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/" + "a" * 100)]), 414),  # --limit-request-line 100
], ids=["too-many-headers", "packet-too-large", "uri-too-long"])
def test_limits_apply_to_packets(small_limits, data, status):
    resp = exchange(small_limits.port, data)
    assert resp.status == status


def test_truncated_packet_then_eof_is_closed_quietly(uwsgi_server):
    data = packet(GET)
    for cut in (2, len(data) - 1):
        with Conn(uwsgi_server.port) as conn:
            conn.send(data[:cut])
            conn.sock.shutdown(socket.SHUT_WR)
            assert conn.read_to_eof() == b""
    assert exchange(uwsgi_server.port, packet(GET)).status == 200


def test_body_cut_short_by_eof_is_not_a_crash(uwsgi_server):
    variables = request_vars("POST", "/hash")
    variables[3] = ("CONTENT_LENGTH", "1000")
    with Conn(uwsgi_server.port) as conn:
        conn.send(packet(variables, b"x" * 10))
        conn.sock.shutdown(socket.SHUT_WR)
        conn.read_to_eof()  # whatever was said, the connection ends
    assert exchange(uwsgi_server.port, packet(GET)).status == 200


# -- who may connect ---------------------------------------------------------------------------------

def connect_from(source: str, port: int) -> socket.socket:
    sock = socket.socket()
    sock.settimeout(5)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def read_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_a_peer_outside_the_allow_list_is_closed_at_accept(refusing):
    mark = refusing.stderr_mark()
    with connect_from("127.0.0.1", refusing.port) as sock:
        try:
            sock.sendall(packet(GET))
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert read_all(sock) == b""  # no response: the packet never reached a parser
    logged = refusing.wait_stderr("refused a connection from 127.0.0.1", since=mark)
    assert logged is not None, refusing.stderr_text()[-2000:]
    assert "not in --uwsgi-allow-from 10.1.2.3" in logged


REFUSAL = re.compile(r"refused a connection from 127\.0\.0\.1 \(not in --uwsgi-allow-from 10\.1\.2\.3\)"
                     r"(?: \.\.\. and (\d+) more refused connections since the last warning)?\n")


class ShortRefusalInterval(ServerProcess):
    """The real command, with fastwsgi.server.uwsgi.REFUSAL_LOG_INTERVAL (a module constant, not an
    option) set to `interval` seconds before the CLI runs, so a test can wait for the count line."""

    def __init__(self, args, interval: float):
        super().__init__(args)
        self.interval = interval

    @property
    def command(self) -> list[str]:
        code = ("import runpy, fastwsgi.server.uwsgi as uwsgi; "
                f"uwsgi.REFUSAL_LOG_INTERVAL = {self.interval!r}; "
                "runpy.run_module('fastwsgi', run_name='__main__', alter_sys=True)")
        return [sys.executable, "-c", code, *self.args]


def refused_burst(port: int, count: int) -> None:
    """`count` connections from 127.0.0.1 open at once, each sending a packet (the listener defers
    accept until data arrives); returns when the server has closed every one without an answer."""
    socks = [connect_from("127.0.0.1", port) for _ in range(count)]
    try:
        for sock in socks:
            try:
                sock.sendall(packet(GET))
            except (BrokenPipeError, ConnectionResetError):
                pass
        for sock in socks:
            assert read_all(sock) == b""
    finally:
        for sock in socks:
            sock.close()


def refusal_lines(server: ServerProcess, settle: float = 0.3) -> list[re.Match]:
    time.sleep(settle)  # the stderr reader thread catches up with lines written before the closes
    return list(REFUSAL.finditer(server.stderr_text()))


@pytest.mark.parametrize("param", BACKENDS, ids=lambda p: f"{p[0]}-t{p[1]}")
def test_a_burst_of_refused_peers_logs_one_line_not_one_per_connection(param):
    """200 refused connections in a burst: the first is logged at once, the other 199 are held back
    (REFUSAL_LOG_INTERVAL is 10 s, far longer than the burst)."""
    server = ServerProcess(server_args(*param, "--protocol", "uwsgi", "--uwsgi-allow-from",
                                       "10.1.2.3")).start()
    try:
        refused_burst(server.port, 200)
        lines = refusal_lines(server)
        assert len(lines) == 1, server.stderr_text()[-3000:]
        assert lines[0].group(1) is None  # the first refusal, with no count
    finally:
        assert server.stop() == 0


FLUSHED = re.compile(r"\] (\d+) more refused connections since the last warning\n")


@pytest.mark.parametrize("param", BACKENDS, ids=lambda p: f"{p[0]}-t{p[1]}")
def test_a_burst_that_stops_is_counted_by_the_sweep_after_the_interval(param):
    """With a 1 s interval: a burst of 200 gives 1 or 2 lines at once; within about the interval plus
    one sweep, with no further refusal, a summary line counts the rest: lines + counts = 200. The
    next refusal after another interval is logged plainly again."""
    server = ShortRefusalInterval(server_args(*param, "--protocol", "uwsgi", "--uwsgi-allow-from",
                                              "10.1.2.3"), interval=1.0).start()
    try:
        refused_burst(server.port, 200)
        burst_lines = refusal_lines(server)
        assert 1 <= len(burst_lines) <= 2, server.stderr_text()[-3000:]
        deadline = time.monotonic() + 5.0
        while not FLUSHED.search(server.stderr_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        flushed = [int(match.group(1)) for match in FLUSHED.finditer(server.stderr_text())]
        counts = [int(line.group(1) or 0) for line in refusal_lines(server)]
        assert len(flushed) == 1, server.stderr_text()[-3000:]
        assert len(counts) + sum(counts) + flushed[0] == 200, (counts, flushed)
        if len(burst_lines) == 1:  # the usual case: the burst took less than the interval
            assert flushed == [199]
        time.sleep(1.1)  # the interval has passed since the summary line
        refused_burst(server.port, 1)
        lines = refusal_lines(server)
        assert len(lines) == len(burst_lines) + 1 and lines[-1].group(1) is None, \
            server.stderr_text()[-3000:]
    finally:
        assert server.stop() == 0


def test_the_allow_list_matches_addresses_and_networks(only_127_0_0_2):
    port = only_127_0_0_2.port
    with connect_from("127.0.0.2", port) as sock:
        sock.sendall(packet(GET))
        assert read_all(sock).startswith(b"HTTP/1.1 200 OK\r\n")
    with connect_from("127.0.0.1", port) as sock:
        sock.sendall(packet(GET))
        assert read_all(sock) == b""


MALFORMED_WARNING = re.compile(r"uwsgi: malformed packet from ")
MALFORMED_COUNT = re.compile(r"(\d+) more malformed uwsgi packets since the last warning")


@pytest.mark.parametrize("param", BACKENDS, ids=lambda p: f"{p[0]}-t{p[1]}")
def test_malformed_packets_are_logged(tmp_path, param):
    """A front end is trusted: its malformed packet is a misconfiguration its clients only see as
    400s, so it is logged with the error, the peer and the first bytes; within the interval (1 s
    here) the next ones are only counted, and the sweep logs the count."""
    path = str(tmp_path / "app.sock")
    server = ShortRefusalInterval(server_args(*param, "--protocol", "uwsgi", "--bind", f"uwsgi://unix:{path}"),
                                  interval=1.0).start()
    try:
        assert exchange(server.port, packet(GET, modifier1=30)).status == 400  # uwsgi_modifier1 30
        assert server.wait_stderr("UWSGI_BAD_MODIFIER") is not None, server.stderr_text()[-2000:]
        assert ("uwsgi: malformed packet from 127.0.0.1: UWSGI_BAD_MODIFIER, answered 400 and closed "
                r"(received b'\x1e") in server.stderr_text()
        mark = server.stderr_mark()
        assert unix_exchange(path, b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400 ")
        assert exchange(server.port, packet(GET + [("HTTP_X", "a\nb")])).status == 400
        # held back (the interval has not passed since the first line), then counted by the sweep:
        # every packet is in a line or in a count
        text = server.wait_stderr("more malformed uwsgi packets since the last warning", since=mark)
        assert text is not None, server.stderr_text()[-2000:]
        text = server.stderr_text()
        counted = sum(int(count) for count in MALFORMED_COUNT.findall(text))
        assert len(MALFORMED_WARNING.findall(text)) + counted == 3, text[-2000:]
        time.sleep(1.1)  # the interval has passed since the count line
        mark = server.stderr_mark()
        assert unix_exchange(path, b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400 ")
        text = server.wait_stderr("uwsgi: malformed packet from a UNIX socket: UWSGI_BAD_MODIFIER, "
                                  "answered 400 and closed (received b'GET / HTTP/1.1\\r\\n\\r\\n')",
                                  since=mark)
        assert text is not None, server.stderr_text()[-2000:]
    finally:
        assert server.stop() == 0


def unix_exchange(path: str, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(data)
        return read_all(sock)


@pytest.mark.parametrize("param", BACKENDS, ids=lambda p: f"{p[0]}-t{p[1]}")
def test_unix_socket_peers_are_always_allowed(tmp_path, param):
    path = str(tmp_path / "app.sock")
    server = ServerProcess(["--bind", f"uwsgi://unix:{path}", "--uwsgi-allow-from", "10.1.2.3",
                            "--http-parser", param[0], "--threads", str(param[1]),
                            "tests.functional.apps:app"]).start()
    try:
        assert listening_urls(server) == [f"uwsgi://unix:{path}"]
        reply = unix_exchange(path, packet(request_vars(path="/environ")))
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close" in head
        seen = json.loads(body)
        assert seen["REMOTE_ADDR"] == "203.0.113.7"  # from the packet
    finally:
        assert server.stop() == 0


# -- mixed servers, binds and the command line -----------------------------------------------------

def test_one_http_and_one_uwsgi_socket(mixed):
    http_url, uwsgi_url = listening_urls(mixed, 2)
    assert http_url.startswith("http://127.0.0.1:") and uwsgi_url.startswith("uwsgi://127.0.0.1:")
    http_port, uwsgi_port = int(http_url.rsplit(":", 1)[1]), int(uwsgi_url.rsplit(":", 1)[1])
    with Conn(http_port) as conn:  # HTTP keeps keep-alive and chunking
        conn.request("GET", "/chunks?n=3")
        resp = conn.read_response()
        assert resp.framing == "chunked" and resp.body == b"piece0;piece1;piece2;"
        conn.request("GET", "/hello")
        assert conn.read_response().body == b"hello"
    resp = exchange(uwsgi_port, packet(request_vars(path="/chunks", query="n=3")))
    assert resp.framing == "close" and resp.body == b"piece0;piece1;piece2;"
    # each socket speaks only its own protocol
    assert exchange(uwsgi_port, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").status == 400
    # (the HTTP parser judges a request line once it is complete, hence the CRLFs)
    assert exchange(http_port, packet(GET) + b"\r\n\r\n").status == 400


def uwsgi_port(server: ServerProcess) -> int:
    """The port of the server's uwsgi:// socket (the launch fixture also binds an HTTP one)."""
    urls = [url for url in listening_urls(server, 2) if url.startswith("uwsgi://")]
    assert len(urls) == 1, server.stderr_text()
    return int(urls[0].rsplit(":", 1)[1])


@pytest.mark.parametrize("reuse_port", [False, True], ids=["shared", "reuse-port"])
@pytest.mark.parametrize("param", BACKENDS, ids=lambda p: f"{p[0]}-t{p[1]}")
def test_workers_serve_uwsgi(launch, param, reuse_port):
    """Pre-fork workers inherit the master's uwsgi socket (or, with --reuse-port, open their own with
    the same protocol)."""
    server = launch("--bind", "uwsgi://127.0.0.1:0", "--http-parser", param[0], "--threads", str(param[1]),
                    "-w", "2", *(["--reuse-port"] if reuse_port else []))
    port = uwsgi_port(server)
    wait_booted(server, 2)
    for _ in range(4):
        resp = exchange(port, packet(request_vars(path="/pid")))
        pid, _imported_in, multiprocess = resp.body.split()
        assert int(pid) in booted(server) and multiprocess == b"True"


def test_hup_applies_a_new_allow_list(launch, tmp_path):
    """The master rereads the config file on HUP; the new workers admit peers by the new list."""
    conf = tmp_path / "fastwsgi.conf.py"
    conf.write_text('uwsgi_allow_from = "127.0.0.1"\n')
    server = launch("-c", str(conf), "-w", "1", "--bind", "uwsgi://127.0.0.1:0")
    port = uwsgi_port(server)
    first = wait_booted(server, 1)
    assert exchange(port, packet(request_vars(path="/pid"))).status == 200
    conf.write_text('uwsgi_allow_from = "10.9.9.9"\n')
    mark = server.stderr_mark()
    server.signal(signal.SIGHUP)
    assert server.wait_stderr("Reload complete", since=mark, timeout=20) is not None, server.stderr_text()
    assert len(wait_booted(server, len(first) + 1)) == 2
    deadline = time.monotonic() + 20  # the old worker drains and exits: only the new one accepts
    while first[0] in children(server.proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first[0] not in children(server.proc.pid)
    with connect_from("127.0.0.1", port) as sock:
        sock.sendall(packet(request_vars(path="/pid")))
        assert read_all(sock) == b""
    assert server.wait_stderr("not in --uwsgi-allow-from 10.9.9.9", since=mark) is not None


@pytest.mark.parametrize("how", ["fd", "uwsgi-fd", "systemd"])
def test_inherited_sockets_speak_the_default_protocol(passing, how):
    """fd://N and systemd's sockets take --protocol (or a uwsgi:// prefix on fd://N)."""
    fd, port = passing.fileno(), passing.getsockname()[1]
    if how == "systemd":  # --bind is ignored when systemd passes sockets
        server = WrappedServer(["--protocol", "uwsgi", "--bind", "127.0.0.1:1", OPS_APP], fd)
    else:
        bind = f"fd://{fd}" if how == "fd" else f"uwsgi://fd://{fd}"
        server = ServerProcess([*(["--protocol", "uwsgi"] if how == "fd" else []), "--bind", bind, OPS_APP])
    try:
        server.start()
        assert listening_urls(server) == [f"uwsgi://127.0.0.1:{port}"]
        resp = exchange(port, packet(request_vars(path="/pid")))
        assert resp.status == 200 and int(resp.body.split()[0]) == server.proc.pid
    finally:
        server.stop()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastwsgi", *args, "tests.functional.apps:app"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("args, message", [
    (["--protocol", "spdy"], "--protocol"),
    (["--bind", "ftp://127.0.0.1:9000"], "unknown protocol 'ftp'"),
    (["--bind", "uwsgi://"], "nothing after uwsgi://"),
    (["--bind", "uwsgi://127.0.0.1:port"], "invalid port in bind address 'uwsgi://127.0.0.1:port'"),
    (["--uwsgi-allow-from", "10.0.0.0/40"], "--uwsgi-allow-from"),
    (["--uwsgi-allow-from", "nginx.local"], "host names are not resolved"),
    (["--metrics-bind", "uwsgi://127.0.0.1:9100"], "--metrics-bind"),
])
def test_bad_protocol_options_are_one_line_errors(args, message):
    result = run_cli(*args)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastwsgi: error:") and message in lines[0], lines


def test_print_config_shows_the_protocol_options():
    result = subprocess.run([sys.executable, "-m", "fastwsgi", "--protocol", "uwsgi", "--uwsgi-allow-from",
                             "*", "--bind", "http://127.0.0.1:8001", "--print-config"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert 'protocol = "uwsgi"' in result.stdout and 'uwsgi_allow_from = "*"' in result.stdout
    assert 'bind = ["http://127.0.0.1:8001"]' in result.stdout
