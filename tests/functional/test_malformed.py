"""Malformed requests get the parser's status with Connection: close, then the socket is closed; request
smuggling attempts never reach the application (RFC 9112 §2.2, §3, §5, §6.1, §6.3, §11.2)."""

import threading

import pytest

from tests.functional.client import Conn
from tests.functional.conftest import server_fixture

H = b"Host: x\r\n"
BAD_REQUESTS = {
    "double-space": (b"GET  / HTTP/1.1\r\n" + H + b"\r\n", 400),
    "http09": (b"GET /\r\n\r\n", 400),
    "bad-method": (b"G(T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    "bad-version": (b"GET / HTTP/1.x\r\n" + H + b"\r\n", 400),
    "http2-version": (b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    "http3-version": (b"GET / HTTP/3.1\r\n" + H + b"\r\n", 505),
    "bad-target": (b"GET foo HTTP/1.1\r\n" + H + b"\r\n", 400),
    "space-in-target": (b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", 400),
    # served, PATH_INFO was "/a#b" where gunicorn and waitress give "/a" (tests/compat/diff_environ.py)
    "fragment-in-target": (b"GET /a#b HTTP/1.1\r\n" + H + b"\r\n", 400),
    "connect": (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501),
    "connect-origin-form": (b"CONNECT / HTTP/1.1\r\n" + H + b"\r\n", 400),
    "uri-too-long": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    "header-line-too-long": (b"GET / HTTP/1.1\r\n" + H + b"X-Long: " + b"v" * 9000 + b"\r\n\r\n", 431),
    "too-many-headers": (b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: v\r\n" % i for i in range(101))
                         + b"\r\n", 431),
    "head-too-large": (b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 8000)
                                                            for i in range(9)) + b"\r\n", 431),
    "bare-lf": (b"GET / HTTP/1.1\nHost: x\n\n", 400),
    "bare-cr": (b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", 400),
    "obs-fold": (b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n b\r\n\r\n", 400),
    "space-before-colon": (b"GET / HTTP/1.1\r\n" + H + b"X-A : b\r\n\r\n", 400),
    "no-colon": (b"GET / HTTP/1.1\r\n" + H + b"Nonsense\r\n\r\n", 400),
    "nul-in-value": (b"GET / HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n", 400),
    "missing-host": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "duplicate-host": (b"GET / HTTP/1.1\r\n" + H + H + b"\r\n", 400),
    "bad-host": (b"GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n", 400),
    "bad-content-length": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\n", 400),
    "negative-content-length": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400),
    "huge-content-length": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999\r\n\r\n", 400),
    "duplicate-content-length": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\nx",
                                 400),
    "te-on-http10": (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "te-unknown": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
    "te-not-last": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    "bad-expect": (b"POST / HTTP/1.1\r\n" + H + b"Expect: tea\r\nContent-Length: 1\r\n\r\nx", 417),
    "bad-chunk-size": (b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
                       400),
    "bad-chunk-end": (b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
                      400),
}


def assert_rejected(port: int, data: bytes, status: int) -> None:
    with Conn(port) as conn:
        conn.send(data)
        resp = conn.read_response(timeout=5)
        assert resp.status == status, (resp.status, resp.body[:200])
        assert "close" in resp.connection_tokens(), resp.raw_head
        assert resp.header("Content-Length") is not None or resp.framing == "chunked"
        assert conn.closed_by_server(3.0), "the socket stayed open after an error response"


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_malformed_request(server, name):
    data, status = BAD_REQUESTS[name]
    assert_rejected(server.port, data, status)


@pytest.mark.parametrize("name", ["too-many-headers", "bad-method", "missing-host"])
def test_malformed_request_sent_byte_by_byte(server, name):
    data, status = BAD_REQUESTS[name]
    with Conn(server.port) as conn:
        try:
            for i in range(len(data)):
                conn.send(data[i:i + 1])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered as soon as the error was certain and closed
        resp = conn.read_response()
        assert resp.status == status and "close" in resp.connection_tokens()


def test_error_response_survives_a_client_still_sending(server):
    """The server half-closes and drains briefly, so the 400 is not destroyed by a reset."""
    with Conn(server.port) as conn:
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n")

        def keep_sending():
            try:
                for _ in range(16):
                    conn.sock.send(b"j" * 16384)
            except OSError:
                pass

        sender = threading.Thread(target=keep_sending)
        sender.start()
        resp = conn.read_response()
        sender.join(10)
        assert resp.status == 400


def test_valid_request_after_errors_on_other_connections(server):
    for data, _status in list(BAD_REQUESTS.values())[:6]:
        with Conn(server.port) as conn:
            conn.send(data)
            conn.read_available(0.05)
    with Conn(server.port) as conn:
        conn.request("GET", "/hello")
        assert conn.read_response().body == b"hello"


def test_connect_is_not_tunnelled(server, token, events):
    """CONNECT gets 501 and the connection is closed (RFC 9110 §9.1: a WSGI server cannot tunnel): the
    bytes a client sends at once after it, meant for the tunnel, never reach the application."""
    tunnelled = b"POST /record?t=" + token.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    with Conn(server.port) as conn:
        conn.send(b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n" + tunnelled)
        resp = conn.read_response()
        assert resp.status == 501, (resp.status, resp.raw_head)
        assert resp.header("Connection") == "close", resp.raw_head
        assert conn.closed_by_server(3.0), "the socket stayed open after the 501"
    assert events(token, count=1, timeout=0.3) == [], "the bytes after CONNECT were run as a request"


# -- request smuggling (RFC 9112 §6.1, §6.3, §11.2) ---------------------------------------------------

def smuggling_attempts(token: str) -> dict[str, tuple[bytes, int]]:
    inner = b"GET /record?t=" + token.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    front = b"POST /record?t=" + token.encode() + b" HTTP/1.1\r\nHost: x\r\n"
    zero = b"0\r\n\r\n"
    return {
        "cl-te": (front + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % (len(zero) + len(inner))
                  + zero + inner, 400),
        "te-cl": (front + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" + b"%x\r\n" % len(inner)
                  + inner + b"\r\n" + zero, 400),
        "te-twice-obfuscated": (front + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: cow\r\n"
                                + b"Content-Length: 5\r\n\r\n" + zero + inner, 400),
        "te-vertical-tab": (front + b"Transfer-Encoding:\x0bchunked\r\n\r\n" + zero + inner, 400),
        "te-space-before-colon": (front + b"Transfer-Encoding : chunked\r\n\r\n" + zero + inner, 400),
        "te-xchunked": (front + b"Transfer-Encoding: xchunked\r\n\r\n" + zero + inner, 400),  # no chunked
        "te-gzip-chunked": (front + b"Transfer-Encoding: gzip, chunked\r\n\r\n" + zero + inner, 501),
        "two-content-lengths": (front + b"Content-Length: 0\r\nContent-Length: %d\r\n\r\n" % len(inner) + inner,
                                400),
        "content-length-list": (front + b"Content-Length: 0, %d\r\n\r\n" % len(inner) + inner, 400),
        "te-http10": (b"POST /record?t=" + token.encode() + b" HTTP/1.0\r\nTransfer-Encoding: chunked\r\n"
                      + b"Content-Length: 5\r\n\r\n" + zero + inner, 400),
        "bare-lf-chunk": (front + b"Transfer-Encoding: chunked\r\n\r\n0\n\r\n" + inner, 400),
    }


def test_side_channel_control(server, token, events):
    """Positive control for the test below: a valid request to /record does show up."""
    with Conn(server.port) as conn:
        conn.send(b"POST /record?t=" + token.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert conn.read_response().status == 200
    assert events(token) == [{"event": "executed", "method": "POST", "path": "/record"}]


@pytest.mark.parametrize("name", list(smuggling_attempts("x")))
def test_smuggling_attempt_is_rejected_and_never_executed(server, token, events, name):
    data, status = smuggling_attempts(token)[name]
    with Conn(server.port) as conn:
        conn.send(data)
        resp = conn.read_response()
        if name == "bare-lf-chunk":
            # the head is valid; the body is not: the front request may run, but nothing after it
            assert "close" in resp.connection_tokens() or conn.closed_by_server(3.0)
            assert conn.closed_by_server(3.0)
        else:
            assert resp.status == status
            assert "close" in resp.connection_tokens()
            assert conn.closed_by_server(3.0)
    seen = events(token, count=1, timeout=0.3)
    executed = [e for e in seen if e.get("method") == "GET"]
    assert executed == [], f"the smuggled request was executed: {seen}"
    if name != "bare-lf-chunk":
        assert seen == [], f"a rejected request reached the application: {seen}"


# Binary input sent to the HTTP port, with no LF in it: the request line's method prefix is rejected
# at its first non-tchar byte (docs/parser-spec.md "Method prefix"), not when the head timeout fires.
# The header timeout is 60 s and the client waits 10 s at most, so a server that waited would fail.
patient_server = server_fixture("--header-timeout", "60")
NOT_HTTP = {  # neither holds an LF
    # TLS 1.2 record header + the start of a ClientHello (handshake type 1, version 3.3)
    "tls-client-hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(0x80, 0xa0)),
    # uwsgi packet: modifier1 0, datasize 16 (little-endian), modifier2 0, then one var
    "uwsgi-packet": b"\x00\x10\x00\x00\x0b\x00REQUEST_URI\x01\x00/",
}


@pytest.mark.parametrize("name", list(NOT_HTTP))
def test_binary_prefix_is_rejected_at_once(patient_server, name):
    with Conn(patient_server.port, timeout=10) as conn:
        conn.send(NOT_HTTP[name])
        resp = conn.read_response(timeout=10)
        assert resp.status == 400, (resp.status, resp.raw_head)
        assert "close" in resp.connection_tokens(), resp.raw_head
        assert conn.closed_by_server(5.0), "the socket stayed open after the 400"
