"""Responses: framing, bodiless statuses, header validation, Date/Server, file_wrapper, and the WSGI
application contract (start_response/exc_info, write(), close()) (RFC 9112 §6.3, §7; PEP 3333)."""

import email.utils
import hashlib
import re
import socket
import struct
import time
import urllib.parse

import pytest

from tests.functional.apps import pattern_bytes
from tests.functional.client import Conn, build_request, get
from tests.functional.conftest import FULL_MATRIX, server_fixture

# the same app with an access log (on stdout): responses then go through the measuring exchange
# gunicorn's default format plus the response's Content-Type (an `o` atom)
logged_server = server_fixture("--access-logfile", "-", "--access-logformat",
                               '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" '
                               'type=%({content-type}o)s', matrix=FULL_MATRIX)


# -- framing -----------------------------------------------------------------------------------------

def test_chunked_response_without_content_length_on_http11(server):
    with Conn(server.port) as conn:
        conn.request("GET", "/chunks?n=4")
        resp = conn.read_response()
        assert resp.status == 200
        assert resp.header("Transfer-Encoding") == "chunked"
        assert resp.header("Content-Length") is None
        assert resp.body == b"piece0;piece1;piece2;piece3;"
        assert resp.raw_body.endswith(b"0\r\n\r\n")
        conn.request("GET", "/p/next")  # the terminating chunk leaves the connection usable
        assert conn.read_response().body == b"GET /p/next?"


def test_empty_strings_from_the_app_do_not_end_the_chunked_body(server):
    with Conn(server.port) as conn:
        conn.request("GET", "/empty-pieces")
        resp = conn.read_response()
        assert resp.body == b"ab"
        assert b"\r\n0\r\n\r\n" not in resp.raw_body[:-5], resp.raw_body


def test_close_delimited_response_on_http10(server):
    with Conn(server.port) as conn:
        conn.request("GET", "/chunks?n=3", version="HTTP/1.0")
        resp = conn.read_response()
        assert resp.framing == "close"
        assert resp.header("Transfer-Encoding") is None
        assert resp.body == b"piece0;piece1;piece2;"
        assert conn.eof


def test_http10_keep_alive_without_length_still_closes(server):
    """Without a length the only framing HTTP/1.0 has is the close, even if keep-alive was asked."""
    with Conn(server.port) as conn:
        conn.request("GET", "/chunks?n=2", version="HTTP/1.0", headers=[("Connection", "keep-alive")])
        resp = conn.read_response()
        assert resp.header("Transfer-Encoding") is None
        assert resp.body == b"piece0;piece1;" and conn.eof
        assert "keep-alive" not in resp.connection_tokens()


def test_app_content_length_with_extra_bytes(server):
    """Declared 5, produced 10: exactly 5 are sent and the connection is closed (no smuggled bytes)."""
    with Conn(server.port) as conn:
        conn.request("GET", "/cl-extra")
        resp = conn.read_response()
        assert resp.status == 200 and resp.body == b"12345"
        rest = conn.read_to_eof(3.0)
        assert rest == b"", f"bytes past Content-Length reached the client: {rest!r}"


def test_app_content_length_with_too_few_bytes(server):
    with Conn(server.port) as conn:
        conn.request("GET", "/cl-short")
        resp = conn.read_response(timeout=3, allow_incomplete=True)
        assert resp.status == 200
        assert not resp.complete, "a short body must end in a close, the client has to see the truncation"
        assert resp.raw_body == b"12345"


def test_head_has_no_body_and_keeps_the_connection(server):
    with Conn(server.port) as conn:
        conn.send(build_request("HEAD", "/head") + build_request("GET", "/p/after"))
        resp = conn.read_response("HEAD")
        assert resp.status == 200
        assert resp.header("Content-Length") == "100"
        nxt = conn.read_response()
        assert nxt.raw_head.startswith(b"HTTP/1.1 200"), "body bytes of the HEAD response were sent"
        assert nxt.body == b"GET /p/after?"


def test_head_without_content_length_is_not_chunked_on_the_wire(server):
    with Conn(server.port) as conn:
        conn.send(build_request("HEAD", "/head?cl=0") + build_request("GET", "/p/after"))
        conn.read_response("HEAD")
        assert conn.read_response().body == b"GET /p/after?"


@pytest.mark.parametrize("code", ["204", "304"])
@pytest.mark.parametrize("cl", ["0", "1"])
def test_bodiless_statuses(server, code, cl):
    with Conn(server.port) as conn:
        conn.send(build_request("GET", f"/status?code={code}&cl={cl}") + build_request("GET", "/p/after"))
        resp = conn.read_response()
        assert resp.status == int(code)
        assert resp.header("Transfer-Encoding") is None
        if code == "204":
            assert resp.header("Content-Length") in (None, "0")  # RFC 9110 §8.6
        nxt = conn.read_response()
        assert nxt.raw_head.startswith(b"HTTP/1.1 200"), f"a body followed the {code}"
        assert nxt.body == b"GET /p/after?"


@pytest.mark.parametrize("code", ["100", "101", "103"])
def test_informational_status_as_the_final_response_is_a_500(server, code):
    """A 1xx head is interim (RFC 9110 §15.2): sent as the only response, the client would go on
    waiting for the final one. WSGI cannot produce a real 1xx exchange, so it is an application error."""
    with Conn(server.port) as conn:
        conn.send(build_request("GET", f"/status?code={code}") + build_request("GET", "/p/after"))
        resp = conn.read_response(timeout=3)
        assert resp.interim == [] and resp.status == 500, (resp.status, resp.raw_head)
        if "close" not in resp.connection_tokens():
            assert conn.read_response().body == b"GET /p/after?"


def test_404_from_the_app_is_passed_through(server):
    with Conn(server.port) as conn:
        conn.request("GET", "/status?code=404&cl=1")
        resp = conn.read_response()
        assert resp.status == 404 and resp.reason == "Not Found" and resp.body == b"forbidden"


# -- header validation -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["Connection", "Transfer-Encoding", "Keep-Alive", "Upgrade", "TE", "Trailer",
                                  "connection"])
def test_hop_by_hop_header_from_the_app_is_a_500(server, name):
    with Conn(server.port) as conn:
        conn.request("GET", f"/header?name={name}&value=close")
        resp = conn.read_response()
        assert resp.status == 500
        assert b"should not be sent" not in resp.body
        assert name.lower() not in [n.lower() for n, _ in resp.headers if n.lower() != "connection"]


@pytest.mark.parametrize("value", ["a\r\nX-Injected: yes", "a\nX-Injected: yes", "a\rX-Injected: yes",
                                   "nul\x00byte"])
def test_control_bytes_in_an_app_header_are_a_500_without_injection(server, value):
    with Conn(server.port) as conn:
        conn.request("GET", "/header?" + urllib.parse.urlencode({"name": "X-Value", "value": value}))
        resp = conn.read_response()
        assert resp.status == 500
        assert b"X-Injected" not in resp.raw_head
        assert resp.header("X-Value") is None


def test_two_different_content_lengths_from_the_app_are_a_500(server):
    """Which one frames the body? Clients differ (RFC 9112 §6.3): a 500, never both on the wire.
    The same value twice frames the body unambiguously, and goes out once (RFC 9110 §8.6: strict
    recipients, fastwsgi's own parser among them, reject a repeated Content-Length)."""
    for values in ("v=3&v=5", "v=5&v=3"):
        resp = get(server.port, f"/content-lengths?{values}")
        assert resp.status == 500 and b"abcde" not in resp.body
    resp = get(server.port, "/content-lengths?v=5&v=5")
    assert resp.status == 200 and resp.all("Content-Length") == ["5"] and resp.body == b"abcde"


def test_content_length_no_client_can_hold_from_the_app_is_a_500(server):
    """A Content-Length over 2**63 - 1 cannot frame any body, and recipients refuse it (nginx answers
    502; our own parser says BAD_CONTENT_LENGTH): a 500, as for a value that is not digits. The
    largest value that fits goes out as it is (its body is then cut short, so the connection closes)."""
    for value in ("9223372036854775808", "99999999999999999999", "9" * 5000, "-5", "5 ", "0x5"):
        resp = get(server.port, "/content-lengths?" + urllib.parse.urlencode({"v": value}))
        assert resp.status == 500, value
        assert b"abcde" not in resp.body
    with Conn(server.port) as conn:
        conn.request("GET", "/content-lengths?v=9223372036854775807")
        resp = conn.read_head()  # (its body: 5 bytes of the 2**63 - 1 promised)
    assert resp.status == 200 and resp.all("Content-Length") == ["9223372036854775807"]


def test_bad_header_name_from_the_app_is_a_500(server):
    with Conn(server.port) as conn:
        conn.request("GET", "/header?" + urllib.parse.urlencode({"name": "Bad Name", "value": "v"}))
        assert conn.read_response().status == 500


def test_date_and_server_headers(server):
    with Conn(server.port) as conn:
        conn.request("GET", "/hello")
        resp = conn.read_response()
    assert len(resp.all("Date")) == 1 and len(resp.all("Server")) == 1
    assert resp.header("Server").startswith("fastwsgi")
    date = resp.header("Date")
    assert date.endswith(" GMT") and len(date) == 29, date  # IMF-fixdate, RFC 9110 §5.6.7
    parsed = email.utils.parsedate_to_datetime(date).timestamp()
    assert abs(parsed - time.time()) < 5


def test_app_server_and_date_headers_are_not_duplicated(server):
    with Conn(server.port) as conn:
        conn.request("GET", "/server-date")
        resp = conn.read_response()
    assert resp.all("Server") == ["my-app/1.0"]
    assert resp.all("Date") == ["Thu, 01 Jan 1970 00:00:00 GMT"]


# -- wsgi.file_wrapper ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cl", ["1", "0"])
def test_file_wrapper_with_a_real_file_uses_sendfile(server, token, events, cl):
    size = 3 * 1024 * 1024 + 5
    with Conn(server.port, timeout=20) as conn:
        conn.request("GET", f"/file?kind=real&n={size}&t={token}&cl={cl}")
        resp = conn.read_response(timeout=30)
        assert resp.status == 200
        assert hashlib.sha256(resp.body).digest() == hashlib.sha256(pattern_bytes(size)).digest()
        conn.request("GET", "/p/after")
        assert conn.read_response().body == b"GET /p/after?"
    seen = [e["event"] for e in events(token, count=1)]
    assert "file-closed" in seen, "file_wrapper did not close the file"
    if cl == "1":  # with a known length the whole file goes through os.sendfile, never through read()
        assert "file-read" not in seen, "a real file with a length was read in Python instead of sendfile"


def test_file_wrapper_with_bytesio_falls_back_to_reading(server, token, events):
    size = 300_000
    with Conn(server.port) as conn:
        conn.request("GET", f"/file?kind=bytesio&n={size}&t={token}&cl=0")
        resp = conn.read_response()
        assert resp.status == 200 and resp.body == pattern_bytes(size)
    assert [e["event"] for e in events(token)] == ["file-closed"]


@pytest.mark.parametrize("kind", ["real", "bytesio"])
def test_file_wrapper_longer_than_content_length(server, kind):
    """Declared 1000 of a 5000-byte file: exactly 1000 bytes, and nothing else ever parses as a response."""
    with Conn(server.port) as conn:
        conn.send(build_request("GET", f"/file?kind={kind}&n=5000&declare=1000") + build_request("GET", "/p/after"))
        resp = conn.read_response()
        assert resp.body == pattern_bytes(5000)[:1000]
        rest = conn.read_available(1.0)
        assert rest == b"" or rest.startswith(b"HTTP/1.1 200 OK\r\n"), rest[:100]
        if rest:
            assert rest.endswith(b"GET /p/after?")


@pytest.mark.parametrize("kind", ["real", "bytesio"])
def test_file_wrapper_shorter_than_content_length(server, kind):
    with Conn(server.port) as conn:
        conn.request("GET", f"/file?kind={kind}&n=5000&declare=9000")
        resp = conn.read_response(timeout=4, allow_incomplete=True)
        assert not resp.complete and resp.raw_body == pattern_bytes(5000)
        assert conn.eof


def test_file_wrapper_on_head(server):
    with Conn(server.port) as conn:
        conn.send(build_request("HEAD", "/file?kind=real&n=5000") + build_request("GET", "/p/after"))
        resp = conn.read_response("HEAD")
        assert resp.header("Content-Length") == "5000"
        assert conn.read_response().body == b"GET /p/after?"


@pytest.mark.parametrize("kind", ["gzip", "fileno-raises"])
def test_file_wrapper_over_a_stream_that_is_not_its_descriptor_is_read(server, token, events, kind):
    """A gzip file's fileno() is the compressed file's, and a fileno() may fail with anything: what
    the client gets is what read() gives (PEP 3333), never the descriptor's bytes or nothing."""
    size = 200_000
    with Conn(server.port) as conn:
        conn.request("GET", f"/file?kind={kind}&n={size}&t={token}&cl=0")
        resp = conn.read_response()
        assert resp.status == 200 and resp.body == pattern_bytes(size)
        conn.request("GET", "/p/after")
        assert conn.read_response().body == b"GET /p/after?"
    if kind == "fileno-raises":
        assert [e["event"] for e in events(token)] == ["file-closed"]


def test_file_wrapper_over_a_procfs_file_sends_its_content(server):
    """/proc files are regular files whose st_size (0) is not their length: read, not sendfile'd."""
    with open("/proc/version", "rb") as f:
        expected = f.read()
    with Conn(server.port) as conn:
        conn.request("GET", "/proc-file")
        resp = conn.read_response()
        assert resp.status == 200 and resp.body == expected and expected
        conn.request("GET", "/p/after")
        assert conn.read_response().body == b"GET /p/after?"


# -- start_response, exc_info, write() -------------------------------------------------------------------

def test_exc_info_before_headers_replaces_the_response(server):
    with Conn(server.port) as conn:
        conn.request("GET", "/exc-before-headers")
        resp = conn.read_response()
        assert resp.status == 503 and resp.body == b"custom error"
        conn.request("GET", "/p/after")
        assert conn.read_response().body == b"GET /p/after?"


def test_exc_info_after_headers_reraises_and_closes(server, token, events):
    with Conn(server.port) as conn:
        conn.request("GET", f"/exc-after-headers?t={token}")
        resp = conn.read_response(allow_incomplete=True)
        assert resp.status == 200
        assert not resp.complete, "the response was terminated as if it were complete"
        assert resp.body.startswith(b"first part;") or b"first part;" in resp.raw_body
        assert b"never" not in resp.raw_body
    assert events(token) == [{"event": "reraised", "message": "late failure"}]


def test_headers_wait_for_the_first_non_empty_chunk(server):
    with Conn(server.port) as conn:
        conn.request("GET", "/error-after-empty-chunk")
        resp = conn.read_response()
        assert resp.status == 500, "headers were sent before any body byte existed"


def test_second_start_response_without_exc_info_is_an_error(server):
    with Conn(server.port) as conn:
        conn.request("GET", "/start-twice")
        resp = conn.read_response()
        assert resp.status == 500
        assert b"should not be sent" not in resp.body


def test_write_callable(server):
    with Conn(server.port) as conn:
        conn.request("GET", "/write")
        resp = conn.read_response()
        assert resp.body == b"alpha;beta;gamma"
        conn.request("GET", "/write", version="HTTP/1.0")
        assert conn.read_response().body == b"alpha;beta;gamma"


def test_write_callable_sends_before_the_application_returns(server, token, events_dir):
    """The application write()s a block and goes on working until the client acknowledges it: on
    the event loop's thread too, write() sends before it returns (PEP 3333), it does not leave the
    bytes buffered until the application is done."""
    with Conn(server.port) as conn:
        conn.request("GET", f"/write-then-work?t={token}")
        resp = conn.read_head()
        assert resp.header("Transfer-Encoding") == "chunked"
        assert conn.read_exact(len(b"8\r\nwritten;\r\n")) == b"8\r\nwritten;\r\n"
        (events_dir / f"{token}.ack").touch()
        assert conn.read_body(resp).body == b"received"


# -- close() and application errors --------------------------------------------------------------------

def test_close_called_on_success(server, token, events):
    with Conn(server.port) as conn:
        conn.request("GET", f"/close?mode=ok&t={token}")
        resp = conn.read_response()
        assert resp.body == b"%016d%016d%016d" % (0, 1, 2)
    assert events(token) == [{"event": "closed", "produced": 48}]


@pytest.mark.parametrize("method,cl", [("HEAD", None), ("GET", "65536")])
def test_endless_iterable_stops_once_nothing_more_can_be_sent(server, token, events, method, cl):
    """HEAD to an endless stream (curl -I to an event stream), or a Content-Length reached: the
    server stops iterating and calls close() (PEP 3333), instead of iterating for ever (which would
    hold the loop or a pool thread); the connection stays usable."""
    target = f"/close?mode=flood&t={token}" + (f"&cl={cl}" if cl else "")
    with Conn(server.port) as conn:
        conn.request(method, target)
        resp = conn.read_response(method)
        assert resp.status == 200
        assert resp.body == (b"" if method == "HEAD" else b"%065536d" % 0)
        seen = events(token, timeout=10)
        assert seen == [{"event": "closed", "produced": 65536}], seen
        conn.request("GET", "/p/after")
        assert conn.read_response().body == b"GET /p/after?"


def test_write_from_close_after_the_response_raises_and_sends_nothing(server, token, events):
    """An iterable's close() that calls write(): the response is complete, so write() raises
    and nothing follows the chunked body's end (it would precede the next response)."""
    with Conn(server.port) as conn:
        conn.request("GET", f"/close?mode=write-in-close&t={token}")
        resp = conn.read_response()
        assert resp.framing == "chunked" and resp.body == b"%016d%016d%016d" % (0, 1, 2)
        assert events(token) == [{"event": "write-in-close", "raised": "RuntimeError"}]
        conn.request("GET", "/p/after")
        assert conn.read_response().raw_head.startswith(b"HTTP/1.1 200 OK\r\n")


def test_close_called_when_the_iterable_raises_system_exit(threaded_server, token, events):
    """PEP 3333: close() is called however the iteration ends, a BaseException included (on a pool
    thread, so the server lives on; on the loop thread the same code runs before the process exits)."""
    with Conn(threaded_server.port) as conn:
        conn.request("GET", f"/close?mode=exit&t={token}")
        resp = conn.read_response(allow_incomplete=True)
        assert resp.status == 200 and not resp.complete
    assert events(token) == [{"event": "closed", "produced": 16}]


def test_close_called_when_the_iterable_fails(server, token, events):
    with Conn(server.port) as conn:
        conn.request("GET", f"/close?mode=error&t={token}")
        resp = conn.read_response(allow_incomplete=True)
        assert resp.status == 200 and not resp.complete
        assert conn.eof
    assert events(token) == [{"event": "closed", "produced": 16}]


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_close_called_when_the_client_disconnects(server, token, events, how):
    with Conn(server.port) as conn:
        conn.request("GET", f"/close?mode=stream&t={token}")
        assert conn.read_head().status == 200
        conn.read_exact(10000)
        if how == "rst":  # SO_LINGER 0: close() sends a reset instead of a FIN
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    seen = events(token, timeout=10)
    assert len(seen) == 1 and seen[0]["event"] == "closed", seen
    with Conn(server.port) as conn:  # and the server is fine
        conn.request("GET", "/hello")
        assert conn.read_response().body == b"hello"


def test_app_exception_is_a_500_with_a_traceback_on_stderr(server, token):
    mark = server.stderr_mark()
    with Conn(server.port) as conn:
        conn.request("GET", f"/raise?msg={token}")
        resp = conn.read_response()
        assert resp.status == 500
        assert token.encode() not in resp.body, "the exception text leaked to the client"
        if "close" not in resp.connection_tokens():  # the connection may stay open after a 500
            conn.request("GET", "/p/after")
            assert conn.read_response().body == b"GET /p/after?"
    logged = server.wait_stderr(f"boom {token}", since=mark)
    assert logged is not None, "no traceback on the server's stderr"
    assert "Traceback (most recent call last)" in logged and "RuntimeError" in logged


def test_app_exception_after_headers_closes_the_connection(server, token):
    mark = server.stderr_mark()
    with Conn(server.port) as conn:
        conn.request("GET", f"/raise-after-headers?msg={token}")
        resp = conn.read_response(allow_incomplete=True)
        assert resp.status == 200 and not resp.complete
        assert b"partial;" in resp.raw_body
        assert conn.eof
    assert server.wait_stderr(f"late boom {token}", since=mark) is not None


def test_app_exception_after_headers_resets_a_close_delimited_response(server, token):
    """HTTP/1.0 without Content-Length: the body ends where the connection does, so a FIN after the
    error would make the partial body look complete (as to nginx reading a uwsgi response). The
    connection is reset instead, after the bytes already produced."""
    with Conn(server.port) as conn:
        conn.send(f"GET /raise-after-headers?msg={token} HTTP/1.0\r\n\r\n".encode())
        resp = conn.read_response(allow_incomplete=True)
        assert resp.status == 200 and b"partial;" in resp.raw_body
        assert conn.eof and conn.reset, "the cut-short body ended with a clean end of stream"


@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_an_error_after_a_whole_response_still_delivers_it_with_a_fin(server, token, version):
    """A reset discards what the kernel has not sent yet: after an error that follows a complete
    Content-Length body (or a chunked one, whose missing end shows the cut) the close is a FIN."""
    with Conn(server.port) as conn:
        conn.send(f"GET /whole-then-raise?msg={token} HTTP/{version}\r\nHost: t\r\n\r\n".encode())
        resp = conn.read_response()
        assert resp.status == 200 and resp.body == b"whole"
        assert conn.closed_by_server(timeout=5) and not conn.reset
    with Conn(server.port) as conn:
        conn.send(f"GET /raise-after-headers?msg={token} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        resp = conn.read_response(allow_incomplete=True)
        assert not resp.complete and conn.eof and not conn.reset


def test_a_complete_close_delimited_response_ends_with_a_fin(server):
    with Conn(server.port) as conn:
        conn.send(b"GET /chunks?n=3 HTTP/1.0\r\n\r\n")
        resp = conn.read_response(allow_incomplete=True)
        assert resp.status == 200 and conn.eof and not conn.reset


def test_a_server_error_answering_head_has_no_body(server):
    """RFC 9110 §9.3.2: no content in a response to HEAD, the server's own 500 included (its body
    used to follow the head)."""
    with Conn(server.port) as conn:
        conn.send(build_request("HEAD", "/raise?msg=head"))
        resp = conn.read_head()
        assert resp.status == 500 and int(resp.header("Content-Length")) > 0
        assert "close" in resp.connection_tokens()
        assert conn.read_to_eof() == b""


def test_a_bytes_subclass_from_an_iterable_is_sent(server):
    """PEP 3333 asks for bytes: a subclass is bytes (it was a 500 from a generator, but sent from a list)."""
    with Conn(server.port) as conn:
        conn.request("GET", "/bytes-subclass")
        resp = conn.read_response()
        assert resp.status == 200 and resp.body == b"hello, subclass"


def test_client_disconnect_mid_response_is_harmless(server, token):
    mark = server.stderr_mark()
    for _ in range(3):
        with Conn(server.port) as conn:
            conn.request("GET", "/download?n=20000000")
            conn.read_head()
            conn.read_exact(100000)
    with Conn(server.port) as conn:
        conn.request("GET", "/hello")
        assert conn.read_response().body == b"hello"
    time.sleep(0.3)
    noise = "".join(server.stderr_lines[mark:])
    assert "Traceback" not in noise, f"client disconnect logged a traceback:\n{noise[-2000:]}"


@pytest.mark.parametrize("target", ["/raise", "/bad-return?kind=status", "/header?name=Connection&value=x",
                                    "/start-twice"])
def test_application_errors_with_an_access_log_are_a_500_and_logged(logged_server, target):
    """The access log measures each exchange; an application error before the head must still be
    answered with a 500 and get its log line (not become an internal error that drops the client),
    which describes the 500 that was sent (its size and headers), not the application's headers."""
    out_mark, err_mark = len(logged_server.stdout_lines), logged_server.stderr_mark()
    with Conn(logged_server.port) as conn:
        conn.request("GET", target)
        resp = conn.read_response(timeout=3)
        assert resp.status == 500
    wanted = (f'"GET {target} HTTP/1.1" 500 {len(resp.body)} "-" "-" '
              f'type={resp.header("content-type")}')
    deadline = time.monotonic() + 5
    while not any(wanted in line for line in logged_server.stdout_lines[out_mark:]):
        assert time.monotonic() < deadline, f"no access log line with {wanted!r}"
        time.sleep(0.02)
    assert logged_server.wait_stderr("Error handling request", since=err_mark) is not None
    errors = "".join(logged_server.stderr_lines[err_mark:])
    assert "Internal error" not in errors and "Unexpected error" not in errors, errors[-3000:]


def test_system_exit_in_an_application_thread_closes_the_connection(threaded_server):
    """SystemExit (or another BaseException) escaping the application on a pool thread: the client
    has no response coming, so its connection is closed at once, not kept until the keep-alive
    timeout as if the exchange had finished; the server goes on serving."""
    with Conn(threaded_server.port) as conn:
        conn.request("GET", "/system-exit")
        started = time.monotonic()
        assert conn.closed_by_server(timeout=3.5), "the connection was kept open after the app died"
        assert time.monotonic() - started < 3.5
    with Conn(threaded_server.port) as conn:
        conn.request("GET", "/hello")
        assert conn.read_response().body == b"hello"


# -- more application mistakes and header details ---------------------------------------------------

@pytest.mark.parametrize("kind", ["str", "none", "status", "status-type", "header-type", "no-start"])
def test_application_bugs_are_a_500(server, kind):
    with Conn(server.port) as conn:
        conn.request("GET", f"/bad-return?kind={kind}")
        resp = conn.read_response()
        assert resp.status == 500, (kind, resp.status, resp.body[:100])
    with Conn(server.port) as conn:
        conn.request("GET", "/hello")
        assert conn.read_response().body == b"hello"


# PEP 3333: the iterable yields bytestrings. b"" sends nothing; None, "" (a str) or any other type is
# the application's error (as gunicorn and waitress say): a TypeError, logged with its traceback and
# the type's name; a 500 while the head is unsent, else a close without a false end of the body.
BAD_KINDS = {"none": "NoneType", "str": "str", "empty-str": "str", "int": "int"}


def assert_logged_type_error(server, token: str, mark: int, kind: str) -> None:
    logged = server.wait_stderr(f"t={token}", since=mark)
    assert logged is not None, "the error was not logged"
    logged = server.wait_stderr("\nTypeError: ", since=mark)
    assert logged is not None and "Traceback (most recent call last)" in logged, logged
    message = re.search(r"^TypeError: (.*)$", logged, re.M).group(1)
    assert BAD_KINDS[kind] in message, logged


@pytest.mark.parametrize("how", ["gen", "list", "write"])
@pytest.mark.parametrize("kind", list(BAD_KINDS))
def test_a_non_bytes_first_piece_is_a_500(server, token, kind, how):
    mark = server.stderr_mark()
    with Conn(server.port) as conn:
        conn.request("GET", f"/bad-chunk?kind={kind}&how={how}&t={token}")
        resp = conn.read_response()
        assert resp.status == 500, (resp.status, resp.raw_head, resp.body)
    assert_logged_type_error(server, token, mark, kind)


@pytest.mark.parametrize("cl", [None, "10"], ids=["chunked", "length"])
@pytest.mark.parametrize("how", ["gen", "list", "write", "write-list"])
@pytest.mark.parametrize("kind", ["none", "empty-str"])
def test_a_non_bytes_piece_after_the_head_closes_without_an_end(server, token, kind, how, cl):
    """After b"ok;" went out with the head: the connection closes, and the body shows the cut (no
    last chunk; fewer bytes than the Content-Length). The list fast path sends nothing before it
    finds the bad item, so it is a 500."""
    mark = server.stderr_mark()
    target = f"/bad-chunk?kind={kind}&how={how}&after=1&t={token}" + (f"&cl={cl}" if cl else "")
    with Conn(server.port) as conn:
        conn.request("GET", target)
        resp = conn.read_response(allow_incomplete=True)
        if how == "list":
            assert resp.status == 500, (resp.status, resp.raw_head, resp.body)
        else:
            assert resp.status == 200 and not resp.complete, (resp.raw_head, resp.raw_body)
            assert b"ok;" in resp.raw_body and b"never" not in resp.raw_body, resp.raw_body
        assert conn.closed_by_server()
    assert_logged_type_error(server, token, mark, kind)


def test_repeated_and_long_response_headers(server):
    with Conn(server.port) as conn:
        conn.request("GET", "/multi-headers")
        resp = conn.read_response()
    assert resp.all("Set-Cookie") == ["a=1; Path=/", "b=2"]
    assert resp.header("X-Long") == "L" * 20000
    assert resp.body == b"ok"


def test_latin1_header_value_is_sent_as_latin1(server):
    with Conn(server.port) as conn:
        conn.request("GET", "/header?name=X-Latin&value=caf%C3%A9")
        resp = conn.read_response()
    assert resp.status == 200
    assert b"\r\nX-Latin: caf\xe9\r\n" in resp.raw_head


def test_non_latin1_header_value_is_a_500(server):
    with Conn(server.port) as conn:
        conn.request("GET", "/header?name=X-Euro&value=%E2%82%AC")
        resp = conn.read_response()
    assert resp.status == 500 and resp.header("X-Euro") is None


def test_close_that_raises_does_not_spoil_the_response(server, token, events):
    with Conn(server.port) as conn:
        conn.request("GET", f"/close-raises?t={token}")
        resp = conn.read_response()
        assert resp.status == 200 and resp.body == b"complete body"
    assert events(token) == [{"event": "close-raising"}]
    with Conn(server.port) as conn:
        conn.request("GET", "/hello")
        assert conn.read_response().body == b"hello"
