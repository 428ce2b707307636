"""Request bodies through wsgi.input: Content-Length and chunked, every read method, 100-continue,
large uploads, truncation (RFC 9112 §6, §7.1; RFC 9110 §10.1.1; PEP 3333 "Input and Error Streams")."""

import hashlib
import io
import json
import random
import socket
import subprocess

import pytest

from tests.functional.apps import pattern_bytes
from tests.functional.client import FILLING, FILLING_BYTES, Conn, build_request, chunked, tell

LINES = (b"first line\nthe second line is a good deal longer than the first one\n\n"
         b"x\n" + b"y" * 40 + b"\nlast line without a newline")
MODES = ["read", "read-n", "read-minus-one", "readline", "readline-limit", "readlines", "readlines-hint",
         "iter"]


def expected_pieces(mode: str, body: bytes, n: int = 7) -> list[bytes]:
    """What a regular binary file returns for the same calls (the app in apps.h_input mirrors this)."""
    f = io.BytesIO(body)
    if mode == "read":
        return [f.read(), f.read()]
    if mode == "read-n":
        return list(iter(lambda: f.read(n), b"")) + [b""]
    if mode == "read-minus-one":
        return [f.read(-1), f.read()]
    if mode == "readline":
        return list(iter(f.readline, b"")) + [b""]
    if mode == "readline-limit":
        return list(iter(lambda: f.readline(n), b"")) + [b""]
    if mode == "readlines":
        return f.readlines()
    if mode == "iter":
        return list(f)
    raise ValueError(mode)


def post_input(port: int, mode: str, body: bytes, framing: str, n: int = 7, piece: int = 5) -> list[bytes]:
    if framing == "chunked":
        pieces = [body[i:i + piece] for i in range(0, len(body), piece)]  # chunks split lines
        data = build_request("POST", f"/input?mode={mode}&n={n}",
                             headers=[("Transfer-Encoding", "chunked")], body=chunked(*pieces))
    else:
        data = build_request("POST", f"/input?mode={mode}&n={n}", body=body)
    with Conn(port) as conn:
        conn.send(data)
        resp = conn.read_response()
    assert resp.status == 200, resp.body
    return [p.encode("latin-1") for p in json.loads(resp.body)]


@pytest.mark.parametrize("framing", ["length", "chunked"])
@pytest.mark.parametrize("mode", MODES)
def test_wsgi_input_methods(server, mode, framing):
    got = post_input(server.port, mode, LINES, framing)
    if mode == "readlines-hint":
        # the hint may be honoured or ignored (PEP 3333), but lines stay whole and nothing is lost
        *lines, rest = got
        assert rest.startswith(b"|REST|")
        assert b"".join(lines) + rest[len(b"|REST|"):] == LINES
        assert lines and all(line.endswith(b"\n") for line in lines)
    else:
        assert got == expected_pieces(mode, LINES)


BIG_LINES = b"".join(bytes([65 + i]) * (100_000 + i) + b"\n" for i in range(3)) + b"tail"


@pytest.mark.parametrize("mode,n", [("readline", 0), ("readline-limit", 30_000), ("read-n", 65_536), ("iter", 0)])
def test_wsgi_input_with_lines_longer_than_any_buffer(server, mode, n):
    got = post_input(server.port, mode, BIG_LINES, "chunked", n, piece=997)
    assert got == expected_pieces(mode, BIG_LINES, n)


@pytest.mark.parametrize("framing", ["length", "chunked"])
@pytest.mark.parametrize("seed", range(4))
def test_wsgi_input_read_and_readline_mixed_over_many_pieces(server, framing, seed):
    """Random sizes of read(n) and readline(n) over a body of lines of random lengths (some longer
    than a receive), as io.BytesIO answers them: the reads that span pieces join them in order."""
    rng = random.Random(seed)
    body = b"".join(b"%d:" % i + b"x" * rng.choice([0, 1, 50, 5000, 70_000, 150_000]) + b"\n"
                    for i in range(12))
    ops = [rng.choice("rl") + str(rng.choice([-1, 0, 1, 7, 4096, 65_536, 100_000, 300_000]))
           for _ in range(40)]
    reference = io.BytesIO(body)
    expected = [(reference.read if op[0] == "r" else reference.readline)(int(op[1:])) for op in ops]
    if framing == "chunked":
        pieces = [body[i:i + 30_011] for i in range(0, len(body), 30_011)]
        data = build_request("POST", "/input?mode=ops&ops=" + ",".join(ops),
                             headers=[("Transfer-Encoding", "chunked")], body=chunked(*pieces))
    else:
        data = build_request("POST", "/input?mode=ops&ops=" + ",".join(ops), body=body)
    with Conn(server.port) as conn:
        conn.send(data)
        resp = conn.read_response()
    assert resp.status == 200, resp.body
    assert [p.encode("latin-1") for p in json.loads(resp.body)] == expected


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_empty_body(server, framing):
    assert post_input(server.port, "read", b"", framing) == [b"", b""]


def test_no_body_at_all_reads_empty(server):
    with Conn(server.port) as conn:
        conn.request("GET", "/input?mode=readline")
        assert json.loads(conn.read_response().body) == [""]


def test_chunked_body_with_extensions_and_trailers(server):
    body = b"4;name=value\r\nWiki\r\n5 ; x=\"q\"\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\n"
    with Conn(server.port) as conn:
        conn.request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")], body=body)
        resp = conn.read_response()
        assert resp.status == 200 and resp.body == b"Wikipedia"
        conn.request("GET", "/p/next")  # the trailer section was consumed exactly
        assert conn.read_response().body == b"GET /p/next?"


def test_chunked_body_sent_in_slow_pieces(server):
    """The decoder state survives arbitrary splits of the stream across reads."""
    data = build_request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")],
                         body=chunked(b"abc", b"defgh", b"i" * 300))
    with Conn(server.port) as conn:
        for i in range(0, len(data), 7):
            conn.send(data[i:i + 7])
        assert conn.read_response().body == b"abcdefgh" + b"i" * 300


def test_large_upload_content_length(server):
    payload = hashlib.sha256(b"up").digest() * (8 * 1024 * 1024 // 32)  # 8 MiB
    with Conn(server.port, timeout=30) as conn:
        conn.send(build_request("POST", "/hash", body=payload))
        resp = conn.read_response(timeout=60)
    assert resp.status == 200
    assert resp.body.decode() == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}"


def test_large_upload_chunked_with_curl(server):
    """curl reading stdin with -T - sends Transfer-Encoding: chunked (HTTP/1.1)."""
    payload = hashlib.sha256(b"curl").digest() * (8 * 1024 * 1024 // 32)
    out = subprocess.run(["curl", "-sS", "--max-time", "60", "-T", "-", f"http://127.0.0.1:{server.port}/hash",
                          "-w", "\n%{http_code}", "-v"],
                         input=payload, capture_output=True, timeout=90)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    assert b"Transfer-Encoding: chunked" in out.stderr  # curl's -v shows the request it sent
    body, code = out.stdout.rsplit(b"\n", 1)
    assert code == b"200"
    assert body.decode() == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}"


def test_chunked_upload_from_file_with_curl(server, tmp_path):
    payload = bytes(range(256)) * 4000
    path = tmp_path / "up.bin"
    path.write_bytes(payload)
    out = subprocess.run(["curl", "-sS", "--max-time", "30", "--data-binary", f"@{path}",
                          "-H", "Transfer-Encoding: chunked", f"http://127.0.0.1:{server.port}/echo"],
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout == payload


def test_large_download(server):
    size = 16 * 1024 * 1024 + 17
    expected = hashlib.sha256(pattern_bytes(size)).hexdigest()
    for cl in ("1", "0"):
        with Conn(server.port, timeout=30) as conn:
            conn.request("GET", f"/download?n={size}&cl={cl}")
            resp = conn.read_response(timeout=60)
            assert resp.status == 200
            assert resp.framing == ("length" if cl == "1" else "chunked")
            assert len(resp.body) == size
            assert hashlib.sha256(resp.body).hexdigest() == expected
            conn.request("GET", "/p/after")  # still usable
            assert conn.read_response().body == b"GET /p/after?"


# -- 100-continue (RFC 9110 §10.1.1) ---------------------------------------------------------------

def test_100_continue_sent_when_the_app_reads(server):
    with Conn(server.port) as conn:
        conn.send(build_request("POST", "/echo", headers=[("Expect", "100-continue"),
                                                          ("Content-Length", "5")]))
        interim = conn.read_head(timeout=3)
        assert interim.status == 100, interim.raw_head
        assert interim.raw_head.startswith(b"HTTP/1.1 100 Continue\r\n")
        conn.send(b"hello")
        resp = conn.read_response()
        assert resp.status == 200 and resp.body == b"hello"
        assert resp.interim == []  # exactly one 100
        conn.request("GET", "/p/next")
        assert conn.read_response().body == b"GET /p/next?"


def test_100_continue_not_sent_when_the_app_does_not_read(server):
    with Conn(server.port) as conn:
        conn.send(build_request("POST", "/ignore-body", headers=[("Expect", "100-continue"),
                                                                 ("Content-Length", "5")]))
        resp = conn.read_response(timeout=3)
        assert resp.interim == [], "100 Continue sent although the application never read the body"
        assert resp.status == 200 and resp.body == b"ignored"


def test_100_continue_never_sent_to_http10(server):
    with Conn(server.port) as conn:
        conn.send(build_request("POST", "/echo", version="HTTP/1.0",
                                headers=[("Expect", "100-continue"), ("Content-Length", "5")]))
        early = conn.read_available(0.6)
        assert early == b"", f"server answered an HTTP/1.0 client before the body: {early!r}"
        conn.send(b"howdy")
        resp = conn.read_response()
        assert resp.interim == []
        assert resp.status == 200 and resp.body == b"howdy"


def test_100_continue_with_chunked_body(server):
    with Conn(server.port) as conn:
        conn.send(build_request("POST", "/echo", headers=[("Expect", "100-continue"),
                                                          ("Transfer-Encoding", "chunked")]))
        assert conn.read_head(timeout=3).status == 100
        conn.send(chunked(b"chunk", b"ed"))
        assert conn.read_response().body == b"chunked"


def test_no_100_continue_once_the_response_has_begun(server):
    """An application that answers before it reads: the 100 would land inside the response body, so
    it is never sent (RFC 9110 §15.2: no 1xx after the final response); the client sends the body
    anyway (§10.1.1), and the connection closes after the response (the client may not have)."""
    with Conn(server.port) as conn:
        conn.send(build_request("POST", "/respond-then-read", headers=[("Expect", "100-continue"),
                                                                       ("Content-Length", "5")]))
        head = conn.read_head(timeout=3)
        assert head.status == 200, head.raw_head
        conn.send(b"hello")
        resp = conn.read_body(head)
        assert resp.body == b"first;got:hello", resp.raw_body
        assert b"100 Continue" not in resp.raw_body
        assert "close" in resp.connection_tokens()
        assert conn.closed_by_server()


# -- truncated bodies --------------------------------------------------------------------------------

# A body that ends early never reaches the application when the server receives it before the call
# (test_body_ahead.py); it does when the client waits for 100 Continue (or past LOOKAHEAD bytes).
EXPECT = ("Expect", "100-continue")


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_truncated_body_raises_in_the_app(server, token, events, framing):
    """The client stops mid-body and half-closes: the app's read() must raise, never return short data."""
    if framing == "length":
        data = build_request("POST", f"/read-record?t={token}",
                             headers=[EXPECT, ("Content-Length", "1000")]) + b"x" * 10
    else:
        data = build_request("POST", f"/read-record?t={token}",
                             headers=[EXPECT, ("Transfer-Encoding", "chunked")]) + b"64\r\n" + b"x" * 10
    with Conn(server.port) as conn:
        conn.send(data)
        conn.sock.shutdown(socket.SHUT_WR)
        tail = conn.read_available(3.0)
    seen = events(token)
    assert seen, "the application never reported its read"
    assert seen[0]["event"] == "read-error", seen
    assert seen[0]["oserror"], f"read raised {seen[0]['type']}, not an OSError subclass"
    assert not tail.startswith(b"HTTP/1.1 200"), tail


@pytest.mark.parametrize("framing", ["length", "chunked", "malformed"])
def test_a_failed_body_read_fails_again(unbuffered_server, token, events, framing):
    """A read after a failed one raises again: returning b"" would pass a short body off as whole.
    (--request-buffering 0: a malformed body is met by the application's read, not refused before.)"""
    target = f"/read-twice?t={token}"
    if framing == "length":
        data = build_request("POST", target, headers=[EXPECT, ("Content-Length", "1000")]) + b"x" * 10
    elif framing == "chunked":
        data = build_request("POST", target, headers=[EXPECT, ("Transfer-Encoding", "chunked")]) + b"64\r\nxx"
    else:
        data = build_request("POST", target, headers=[("Transfer-Encoding", "chunked")],
                             body=b"5\r\nhello\r\nzz\r\n")
    with Conn(unbuffered_server.port) as conn:
        conn.send(data)
        if framing != "malformed":
            conn.sock.shutdown(socket.SHUT_WR)  # the body ends early
        assert conn.closed_by_server()
    assert events(token, count=3)[-1] == {"event": "reads", "reads": ["error:BodyError", "error:BodyError"]}


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_read_after_the_response_fails_and_leaves_the_next_request_alone(streaming_server, token, events,
                                                                           events_dir, framing):
    """A thread of the application reads wsgi.input after the response went out: the connection owns
    the rest of the body then (it drains it), so the read raises at once instead of racing the event
    loop for the socket, where it took the next request's bytes or waited for them. (The body starts
    with the FILLING that makes the server call the application before the rest is sent.)"""
    rest = b"0123456789"
    if framing == "length":
        head = build_request("POST", f"/read-after-response?t={token}",
                             headers=[("Content-Length", str(len(FILLING_BYTES) + 20))])
        first, later = head + FILLING_BYTES + b"abcdefghij", rest
    else:
        head = build_request("POST", f"/read-after-response?t={token}", headers=[("Transfer-Encoding", "chunked")])
        first, later = head + FILLING + b"a\r\nabcdefghij\r\n", b"a\r\n" + rest + b"\r\n0\r\n\r\n"
    with Conn(streaming_server.port) as conn:
        conn.send(first)
        response = conn.read_response()
        assert response.status == 200 and response.body == b"answered"
        tell(events_dir, token)  # the application's thread reads now
        seen = events(token)
        assert seen and seen[0]["event"] == "late-read-error", seen
        assert "after the response" in seen[0]["message"], seen
        if "close" in response.connection_tokens():  # (a chunked body not all there yet: by design)
            assert conn.closed_by_server()
            return
        conn.send(later + build_request("GET", "/p/next"))
        assert conn.read_response().body == b"GET /p/next?"


def test_100_continue_when_the_client_does_not_wait(server):
    """Clients may send the body right away (RFC 9110 §10.1.1): at most one 100, then the real answer."""
    with Conn(server.port) as conn:
        conn.send(build_request("POST", "/echo", headers=[("Expect", "100-continue")], body=b"eager")
                  + build_request("GET", "/p/next"))
        resp = conn.read_response()
        assert resp.status == 200 and resp.body == b"eager"
        assert len(resp.interim) <= 1
        nxt = conn.read_response()
        assert nxt.interim == [] and nxt.body == b"GET /p/next?"


def test_partly_read_body_is_drained(server):
    with Conn(server.port) as conn:
        conn.send(build_request("POST", "/input?mode=readlines-hint&n=3", body=b"ab\n" + b"GET /x HTTP/1.1\r\n\r\n")
                  + build_request("GET", "/p/next"))
        assert conn.read_response().status == 200
        assert conn.read_response().body == b"GET /p/next?"


def test_malformed_chunked_body_answered_by_the_app_closes_the_connection(unbuffered_server):
    """The application (called before its body came: --request-buffering 0) catches the read error
    and answers itself (as Django does): that response says Connection: close and the connection
    closes, since the input is no longer framed."""
    with Conn(unbuffered_server.port) as conn:
        conn.send(build_request("POST", "/read-or-400", headers=[("Transfer-Encoding", "chunked")])
                  + b"5\r\nhello\r\nzz\r\n" + build_request("GET", "/p/smuggled"))
        resp = conn.read_response()
        assert resp.status == 400 and resp.body == b"unreadable body: BodyError", resp.body
        assert "close" in resp.connection_tokens(), resp.raw_head
        assert conn.closed_by_server()
