"""Timeouts against real slow clients: slowloris heads, stalled bodies, idle keep-alive, readers that
never read. The server runs with 1-second timeouts; every assertion allows generous scheduling slack
on a loaded 2-core machine but still tells "closed by the timeout" from "never closed". It accepts at
once (--defer-accept 0), so a silent connection meets the server's own header timeout; the default
deferred accept is tested in test_limits.py."""

import socket
import time

import pytest

from tests.functional.client import Conn, build_request
from tests.functional.conftest import BACKENDS, server_fixture

TIMEOUT = 1.0
SLACK = 2.5
timeout_server = server_fixture("--header-timeout", "1", "--read-timeout", "1", "--keep-alive", "1",
                                "--send-timeout", "1", "--defer-accept", "0", matrix=BACKENDS)


def trickle_until_closed(conn: Conn, data: bytes, interval: float, limit: float) -> float | None:
    """Send `data` one byte per `interval`; return the seconds until the server closed (None if never)."""
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < limit:
        try:
            conn.sock.send(data[i % len(data):i % len(data) + 1])
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - start
        i += 1
        if conn.closed_by_server(interval):
            return time.monotonic() - start
    return None


def test_slowloris_head_is_cut_at_the_header_timeout(timeout_server):
    with Conn(timeout_server.port) as conn:
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        elapsed = trickle_until_closed(conn, b"X-Slow: abcdefgh\r\n", 0.1, TIMEOUT + SLACK + 2)
    assert elapsed is not None, "a head trickling forever was never cut off"
    assert TIMEOUT * 0.7 <= elapsed <= TIMEOUT + SLACK, elapsed


def test_silent_connection_is_closed_at_the_header_timeout(timeout_server):
    with Conn(timeout_server.port) as conn:
        start = time.monotonic()
        assert conn.closed_by_server(TIMEOUT + SLACK), "a connection that never sent a byte stayed open"
        assert time.monotonic() - start >= TIMEOUT * 0.7


def test_partial_head_then_silence_is_closed(timeout_server):
    with Conn(timeout_server.port) as conn:
        conn.send(b"GET /hello HTTP/1.1\r\nHo")
        start = time.monotonic()
        assert conn.closed_by_server(TIMEOUT + SLACK)
        assert time.monotonic() - start >= TIMEOUT * 0.7


def test_second_head_on_a_keep_alive_connection_is_timed_too(timeout_server):
    with Conn(timeout_server.port) as conn:
        conn.request("GET", "/hello")
        assert conn.read_response().body == b"hello"
        conn.send(b"GET /hello HTTP/1.1\r\n")
        elapsed = trickle_until_closed(conn, b"X-Slow: abcdefgh\r\n", 0.1, TIMEOUT + SLACK + 2)
    assert elapsed is not None, "the second head trickled forever"
    assert elapsed <= TIMEOUT + SLACK, elapsed


def test_stalled_body_is_cut_at_the_read_timeout(timeout_server, token, events):
    with Conn(timeout_server.port) as conn:
        # (100-continue: the application is called before its body arrives, and its read waits)
        conn.send(build_request("POST", f"/read-record?t={token}",
                                headers=[("Expect", "100-continue"), ("Content-Length", "100")]) + b"x" * 10)
        start = time.monotonic()
        assert conn.closed_by_server(TIMEOUT + SLACK + 2), "a stalled body was waited for forever"
        elapsed = time.monotonic() - start
    assert elapsed >= TIMEOUT * 0.7, elapsed
    seen = events(token)
    assert seen and seen[0]["event"] == "read-error", seen
    assert seen[0]["oserror"], seen


def test_a_read_retried_after_the_read_timeout_fails_too(timeout_server, token, events):
    """The application retries a read that timed out, and the rest of the body arrives meanwhile: the
    retry fails too. The bytes the failed read had gathered were lost with it, so it used to return
    the body's last bytes alone, as if they were the whole body."""
    with Conn(timeout_server.port) as conn:
        conn.send(build_request("POST", f"/read-twice?t={token}",
                                headers=[("Expect", "100-continue"), ("Content-Length", "20")]) + b"x" * 10)
        first = events(token, timeout=TIMEOUT + SLACK + 2)
        assert first and first[0] == {"event": "read-failed", "type": "TimeoutError"}, first
        try:
            conn.send(b"y" * 10)  # the rest, before the retry has waited read_timeout for it
        except OSError:
            pass  # the server had already closed: the retry failed at once
        seen = events(token, count=3, timeout=TIMEOUT + SLACK + 2)
    assert seen[-1] == {"event": "reads", "reads": ["error:TimeoutError", "error:TimeoutError"]}, seen


def test_slow_but_steady_body_is_not_cut(timeout_server):
    """The read timeout is an idle timeout: a body arriving in small steps over > 1 s is fine."""
    body = b"0123456789"
    with Conn(timeout_server.port) as conn:
        conn.send(build_request("POST", "/echo", headers=[("Content-Length", str(len(body)))]))
        for i in range(len(body)):
            time.sleep(0.25)  # 2.5 s in total, never idle for 1 s
            conn.send(body[i:i + 1])
        resp = conn.read_response()
    assert resp.status == 200 and resp.body == body


def test_idle_keep_alive_connection_is_closed(timeout_server):
    with Conn(timeout_server.port) as conn:
        conn.request("GET", "/hello")
        assert conn.read_response().body == b"hello"
        start = time.monotonic()
        assert conn.closed_by_server(TIMEOUT + SLACK), "idle keep-alive connection never closed"
        assert time.monotonic() - start >= TIMEOUT * 0.5


def test_keep_alive_timeout_is_per_idle_period(timeout_server):
    with Conn(timeout_server.port) as conn:
        for i in range(5):  # 5 x 0.5 s > keep-alive 1 s, but never idle that long
            conn.request("GET", f"/p/{i}")
            assert conn.read_response().body == f"GET /p/{i}?".encode()
            time.sleep(0.5)
        conn.request("GET", "/p/last")
        assert conn.read_response().body == b"GET /p/last?"


def test_a_slow_app_is_not_a_keep_alive_timeout(timeout_server):
    """The keep-alive/read timers must not run while the application works."""
    with Conn(timeout_server.port) as conn:
        conn.request("GET", "/sleep?s=2")
        resp = conn.read_response(timeout=10)
        assert resp.status == 200 and resp.body == b"slept 2.0"


def test_after_a_slow_app_the_connection_is_kept_for_the_whole_keep_alive(timeout_server):
    """The keep-alive period starts when the response is out, also after an application slower than
    --keep-alive on the loop thread (threads 0): the loop's clock was read before the application
    ran, so a deadline counted from it had passed already and the next sweep closed the connection."""
    with Conn(timeout_server.port) as conn:
        conn.request("GET", "/sleep?s=2")
        assert conn.read_response(timeout=10).body == b"slept 2.0"
        time.sleep(TIMEOUT / 2)  # idle for half the keep-alive: the connection must still be there
        conn.request("GET", "/hello")
        assert conn.read_response().body == b"hello"


def test_reader_that_never_reads_is_dropped_at_the_send_timeout(timeout_server, token, events):
    """An endless fast body to a client with a tiny window that stops reading: the server gives up after
    --send-timeout, calls close(), and has not buffered the endless body in memory meanwhile."""
    conn = Conn(timeout_server.port, rcvbuf=4096)
    try:
        conn.request("GET", f"/close?mode=flood&t={token}")
        assert conn.read_head().status == 200
        seen = events(token, timeout=TIMEOUT + SLACK + 6)
        assert seen and seen[0]["event"] == "closed", "the stalled response was never abandoned"
        assert seen[0]["produced"] < 64 * 1024 * 1024, f"server buffered {seen[0]['produced']} bytes"
        conn.sock.settimeout(5)
        total = 0
        try:
            while True:
                data = conn.sock.recv(1 << 20)
                if not data:
                    break
                total += len(data)
        except ConnectionResetError:
            pass
        except socket.timeout:
            raise AssertionError("the connection was not closed after the send timeout") from None
    finally:
        conn.close()
    with Conn(timeout_server.port) as other:
        other.request("GET", "/hello")
        assert other.read_response().body == b"hello"


def test_a_close_delimited_response_cut_by_the_send_timeout_ends_with_a_reset(timeout_server, token, events):
    """HTTP/1.0 without Content-Length: the body ends where the connection does, so the close of a
    stalled one (--send-timeout) is a reset, as after an application error: a FIN would make the part
    the client reads afterwards look like the whole body."""
    with Conn(timeout_server.port, rcvbuf=4096) as conn:
        conn.send(f"GET /close?mode=flood&t={token} HTTP/1.0\r\n\r\n".encode())
        assert conn.read_head().status == 200
        seen = events(token, timeout=TIMEOUT + SLACK + 6)
        assert seen and seen[0]["event"] == "closed", "the stalled response was never abandoned"
        conn.read_to_eof(10)
        assert conn.reset, "the cut body ended with a clean end of stream"


no_keep_alive = server_fixture("--keep-alive", "0", matrix=BACKENDS)


def test_keep_alive_zero_closes_after_every_response(no_keep_alive):
    with Conn(no_keep_alive.port) as conn:
        conn.send(build_request("GET", "/p/1") + build_request("GET", "/p/2"))
        resp = conn.read_response()
        assert resp.body == b"GET /p/1?"
        assert "close" in resp.connection_tokens()
        assert conn.read_to_eof(3.0) == b"", "a second response was sent with --keep-alive 0"


@pytest.mark.parametrize("path", ["/download", "/file"])
def test_slow_but_steady_reader_is_not_cut(timeout_server, path):
    """--send-timeout bounds a stall, not the whole response: a reader taking > 2 s in total is served.
    (It reads often: kernel buffers of a few MB hide progress from the server, so a much slower reader
    does stall the server's writes for longer than the timeout.) A sendfile (/file) moved no deadline,
    so threads = 0 cut it send_timeout after its first wait for the socket."""
    size = 16 * 1024 * 1024
    start = time.monotonic()
    with Conn(timeout_server.port, rcvbuf=65536, timeout=10) as conn:
        conn.request("GET", f"{path}?n={size}")
        resp_head = conn.read_head()
        assert resp_head.header("Content-Length") == str(size)
        received = len(conn.buf)
        conn.buf.clear()
        while received < size:
            time.sleep(0.02)
            data = conn.sock.recv(256 * 1024)
            assert data, f"connection closed after {received} of {size} bytes"
            received += len(data)
    assert received == size
    assert time.monotonic() - start > 2 * TIMEOUT, "the reader was not slow enough to test anything"
