"""Persistent connections, pipelining and Connection: close (RFC 9112 §9), on the full matrix."""

import http.client
import random
import socket
import threading
import time

import pytest

from tests.functional.client import FILLING, FILLING_BYTES, Conn, build_request, chunked, tell, wait_delivered


def test_http11_keeps_the_connection_open_by_default(server):
    with Conn(server.port) as conn:
        for i in range(5):
            conn.request("GET", f"/p/{i}")
            resp = conn.read_response()
            assert resp.version == "HTTP/1.1"
            assert resp.status == 200
            assert resp.body == f"GET /p/{i}?".encode()
            assert "close" not in resp.connection_tokens()
        assert not conn.closed_by_server(0.3), "server closed an HTTP/1.1 keep-alive connection"


def test_http10_closes_unless_asked(server):
    with Conn(server.port) as conn:
        conn.request("GET", "/p/one", version="HTTP/1.0")
        resp = conn.read_response()
        assert resp.status == 200
        assert resp.body == b"GET /p/one?"
        assert "keep-alive" not in resp.connection_tokens()
        assert conn.closed_by_server(2.0), "HTTP/1.0 without keep-alive must be closed after the response"


@pytest.mark.parametrize("value", ["keep-alive", "Keep-Alive", "foo, keep-alive"])
def test_http10_keep_alive_on_request_is_echoed(server, value):
    with Conn(server.port) as conn:
        for i in range(3):
            conn.request("GET", f"/p/{i}", version="HTTP/1.0", headers=[("Connection", value)])
            resp = conn.read_response()
            assert resp.status == 200
            assert resp.body == f"GET /p/{i}?".encode()
            assert "keep-alive" in resp.connection_tokens(), resp.raw_head
            assert resp.header("Content-Length") == str(len(resp.body))
        assert not conn.closed_by_server(0.3)


@pytest.mark.parametrize("value", ["close", "Close", "keep-alive, close", "foo,CLOSE"])
def test_client_connection_close_is_honoured(server, value):
    with Conn(server.port) as conn:
        conn.request("GET", "/p/bye", headers=[("Connection", value)])
        resp = conn.read_response()
        assert resp.status == 200 and resp.body == b"GET /p/bye?"
        assert "close" in resp.connection_tokens(), resp.raw_head
        assert conn.closed_by_server(2.0)


def test_connection_close_in_a_pipeline_stops_there(server):
    """Requests after the one carrying Connection: close are never answered (nor executed)."""
    with Conn(server.port) as conn:
        conn.send(build_request("GET", "/p/1") + build_request("GET", "/p/2", headers=[("Connection", "close")])
                  + build_request("GET", "/p/3"))
        first, second = conn.read_response(), conn.read_response()
        assert (first.body, second.body) == (b"GET /p/1?", b"GET /p/2?")
        assert "close" in second.connection_tokens()
        rest = conn.read_to_eof(2.0)
        assert rest == b"", f"answered a request after Connection: close: {rest[:200]!r}"


def test_server_closes_after_an_error_response(server):
    """The server's own Connection: close (on a malformed request) is followed by an actual close."""
    with Conn(server.port) as conn:
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n")
        resp = conn.read_response()
        assert resp.status == 400
        assert "close" in resp.connection_tokens()
        assert conn.closed_by_server(2.0)


def test_pipelined_requests_are_answered_in_order(server):
    with Conn(server.port) as conn:
        conn.send(b"".join(build_request("GET", f"/p/{i}?q={i}") for i in range(16)))
        for i in range(16):
            resp = conn.read_response()
            assert resp.status == 200
            assert resp.body == f"GET /p/{i}?q={i}".encode()
        assert not conn.closed_by_server(0.2)


def test_pipeline_mixed_with_bodies(server):
    """GETs, a Content-Length POST and a chunked POST in one send: every body stays with its request."""
    payload = b"A" * 3000 + b"\r\n\r\nGET /evil HTTP/1.1\r\n\r\n"  # looks like a request, is body
    chunked_body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    data = (build_request("GET", "/p/a")
            + build_request("POST", "/echo", body=payload)
            + build_request("GET", "/p/b")
            + build_request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")], body=chunked_body)
            + build_request("GET", "/p/c"))
    with Conn(server.port) as conn:
        conn.send(data)
        bodies = [conn.read_response().body for _ in range(5)]
    assert bodies == [b"GET /p/a?", payload, b"GET /p/b?", b"hello world", b"GET /p/c?"]


def test_pipeline_sent_byte_by_byte(server):
    data = build_request("GET", "/p/x") + build_request("POST", "/echo", body=b"abc") + build_request("GET", "/p/y")
    with Conn(server.port) as conn:
        for i in range(len(data)):
            conn.send(data[i:i + 1])
        bodies = [conn.read_response().body for _ in range(3)]
    assert bodies == [b"GET /p/x?", b"abc", b"GET /p/y?"]


def test_unread_body_is_drained_before_the_next_request(server, token, events):
    """The app ignores the body; the bytes of that body must never be parsed as a request."""
    smuggle = build_request("GET", f"/record?t={token}")
    with Conn(server.port) as conn:
        conn.send(build_request("POST", f"/ignore-body?t={token}", body=smuggle)
                  + build_request("GET", "/p/after"))
        first = conn.read_response()
        assert first.body == b"ignored"
        if "close" in first.connection_tokens():  # allowed: close instead of draining
            assert conn.closed_by_server(2.0)
        else:
            assert conn.read_response().body == b"GET /p/after?"
    assert [e["event"] for e in events(token, count=2, timeout=0.5)] == ["ignored"]


# -- an unread chunked body (Django reads none: it has no CONTENT_LENGTH) ---------------------------
# Whether the connection stays open is said in the response head, so it is decided before the
# application's response goes out: a chunked body whose whole rest (last chunk and trailers included)
# is already buffered is decoded and its end known, so the connection stays open; any other is
# answered with Connection: close, and nothing in it is ever parsed as a request.

TE_CHUNKED = [("Transfer-Encoding", "chunked")]


def assert_kept(conn: Conn, request: bytes, answer: bytes) -> None:
    """Send `request` with a GET pipelined behind it: `answer` comes without Connection: close, then
    the GET's answer on the same connection."""
    conn.send(request + build_request("GET", "/p/after"))
    first = conn.read_response()
    assert first.body == answer
    assert "close" not in first.connection_tokens(), first.raw_head
    assert conn.read_response().body == b"GET /p/after?"


def test_unread_chunked_body_is_drained(server, token, events):
    """The whole body (a request inside it, split across chunks, and a trailer) came with the head:
    the connection stays open, the next requests are answered and the one inside the body never runs."""
    smuggle = build_request("GET", f"/record?t={token}")
    body = chunked(smuggle[:9], smuggle[9:], trailers=b"X-Checksum: 1\r\n")
    with Conn(server.port) as conn:
        assert_kept(conn, build_request("POST", f"/ignore-body?t={token}", headers=TE_CHUNKED, body=body),
                    b"ignored")
        conn.request("GET", "/p/again")  # after both answers: the connection is still open
        assert conn.read_response().body == b"GET /p/again?"
    assert [e["event"] for e in events(token, count=2, timeout=0.5)] == ["ignored"]


def test_unread_chunked_bodies_one_request_at_a_time(server):
    """Each request is sent once the previous answer arrived (a client without pipelining)."""
    body = chunked(b"a" * 100, b"b" * 5000, b"c")
    with Conn(server.port) as conn:
        for _ in range(3):
            conn.send(build_request("POST", "/ignore-body", headers=TE_CHUNKED, body=body))
            resp = conn.read_response()
            assert resp.body == b"ignored"
            assert "close" not in resp.connection_tokens(), resp.raw_head
        conn.request("GET", "/p/next")
        assert conn.read_response().body == b"GET /p/next?"


def test_unread_chunked_body_keeps_an_http_client_connection(server):
    """http.client (what requests and urllib3 build on) reuses the connection. Its head and body
    leave in two send() calls: TCP_CORK holds them until both are written, so they arrive together."""
    client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        client.connect()
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        client.request("POST", "/ignore-body", body=chunked(b"x" * 1000, b"y" * 10),
                       headers={"Transfer-Encoding": "chunked"})
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
        sock = client.sock
        resp = client.getresponse()
        assert resp.read() == b"ignored"
        assert not resp.will_close, resp.getheaders()
        client.request("GET", "/p/after")
        resp = client.getresponse()
        assert resp.read() == b"GET /p/after?"
        assert client.sock is sock, "http.client had to open a new connection"
    finally:
        client.close()


@pytest.mark.parametrize("sent", [b"5\r\nhello\r\n", b"5\r\nhel", b"5\r\nhello\r\n0\r\n",
                                  b"5\r\nhello\r\n0\r\nX-Checksum: 1\r\n"],
                         ids=["between-chunks", "in-a-chunk", "before-trailers", "in-trailers"])
def test_unread_chunked_body_not_all_there_closes(streaming_server, token, events, sent):
    """The rest of the body has not arrived when the response goes out: Connection: close, and what
    the client sends next (the body's end, then a request) is discarded, never run."""
    with Conn(streaming_server.port) as conn:
        conn.send(build_request("POST", "/ignore-body", headers=TE_CHUNKED) + FILLING + sent)
        first = conn.read_response()
        assert first.body == b"ignored"
        assert "close" in first.connection_tokens(), first.raw_head
        conn.send(b"lo\r\n0\r\n\r\n" + build_request("GET", f"/record?t={token}"))
        assert conn.closed_by_server()
    assert events(token, count=1, timeout=0.5) == []


@pytest.mark.parametrize("body", [b"5\r\nhelloXX\r\n0\r\n\r\n", b"zz\r\nhello\r\n0\r\n\r\n",
                                  b"5\r\nhello\r\n0\r\nno colon\r\n\r\n", b"5\r\nhello\r\n0\r\n\n\r\n",
                                  b"-5\r\nhello\r\n0\r\n\r\n", b"5\r\nhello\r\n\r\n"],
                         ids=["data-end", "size", "trailer", "bare-lf-end", "negative", "no-last-chunk"])
def test_unread_malformed_chunked_body_closes(unbuffered_server, token, events, body):
    """Invalid framing in a body the application never read (it was called before its body came:
    --request-buffering 0): the connection closes and the request after it, which the client may
    have crafted to be read out of the body, never runs."""
    with Conn(unbuffered_server.port) as conn:
        conn.send(build_request("POST", "/ignore-body", headers=TE_CHUNKED, body=body)
                  + build_request("GET", f"/record?t={token}"))
        first = conn.read_response()
        assert first.body == b"ignored"
        assert "close" in first.connection_tokens(), first.raw_head
        assert conn.closed_by_server()
    assert events(token, count=1, timeout=0.5) == []


@pytest.mark.parametrize("body", [b"5\r\nhelloXX\r\n0\r\n\r\n", b"zz\r\nhello\r\n0\r\n\r\n",
                                  b"5\r\nhello\r\n0\r\nno colon\r\n\r\n", b"5\r\nhello\r\n0\r\n\n\r\n",
                                  b"-5\r\nhello\r\n0\r\n\r\n", b"5\r\nhello\r\n\r\n"],
                         ids=["data-end", "size", "trailer", "bare-lf-end", "negative", "no-last-chunk"])
def test_a_malformed_chunked_body_received_first_is_refused_without_the_application(server, token, events,
                                                                                  body):
    """By default the body is received before the application runs: invalid framing found then is
    answered 400 and the connection closes; neither that request's application nor the request
    after it runs (waitress does the same; the application never sees a request it cannot read)."""
    with Conn(server.port) as conn:
        conn.send(build_request("POST", f"/read-record?t={token}", headers=TE_CHUNKED, body=body)
                  + build_request("GET", f"/record?t={token}"))
        first = conn.read_response()
        assert first.status == 400, first.raw_head
        assert "close" in first.connection_tokens(), first.raw_head
        assert conn.closed_by_server()
    assert events(token, count=1, timeout=0.5) == []


LARGE_CHUNKED = b"%x\r\n%s\r\n" % (65536, b"x" * 65536) * 48 + b"0\r\n\r\n"  # 3 MiB


def test_a_large_unread_chunked_body_never_breaks_a_keep_alive_promise(streaming_server):
    """A chunked body's size is unknown when the response goes out: a response that promised
    keep-alive had to be followed by the next request's answer, yet past 1 MiB the drain gave up and
    closed, and the pipelined request went unanswered (requests.Session: RemoteDisconnected). More
    than the server buffers ahead (--request-buffering 256 KiB): Connection: close."""
    body = LARGE_CHUNKED
    with Conn(streaming_server.port, timeout=10) as conn:
        conn.send(build_request("POST", "/ignore-body", headers=TE_CHUNKED, body=body)
                  + build_request("GET", "/p/after"))
        first = conn.read_response()
        assert first.body == b"ignored"
        assert "close" in first.connection_tokens(), first.raw_head
        assert conn.closed_by_server(5.0)


def test_a_large_unread_chunked_body_received_first_keeps_the_connection(server):
    """By default the whole body is received before the application is called, so its end is
    known when the response goes out: the connection stays open and the pipelined request is
    answered."""
    with Conn(server.port, timeout=10) as conn:
        assert_kept(conn, build_request("POST", "/ignore-body", headers=TE_CHUNKED, body=LARGE_CHUNKED),
                    b"ignored")


def test_a_chunked_body_read_after_the_head_is_whole(server, token, events):
    """The application answers first and reads the body afterwards: deciding the connection's fate
    took the buffered body out of the input, and the application still reads every byte of it."""
    body = chunked(b"hello ", b"chunked ", b"world", trailers=b"X-Checksum: 1\r\n")
    with Conn(server.port) as conn:
        assert_kept(conn, build_request("POST", f"/respond-then-record?t={token}", headers=TE_CHUNKED,
                                        body=body), b"first;got:hello chunked world")
    assert events(token) == [{"event": "read-ok", "body": "hello chunked world"}]


def test_a_malformed_chunked_body_read_after_the_head_raises(unbuffered_server, token, events):
    """The same, with invalid framing, for an application called before its body came
    (--request-buffering 0): the connection closes, and the application's read raises (never a
    short body returned as if it were whole)."""
    with Conn(unbuffered_server.port) as conn:
        conn.send(build_request("POST", f"/respond-then-record?t={token}", headers=TE_CHUNKED,
                                body=b"5\r\nhelloXX\r\n0\r\n\r\n") + build_request("GET", "/p/after"))
        head = conn.read_head()
        assert "close" in head.connection_tokens(), head.raw_head
        assert conn.closed_by_server()
    assert events(token) == [{"event": "read-error", "type": "BodyError"}]


# -- the body reaches the socket while the application runs ------------------------------------------
# Clients write the head and the body in separate sends (http.client, requests, curl), so the body is
# often still in the server's socket, unread, when the application answers: what the socket holds is
# read then, without waiting. apps.h_answer_when_told answers once the test says so (`tell`), after
# the body was sent and taken by the server's kernel (`wait_delivered`): it has arrived, unread.

def post_while_the_app_runs(conn: Conn, events, events_dir, token: str, *pieces: bytes, read: int = -1):
    """Send a chunked POST's head and the first of `pieces` after a chunk that makes the server call
    the application (FILLING); once the application runs (and read `read` bytes of the body), the
    other pieces (one send each, a moment apart); then let the application answer. Returns its
    response."""
    target = f"/answer-when-told?t={token}" + (f"&read={read}" if read >= 0 else "")
    conn.send(build_request("POST", target, headers=TE_CHUNKED) + FILLING + pieces[0])
    assert events(token) == [{"event": "started"}]
    for piece in pieces[1:]:
        conn.send(piece)
        time.sleep(0.01)
    wait_delivered(conn.sock)
    tell(events_dir, token)
    return conn.read_response()


@pytest.mark.parametrize("read", [-1, 3], ids=["unread", "partly-read"])
def test_a_chunked_body_that_arrived_while_the_app_ran_keeps_the_connection(streaming_server, token, events,
                                                                            events_dir, read):
    body = chunked(b"abcdef", b"x" * 5000, trailers=b"X-Checksum: 1\r\n")
    with Conn(streaming_server.port) as conn:
        first = post_while_the_app_runs(conn, events, events_dir, token, body[:9], body[9:30], body[30:],
                                        read=read)
        assert first.body == b"answered after %d" % max(read, 0)
        assert "close" not in first.connection_tokens(), first.raw_head
        conn.request("GET", "/p/after")  # the same socket answers the next request
        assert conn.read_response().body == b"GET /p/after?"


def test_an_http_client_chunked_upload_keeps_its_connection(streaming_server, token, events, events_dir):
    """http.client with encode_chunked=True (what requests does with a generator body) writes the head,
    then each chunk, in separate sends; the application ignores the body. The chunks come once the
    application runs (after a first chunk that makes the server call it: FILLING)."""

    def body():
        yield FILLING_BYTES
        assert events(token) == [{"event": "started"}]
        yield b"x" * 1000
        yield b"y" * 3000

    client = http.client.HTTPConnection("127.0.0.1", streaming_server.port, timeout=5)
    try:
        client.request("POST", f"/answer-when-told?t={token}", body=body(), encode_chunked=True)
        sock = client.sock
        wait_delivered(sock)
        tell(events_dir, token)
        resp = client.getresponse()
        assert resp.read() == b"answered after 0"
        assert not resp.will_close, resp.getheaders()
        client.request("GET", "/p/after")
        assert client.getresponse().read() == b"GET /p/after?"
        assert client.sock is sock, "http.client had to open a new connection"
    finally:
        client.close()


@pytest.mark.parametrize("rest", [b"5\r\nhelloXX\r\n0\r\n\r\n", b"5\r\nhello\r\n0\r\nno colon\r\n\r\n",
                                  b"5\r\nhel"], ids=["data-end", "trailer", "not-all-there"])
def test_a_chunked_body_that_arrived_while_the_app_ran_still_closes_when_invalid_or_cut(
        streaming_server, token, events, events_dir, rest):
    """Invalid framing, or a body whose end has not come, in the socket: Connection: close, and the
    request sent behind it never runs."""
    smuggled = f"/record?t={token}-smuggled"
    with Conn(streaming_server.port) as conn:
        first = post_while_the_app_runs(conn, events, events_dir, token, b"", b"3\r\nabc\r\n", rest)
        assert first.body == b"answered after 0"
        assert "close" in first.connection_tokens(), first.raw_head
        conn.send(b"lo\r\n0\r\n\r\n" + build_request("GET", smuggled))
        assert conn.closed_by_server()
    assert events(f"{token}-smuggled", count=1, timeout=0.5) == []


def test_many_connections_in_parallel(server):
    conns = [Conn(server.port) for _ in range(20)]
    try:
        for i, conn in enumerate(conns):
            conn.request("GET", f"/p/{i}")
        for i, conn in enumerate(conns):
            assert conn.read_response().body == f"GET /p/{i}?".encode()
    finally:
        for conn in conns:
            conn.close()


def test_pipeline_with_a_malformed_request_in_the_middle(server, token, events):
    """Responses before the bad request are delivered, then the 400, then the close; nothing after runs."""
    with Conn(server.port) as conn:
        conn.send(build_request("GET", "/p/ok") + b"GET /bad path HTTP/1.1\r\nHost: x\r\n\r\n"
                  + build_request("GET", f"/record?t={token}"))
        assert conn.read_response().body == b"GET /p/ok?"
        bad = conn.read_response()
        assert bad.status == 400 and "close" in bad.connection_tokens()
        assert conn.read_to_eof(3.0) == b""
    assert events(token, timeout=0.3) == []


def test_empty_lines_before_the_request_line_are_ignored(server):
    """RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request-line."""
    with Conn(server.port) as conn:
        conn.send(b"\r\n\r\n" + build_request("GET", "/p/late"))
        assert conn.read_response().body == b"GET /p/late?"


def test_request_then_half_close_still_gets_its_response(server):
    with Conn(server.port) as conn:
        conn.request("GET", "/p/half")
        conn.sock.shutdown(socket.SHUT_WR)
        resp = conn.read_response()
        assert resp.status == 200 and resp.body == b"GET /p/half?"
        assert conn.closed_by_server(3.0)


def test_pipeline_then_half_close_while_a_large_response_is_sent(server):
    """The client pipelines a large download and a small request, then shuts its side down while the
    download is still being sent: the small request is answered too, then the connection closes.
    (On the event loop the EOF used to stop the requests behind the response in progress.)"""
    with Conn(server.port) as conn:
        conn.send(build_request("GET", "/download?n=20000000") + build_request("GET", "/p/second"))
        time.sleep(0.2)  # the download fills the socket buffers: its response is suspended
        conn.sock.shutdown(socket.SHUT_WR)
        first = conn.read_response(timeout=20)
        assert first.status == 200 and len(first.body) == 20_000_000
        assert conn.read_response().body == b"GET /p/second?"
        assert conn.closed_by_server(3.0)


def test_http10_post_with_keep_alive(server):
    with Conn(server.port) as conn:
        for body in (b"one", b"second"):
            conn.request("POST", "/echo", version="HTTP/1.0", headers=[("Connection", "keep-alive")], body=body)
            resp = conn.read_response()
            assert resp.body == body and "keep-alive" in resp.connection_tokens()


def test_options_asterisk(server):
    with Conn(server.port) as conn:
        conn.request("OPTIONS", "*")
        resp = conn.read_response()
    assert resp.status == 404 and resp.body == b"no route *"  # PATH_INFO is "*"


def test_long_pipeline_while_reading_concurrently(server):
    """Far more pipelined input than the server buffers ahead: it must pause reading, not drop requests."""
    count = 400
    requests = b"".join(build_request("POST", "/echo", body=b"%05d" % i + b"." * 2000) for i in range(count))
    with Conn(server.port, timeout=20) as conn:
        sender = threading.Thread(target=conn.send, args=(requests,))
        sender.start()
        try:
            for i in range(count):
                body = conn.read_response(timeout=20).body
                assert body[:5] == b"%05d" % i and len(body) == 2005
        finally:
            sender.join(20)


def test_get_with_a_body_is_drained(server):
    with Conn(server.port) as conn:
        conn.send(build_request("GET", "/p/with-body", body=b"GET /p/evil HTTP/1.1\r\nHost: x\r\n\r\n")
                  + build_request("GET", "/p/next"))
        assert conn.read_response().body == b"GET /p/with-body?"
        assert conn.read_response().body == b"GET /p/next?"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_splits_of_a_mixed_pipeline(server, seed):
    """A pipeline of GET/HEAD/POST (length and chunked) requests cut at random points, sent piece by piece."""
    rng = random.Random(seed)
    data, expected = b"", []
    for i in range(30):
        kind = rng.choice(["get", "head", "post", "chunked"])
        if kind == "get":
            data += build_request("GET", f"/p/{i}")
            expected.append(("GET", f"GET /p/{i}?".encode()))
        elif kind == "head":
            data += build_request("HEAD", "/head")
            expected.append(("HEAD", b""))
        else:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 3000)))
            if kind == "post":
                data += build_request("POST", "/echo", body=body, headers=[("Content-Length", str(len(body)))])
            else:
                cuts = sorted(rng.sample(range(len(body) + 1), min(len(body), 4)))
                pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)])]
                data += build_request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")],
                                      body=chunked(*pieces))
            expected.append(("POST", body))
    with Conn(server.port, timeout=10) as conn:
        pos = 0
        while pos < len(data):
            step = rng.choice([1, 2, 3, 17, 100, 1000])
            conn.send(data[pos:pos + step])
            pos += step
        for i, (method, body) in enumerate(expected):
            resp = conn.read_response(method)
            assert resp.status == 200, (i, resp.status)
            assert resp.body == body, (i, method, len(resp.body), len(body))


def test_two_hundred_concurrent_connections(server):
    conns = []
    try:
        for i in range(200):
            conns.append(Conn(server.port, timeout=15))
            conns[-1].request("GET", f"/p/{i}")
        for i, conn in enumerate(conns):
            assert conn.read_response(timeout=15).body == f"GET /p/{i}?".encode()
    finally:
        for conn in conns:
            conn.close()


def test_header_count_and_request_line_at_the_default_limits(server):
    with Conn(server.port) as conn:  # Host + 99 = 100 field lines: accepted
        conn.request("GET", "/p/many", headers=[(f"X-{i}", "v") for i in range(99)])
        assert conn.read_response().body == b"GET /p/many?"
        target = "/p/" + "a" * (8190 - len("GET  HTTP/1.1\r") - 3)  # 8190 bytes before the LF: accepted
        conn.request("GET", target)
        assert conn.read_response().status == 200
        conn.request("GET", target + "a")  # one more: 414
        assert conn.read_response().status == 414
