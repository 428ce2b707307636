"""Configured limits: request body (413 before the body is sent, and read by a client that sends the
refused body anyway), request line / fields / head sizes, and --worker-connections (extra connections
wait in the backlog and are served later), which a client that connects and stays silent does not use
up while the kernel defers its accept (--defer-accept)."""

import threading
import time

import pytest

from tests.functional.client import Conn, build_request, wait_delivered
from tests.functional.conftest import BACKENDS, server_fixture

limited = server_fixture("--limit-request-body", "1000", "--limit-request-line", "200",
                         "--limit-request-fields", "10", "--limit-request-field_size", "300",
                         "--limit-request-head", "2000", matrix=BACKENDS)
# the same body limit, the application called as soon as the head is parsed: its read meets the limit
limited_unbuffered = server_fixture("--limit-request-body", "1000", "--request-buffering", "0", matrix=BACKENDS)
two_connections = server_fixture("--worker-connections", "2", matrix=BACKENDS)
DEFER = 2  # seconds: Linux hands a silent connection over after its SYN-ACK retransmits (~3 s for 2)
# the lingering close after a 413 allows min(LINGER_TIME 2 s, --read-timeout) between two bytes: 1 s
refusing = server_fixture("--limit-request-body", "1000000", "--read-timeout", "1", matrix=BACKENDS)
LINGER_GAP = 1.0
one_slot_deferred = server_fixture("--worker-connections", "1", "--defer-accept", str(DEFER),
                                   "--header-timeout", "1", matrix=BACKENDS)


def test_body_over_the_limit_gets_413_before_it_is_sent(limited, token, events):
    with Conn(limited.port) as conn:
        conn.send(build_request("POST", f"/read-record?t={token}", headers=[("Content-Length", "100000")]))
        resp = conn.read_response(timeout=3)  # no body bytes sent at all
        assert resp.status == 413
        assert "close" in resp.connection_tokens()
        assert conn.closed_by_server(3.0)
    assert events(token, timeout=0.3) == [], "the application ran for a body over the limit"


def test_body_over_the_limit_with_100_continue_gets_413_not_100(limited):
    with Conn(limited.port) as conn:
        conn.send(build_request("POST", "/echo", headers=[("Content-Length", "5000"), ("Expect", "100-continue")]))
        resp = conn.read_response(timeout=3)
        assert resp.status == 413 and resp.interim == []


def test_refused_body_sent_whole_without_waiting_still_gets_its_413(refusing):
    """The client sends a Content-Length over the limit and then the whole body (16 MiB, more than the
    socket buffers hold) without waiting for the answer, reading all along: it reads the 413 and a
    clean EOF, and its write completes. The lingering close discards the body to its end; a close
    while the body still arrives would be answered with a reset, failing the write (and losing the
    413 if the client had not read it yet). Three times, so a lucky pass is unlikely."""
    size = 16 * 1024 * 1024
    head = build_request("POST", "/echo", headers=[("Content-Length", str(size))])
    body = b"b" * size
    for attempt in range(3):
        with Conn(refusing.port, timeout=20) as conn:
            failures = []

            def write():
                try:
                    conn.send(head)
                    conn.send(body)
                except OSError as exc:
                    failures.append(exc)

            writer = threading.Thread(target=write)
            writer.start()
            received = conn.read_to_eof()
            ending = "reset" if conn.reset else "EOF"
            writer.join(30)
            assert not writer.is_alive(), f"try {attempt}: the write of the refused body is stuck"
        assert received.startswith(b"HTTP/1.1 413 "), f"try {attempt}: {received[:200]!r}"
        assert ending == "EOF" and failures == [], f"try {attempt}: {ending}, write failures {failures}"


def _reset_by_server(sock) -> bool:
    """Send a byte, then more for up to 1 s: True once a send fails (the server had closed, so its
    kernel answered the first byte with a reset); False if the server still reads."""
    deadline = time.monotonic() + 1.0
    try:
        while time.monotonic() < deadline:
            sock.send(b"x")
            time.sleep(0.05)
    except (ConnectionResetError, BrokenPipeError):
        return True
    return False


def test_lingering_close_discards_while_bytes_arrive_and_closes_after_a_quiet_gap(refusing):
    """After a 413 the client trickles a byte every 0.25 s for twice the idle gap: the server keeps
    reading (it did close LINGER_GAP after the 413 when the bound was on the whole linger). Once the
    client stops, the server closes about LINGER_GAP later (plus the loop's sweep, 0.25 s here)."""
    with Conn(refusing.port, timeout=5) as conn:
        sock = conn.sock
        conn.request("POST", "/echo", headers=[("Content-Length", str(16 * 1024 * 1024))])
        received = conn.read_to_eof()  # the 413, then the EOF of the server's shutdown(SHUT_WR)
        assert received.startswith(b"HTTP/1.1 413 "), received[:200]
        for i in range(int(2 * LINGER_GAP / 0.25)):
            time.sleep(0.25)
            try:
                sock.send(b"x")
            except (ConnectionResetError, BrokenPipeError) as exc:
                pytest.fail(f"the server closed while bytes kept arriving ({exc!r} at byte {i})")
        time.sleep(LINGER_GAP + 1.0)
        assert _reset_by_server(sock), "the server still reads after a quiet gap longer than the linger"


def test_body_at_the_limit_is_accepted(limited):
    with Conn(limited.port) as conn:
        conn.request("POST", "/echo", body=b"z" * 1000)
        resp = conn.read_response()
        assert resp.status == 200 and resp.body == b"z" * 1000


OVER_THE_LIMIT_CHUNKED = b"400\r\n" + b"c" * 1024 + b"\r\n400\r\n" + b"c" * 1024 + b"\r\n0\r\n\r\n"


def test_chunked_body_over_the_limit_is_refused(limited, token, events):
    """Without a length the limit trips while the body is received, before the application runs: a
    413 and a close, and the application is never called."""
    with Conn(limited.port) as conn:
        conn.request("POST", f"/read-record?t={token}", headers=[("Transfer-Encoding", "chunked")],
                     body=OVER_THE_LIMIT_CHUNKED)
        resp = conn.read_response()
        assert resp.status == 413 and "close" in resp.connection_tokens(), resp.raw_head
        assert conn.closed_by_server()
    assert events(token, count=1, timeout=0.5) == []


def test_a_chunked_body_that_reaches_the_limit_and_goes_on_is_refused_before_the_app(limited, token, events):
    """Exactly --limit-request-body bytes of chunks, received first, then one more: the body is not
    whole at the limit, so the application is not called there (it used to be, to meet the 413 in
    its own read): 413, and it is never called."""
    with Conn(limited.port) as conn:
        conn.send(build_request("POST", f"/read-record?t={token}", headers=[("Transfer-Encoding", "chunked")])
                  + b"3e8\r\n" + b"c" * 1000 + b"\r\n")
        wait_delivered(conn.sock)
        assert conn.read_available(0.3) == b""  # (the server has taken those 1000 bytes)
        conn.send(b"1\r\nc\r\n0\r\n\r\n")
        resp = conn.read_response()
        assert resp.status == 413 and "close" in resp.connection_tokens(), resp.raw_head
    assert events(token, count=1, timeout=0.5) == []


def test_chunked_body_over_the_limit_read_by_the_app_is_refused(limited_unbuffered, token, events):
    """The application called before its body came (--request-buffering 0): the limit trips in its
    read, which raises; the client gets a 413 or a close, never a 200."""
    with Conn(limited_unbuffered.port) as conn:
        conn.request("POST", f"/read-record?t={token}", headers=[("Transfer-Encoding", "chunked")],
                     body=OVER_THE_LIMIT_CHUNKED)
        data = conn.read_available(3.0)
        assert not data.startswith(b"HTTP/1.1 200"), data[:200]
        assert data == b"" or data.startswith(b"HTTP/1.1 413"), data[:200]
    seen = events(token)
    assert seen and seen[0]["event"] == "read-error", seen


def test_chunked_body_over_the_limit_answered_by_the_app_closes_the_connection(limited_unbuffered):
    """The app catches the error and answers (a Django 400): Connection: close, then the close."""
    with Conn(limited_unbuffered.port) as conn:
        conn.request("POST", "/read-or-400", headers=[("Transfer-Encoding", "chunked")],
                     body=b"400\r\n" + b"c" * 1024 + b"\r\n0\r\n\r\n")
        resp = conn.read_response()
        assert resp.status == 400 and resp.body == b"unreadable body: BodyError", resp.body
        assert "close" in resp.connection_tokens(), resp.raw_head
        assert conn.closed_by_server()


@pytest.mark.parametrize("data,status", [
    (b"GET /" + b"a" * 250 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(11)) + b"\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 400 + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 250) for i in range(9)) + b"\r\n",
     431),
], ids=["request-line", "fields", "field-size", "head"])
def test_configured_head_limits(limited, data, status):
    with Conn(limited.port) as conn:
        conn.send(data)
        resp = conn.read_response()
        assert resp.status == status
        assert "close" in resp.connection_tokens()
        assert conn.closed_by_server(3.0)


def test_requests_within_the_head_limits_pass(limited):
    with Conn(limited.port) as conn:
        conn.request("GET", "/p/" + "a" * 150, headers=[(f"X-{i}", "v" * 100) for i in range(8)])
        assert conn.read_response().body == b"GET /p/" + b"a" * 150 + b"?"


def test_worker_connections_extra_connection_waits_then_is_served(two_connections):
    first, second = Conn(two_connections.port), Conn(two_connections.port)
    try:
        for i, conn in enumerate((first, second)):
            conn.request("GET", f"/p/{i}")
            assert conn.read_response().body == f"GET /p/{i}?".encode()
        third = Conn(two_connections.port)  # accepted by the kernel backlog, not by the server
        try:
            third.request("GET", "/p/third")
            early = third.read_available(0.8)
            assert early == b"", f"a connection over --worker-connections was served at once: {early[:100]!r}"
            first.close()
            start = time.monotonic()
            resp = third.read_response(timeout=5)
            assert resp.status == 200 and resp.body == b"GET /p/third?"
            assert time.monotonic() - start < 4
            second.request("GET", "/p/still")  # the other slot was never disturbed
            assert second.read_response().body == b"GET /p/still?"
        finally:
            third.close()
    finally:
        first.close()
        second.close()


def test_silent_connection_holds_no_slot_while_its_accept_is_deferred(one_slot_deferred):
    """With one connection slot, a client that connected and sent nothing does not keep the next
    client waiting: the kernel has not handed it over yet. Once it does (after about DEFER + 1 s),
    the connection meets the header timeout like any other."""
    silent = Conn(one_slot_deferred.port)
    try:
        start = time.monotonic()
        with Conn(one_slot_deferred.port) as talker:
            talker.request("GET", "/p/talker")
            assert talker.read_available(0.6).startswith(b"HTTP/1.1 200"), \
                "a silent connection took the only slot"
        assert silent.closed_by_server(DEFER + 1 + 1 + 3), "the silent connection was never closed"
        assert time.monotonic() - start >= DEFER * 0.7  # held by the kernel, then timed by the server
    finally:
        silent.close()
