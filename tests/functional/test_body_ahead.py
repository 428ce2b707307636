"""A request's body is received by the event loop before the application is called (Connection.begin,
RequestBody.receive_ahead), up to LOOKAHEAD bytes of it: a client that trickles its body holds
neither the loop (--threads 0), nor a pool thread (--threads N), nor a pre-fork worker (-w N).

Every test runs under --threads 0, --threads 2 and -w 1 with both parsers, the server's --read-timeout
being 2 s. Nothing is timed: a test checks that another client's request is answered while a body is
still incomplete, and `/called-echo` records on the side channel when the application is called, so
the test sees that it was not called before its body had arrived (a request on a second connection
answered first shows the server went on meanwhile).
"""

import socket

import pytest

from tests.functional.apps import pattern_bytes
from tests.functional.client import FILLING_BYTES, Conn, build_request, chunked, get, wait_delivered
from tests.functional.conftest import _check_alive, _use_server
from tests.functional.serverproc import DEFAULT_APP

READ_TIMEOUT = 2.0
# (parser, threads, extra flags): the loop, a thread pool, a pre-fork worker
MODELS = [("c", 0, ()), ("python", 0, ()), ("c", 2, ()), ("python", 2, ()),
          ("c", 0, ("-w", "1")), ("python", 0, ("-w", "1"))]
TRICKLERS = 3  # more than --threads 2: the old code held every pool thread


def model_id(param) -> str:
    parser, threads, extra = param
    return f"{parser}-" + ("w1" if extra else f"t{threads}")


@pytest.fixture(params=MODELS, ids=model_id)
def ahead_server(request, pool):
    parser, threads, extra = request.param
    server = _use_server(pool, (parser, threads), (*extra, "--read-timeout", str(READ_TIMEOUT)), DEFAULT_APP)
    yield server
    _check_alive(server)


def framed(framing: str, target: str, body: bytes, extra=()) -> tuple[bytes, bytes]:
    """(head, body as sent) of a POST of `body` with `framing` ("length" or "chunked")."""
    if framing == "length":
        return build_request("POST", target, headers=[*extra, ("Content-Length", str(len(body)))]), body
    # chunks that put the chunk framing's own bytes inside the data, and a trailer
    wire = chunked(body[:1], body[1:12], body[12:], trailers=b"X-Checksum: 1\r\n")
    return build_request("POST", target, headers=[*extra, ("Transfer-Encoding", "chunked")]), wire


def answered_meanwhile(port: int) -> None:
    """Another client's request is answered (the server is not held by the request in progress)."""
    assert get(port, "/hello").body == b"hello"


FRAMINGS = pytest.mark.parametrize("framing", ["length", "chunked"])
BODY = b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256))


@FRAMINGS
def test_trickling_bodies_do_not_hold_another_clients_request(ahead_server, framing):
    """The repro: clients that send their body's first half, then wait. The old code called the
    application at once, whose read waited (--read-timeout per read) on the loop thread or a pool
    thread: the GET waited behind them, and the tricklers were cut."""
    port = ahead_server.port
    tricklers = []
    try:
        for i in range(TRICKLERS):
            head, wire = framed(framing, "/echo", b"%d" % i + BODY)
            conn = Conn(port)
            tricklers.append((conn, wire, b"%d" % i + BODY))
            conn.send(head + wire[:len(wire) // 2])
            wait_delivered(conn.sock)
        answered_meanwhile(port)  # while every trickler's body is incomplete
        for conn, wire, body in tricklers:
            conn.send(wire[len(wire) // 2:])
            resp = conn.read_response()
            assert resp.status == 200 and resp.body == body, resp.raw_head
            assert "close" not in resp.connection_tokens()
    finally:
        for conn, _, _ in tricklers:
            conn.close()


@FRAMINGS
def test_a_body_sent_a_byte_at_a_time_reaches_the_app_whole(ahead_server, token, events, framing):
    """Every byte in its own segment (so the body, and for chunked its framing, is split at every
    place): the application is called only once all of it has come, sees it byte for byte, and the
    request pipelined behind it is answered next."""
    port = ahead_server.port
    head, wire = framed(framing, f"/called-echo?t={token}", BODY)
    with Conn(port) as conn:
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.send(head)
        for i in range(len(wire) - 1):
            conn.send(wire[i:i + 1])
            wait_delivered(conn.sock)
        answered_meanwhile(port)
        assert events(token, timeout=0) == [], "the application was called before its body had come"
        conn.send(wire[-1:] + build_request("GET", "/p/next"))
        resp = conn.read_response()
        assert resp.status == 200 and resp.body == BODY
        assert conn.read_response().body == b"GET /p/next?"
    assert events(token, count=2) == [{"event": "called"}, {"event": "echo", "length": len(BODY)}]


@FRAMINGS
def test_a_body_that_stalls_before_the_app_is_called_gets_408(ahead_server, token, events, framing):
    """--read-timeout without a byte while the body is received: 408 and the connection closes; the
    application is never called (the old code called it, and its read timed out: no answer)."""
    head, wire = framed(framing, f"/called-echo?t={token}", BODY)
    with Conn(ahead_server.port, timeout=READ_TIMEOUT + 5) as conn:
        conn.send(head + wire[:20])
        resp = conn.read_response()
        assert resp.status == 408, resp.raw_head
        assert "close" in resp.connection_tokens()
        assert conn.closed_by_server()
    assert events(token, timeout=0.5) == []


def test_a_client_that_leaves_before_its_body_never_reaches_the_app(ahead_server, token, events):
    head, wire = framed("length", f"/called-echo?t={token}", BODY)
    with Conn(ahead_server.port) as conn:
        conn.send(head + wire[:20])
        wait_delivered(conn.sock)
        answered_meanwhile(ahead_server.port)
        conn.sock.shutdown(socket.SHUT_WR)
        assert conn.read_to_eof() == b""
    assert events(token, timeout=0.5) == []


def test_100_continue_is_still_asked_for_by_the_applications_read(ahead_server, token, events):
    """A client that waits for 100 Continue sends no body until the application reads: the server
    calls it without waiting for the body, and the first read sends the 100."""
    head, _ = framed("length", f"/called-echo?t={token}", b"hello", extra=[("Expect", "100-continue")])
    with Conn(ahead_server.port) as conn:
        conn.send(head)
        interim = conn.read_head()
        assert interim.status == 100, interim.raw_head
        assert events(token) == [{"event": "called"}]
        conn.send(b"hello")
        resp = conn.read_response()
        assert resp.status == 200 and resp.body == b"hello" and resp.interim == []


def test_a_body_larger_than_the_bound_streams_to_the_app(ahead_server, token, events):
    """The application is called once LOOKAHEAD bytes have come, not before, and reads the rest as
    it arrives."""
    bound = len(FILLING_BYTES)
    body = pattern_bytes(bound + 65536 + 7)
    head, _ = framed("length", f"/called-echo?t={token}", body)
    with Conn(ahead_server.port, timeout=15) as conn:
        conn.send(head + body[:10])
        wait_delivered(conn.sock)
        answered_meanwhile(ahead_server.port)
        assert events(token, timeout=0) == [], "the application was called on the head"
        conn.send(body[10:bound])
        assert events(token) == [{"event": "called"}]  # before the rest was sent
        conn.send(body[bound:])
        resp = conn.read_response()
        assert resp.status == 200 and resp.body == body
