"""A request's body is received by the event loop before the application is called (Connection.begin,
RequestBody.receive_ahead), all of it by default, --request-buffering bytes of it when set (its first
LOOKAHEAD bytes in memory, the rest in an unlinked temporary file): a client that trickles its body
holds neither the loop (--threads 0), nor a pool thread (--threads N), nor a pre-fork worker (-w N).

The tests of the default run under --threads 0, --threads 2 and -w 1 with both parsers, the server's
--read-timeout being 2 s. Nothing is timed: a test checks that another client's request is answered
while a body is still incomplete, and `/called-echo` and `/called-hash` record on the side channel
when the application is called, so the test sees that it was not called before its body had arrived
(a request on a second connection answered first shows the server went on meanwhile). The temporary
files are seen in /proc/PID/fd of the server's processes (an unlinked file shows as "(deleted)").
"""

import hashlib
import os
import random
import signal
import socket
import tempfile

import pytest

from fastwsgi.server.connection import LOOKAHEAD
from tests.functional.apps import EVENTS_ENV
from tests.functional.client import Conn, build_request, chunked, get, wait_delivered
from tests.functional.conftest import check_alive, use_server
from tests.functional.ops import wait_for
from tests.functional.serverproc import DEFAULT_APP
from tests.functional.test_cli import run_cli

READ_TIMEOUT = 2.0
# (parser, threads, extra flags): the loop, a thread pool, a pre-fork worker
MODELS = [("c", 0, ()), ("python", 0, ()), ("c", 2, ()), ("python", 2, ()),
          ("c", 0, ("-w", "1")), ("python", 0, ("-w", "1"))]
TRICKLERS = 3  # more than --threads 2: the old code held every pool thread


def model_id(param) -> str:
    parser, threads, extra = param
    return f"{parser}-" + ("w1" if extra else f"t{threads}")


def ahead_fixture(*flags: str, models=MODELS):
    """A fixture serving the test app with --read-timeout READ_TIMEOUT and `flags` under `models`."""

    @pytest.fixture(params=models, ids=model_id)
    def fixture(request, pool):
        parser, threads, extra = request.param
        server = use_server(pool, (parser, threads), (*extra, "--read-timeout", str(READ_TIMEOUT), *flags),
                             DEFAULT_APP)
        yield server
        check_alive(server)

    return fixture


ahead_server = ahead_fixture()
BOUND = LOOKAHEAD + 100_000  # past LOOKAHEAD: a part of what is received ahead is in the temporary file
SOME_MODELS = [("c", 0, ()), ("python", 2, ())]
bounded_server = ahead_fixture("--request-buffering", str(BOUND), models=SOME_MODELS)
unbuffered_server = ahead_fixture("--request-buffering", "0", models=SOME_MODELS)


def framed(framing: str, target: str, body: bytes, extra=()) -> tuple[bytes, bytes]:
    """(head, body as sent) of a POST of `body` with `framing` ("length" or "chunked")."""
    if framing == "length":
        return build_request("POST", target, headers=[*extra, ("Content-Length", str(len(body)))]), body
    # chunks that put the chunk framing's own bytes inside the data, and a trailer
    wire = chunked(body[:1], body[1:12], body[12:], trailers=b"X-Checksum: 1\r\n")
    return build_request("POST", target, headers=[*extra, ("Transfer-Encoding", "chunked")]), wire


def framed_large(framing: str, target: str, body: bytes) -> tuple[bytes, bytes]:
    """framed(), with a chunked body over 100,003 bytes in many chunks of that size."""
    if framing == "length" or len(body) <= 100_003:
        return framed(framing, target, body)
    wire = chunked(*(body[i:i + 100_003] for i in range(0, len(body), 100_003)), trailers=b"X-Checksum: 1\r\n")
    return build_request("POST", target, headers=[("Transfer-Encoding", "chunked")]), wire


def random_body(size: int) -> bytes:
    """`size` bytes with a newline every 256 bytes on average (readline has lines to find)."""
    return random.Random(size).randbytes(size)


def hashed(body: bytes) -> bytes:
    """What /called-hash and /hash answer for `body`."""
    return b"%d %s" % (len(body), hashlib.sha256(body).hexdigest().encode())


def unread_by_server(server_port: int, client_port: int) -> int:
    """Bytes of the client's connection waiting in the server's socket, unread (its rx_queue)."""
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, remote = (int(address.split(":")[1], 16) for address in fields[1:3])
            if local == server_port and remote == client_port:
                return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"no server socket for client port {client_port}")


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


def pipeline_behind_a_body() -> tuple[bytes, bytes, dict, list]:
    """(the first head, the rest of the stream, cut places in that rest, [(method, body answered)]):
    a POST whose body is received ahead, then pipelined behind it HEAD and GET with bodies, a
    chunked POST with a trailer, a chunked body of only its last chunk, a Content-Length 0 and a
    GET."""
    first = build_request("POST", "/echo", headers=[("Content-Length", str(len(BODY)))])
    chunks = chunked(BODY[:7], BODY[7:], trailers=b"X-Checksum: 1\r\n")
    chunked_post = build_request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")]) + chunks
    rest = (BODY + build_request("HEAD", "/echo", headers=[("Content-Length", "5")]) + b"hello"
            + build_request("GET", "/echo", headers=[("Content-Length", "5")]) + b"world" + chunked_post
            + build_request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")]) + b"0\r\n\r\n"
            + build_request("POST", "/echo", headers=[("Content-Length", "0")]) + build_request("GET", "/p/last"))
    at_chunks = rest.index(chunked_post) + len(chunked_post) - len(chunks)
    cuts = {"last-body-byte-with-next-head": len(BODY) - 1, "at-the-body-end": len(BODY),
            "inside-the-next-head": len(BODY) + 10, "inside-a-chunk-size-line": at_chunks + 1,
            "inside-the-trailer": rest.index(b"X-Checksum") + 3}
    answers = [("POST", BODY), ("HEAD", b""), ("GET", b"world"), ("POST", BODY), ("POST", b""), ("POST", b""),
               ("GET", b"GET /p/last?")]
    return first, rest, cuts, answers


PIPELINE_CUTS = list(pipeline_behind_a_body()[2])


@pytest.mark.parametrize("cut", PIPELINE_CUTS)
def test_requests_pipelined_behind_a_body_then_a_half_close_are_all_answered(ahead_server, cut):
    """The rest of a body received ahead, in two sends cut at a place that matters, with requests
    pipelined behind it, then the client's SHUT_WR right behind the last byte: every request is
    answered, in order, and then the connection closes."""
    first, rest, cuts, answers = pipeline_behind_a_body()
    with Conn(ahead_server.port) as conn:
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.send(first)
        wait_delivered(conn.sock)
        conn.send(rest[:cuts[cut]])
        wait_delivered(conn.sock)
        conn.send(rest[cuts[cut]:])
        conn.sock.shutdown(socket.SHUT_WR)
        for method, body in answers:
            resp = conn.read_response(method)
            assert (resp.status, resp.body) == (200, body), (method, resp.raw_head)
        assert conn.read_to_eof() == b""


# a body that came short: BODY's first 20 bytes, or 2 x LOOKAHEAD bytes of a larger one (the old code
# called the application at LOOKAHEAD)
SHORT = pytest.mark.parametrize("body, sent", [(BODY, 20), (bytes(3 * LOOKAHEAD), 2 * LOOKAHEAD)],
                                ids=["small", "over-lookahead"])


@FRAMINGS
@SHORT
def test_a_body_that_stalls_before_the_app_is_called_gets_408(ahead_server, token, events, framing, body, sent):
    """--read-timeout without a byte while the body is received: 408 and the connection closes; the
    application is never called (the old code called it, and its read timed out: no answer)."""
    head, wire = framed_large(framing, f"/called-echo?t={token}", body)
    with Conn(ahead_server.port, timeout=READ_TIMEOUT + 5) as conn:
        conn.send(head + wire[:sent])
        resp = conn.read_response()
        assert resp.status == 408, resp.raw_head
        assert "close" in resp.connection_tokens()
        assert conn.closed_by_server()
    assert events(token, timeout=0.5) == []


@SHORT
def test_a_client_that_leaves_before_its_body_never_reaches_the_app(ahead_server, token, events, body, sent):
    head, wire = framed("length", f"/called-echo?t={token}", body)
    with Conn(ahead_server.port) as conn:
        conn.send(head + wire[:sent])
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


# -- bodies larger than LOOKAHEAD: the rest of what is received ahead goes to a temporary file --------

TRICKLE_ROUNDS = 20  # rounds of a few bytes per trickler, --read-timeout / 8 apart: no read times out


@FRAMINGS
def test_trickled_uploads_over_lookahead_do_not_hold_another_clients_request(ahead_server, framing):
    """The repro: clients that send more than LOOKAHEAD of a large body, then a few bytes at a time.
    The old code called the application at LOOKAHEAD, whose reads then waited on the loop thread or
    a pool thread for as long as the client trickled: the GET was not answered meanwhile."""
    port = ahead_server.port
    sent = LOOKAHEAD + 100_000
    tricklers = []
    try:
        for i in range(TRICKLERS):
            body = random_body(LOOKAHEAD + 200_000 + i)
            head, wire = framed_large(framing, "/hash", body)
            conn = Conn(port, timeout=15)
            conn.send(head + wire[:sent])
            tricklers.append((conn, wire, body))
        for conn, _, _ in tricklers:  # the GET comes after the server read what they sent
            assert wait_for(lambda: unread_by_server(port, conn.local_port) == 0), "not read ahead"
        with Conn(port) as other:
            other.request("GET", "/hello")
            answer = b""
            for _ in range(TRICKLE_ROUNDS):
                for conn, wire, _ in tricklers:
                    conn.send(wire[sent:sent + 10])
                sent += 10
                answer = other.read_available(READ_TIMEOUT / 8)
                if answer:
                    break
            assert answer.startswith(b"HTTP/1.1 200 OK"), "the GET waited behind the uploads"
        for conn, wire, body in tricklers:  # still incomplete until now
            conn.send(wire[sent:])
            resp = conn.read_response()
            assert resp.status == 200 and resp.body == hashed(body), resp.raw_head
    finally:
        for conn, _, _ in tricklers:
            conn.close()


@FRAMINGS
@pytest.mark.parametrize("size, mode", [(1 << 20, "read"), (1 << 20, "read-n"), (1 << 20, "readline"),
                                        (1 << 20, "iter"), (5 << 20, "read"), (5 << 20, "read-n")])
def test_a_large_body_reaches_the_app_whole_and_byte_exact(ahead_server, token, events, framing, size, mode):
    """The application is called once all of the body has come (not at its last byte but one), and
    reads it byte for byte, whichever way it reads (read(9973): sizes that straddle the memory part,
    the file's pieces and its end); the request pipelined behind it is answered next."""
    body = random_body(size)
    head, wire = framed_large(framing, f"/called-hash?t={token}&mode={mode}&n=9973", body)
    with Conn(ahead_server.port, timeout=30) as conn:
        conn.send(head + wire[:-1])
        wait_delivered(conn.sock, timeout=30)
        assert events(token, timeout=0) == [], "the application was called before its body had come"
        conn.send(wire[-1:] + build_request("GET", "/p/next"))
        resp = conn.read_response()
        assert resp.status == 200 and resp.body == hashed(body)
        assert conn.read_response().body == b"GET /p/next?"
    assert events(token) == [{"event": "called"}]


def server_pids(server) -> list[int]:
    """The server's process and its children (a pre-fork worker)."""
    pid = server.proc.pid
    pids = [pid]
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            pids += [int(child) for child in f.read().split()]
    return pids


def spool_files(server, directory: str | None = None) -> set:
    """The unlinked files in `directory` (default: the temporary directory) the server's processes
    hold open."""
    directory = os.path.join(directory or tempfile.gettempdir(), "")
    found = set()
    for pid in server_pids(server):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:  # closed meanwhile
                continue
            if target.startswith(directory) and target.endswith(" (deleted)"):
                found.add((pid, target))
    return found


def test_the_temporary_file_is_closed_however_the_exchange_ends(ahead_server, token, events):
    """The part of a body past LOOKAHEAD is in an unlinked temporary file while it is received, and
    the file is closed when the exchange ends: a client that leaves mid-body, a 408, uploads
    answered (read, ignored) with a request pipelined behind them, an application that raises."""
    server = ahead_server
    before = spool_files(server)
    body = random_body(3 * LOOKAHEAD)

    def one_more_file() -> bool:
        return len(spool_files(server) - before) == 1

    head, wire = framed_large("length", f"/called-hash?t={token}", body)
    with Conn(server.port) as conn:  # leaves mid-body
        conn.send(head + wire[:2 * LOOKAHEAD])
        assert wait_for(one_more_file), "no temporary file holds the body past LOOKAHEAD"
    assert wait_for(lambda: spool_files(server) == before)

    with Conn(server.port, timeout=READ_TIMEOUT + 5) as conn:  # stalls: 408
        conn.send(head + wire[:2 * LOOKAHEAD])
        assert wait_for(one_more_file)
        assert conn.read_response().status == 408
    assert wait_for(lambda: spool_files(server) == before)

    with Conn(server.port, timeout=15) as conn:
        for framing in ("length", "chunked"):
            for target in (f"/called-hash?t={token}", "/ignore-body"):
                head, wire = framed_large(framing, target, body)
                conn.send(head + wire + build_request("GET", "/p/next"))
                resp = conn.read_response()
                assert resp.status == 200 and resp.body in (hashed(body), b"ignored"), resp.raw_head
                assert conn.read_response().body == b"GET /p/next?"
        head, wire = framed_large("chunked", f"/called-hash?t={token}&raise=1", body)
        conn.send(head + wire)
        assert conn.read_response().status == 500
    assert wait_for(lambda: spool_files(server) == before)
    assert events(token, timeout=0) == [{"event": "called"}] * 3  # never for the first two


@pytest.mark.parametrize("model", [("--threads", "0"), ("--threads", "2"), ("-w", "1")], ids=["t0", "t2", "w1"])
def test_a_graceful_stop_lets_a_body_being_received_finish(started, model):
    """TERM while a body is received before its application runs: that connection is not idle (a
    drain closes idle ones at once), so the rest of the body is taken, the application answers with
    Connection: close, and then the server exits."""
    server = started("--read-timeout", "2", "--keep-alive", "5", "--graceful-timeout", "20", *model, DEFAULT_APP,
                     booted=1 if model[0] == "-w" else 0)
    head, wire = framed("chunked", "/echo", BODY)
    with Conn(server.port) as conn:
        conn.send(head + wire[:20])
        wait_delivered(conn.sock)
        answered_meanwhile(server.port)  # (the server has read those 20 bytes)
        server.signal(signal.SIGTERM)
        assert wait_for(lambda: "Graceful stop: finishing" in server.stderr_text()), server.stderr_text()
        conn.send(wire[20:])
        resp = conn.read_response()
        assert resp.status == 200 and resp.body == BODY, resp.raw_head
        assert "close" in resp.connection_tokens()
    assert server.wait(10) == 0, server.stderr_text()


@pytest.mark.parametrize("workers", [(), ("-w", "1")], ids=["single", "w1"])
def test_tmp_upload_dir_holds_the_temporary_files(started, tmp_path, token, workers):
    """--tmp-upload-dir DIR: the part of a body past LOOKAHEAD goes to an unlinked file in DIR (none
    in the default directory), and the application reads every byte of it."""
    upload_dir = tmp_path / "uploads"
    upload_dir.mkdir()
    server = started("--tmp-upload-dir", str(upload_dir), *workers, DEFAULT_APP, booted=len(workers) // 2)
    before_default = spool_files(server)
    body = random_body(3 * LOOKAHEAD)
    head, wire = framed_large("length", f"/called-hash?t={token}", body)
    with Conn(server.port, timeout=15) as conn:
        conn.send(head + wire[:2 * LOOKAHEAD])
        assert wait_for(lambda: len(spool_files(server, str(upload_dir))) == 1), \
            "no temporary file in --tmp-upload-dir holds the body past LOOKAHEAD"
        in_upload_dir = spool_files(server, str(upload_dir))
        assert spool_files(server) - in_upload_dir == before_default  # (tmp_path is in it too)
        conn.send(wire[2 * LOOKAHEAD:])
        resp = conn.read_response()
        assert resp.status == 200 and resp.body == hashed(body)
    assert wait_for(lambda: not spool_files(server, str(upload_dir)))
    assert os.listdir(upload_dir) == []  # unlinked as made: nothing left behind


@pytest.mark.parametrize("where", ["missing", "a-file"])
def test_tmp_upload_dir_must_be_a_directory(tmp_path, where):
    """A --tmp-upload-dir that is not a directory is refused at start: one line, exit status 2."""
    path = tmp_path / where
    if where == "a-file":
        path.write_text("")
    result = run_cli("--bind", "127.0.0.1:0", "--tmp-upload-dir", str(path), DEFAULT_APP)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--tmp-upload-dir" in lines[0] and "no such directory" in lines[0], lines


@FRAMINGS
def test_a_body_over_request_buffering_streams_its_rest_to_the_app(bounded_server, token, events, framing):
    """--request-buffering N: the application is called once N bytes have come (the part past
    LOOKAHEAD from the temporary file), not before, and reads the rest as it arrives, in order."""
    body = random_body(1 << 20)
    head, wire = framed_large(framing, f"/called-hash?t={token}&mode=read-n&n=9973", body)
    with Conn(bounded_server.port, timeout=15) as conn:
        conn.send(head + wire[:BOUND - 1000])
        wait_delivered(conn.sock)
        answered_meanwhile(bounded_server.port)
        assert events(token, timeout=0) == [], "the application was called before BOUND bytes had come"
        conn.send(wire[BOUND - 1000:BOUND + 50_000])
        assert events(token) == [{"event": "called"}]  # before the rest was sent
        conn.send(wire[BOUND + 50_000:])
        resp = conn.read_response()
        assert resp.status == 200 and resp.body == hashed(body)


@FRAMINGS
def test_request_buffering_0_calls_the_app_before_its_body(unbuffered_server, token, events, framing):
    """--request-buffering 0: nothing is received ahead; the application is called on the head and
    its reads wait for the body, which the client sends only once it was called."""
    head, wire = framed(framing, f"/called-echo?t={token}", BODY)
    with Conn(unbuffered_server.port) as conn:
        conn.send(head)
        assert events(token) == [{"event": "called"}]
        conn.send(wire)
        resp = conn.read_response()
        assert resp.status == 200 and resp.body == BODY


def test_a_temporary_file_that_cannot_be_written_ends_the_body_with_500(started, tmp_path, token, events,
                                                                      events_dir):
    """A full disk, made by a 1 MiB file size limit (RLIMIT_FSIZE, set by the config file; Python
    ignores SIGXFSZ, so the write fails with EFBIG): the request is answered 500 without calling
    the application, the error is logged, and the server goes on serving."""
    conf = tmp_path / "fsize.conf.py"
    conf.write_text("import resource\nresource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n")
    server = started("-c", str(conf), DEFAULT_APP, env={EVENTS_ENV: str(events_dir)})
    body = random_body(3 << 20)
    head, wire = framed_large("length", f"/called-hash?t={token}", body)
    with Conn(server.port, timeout=15) as conn:
        conn.send(head + wire)
        resp = conn.read_response()
        assert resp.status == 500 and "close" in resp.connection_tokens(), resp.raw_head
    assert events(token, count=1, timeout=0.5) == []
    assert "Could not keep a request body in a temporary file" in server.stderr_text()
    assert get(server.port, "/hello").body == b"hello"
