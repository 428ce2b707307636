"""Parser micro-benchmarks: request bytes to a complete environ-equivalent, ours against the usual parsers.

Theory of operation
-------------------
Each contender is a factory returning `parse(data)`, built once per connection the way a server holds
it, then called once per request:

* `fastwsgi-c` / `fastwsgi-python`: `RequestParser.reset()` + `parse()` -> a complete `Head` (method,
  target, percent-decoded path, query, version, framing facts and every CGI variable, i.e. all the
  request-dependent parts of the environ);
* `httptools` (llhttp): one `HttpRequestParser` per connection fed each request, callbacks collecting
  the URL and the raw header pairs (parsing only: no environ is built);
* `h11`: a new `Connection(SERVER)` per request (a server connection cannot take a second request
  before a response was sent), `receive_data` + `next_event()` until the `Request` event;
* `stdlib`: the request line read from a `BytesIO`, then `http.client.parse_headers` (what
  `http.server` / wsgiref do).

A request is one input or a cycle of inputs a keep-alive client sends in turn. "browser GET" repeats
one head, which the fastwsgi parsers recognise (a keep-alive client's unchanged field lines are not
decoded again, and a head repeated byte for byte is not parsed again); "next page" is a reader
following links through 64 pages, each head new, its target and Referer differing from the last;
"all values new" alternates two heads in which every value differs, the case nothing can be reused
in; "JSON POST, next body" is 64 uploads in turn, each with another Content-Length.

Every contender's result is checked (method, path, header count) for every input before it is timed,
so no number comes from an error path. The serializer benchmark builds a typical response head with both backends. The
linearity benchmark feeds a 64 KiB head (and a 32 KiB one) whole, in 1 KiB pieces and one byte at a
time into a growing bytearray, as the server does; a parser that rescans from the start would grow 4x
from 32 to 64 KiB at one byte per call, a linear one 2x. Through Python the 1-byte column is mostly
65,536 Python calls, so the same feeding is also measured at C level (`c_linearity`: a small C driver
around fw_parse_packed under callgrind, instruction counts), which shows the parser's own growth and
per-call cost. The chunked linearity benchmark decodes bodies of 10,000, 20,000 and 40,000 one-byte
chunks (`1\r\nx\r\n`, the densest framing), whole and in 64 KiB pieces each passed with the
undecoded tail of the one before (as wsgi.input does, server/body.py); a decoder that copies or rescans
the rest of its buffer per chunk would grow 4x per doubling instead of 2x.

Run it two ways:
* `python -m pytest benchmarks/test_parser_bench.py` (pytest-benchmark: statistics per contender);
* `python benchmarks/test_parser_bench.py [--quick] [--out FILE]`: one process measures everything with
  timeit (best of several repeats) and writes a markdown table with the ratios the targets ask for, by
  default to benchmarks/results/parser-<date>.md.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import io
import itertools
import platform
import re
import sys
import timeit
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

from fastwsgi.parser import Limits, c_available, get_backend  # noqa: E402

try:
    import pytest
except ImportError:  # standalone use does not need pytest
    pytest = None

# A typical browser navigation: 10 header fields, ~540 bytes.
BROWSER_GET = (
    b"GET /articles/2024/fast-wsgi-servers?utm_source=newsletter&page=2 HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/webp,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Referer: https://www.example.com/articles/\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: sessionid=8f2c1d9e7b6a5f4e3d; csrftoken=Qm9hVjJxWkR6bTNLc1ZyYw\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"Sec-Fetch-Dest: document\r\n"
    b"\r\n"
)


def browser_page(page: int) -> bytes:
    """BROWSER_GET after following links to page `page` (> 2): the target and the Referer (the page
    before) change, the other nine fields repeat."""
    return BROWSER_GET.replace(b"page=2 HTTP", b"page=%d HTTP" % page).replace(
        b"Referer: https://www.example.com/articles/\r\n",
        b"Referer: https://www.example.com/articles/2024/fast-wsgi-servers?utm_source=newsletter&page=%d\r\n"
        % (page - 1))


BROWSER_NEXT_PAGE = browser_page(3)
# A reader paging on: every head new (the cycle comes round after 64 pages).
BROWSER_NEXT_PAGES = tuple(browser_page(page) for page in range(3, 3 + 64))

# Ten fields of the same size as BROWSER_GET's, every value different (one field another).
BROWSER_GET_OTHER_VALUES = (
    b"GET /articles/2024/fast-wsgi-servers?utm_source=feed&page=7 HTTP/1.1\r\n"
    b"Host: blog.example.org\r\n"
    b"User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.7\r\n"
    b"Accept-Language: de-DE,de;q=0.8,en;q=0.3\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Referer: https://blog.example.org/\r\n"
    b"Connection: Keep-Alive\r\n"
    b"Cookie: sessionid=1a9b8c7d6e5f4a3b2c; csrftoken=ZXhhbXBsZS1vdGhlci10b2tlbg\r\n"
    b"Priority: u=0, i\r\n"
    b"Sec-Fetch-Dest: iframe\r\n"
    b"\r\n"
)

def json_post(body: bytes) -> bytes:
    return (
        b"POST /api/v1/orders HTTP/1.1\r\n"
        b"Host: api.example.com\r\n"
        b"User-Agent: python-requests/2.32.3\r\n"
        b"Accept: application/json\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl\r\n"
        b"\r\n" + body
    )


JSON_BODY = b'{"item": "book", "quantity": 2, "gift": false}'
JSON_POST = json_post(JSON_BODY)
# An API client's next order: another body, so another Content-Length.
JSON_POST_NEXT = json_post(b'{"item": "fountain pen", "quantity": 12, "gift": true}')
# An API client's next orders: every body of another length, so every head new (64, in turn).
JSON_POSTS_NEXT = tuple(json_post(b'{"item": "%s", "quantity": 2, "gift": false}' % (b"x" * size))
                        for size in range(1, 1 + 64))

# name: (the inputs a keep-alive client sends in turn, method, path, header count)
REQUESTS = {
    "browser GET": ((BROWSER_GET,), "GET", "/articles/2024/fast-wsgi-servers", 10),
    "browser GET, next page": (BROWSER_NEXT_PAGES, "GET", "/articles/2024/fast-wsgi-servers", 10),
    "browser GET, all values new": ((BROWSER_GET, BROWSER_GET_OTHER_VALUES), "GET",
                                    "/articles/2024/fast-wsgi-servers", 10),
    "JSON POST": ((JSON_POST,), "POST", "/api/v1/orders", 6),
    "JSON POST, next body": (JSON_POSTS_NEXT, "POST", "/api/v1/orders", 6),
}

RESPONSE_STATUS = "200 OK"
RESPONSE_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Content-Length", "5120"),
    ("Cache-Control", "private, max-age=0"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Vary", "Cookie, Accept-Encoding"),
    ("Set-Cookie", "csrftoken=Qm9hVjJxWkR6bTNLc1ZyYw; Path=/; SameSite=Lax"),
]
RESPONSE_DATE = "Sun, 22 Nov 2026 04:30:00 GMT"

BIG_HEAD_LIMITS = Limits(max_head_size=1 << 20, max_header_count=100_000)


# ---------------------------------------------------------------------------------------------
# Contenders: factory() -> parse(data) -> (method, path, header count), checked before timing
# ---------------------------------------------------------------------------------------------

_NO_BASE: dict = {}  # the server's per-listener base (SERVER_NAME, wsgi.*) would add one dict copy


class Unavailable(Exception):
    """The contender cannot run here (C extension not built, library missing)."""


def _fastwsgi(name: str):
    def factory():
        if name == "c" and not c_available():
            raise Unavailable("C extension not built")
        parser = get_backend(name).RequestParser(Limits())

        def parse(data):  # the complete environ: what the server hands the application
            parser.reset()
            head = parser.parse(data)
            return head, head.environ(_NO_BASE)

        def summary(result):
            head, environ = result
            return head.method, environ["PATH_INFO"], sum(
                1 for key in environ if key.startswith("HTTP_") or key.startswith("CONTENT_"))
        return parse, summary
    return factory


def _httptools():
    try:
        import httptools
    except ImportError:
        raise Unavailable("httptools not installed") from None

    class Collector:
        __slots__ = ("url", "headers")

        def __init__(self):
            self.url = b""
            self.headers = []

        def on_url(self, url):
            self.url += url

        def on_header(self, name, value):
            self.headers.append((name, value))

    collector = Collector()
    parser = httptools.HttpRequestParser(collector)  # one per connection, fed request after request

    def parse(data):
        collector.url = b""
        collector.headers = []
        parser.feed_data(data)
        return collector

    def summary(result):
        return parser.get_method().decode(), httptools.parse_url(result.url).path.decode(), len(result.headers)
    return parse, summary


def _h11():
    try:
        import h11
    except ImportError:
        raise Unavailable("h11 not installed") from None
    server_role, need_data, request_type = h11.SERVER, h11.NEED_DATA, h11.Request

    def parse(data):
        connection = h11.Connection(server_role)
        connection.receive_data(data)
        while True:
            event = connection.next_event()
            if type(event) is request_type:
                return event
            if event is need_data:
                raise AssertionError("h11 wants more data")

    def summary(event):
        return event.method.decode(), event.target.decode().split("?")[0], len(event.headers)
    return parse, summary


def _stdlib():
    parse_headers, bytes_io = http.client.parse_headers, io.BytesIO

    def parse(data):
        stream = bytes_io(data)
        method, target, version = stream.readline(65537).decode("latin-1").rstrip("\r\n").split(" ")
        return method, target, version, parse_headers(stream)

    def summary(result):
        return result[0], result[1].split("?")[0], len(result[3])
    return parse, summary


CONTENDERS = {
    "fastwsgi-c": _fastwsgi("c"),
    "fastwsgi-python": _fastwsgi("python"),
    "httptools": _httptools,
    "h11": _h11,
    "stdlib": _stdlib,
}


def ready_parser(contender: str, request: str):
    """The contender's parse function and the request's inputs, after checking it parses each input
    correctly (twice, so that a second sight of a head is checked too)."""
    parse, summary = CONTENDERS[contender]()
    inputs, method, path, header_count = REQUESTS[request]
    for data in inputs + inputs:
        got = summary(parse(data))
        assert got == (method, path, header_count), f"{contender} parsed {request} as {got}"
    return parse, inputs


def calls(parse, inputs):
    """A function of no arguments parsing the next input, as the timers want it."""
    if len(inputs) == 1:
        data = inputs[0]
        return lambda: parse(data)
    next_input = itertools.cycle(inputs).__next__
    return lambda: parse(next_input())


def serializer(backend: str):
    if backend == "c" and not c_available():
        raise Unavailable("C extension not built")
    serialize = get_backend(backend).serialize_head

    def run():
        return serialize(RESPONSE_STATUS, RESPONSE_HEADERS, date=RESPONSE_DATE, server="fastwsgi",
                         connection="keep-alive")
    head = run()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n"), head
    assert head.count(b"\r\n") == len(RESPONSE_HEADERS) + 5, head  # status, Server, Date, Connection, end
    return run


# ---------------------------------------------------------------------------------------------
# Linearity: one head, whole vs in pieces, through RequestParser.parse with a growing bytearray
# ---------------------------------------------------------------------------------------------

def big_head(size: int) -> bytes:
    """A valid request head of exactly `size` bytes (many ~70-byte fields)."""
    start = b"GET /big HTTP/1.1\r\nHost: example.com\r\n"
    fields = []
    length = len(start) + 2
    index = 0
    while length + 70 <= size:
        line = b"X-Filler-%05d: " % index + b"v" * 51 + b"\r\n"
        fields.append(line)
        length += len(line)
        index += 1
    pad = size - length - len(b"X-Pad: \r\n")
    head = start + b"".join(fields) + b"X-Pad: " + b"p" * pad + b"\r\n\r\n"
    assert len(head) == size, len(head)
    return head


def feed(parser, data: bytes, piece: int):
    """Feed `data` in `piece`-byte steps (0: whole) the way the server does; returns the Head."""
    parser.reset()
    if piece == 0:
        return parser.parse(data)
    buf = bytearray()
    head = None
    for offset in range(0, len(data), piece):
        buf += data[offset:offset + piece]
        head = parser.parse(buf)
    return head


# The same feeding at C level, without Python's per-call cost: a tiny driver around fw_parse_packed,
# its instructions counted by callgrind (deterministic, unlike wall time on a shared machine).
C_DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "fastwsgi.h"
#include "fw_binding.h"
long long feed(const char *data, size_t len, size_t piece, const fw_limits *lim, fw_request *req,
               fw_header *headers, char *out, size_t cap);
long long feed(const char *data, size_t len, size_t piece, const fw_limits *lim, fw_request *req,
               fw_header *headers, char *out, size_t cap)
{
    size_t n = piece == 0 ? len : piece;
    for (int fresh = 1;; fresh = 0) {
        long long r = fw_parse_packed(data, n < len ? n : len, lim, req, headers, out, cap, fresh);
        if (r != FW_INCOMPLETE || n >= len)
            return r;
        n += piece;
    }
}
int main(int argc, char **argv)
{
    static char data[1 << 20];
    FILE *f = argc == 3 ? fopen(argv[1], "rb") : NULL;
    size_t len = f != NULL ? fread(data, 1, sizeof data, f) : 0;
    fw_limits lim = {8190, 8190, 100000, 1u << 20, 4096, 0};
    fw_request req;
    fw_header *headers = malloc(100000 * sizeof *headers);
    size_t cap = 8 * len + 128;
    char *out = malloc(cap);
    long long r = headers && out ? feed(data, len, (size_t)atol(argv[2]), &lim, &req, headers, out, cap) : -1;
    printf("%u\n", r >= 0 ? req.line_start : 0u);
    return r < 0;
}
"""


def c_linearity(sizes=(32768, 65536), pieces=(0, 1024, 1)) -> dict | str:
    """Instructions fw_parse_packed executes per (head size, piece), or why it could not run."""
    import shutil
    import subprocess
    import tempfile
    if not (shutil.which("gcc") and shutil.which("valgrind")):
        return "needs gcc and valgrind"
    csrc = REPO_DIR / "csrc"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "driver.c").write_text(C_DRIVER)
        subprocess.run(["gcc", "-O3", "-std=c11", f"-I{csrc}", "-o", str(tmp / "driver"), str(tmp / "driver.c")]
                       + [str(csrc / name) for name in ("parser.c", "binding.c", "errors.c")], check=True)
        counts = {}
        for size in sizes:
            (tmp / "head").write_bytes(big_head(size))
            for piece in pieces:
                run = subprocess.run(
                    ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=feed",
                     f"--callgrind-out-file={tmp / 'out'}", str(tmp / "driver"), str(tmp / "head"), str(piece)],
                    capture_output=True, text=True, check=True)
                assert run.stdout.strip() == str(size), (size, piece, run.stdout)
                counts[(size, piece)] = int(re.search(r"Collected : (\d+)", run.stderr)[1])
        return counts


CHUNK_COUNTS = (10_000, 20_000, 40_000)
BODY_PIECE = 65536  # what wsgi.input reads from the socket at a time (server/body.py READ_SIZE)


def one_byte_chunks(count: int) -> bytes:
    return b"1\r\nx\r\n" * count + b"0\r\n\r\n"


def decode_body(decoder_class, body: bytes, piece: int) -> int:
    """Decode `body` whole (piece 0) or in `piece`-byte reads, each appended to the undecoded tail of
    the last (as RequestBody does with conn.inbuf); returns the decoded length."""
    decoder = decoder_class()
    if piece == 0:
        data, consumed = decoder.decode(body)
        assert decoder.done and consumed == len(body)
        return len(data)
    tail, total = b"", 0
    for offset in range(0, len(body), piece):
        buf = tail + body[offset:offset + piece]
        data, consumed = decoder.decode(buf)
        total += len(data)
        tail = buf[consumed:]
    assert decoder.done and not tail
    return total


def chunked_decoder_class(backend: str):
    if backend == "c" and not c_available():
        raise Unavailable("C extension not built")
    return get_backend(backend).ChunkedDecoder


def linearity_parser(backend: str):
    if backend == "c" and not c_available():
        raise Unavailable("C extension not built")
    return get_backend(backend).RequestParser(BIG_HEAD_LIMITS)


# ---------------------------------------------------------------------------------------------
# pytest-benchmark entry points
# ---------------------------------------------------------------------------------------------

def _available(make):
    try:
        return make()
    except Unavailable as exc:
        pytest.skip(str(exc))


if pytest is not None:
    @pytest.mark.parametrize("contender", list(CONTENDERS))
    @pytest.mark.parametrize("request_name", list(REQUESTS))
    def test_parse(benchmark, contender, request_name):
        parse, inputs = _available(lambda: ready_parser(contender, request_name))
        benchmark.group = f"parse {request_name}"
        benchmark(calls(parse, inputs))

    @pytest.mark.parametrize("backend", ["c", "python"])
    def test_serialize_head(benchmark, backend):
        run = _available(lambda: serializer(backend))
        benchmark.group = "serialize response head"
        benchmark(run)

    @pytest.mark.parametrize("backend", ["c", "python"])
    @pytest.mark.parametrize("piece", [0, 1024, 1], ids=["whole", "1KiB", "1B"])
    def test_linearity_64k(benchmark, backend, piece):
        parser = _available(lambda: linearity_parser(backend))
        data = big_head(65536)
        head = feed(parser, data, piece)
        assert head is not None and head.consumed == len(data)
        benchmark.group = f"64 KiB head, {backend}"
        benchmark.pedantic(feed, args=(parser, data, piece), rounds=3 if piece == 1 else 20)

    @pytest.mark.parametrize("backend", ["c", "python"])
    @pytest.mark.parametrize("piece", [0, BODY_PIECE], ids=["whole", "64KiB"])
    @pytest.mark.parametrize("count", CHUNK_COUNTS)
    def test_chunked_linearity(benchmark, backend, piece, count):
        decoder_class = _available(lambda: chunked_decoder_class(backend))
        body = one_byte_chunks(count)
        assert decode_body(decoder_class, body, piece) == count
        benchmark.group = f"{count} one-byte chunks, {backend}"
        benchmark.pedantic(decode_body, args=(decoder_class, body, piece), rounds=10)


# ---------------------------------------------------------------------------------------------
# Standalone: everything in one process, one markdown table
# ---------------------------------------------------------------------------------------------

def best_seconds(function, repeat: int, min_time: float) -> float:
    """Best per-call time over `repeat` timeit runs of an autoranged loop."""
    timer = timeit.Timer(function)
    number = 1
    while True:
        if timer.timeit(number) >= min_time:
            break
        number *= 2
    return min(timer.repeat(repeat=repeat, number=number)) / number


def measure_all(quick: bool) -> dict:
    repeat, min_time = (3, 0.05) if quick else (7, 0.2)
    parse_times: dict[str, dict[str, float | str]] = {}
    for contender in CONTENDERS:
        row = {}
        for request in REQUESTS:
            try:
                parse, inputs = ready_parser(contender, request)
            except Unavailable as exc:
                row[request] = str(exc)
                continue
            row[request] = best_seconds(calls(parse, inputs), repeat, min_time)
        parse_times[contender] = row

    def head_rows(parser) -> dict:
        rows = {}
        for size in (32768, 65536):
            data = big_head(size)
            for piece in (0, 1024, 1):
                head = feed(parser, data, piece)
                assert head is not None and head.consumed == size, (parser, size, piece)
                rows[(size, piece)] = best_seconds(lambda: feed(parser, data, piece),
                                                   2 if piece == 1 else repeat, 0.0 if piece == 1 else min_time)
        return rows

    def chunked_rows(decoder_class) -> dict:
        rows = {}
        for count in CHUNK_COUNTS:
            body = one_byte_chunks(count)
            for piece in (0, BODY_PIECE):
                assert decode_body(decoder_class, body, piece) == count, (decoder_class, count, piece)
                rows[(count, piece)] = best_seconds(lambda: decode_body(decoder_class, body, piece),
                                                    repeat, min_time)
        return rows

    return {"parse": parse_times,
            "serialize": per_backend(serializer, lambda run: best_seconds(run, repeat, min_time)),
            "linearity": per_backend(linearity_parser, head_rows), "c_linearity": c_linearity(),
            "chunked": per_backend(chunked_decoder_class, chunked_rows)}


def per_backend(make, measure) -> dict:
    """{backend: measure(make(backend))} for both backends, or why `make` could not (Unavailable)."""
    results = {}
    for backend in ("c", "python"):
        try:
            made = make(backend)
        except Unavailable as exc:
            results[backend] = str(exc)
            continue
        results[backend] = measure(made)
    return results


def _us(value) -> str:
    return f"{value * 1e6:.2f}" if isinstance(value, float) else str(value)


def _ratio(a, b) -> str:
    return f"{a / b:.2f}x" if isinstance(a, float) and isinstance(b, float) else "-"


def markdown(results: dict) -> str:
    parse = results["parse"]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# Parser micro-benchmarks, {now}", "",
             f"`python benchmarks/test_parser_bench.py`; Python {platform.python_version()}, "
             f"{_cpu_model()}, httptools {_version('httptools')}, h11 {_version('h11')}. "
             "Best of several timeit repeats, µs per request, all measured in this one run. "
             "Note: the machine may be shared; ratios are more stable than absolute times.", "",
             "## Request bytes to parsed request (µs)", "",
             "| contender | " + " | ".join(REQUESTS) + " | produces |", "|---|" + "---:|" * len(REQUESTS) + "---|"]
    produces = {"fastwsgi-c": "Head (framing) + its complete CGI environ (head.environ)",
                "fastwsgi-python": "Head (framing) + its complete CGI environ (head.environ)",
                "httptools": "callbacks: url + raw header pairs", "h11": "Request event",
                "stdlib": "request line split + HTTPMessage"}
    for contender, row in parse.items():
        lines.append(f"| {contender} | " + " | ".join(_us(row[r]) for r in REQUESTS)
                     + f" | {produces[contender]} |")
    lines += ["", "## Ratios (target in brackets)", "", "| ratio | " + " | ".join(REQUESTS) + " |",
              "|---|" + "---:|" * len(REQUESTS)]
    for label, ours, theirs in (("fastwsgi-c / httptools [<= 0.5x]", "fastwsgi-c", "httptools"),
                                ("fastwsgi-python / h11 [<= 0.25x]", "fastwsgi-python", "h11"),
                                ("fastwsgi-python / stdlib [<= 0.5x]", "fastwsgi-python", "stdlib"),
                                ("fastwsgi-c / fastwsgi-python", "fastwsgi-c", "fastwsgi-python")):
        lines.append(f"| {label} | " + " | ".join(_ratio(parse[ours][r], parse[theirs][r]) for r in REQUESTS)
                     + " |")
    serialize = results["serialize"]
    lines += ["", "## Response head serializer (µs; 7 application headers + Server, Date, Connection)", "",
              "| backend | µs |", "|---|---:|",
              f"| c | {_us(serialize['c'])} |", f"| python | {_us(serialize['python'])} |",
              f"| c / python | {_ratio(serialize['c'], serialize['python'])} |", ""]
    lines += ["## Linearity: one head fed whole, in 1 KiB pieces, one byte per call (ms)", "",
              "Each piece is appended to a bytearray and the whole buffer is passed to "
              "`RequestParser.parse` (as the server does). Growth 32 KiB -> 64 KiB is ~2x when parsing is "
              "linear, ~4x when quadratic. The 1-byte column is dominated by the per-call cost "
              "(65,536 Python calls), not by scanning.", "",
              "| backend | head | whole | 1 KiB pieces | 1-byte pieces | 1 KiB / whole | 1 B / whole |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for backend, rows in results["linearity"].items():
        if isinstance(rows, str):
            lines.append(f"| {backend} | {rows} | | | | | |")
            continue
        for size in (32768, 65536):
            whole, kib, byte = rows[(size, 0)], rows[(size, 1024)], rows[(size, 1)]
            lines.append(f"| {backend} | {size // 1024} KiB | {whole * 1e3:.3f} | {kib * 1e3:.3f} | "
                         f"{byte * 1e3:.1f} | {kib / whole:.1f}x | {byte / whole:.0f}x |")
    lines += ["", "| backend | growth 32 -> 64 KiB: whole | 1 KiB pieces | 1-byte pieces | linear? |",
              "|---|---:|---:|---:|---|"]
    for backend, rows in results["linearity"].items():
        if isinstance(rows, str):
            continue
        growth = [rows[(65536, piece)] / rows[(32768, piece)] for piece in (0, 1024, 1)]
        verdict = "yes" if max(growth) < 3.0 else "NO (superlinear)"
        lines.append(f"| {backend} | " + " | ".join(f"{g:.2f}x" for g in growth) + f" | {verdict} |")
    counts = results.get("c_linearity")
    lines += ["", "## Linearity at C level: instructions of fw_parse_packed (callgrind)", "",
              "The same heads and pieces fed to `fw_parse_packed` by a small C driver (C_DRIVER above), so "
              "no Python call is counted: what is left per call is the C entry cost.", ""]
    if isinstance(counts, dict):
        lines += ["| head | whole | 1 KiB pieces | 1-byte pieces | 1 KiB / whole | 1 B / whole |"
                  " per byte (whole) | per call (1 B, beyond whole) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for size in (32768, 65536):
            whole, kib, byte = counts[(size, 0)], counts[(size, 1024)], counts[(size, 1)]
            lines.append(f"| {size // 1024} KiB | {whole:,} | {kib:,} | {byte:,} | {kib / whole:.2f}x | "
                         f"{byte / whole:.2f}x | {whole / size:.1f} | {(byte - whole) / size:.1f} |")
        growth = [counts[(65536, piece)] / counts[(32768, piece)] for piece in (0, 1024, 1)]
        lines += ["", "growth 32 -> 64 KiB: " + ", ".join(
            f"{label} {g:.2f}x" for label, g in zip(("whole", "1 KiB pieces", "1-byte pieces"), growth))]
    else:
        lines.append(f"not measured: {counts}")
    lines += ["", "## Linearity of the chunked decoder: one-byte chunks, whole and in 64 KiB reads (ms)", "",
              "`ChunkedDecoder.decode` over `1\\r\\nx\\r\\n` x N + `0\\r\\n\\r\\n`, whole, and in 64 KiB "
              "reads each appended to the undecoded tail of the one before (as wsgi.input does). Growth per "
              "doubling of N is ~2x when decoding is linear, ~4x when quadratic.", "",
              "| backend | read | " + " | ".join(f"{n:,} chunks" for n in CHUNK_COUNTS)
              + " | ns per chunk (largest) | growth per doubling | linear? |",
              "|---|---|" + "---:|" * len(CHUNK_COUNTS) + "---:|---:|---|"]
    for backend, rows in results["chunked"].items():
        if isinstance(rows, str):
            lines.append(f"| {backend} | {rows} |" + " |" * (len(CHUNK_COUNTS) + 3))
            continue
        for piece, label in ((0, "whole"), (BODY_PIECE, "64 KiB")):
            times = [rows[(n, piece)] for n in CHUNK_COUNTS]
            growth = [b / a for a, b in zip(times, times[1:])]
            verdict = "yes" if max(growth) < 3.0 else "NO (superlinear)"
            lines.append(f"| {backend} | {label} | " + " | ".join(f"{t * 1e3:.3f}" for t in times)
                         + f" | {times[-1] / CHUNK_COUNTS[-1] * 1e9:.0f} | "
                         + ", ".join(f"{g:.2f}x" for g in growth) + f" | {verdict} |")
    lines.append("")
    return "\n".join(lines)


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except ImportError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Parser micro-benchmarks (markdown table).")
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repeats")
    parser.add_argument("--out", type=Path, help="markdown file (default benchmarks/results/parser-<date>.md)")
    args = parser.parse_args(argv)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    out = args.out or REPO_DIR / "benchmarks" / "results" / f"parser-{date}.md"
    text = markdown(measure_all(args.quick))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
