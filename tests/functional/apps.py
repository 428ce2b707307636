"""WSGI applications the functional tests serve through real `fastwsgi` processes.

Theory of operation: one server process serves many tests, so `app` dispatches on PATH_INFO to small
handlers, each exercising one piece of the WSGI contract (PEP 3333) and answering with something the
test can check byte for byte. What cannot be seen on the wire (was close() called? what exception did
wsgi.input raise? did a smuggled request run?) goes to a *side channel*: the handler appends one JSON
line to `$FASTWSGI_TEST_EVENTS/<token>.log`, where the token is a fresh value the test put in the query
string (`?t=...`). Tests read that file back with `tests.functional.client.wait_events`. Each line is
written with one O_APPEND write, so threads and processes never interleave half lines.

Other module-level names serve the CLI tests: `application` (picked when the spec names only the
module), `create_app(...)` (factory spec), `validated_app` (the dispatcher wrapped in
wsgiref.validate.validator).
"""

from __future__ import annotations

import array
import gzip
import hashlib
import io
import json
import os
import sys
import time
import urllib.parse
from wsgiref.validate import validator

EVENTS_ENV = "FASTWSGI_TEST_EVENTS"


# ---------------------------------------------------------------------------------------------------
# side channel

def record(token: str, **event) -> None:
    """Append one event for `token` to the side-channel directory (no-op when none is configured)."""
    directory = os.environ.get(EVENTS_ENV)
    if not directory or not token:
        return
    line = (json.dumps(event, sort_keys=True) + "\n").encode()
    fd = os.open(os.path.join(directory, f"{token}.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def query(environ) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))


def pattern_bytes(size: int) -> bytes:
    """Deterministic, non-repeating-looking payload the client can recompute."""
    block = hashlib.sha256(b"fastwsgi").digest() * 2048  # 64 KiB
    whole, rest = divmod(size, len(block))
    return block * whole + block[:rest]


def text(start_response, body: str | bytes, status: str = "200 OK", headers=()) -> list[bytes]:
    data = body.encode("latin-1") if isinstance(body, str) else body
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(data))), *headers])
    return [data]


def as_json(start_response, value, status: str = "200 OK") -> list[bytes]:
    return text(start_response, json.dumps(value, sort_keys=True), status,
                headers=[("X-Json", "1")])


# ---------------------------------------------------------------------------------------------------
# handlers: (environ, start_response) -> iterable

def h_hello(environ, start_response):
    return text(start_response, "hello")


def h_path(environ, start_response):
    """Echo method, path and query: pipelining tests tell responses apart with it."""
    return text(start_response, f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}?{environ['QUERY_STRING']}")


def h_echo(environ, start_response):
    """Read the whole body with read() and send it back."""
    body = environ["wsgi.input"].read()
    q = query(environ)
    record(q.get("t", ""), event="echo", length=len(body))
    return text(start_response, body, headers=[("X-Body-Length", str(len(body)))])


def h_input(environ, start_response):
    """Read the body with one wsgi.input method (?mode=...) and report the pieces it returned."""
    stream = environ["wsgi.input"]
    q = query(environ)
    mode = q.get("mode", "read")
    n = int(q.get("n", "7"))
    pieces: list[bytes]
    if mode == "read":
        pieces = [stream.read()]
        pieces.append(stream.read())  # at EOF: must be b""
    elif mode == "read-n":
        pieces = []
        while True:
            piece = stream.read(n)
            pieces.append(piece)
            if not piece:
                break
    elif mode == "read-minus-one":
        pieces = [stream.read(-1), stream.read()]
    elif mode == "readline":
        pieces = []
        while True:
            piece = stream.readline()
            pieces.append(piece)
            if not piece:
                break
    elif mode == "readline-limit":
        pieces = []
        while True:
            piece = stream.readline(n)
            pieces.append(piece)
            if not piece:
                break
    elif mode == "readlines":
        pieces = stream.readlines()
    elif mode == "readlines-hint":
        pieces = stream.readlines(n)
        pieces.append(b"|REST|" + stream.read())
    elif mode == "iter":
        pieces = list(stream)
    elif mode == "ops":  # ?ops=r5,l-1,...: read(5), readline(-1), ... in that order
        pieces = [(stream.read if op[0] == "r" else stream.readline)(int(op[1:]))
                  for op in q["ops"].split(",")]
    else:
        return text(start_response, f"unknown mode {mode}", "400 Bad Request")
    return as_json(start_response, [p.decode("latin-1") for p in pieces])


def h_called_echo(environ, start_response):
    """Record "called" as soon as the application is called (before it reads), then echo the body:
    the test sees when the server called it relative to what it had sent of the body."""
    token = query(environ).get("t", "")
    record(token, event="called")
    return h_echo(environ, start_response)


def h_read_or_400(environ, start_response):
    """Read the body; answer a failed read with a 400 of its own, as Django does (the server must
    then close the connection: its input is no longer framed)."""
    try:
        body = environ["wsgi.input"].read()
    except OSError as exc:
        return text(start_response, f"unreadable body: {type(exc).__name__}", "400 Bad Request")
    return text(start_response, body)


def h_respond_then_read(environ, start_response):
    """Send a first block, then read the body: a 100 Continue is then too late (RFC 9110 §15.2)."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"first;"
    yield b"got:" + environ["wsgi.input"].read()


def h_read_twice(environ, start_response):
    """Read the body; after a failed read, read once more (an application that retries, or a framework
    that reads again while handling the error) and record what each read gave."""
    reads = []
    for _ in range(2):
        try:
            reads.append("ok:" + environ["wsgi.input"].read().decode("latin-1"))
            break
        except OSError as exc:
            reads.append(f"error:{type(exc).__name__}")
            record(query(environ).get("t", ""), event="read-failed", type=type(exc).__name__)
    record(query(environ).get("t", ""), event="reads", reads=reads)
    return as_json(start_response, reads)


def h_respond_then_record(environ, start_response):
    """Send a first block (so the head, and whether the connection stays open, is decided before
    the body is read), then read the body and record what the read returned or raised."""
    token = query(environ).get("t", "")
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"first;"
    try:
        body = environ["wsgi.input"].read()
    except OSError as exc:
        record(token, event="read-error", type=type(exc).__name__)
        raise
    record(token, event="read-ok", body=body.decode("latin-1"))
    yield b"got:" + body


def h_hash(environ, start_response):
    """Stream the body through sha256 in blocks; answer 'length hexdigest' (after ?sleep=S seconds)."""
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    length = 0
    while True:
        block = stream.read(65536)
        if not block:
            break
        digest.update(block)
        length += len(block)
    time.sleep(float(query(environ).get("sleep", "0")))
    return text(start_response, f"{length} {digest.hexdigest()}")


def h_called_hash(environ, start_response):
    """Record "called" as soon as the application is called, then read the whole body with one
    wsgi.input method (?mode=read, read-n with ?n=N, readline, iter) through sha256 and answer
    'length hexdigest'; with ?raise=1, read 1000 bytes and raise instead (the server answers 500)."""
    q = query(environ)
    record(q.get("t", ""), event="called")
    stream = environ["wsgi.input"]
    if q.get("raise"):
        stream.read(1000)
        raise RuntimeError("the application failed while reading its body")
    mode = q.get("mode", "read")
    if mode == "read":
        pieces = [stream.read()]
    elif mode == "read-n":
        size = int(q["n"])
        pieces = iter(lambda: stream.read(size), b"")
    elif mode == "readline":
        pieces = iter(stream.readline, b"")
    else:
        pieces = stream
    digest = hashlib.sha256()
    length = 0
    for piece in pieces:
        digest.update(piece)
        length += len(piece)
    return text(start_response, f"{length} {digest.hexdigest()}")


def h_download(environ, start_response):
    """?n=BYTES of pattern_bytes, in 64 KiB pieces; ?cl=0 omits Content-Length."""
    q = query(environ)
    size = int(q.get("n", "0"))
    payload = pattern_bytes(size)
    headers = [("Content-Type", "application/octet-stream")]
    if q.get("cl", "1") == "1":
        headers.append(("Content-Length", str(size)))
    start_response("200 OK", headers)
    return [payload[i:i + 65536] for i in range(0, size, 65536)]


def h_ignore_body(environ, start_response):
    """Never touches wsgi.input: the server must drain (or close) before the next request."""
    record(query(environ).get("t", ""), event="ignored")
    return text(start_response, "ignored")


def h_answer_when_told(environ, start_response):
    """Read ?read=N bytes of the body (none by default), record "started", then wait (10 s at most)
    until the test creates `<token>.go` in the side-channel directory, and answer: the test sends
    (the rest of) the body in between, so that it waits in the server's socket, unread, when the
    response's head (and whether the connection stays open) is decided."""
    q = query(environ)
    token = q.get("t", "")
    got = environ["wsgi.input"].read(int(q["read"])) if "read" in q else b""
    record(token, event="started")
    go = os.path.join(os.environ.get(EVENTS_ENV, ""), f"{token}.go")
    deadline = time.monotonic() + 10.0
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.005)
    return text(start_response, f"answered after {len(got)}")


def h_read_after_response(environ, start_response):
    """Answer at once without reading the body, leaving a thread that waits until the test creates
    `<token>.go` (after it has the response) and then reads wsgi.input: an application breaking the
    contract, whose late read must neither take bytes of the connection's next request nor hang."""
    import threading

    token = query(environ).get("t", "")
    body = environ["wsgi.input"]
    go = os.path.join(os.environ.get(EVENTS_ENV, ""), f"{token}.go")

    def read_late():
        deadline = time.monotonic() + 10.0
        while not os.path.exists(go) and time.monotonic() < deadline:
            time.sleep(0.005)
        try:
            got = body.read()
        except OSError as exc:
            record(token, event="late-read-error", type=type(exc).__name__, message=str(exc))
        else:
            record(token, event="late-read-ok", body=got.decode("latin-1"))

    threading.Thread(target=read_late, daemon=True).start()
    return text(start_response, "answered")


def h_read_record(environ, start_response):
    """Read the body and record what happened: the body, or the exception the read raised."""
    token = query(environ).get("t", "")
    try:
        body = environ["wsgi.input"].read()
    except BaseException as exc:  # noqa: BLE001 - the point is to observe whatever is raised
        record(token, event="read-error", type=type(exc).__name__,
               oserror=isinstance(exc, OSError), mro=[c.__name__ for c in type(exc).__mro__])
        raise
    record(token, event="read-ok", length=len(body))
    return text(start_response, f"read {len(body)}")


def h_chunks(environ, start_response):
    """No Content-Length: the server must chunk (HTTP/1.1) or close-delimit (HTTP/1.0)."""
    count = int(query(environ).get("n", "5"))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return (f"piece{i};".encode() for i in range(count))


def h_empty_pieces(environ, start_response):
    """Empty strings in the iterable must not end a chunked response early (a b"" chunk is the end)."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"", b"a", b"", b"b", b""]


def h_wide_view(environ, start_response):
    """Memoryviews of 4-byte items streamed: 3 items, 12 bytes each (the access log counts bytes)."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return (memoryview(array.array("I", [1, 2, 3])) for _ in range(2))


def h_cl_extra(environ, start_response):
    """Declares 5 bytes, yields 10: the server sends 5 and closes."""
    start_response("200 OK", [("Content-Length", "5")])
    return [b"12345", b"67890"]


def h_cl_short(environ, start_response):
    """Declares 10 bytes, yields 5: the server must close so the client sees the truncation."""
    start_response("200 OK", [("Content-Length", "10")])
    return [b"12345"]


def h_status(environ, start_response):
    """?code=204|304|... with a body the server must not send for bodiless statuses."""
    q = query(environ)
    code = q.get("code", "200")
    reasons = {"200": "OK", "204": "No Content", "304": "Not Modified", "404": "Not Found"}
    headers = [("X-Status", code)]
    if q.get("cl") == "1":
        headers.append(("Content-Length", "9"))
    start_response(f"{code} {reasons.get(code, 'Whatever')}", headers)
    return [b"forbidden"]


def h_head(environ, start_response):
    """A normal GET resource; a HEAD of it must come back without the body."""
    q = query(environ)
    body = b"x" * 100
    headers = [("Content-Type", "text/plain")]
    if q.get("cl", "1") == "1":
        headers.append(("Content-Length", str(len(body))))
    start_response("200 OK", headers)
    return [body]


def h_header(environ, start_response):
    """Send the header named in ?name= with the value in ?value= (hop-by-hop and CR/LF tests)."""
    q = query(environ)
    start_response("200 OK", [("Content-Type", "text/plain"), (q["name"], q["value"])])
    return [b"should not be sent"]


def h_server_date(environ, start_response):
    """The app sets its own Server/Date: the server must not add a second one."""
    start_response("200 OK", [("Server", "my-app/1.0"), ("Date", "Thu, 01 Jan 1970 00:00:00 GMT"),
                              ("Content-Length", "2")])
    return [b"ok"]


class RecordingFile(io.FileIO):
    """A real file that reports whether the server read it through Python (instead of sendfile)."""

    token = ""

    def read(self, *args):
        record(self.token, event="file-read")
        return super().read(*args)

    def readinto(self, buffer):
        record(self.token, event="file-read")
        return super().readinto(buffer)

    def close(self):
        if not self.closed:
            record(self.token, event="file-closed")
        super().close()


class RecordingBytesIO(io.BytesIO):
    token = ""

    def close(self):
        if not self.closed:
            record(self.token, event="file-closed")
        super().close()


class FilenoRaises:
    """A file-like object (not an io stream) whose fileno() fails with what io never raises."""

    token = ""

    def __init__(self, data: bytes):
        self._stream = io.BytesIO(data)
        self.read = self._stream.read

    def fileno(self):
        raise NotImplementedError("no descriptor here")

    def close(self):
        record(self.token, event="file-closed")


def h_proc_file(environ, start_response):
    """wsgi.file_wrapper over /proc/version: a regular file whose st_size (0) is not its length."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return environ["wsgi.file_wrapper"](open("/proc/version", "rb"))


def h_file(environ, start_response):
    """wsgi.file_wrapper over a real file (?kind=real, sendfile), a BytesIO (?kind=bytesio, read loop),
    a gzip file (?kind=gzip) or an object whose fileno() raises (?kind=fileno-raises), both read."""
    q = query(environ)
    token = q.get("t", "")
    size = int(q.get("n", "1000000"))
    kind = q.get("kind", "real")
    if kind == "real":
        path = os.path.join(os.environ[EVENTS_ENV], f"payload-{size}.bin")
        if not os.path.exists(path):
            tmp = f"{path}.{os.getpid()}.{time.monotonic_ns()}"
            with open(tmp, "wb") as f:
                f.write(pattern_bytes(size))
            os.replace(tmp, path)
        filelike = RecordingFile(path, "r")
    elif kind == "gzip":  # fileno() is the compressed file's; read() gives the pattern
        path = os.path.join(os.environ[EVENTS_ENV], f"payload-{size}.{os.getpid()}.{time.monotonic_ns()}.gz")
        with gzip.open(path, "wb") as f:
            f.write(pattern_bytes(size))
        filelike = gzip.open(path, "rb")
        os.unlink(path)
    elif kind == "fileno-raises":  # not an io stream: its fileno() is trusted, and raises
        filelike = FilenoRaises(pattern_bytes(size))
    else:
        filelike = RecordingBytesIO(pattern_bytes(size))
    filelike.token = token
    headers = [("Content-Type", "application/octet-stream")]
    if "declare" in q:  # a Content-Length that disagrees with the file
        headers.append(("Content-Length", q["declare"]))
    elif q.get("cl", "1") == "1":
        headers.append(("Content-Length", str(size)))
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](filelike, 65536)


def h_exc_before_headers(environ, start_response):
    """start_response, then an error before any body: a second start_response with exc_info wins."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("went wrong before the body")
    except ValueError:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain"),
                                                   ("Content-Length", "12")], sys.exc_info())
    return [b"custom error"]


def h_exc_after_headers(environ, start_response):
    """Error after the first body chunk: start_response(exc_info) must re-raise the original error."""
    token = query(environ).get("t", "")
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"first part;"
    try:
        raise ValueError("late failure")
    except ValueError:
        try:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
        except ValueError as again:
            record(token, event="reraised", message=str(again))
            raise
        record(token, event="not-reraised")
    yield b"never"


def h_error_after_empty_chunk(environ, start_response):
    """Headers go out with the first non-empty chunk, so an error after b"" can still become a 500."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b""
    raise RuntimeError("failed before any body byte")


BAD_CHUNKS = {"none": None, "str": "text", "empty-str": "", "int": 0}


def h_bad_chunk(environ, start_response):
    """A body piece that is not bytes (?kind=none|str|empty-str|int), the first piece or after
    b"ok;" (?after=1), from a generator, a list or write() (?how=gen|list|write|write-list: write()
    of b"ok;", then a returned list); ?cl=N sends Content-Length N (else chunked)."""
    q = query(environ)
    bad = BAD_CHUNKS[q["kind"]]
    before = [b"ok;"] if q.get("after") == "1" or q["how"] == "write-list" else []
    headers = [("Content-Type", "text/plain")] + ([("Content-Length", q["cl"])] if "cl" in q else [])
    write = start_response("200 OK", headers)
    if q["how"] == "list":
        return [*before, bad, b"never"]
    if q["how"].startswith("write"):
        for piece in before:
            write(piece)
        if q["how"] == "write-list":
            return [bad, b"never"]
        write(bad)
        return [b"never"]

    def pieces():
        yield from before
        yield bad
        yield b"never"

    return pieces()


def h_multi_headers(environ, start_response):
    """Repeated headers keep their order; a long header value goes out intact."""
    start_response("200 OK", [("Set-Cookie", "a=1; Path=/"), ("X-Long", "L" * 20000),
                              ("Set-Cookie", "b=2"), ("Content-Length", "2")])
    return [b"ok"]


def h_content_lengths(environ, start_response):
    """One Content-Length header per ?v=, then the body b"abcde"."""
    values = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))["v"]
    start_response("200 OK", [("Content-Type", "text/plain")] + [("Content-Length", v) for v in values])
    return [b"abcde"]


def h_bad_return(environ, start_response):
    """?kind=str|none|status|headers: application bugs the server must turn into a 500."""
    kind = query(environ)["kind"]
    if kind == "str":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["text, not bytes"]
    if kind == "none":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return None
    if kind == "status":
        start_response("OK", [("Content-Type", "text/plain")])
        return [b"bad status"]
    if kind == "status-type":
        start_response(200, [("Content-Type", "text/plain")])
        return [b"bad status type"]
    if kind == "header-type":
        start_response("200 OK", [("Content-Length", 2)])
        return [b"ok"]
    if kind == "no-start":
        return [b"start_response never called"]
    raise ValueError(kind)


class FailingClose:
    def __init__(self, token):
        self.token = token

    def __iter__(self):
        return iter([b"complete body"])

    def close(self):
        record(self.token, event="close-raising")
        raise RuntimeError("close() failed")


def h_close_raises(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return FailingClose(query(environ).get("t", ""))


def h_start_twice(environ, start_response):
    """A second start_response without exc_info is an application error -> 500."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [b"should not be sent"]


def h_write(environ, start_response):
    """The legacy write() callable, mixed with a returned iterable."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"alpha;")
    write(b"beta;")
    return [b"gamma"]


def h_write_then_work(environ, start_response):
    """write() a block, then go on working until the client has it (the test leaves `<t>.ack` in
    the side-channel directory), for at most 10 s: the block must not wait for the application to
    return (PEP 3333), also when the application runs on the event loop's thread."""
    ack = os.path.join(os.environ.get(EVENTS_ENV, ""), f"{query(environ).get('t', '')}.ack")
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written;")
    deadline = time.monotonic() + 10.0
    while not os.path.exists(ack):
        if time.monotonic() > deadline:
            return [b"never received"]
        time.sleep(0.01)
    return [b"received"]


class ClosingBody:
    """An iterable whose close() reports to the side channel; optionally fails or never ends."""

    def __init__(self, token: str, pieces: int, fail_at: int | None = None, delay: float = 0.0,
                 size: int = 16, failure: type = RuntimeError):
        self.token = token
        self.pieces = pieces
        self.fail_at = fail_at
        self.failure = failure
        self.delay = delay
        self.size = size
        self.produced = 0

    def __iter__(self):
        for i in range(self.pieces):
            if i == self.fail_at:
                raise self.failure(f"body failed at piece {i}")
            if self.delay:
                time.sleep(self.delay)
            self.produced += self.size
            yield b"%0*d" % (self.size, i) if self.size >= 8 else b"x" * self.size

    def close(self):
        record(self.token, event="closed", produced=self.produced)


class WritingInClose(ClosingBody):
    """close() calls the write() callable, and reports what that raised."""

    def __init__(self, token: str, pieces: int, write):
        super().__init__(token, pieces)
        self.write = write

    def close(self):
        try:
            self.write(b"late")
        except Exception as exc:  # noqa: BLE001 - the point is to observe it
            record(self.token, event="write-in-close", raised=type(exc).__name__)
        else:
            record(self.token, event="write-in-close", raised=None)


def h_close(environ, start_response):
    """?mode=ok|error|exit|stream|flood|write-in-close: close() must be called on success, failure (an
    exception or SystemExit while iterating), client disconnect, and when nothing more can be sent
    (HEAD, or ?cl= reached) although the iterable goes on."""
    q = query(environ)
    token = q.get("t", "")
    mode = q.get("mode", "ok")
    cl = [("Content-Length", q["cl"])] if "cl" in q else []  # ?cl=N: a length the pieces reach
    write = start_response("200 OK", [("Content-Type", "text/plain"), *cl])
    if mode == "ok":
        return ClosingBody(token, 3)
    if mode == "write-in-close":  # close() calls write(): too late, the response is complete
        return WritingInClose(token, 3, write=write)
    if mode == "error":
        return ClosingBody(token, 3, fail_at=1)
    if mode == "exit":  # SystemExit while iterating (sys.exit() in a generator)
        return ClosingBody(token, 3, fail_at=1, failure=SystemExit)
    if mode == "stream":  # effectively endless, slow enough that the client leaves first
        return ClosingBody(token, 10**9, delay=0.005, size=4096)
    if mode == "flood":  # endless and fast: a client that never reads must not make the server buffer it
        return ClosingBody(token, 10**9, size=65536)
    raise ValueError(mode)


def h_raise(environ, start_response):
    """Application exception before start_response: 500 and a traceback on the server's stderr."""
    raise RuntimeError(f"boom {query(environ).get('msg', '')}")


def h_raise_after_headers(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"partial;"
    raise RuntimeError(f"late boom {query(environ).get('msg', '')}")


def h_whole_then_raise(environ, start_response):
    """The whole Content-Length body goes out through write(), then the application raises."""
    write = start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    write(b"whole")
    raise RuntimeError(f"after the whole body {query(environ).get('msg', '')}")


class Markup(bytes):
    """A subclass of bytes, as template libraries return (markupsafe's Markup is one of str)."""


def h_bytes_subclass(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return (piece for piece in [Markup(b"hello, "), Markup(b"subclass")])


def h_system_exit(environ, start_response):
    """An application that calls sys.exit() (or raises another BaseException) while serving."""
    raise SystemExit(3)


def h_sleep(environ, start_response):
    """Sleep ?s= seconds (recording that it started for ?t=, and whether it was interrupted)."""
    seconds = float(query(environ).get("s", "1"))
    token = query(environ).get("t", "")
    record(token, event="sleeping")
    try:
        time.sleep(seconds)
    except BaseException as exc:
        record(token, event="interrupted", by=type(exc).__name__)
        raise
    return text(start_response, f"slept {seconds}")


def h_record(environ, start_response):
    """Record that this request reached the application (smuggling tests expect it never does)."""
    record(query(environ).get("t", ""), event="executed", method=environ["REQUEST_METHOD"],
           path=environ["PATH_INFO"])
    return text(start_response, "recorded")


def h_stdio(environ, start_response):
    """print() and raw writes to file descriptors 1 and 2, each line tagged with ?t= (--capture-output)."""
    token = query(environ).get("t", "")
    print(f"print-{token}")
    os.write(1, f"fd1-{token}\n".encode())
    os.write(2, f"fd2-{token}\n".encode())
    return text(start_response, f"wrote {token}")


WSGI_KEYS = ("wsgi.version", "wsgi.url_scheme", "wsgi.multithread", "wsgi.multiprocess",
             "wsgi.run_once", "wsgi.input_terminated")


def h_environ(environ, start_response):
    """Every str-valued environ entry, the wsgi.* flags and facts about the stream objects."""
    report = {key: value for key, value in environ.items() if isinstance(value, str)}
    for key in WSGI_KEYS:
        value = environ.get(key, "<missing>")
        report[key] = list(value) if isinstance(value, tuple) else value
    errors = environ.get("wsgi.errors")
    stream = environ.get("wsgi.input")
    report["_types"] = {key: type(value).__name__ for key, value in environ.items()}
    report["_input_methods"] = [m for m in ("read", "readline", "readlines", "__iter__")
                                if callable(getattr(stream, m, None))]
    report["_errors_methods"] = [m for m in ("write", "writelines", "flush")
                                 if callable(getattr(errors, m, None))]
    report["_file_wrapper_callable"] = callable(environ.get("wsgi.file_wrapper"))
    if errors is not None:
        errors.write("environ-report\n")
        errors.flush()
    return as_json(start_response, report)


def h_mirror(environ, start_response):
    """What the server made of a request, for the live backend-parity test (test_live_parity.py).

    Answers the environ's str entries (but REMOTE_PORT and SERVER_PORT, which differ between two
    servers) and the body as `?read=` read it: all (read()), lines (readlines()), bits (read(3) in a
    loop), none (left for the server to drain). `?frame=` picks the response's framing: length (a
    right Content-Length), stream (a generator: chunked), write (the write() callable), short / long
    (a Content-Length 5 bytes over / under the body). `?status=` and `?header=` (one raw value for
    X-Mirror) go to start_response as given, so the serializer's checks show too."""
    q = query(environ)
    stream = environ["wsgi.input"]
    mode = q.get("read", "all")
    if mode == "lines":
        pieces = stream.readlines()
    elif mode == "bits":
        pieces = list(iter(lambda: stream.read(3), b""))
    elif mode == "none":
        pieces = []
    else:
        pieces = [stream.read()]
    report = {key: value for key, value in environ.items()
              if isinstance(value, str) and key not in ("REMOTE_PORT", "SERVER_PORT")}
    report["_body"] = [piece.decode("latin-1") for piece in pieces]
    data = json.dumps(report, sort_keys=True).encode()
    headers = [("Content-Type", "application/json")]
    if "header" in q:
        headers.append(("X-Mirror", q["header"]))
    frame = q.get("frame", "length")
    length = {"length": len(data), "short": len(data) + 5, "long": len(data) - 5}.get(frame)
    if length is not None:
        headers.append(("Content-Length", str(length)))
    write = start_response(q.get("status", "200 OK"), headers)
    if frame == "write":
        write(data[:10])
        write(data[10:])
        return []
    if frame == "stream":
        return (data[i:i + 100] for i in range(0, len(data), 100))
    return [data]


MEDDLE_HEADERS = [("Content-Type", "application/json"), ("X-Count", "0")]  # one list, reused
_meddle_calls = [0]


def h_meddle(environ, start_response):
    """An application that changes what it is given and what it gives: it reports whether a change
    it made to an earlier environ shows in this one, then changes this one; its headers are one
    module-level list whose X-Count item it replaces in place (a new value every other call)."""
    seen = {"leaked": "meddled" in environ, "path": environ["PATH_INFO"],
            "host": environ.get("HTTP_HOST"), "count": _meddle_calls[0] // 2}
    environ["meddled"] = True
    environ["PATH_INFO"] = "/changed"
    environ.pop("HTTP_HOST", None)
    MEDDLE_HEADERS[1] = ("X-Count", str(seen["count"]))
    _meddle_calls[0] += 1
    body = json.dumps(seen, sort_keys=True).encode()
    start_response("200 OK", MEDDLE_HEADERS)
    return [body]


ROUTES = {
    "/meddle": h_meddle,
    "/mirror": h_mirror,
    "/hello": h_hello,
    "/echo": h_echo,
    "/called-echo": h_called_echo,
    "/input": h_input,
    "/hash": h_hash,
    "/called-hash": h_called_hash,
    "/read-or-400": h_read_or_400,
    "/respond-then-read": h_respond_then_read,
    "/respond-then-record": h_respond_then_record,
    "/read-after-response": h_read_after_response,
    "/read-twice": h_read_twice,
    "/download": h_download,
    "/ignore-body": h_ignore_body,
    "/answer-when-told": h_answer_when_told,
    "/read-record": h_read_record,
    "/chunks": h_chunks,
    "/wide-view": h_wide_view,
    "/empty-pieces": h_empty_pieces,
    "/cl-extra": h_cl_extra,
    "/cl-short": h_cl_short,
    "/status": h_status,
    "/head": h_head,
    "/header": h_header,
    "/server-date": h_server_date,
    "/file": h_file,
    "/proc-file": h_proc_file,
    "/exc-before-headers": h_exc_before_headers,
    "/exc-after-headers": h_exc_after_headers,
    "/start-twice": h_start_twice,
    "/multi-headers": h_multi_headers,
    "/content-lengths": h_content_lengths,
    "/bad-return": h_bad_return,
    "/bad-chunk": h_bad_chunk,
    "/close-raises": h_close_raises,
    "/error-after-empty-chunk": h_error_after_empty_chunk,
    "/write": h_write,
    "/write-then-work": h_write_then_work,
    "/close": h_close,
    "/bytes-subclass": h_bytes_subclass,
    "/whole-then-raise": h_whole_then_raise,
    "/raise": h_raise,
    "/raise-after-headers": h_raise_after_headers,
    "/sleep": h_sleep,
    "/system-exit": h_system_exit,
    "/record": h_record,
    "/environ": h_environ,
    "/stdio": h_stdio,
}


def app(environ, start_response):
    """Dispatch on PATH_INFO; /p/<anything> echoes the request line (h_path)."""
    path = environ["PATH_INFO"]
    handler = ROUTES.get(path)
    if handler is None:
        if path.startswith("/p/") or path == "/":
            handler = h_path
        elif path.startswith("/environ/"):  # decoded-path tests put arbitrary bytes after the prefix
            handler = h_environ
        else:
            return text(start_response, f"no route {path}", "404 Not Found")
    return handler(environ, start_response)


# ---------------------------------------------------------------------------------------------------
# entry points for the CLI tests

def application(environ, start_response):
    """Picked when the app spec names only the module (`tests.functional.apps`)."""
    return text(start_response, "module-level application")


def create_app(greeting: str = "hi", times: int = 1):
    """Factory spec: `tests.functional.apps:create_app("hey", 3)`."""
    body = " ".join([greeting] * times)

    def factory_app(environ, start_response):
        return text(start_response, body)

    return factory_app


def _validated_inner(environ, start_response):
    """Things validator checks on the server side: environ, input methods, headers, iteration, close."""
    path = environ["PATH_INFO"]
    stream = environ["wsgi.input"]
    if path == "/read":  # validator's InputWrapper insists on an explicit size
        body = stream.read(1 << 20)
        assert stream.read(1) == b"", "read(n) returned less than n before the end of the body"
    elif path == "/readline":
        body = b"".join(iter(lambda: stream.readline(), b""))
    elif path == "/readlines":
        body = b"".join(stream.readlines())
    elif path == "/iter":
        body = b"".join(stream)
    elif path == "/read-n":
        body = b"".join(iter(lambda: stream.read(3), b""))
    elif path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written;")
        return [b"returned"]
    elif path == "/file":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"bytes!"))
    elif path == "/violate":  # proves the validator is active: a "Status" header is an AssertionError
        start_response("200 OK", [("Content-Type", "text/plain"), ("Status", "200")])
        return [b"invalid"]
    elif path == "/errors":
        environ["wsgi.errors"].write("validated errors stream\n")
        environ["wsgi.errors"].writelines(["a\n", "b\n"])
        environ["wsgi.errors"].flush()
        body = b"errors ok"
    else:
        body = f"{environ['REQUEST_METHOD']} {path}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


validated_app = validator(_validated_inner)
