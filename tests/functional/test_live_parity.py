"""Both parser backends, both concurrency models, one byte stream: the same bytes back.

Theory of operation: the conformance corpus and the parity test (tests/conformance) hold the two
parsers to identical results call by call; this holds the four servers built on them (C and Python
parser, threads 0 and 4) to identical *responses*, through everything between the parser and the
socket: environ construction and the kept-head path, wsgi.input over Content-Length and chunked
bodies, 100-continue, draining unread bodies, pipelining, the rejection of a request after valid
ones, response framing and the serializer's checks. A seeded generator writes request streams from
valid parts, near-misses of every rule the parser enforces and random byte mutations; each stream
is sent whole to each server, the client shuts its side down and reads to EOF; the responses must
be equal byte for byte once the Date values are masked, each must be empty or start with a status
line, and no server may log an internal error. A third of the streams arrive in two or three pieces
(the server's reads must not change its answers), and every stream also goes to four servers with
the parser's leniencies on (LENIENT), so their code paths are held to the same rule; four more
serve `--protocol uwsgi` and get uwsgi packets (nginx's uwsgi_params, valid or with one flaw), and four
serve `--proxy-protocol` and get the strict streams behind a PROXY header (v1 or v2, one in six flawed,
split across pieces like the rest), and four terminate TLS and get the strict streams encrypted, the
client's close_notify right behind them (tlscerts.stream_over_tls). The application is
apps.h_mirror: it answers the environ and the body it read, with the framing the request's query
asks for.

FASTWSGI_LIVE_PARITY_CASES=N runs N streams per batch instead of the default (for a long hunt);
FASTWSGI_LIVE_PARITY_SEED changes the seed. A failure prints the stream as a bytes literal.
"""

from __future__ import annotations

import os
import random
import re
import socket
import struct
import time

import pytest

from tests.functional.conftest import FULL_MATRIX, check_alive, use_server, matrix_id
from tests.functional.serverproc import DEFAULT_APP
from tests.functional.test_proxy_protocol import V2_SIGNATURE, v1, v2, v2_local
from tests.functional.tlscerts import client_context, stream_over_tls, tls_args

CASES = int(os.environ.get("FASTWSGI_LIVE_PARITY_CASES", "60"))
SEED = int(os.environ.get("FASTWSGI_LIVE_PARITY_SEED", "20261124"))
BATCHES = 6
PAUSE = 0.002  # seconds between the pieces of a stream sent in pieces
DATE = re.compile(rb"\r\nDate: [^\r\n]*")

# -- the generator ---------------------------------------------------------------------------------

# Each list holds valid choices; its FLAWED_ twin near-misses of a rule (one flaw per flawed request)
METHODS = ["GET"] * 4 + ["POST"] * 4 + ["HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "M-SEARCH"]
FLAWED_METHODS = ["get", "G@T", "CONNECT", "", "GE T", "X" * 30]
VERSIONS = ["HTTP/1.1"] * 4 + ["HTTP/1.0"]
FLAWED_VERSIONS = ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "http/1.1", "HTTP/11", "HTTP/1.1 ", "HTTP/1", ""]
PATHS = ["/mirror"] * 6 + ["/mirr%6Fr", "//mirror", "http://example.com/mirror",
                           "HTTP://Example.com:80/mirror", "/p/caf%C3%A9", "/p/a%2Fb%00c", "/p/%ZZ",
                           "/mirror/"]
FLAWED_PATHS = ["*", "/p/caf\xc3\xa9", "/p/\x7f", "/p/a b", "mirror", "/p/" + "x" * 9000, "/p/#frag", "/p/\x00"]
READS = ["all", "all", "lines", "bits", "none"]
FRAMES = ["length", "length", "stream", "write", "short", "long"]
STATUSES = [None] * 12 + ["204 No Content", "304 Not Modified", "404 Nope", "100 Continue",
                          "200 OK\r\nX: y", "99 Low", "200", "abc"]
HEADER_VALUES = [None] * 12 + ["plain", "caf%C3%A9", "a%0D%0AX-Injected: 1", "a%0Ab", "a%00b",
                               " padded ", "x" * 200]
FIELDS = [
    b"Accept: */*", b"User-Agent: parity/1.0", b"Accept-Encoding: gzip, br", b"Cookie: a=1; b=2",
    b"X-Dup: one", b"X-Dup: two", b"X_Underscore: dropped", b"Content-Type: text/plain",
    b"Connection: close", b"Connection: keep-alive", b"Connection: Keep-Alive, Upgrade",
    b"Upgrade: websocket", b"Expect: 100-continue", b"Expect: 100-Continue",
    b"X-Forwarded-For: 10.0.0.1", b"X-Forwarded-Proto: https", b"Forwarded: for=1.2.3.4",
    b"X-Empty:", b"X-Obs: caf\xe9", b"X-Tab: a\tb", b"Referer: http://r/", b"X-Trailing: v \t",
]
FLAWED_FIELDS = [
    b"Bad Name: x", b"X-Space : x", b" X-Leading-Space: x", b"X-Nul: a\x00b", b"X-CR: a\rb",
    b"NoColon", b": no-name", b"X-Fold: a\r\n  folded", b"X-Long: " + b"v" * 9000,
    b"Host: second.example", b"Expect: something-else",
]
HOSTS = [b"Host: example.com"] * 6 + [b"Host: example.com:8080", b"Host: [::1]:80"]
FLAWED_HOSTS = [b"Host:", b"Host: a b", b"Host: a/b", b"Host: x\r\nHost: y", None]
FLAWS = ("method", "version", "path", "field", "host", "framing", "eol", "bare", "many")


def _query(rng: random.Random) -> str:
    parts = [f"read={rng.choice(READS)}", f"frame={rng.choice(FRAMES)}"]
    status = rng.choice(STATUSES)
    if status is not None:
        parts.append("status=" + status.replace(" ", "+").replace("\r", "%0D").replace("\n", "%0A"))
    header = rng.choice(HEADER_VALUES)
    if header is not None:
        parts.append("header=" + header.replace(" ", "+"))
    rng.shuffle(parts)
    return "?" + "&".join(parts) if rng.random() < 0.9 else ""


def _chunked(rng: random.Random, body: bytes, flawed: bool) -> bytes:
    """`body` in chunks with extensions and trailers; with one broken chunk line if `flawed`."""
    out = []
    position = 0
    while position < len(body):
        size = rng.randint(1, max(1, len(body) - position))
        piece = body[position:position + size]
        position += size
        line = b"%x" % len(piece) + (b";ext=1" if rng.random() < 0.2 else b"")
        out.append([line, piece, b"\r\n"])
    trailer = b"X-Trailer: t\r\n" if rng.random() < 0.2 else b""
    ending = [b"0\r\n" + trailer, b"\r\n"]
    if flawed and out:
        chunk = rng.choice(out)
        chunk[rng.randrange(3)] = rng.choice([
            chunk[0].upper(), b"0x" + chunk[0], b" " + chunk[0], b"%x" % (len(chunk[1]) + 1),
            b"-1", b"fffffffffffffffffff", b"\n", b"", chunk[1] + b"!",
        ])
    elif flawed:
        ending = rng.choice([[b"0\r\nBad Trailer: t\r\n", b"\r\n"], [b"0\r\n", b""], [b"0;\r\n", b"\r\n"]])
    return b"".join(b"".join((line, b"\r\n", piece, end)) for line, piece, end in out) + b"".join(ending)


def _framing(rng: random.Random, body: bytes, flawed: bool, minor: bool) -> tuple[list[bytes], bytes]:
    """-> (framing fields, body bytes as sent); chunked only for HTTP/1.1 unless `flawed`."""
    length = str(len(body)).encode()
    if not flawed:
        roll = rng.random()
        if not body and roll < 0.5:
            return [], b""
        if roll < 0.75 or not minor:
            return [b"Content-Length: " + length], body
        return [b"Transfer-Encoding: chunked"], _chunked(rng, body, False)
    return rng.choice([
        ([b"Transfer-Encoding: chunked"], _chunked(rng, body, True)),
        ([b"Content-Length: " + length, b"Content-Length: " + length], body),
        ([b"Content-Length: " + length + b", " + length], body),
        ([b"Content-Length: " + str(len(body) + 1).encode()], body),
        ([b"Content-Length: +" + length], body),
        ([b"Content-Length: 0x10"], body),
        ([b"Content-Length: 99999999999999999999999"], body),
        ([b"Content-Length: " + length, b"Transfer-Encoding: chunked"], _chunked(rng, body, False)),
        ([b"Transfer-Encoding: gzip, chunked"], _chunked(rng, body, False)),
        ([b"Transfer-Encoding: chunked, gzip"], _chunked(rng, body, False)),
        ([b"Transfer-Encoding: gzip"], body),
        ([b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"], _chunked(rng, body, False)),
        ([b"Transfer-Encoding:  chunked "], _chunked(rng, body, False)),
        ([b"Transfer-Encoding: Chunked"], _chunked(rng, body, False)),
        ([b"Transfer-Encoding: xchunked"], _chunked(rng, body, False)),
    ])


def _request(rng: random.Random) -> bytes:
    """One request: valid, or (one time in three) with one flaw."""
    flaw = rng.choice(FLAWS) if rng.random() < 0.33 else None
    pick = lambda valid, flawed, name: rng.choice(flawed if flaw == name else valid)  # noqa: E731
    version = pick(VERSIONS, FLAWED_VERSIONS, "version")
    target = pick(PATHS, FLAWED_PATHS, "path")
    if target.startswith(("/mirror", "http", "HTTP", "//mirror")):
        target += _query(rng)
    method = pick(METHODS, FLAWED_METHODS, "method")
    if method == "OPTIONS" and rng.random() < 0.3:
        target = "*"
    line = f"{method} {target} {version}".encode("latin-1")
    fields = rng.sample(FIELDS, rng.choice([0, 1, 2, 3, 5]))
    host = pick(HOSTS, FLAWED_HOSTS, "host")
    if host is not None:
        fields.append(host)
    if flaw == "field":
        fields.append(rng.choice(FLAWED_FIELDS))
    body = bytes(rng.choice(b"abc\n\r\x00\xff") for _ in range(rng.choice([0, 0, 1, 7, 40, 300])))
    framing, sent_body = _framing(rng, body, flaw == "framing", version == "HTTP/1.1")
    fields += framing
    rng.shuffle(fields)
    if flaw == "many":
        fields += [b"X-Many-%d: m" % i for i in range(120)]
    eol = b"\n" if flaw == "eol" else b"\r\n"
    head = eol.join([line, *fields]) + eol + eol
    if flaw == "bare":  # one bare LF or CR somewhere in the head
        at = rng.randrange(len(head))
        head = head[:at] + rng.choice([b"\n", b"\r"]) + head[at:]
    return head + sent_body


def _mutate(rng: random.Random, data: bytes) -> bytes:
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(data) + 1)
        kind = rng.randrange(3)
        byte = bytes([rng.choice(b"\r\n\x00 :\t a0\x80\xff;")])
        if kind == 0:
            data = data[:at] + byte + data[at:]
        elif kind == 1:
            data = data[:at] + data[at + 1:]
        else:
            data = data[:at] + byte + data[at + 1:]
    return data


def stream(rng: random.Random) -> bytes:
    """One connection's worth of bytes: 1-4 requests, sometimes one repeated, sometimes mutated."""
    count = rng.choice([1, 1, 1, 2, 2, 3, 4])
    requests = []
    while len(requests) < count:
        request = _request(rng)
        requests += [request] * (rng.choice([1, 1, 2, 3]) if len(requests) + 1 < count else 1)
    data = b"".join(requests[:count])
    if rng.random() < 0.1:
        data = _mutate(rng, data)
    if rng.random() < 0.05:  # cut short: the server sees EOF mid-request
        data = data[:rng.randrange(1, len(data) + 1)]
    return data


UWSGI_FLAWS = ("datasize", "pair", "modifier", "content_length", "truncated", "duplicate", "missing",
               "value", "big")


def _pair(key: bytes, value: bytes) -> bytes:
    return struct.pack("<H", len(key)) + key + struct.pack("<H", len(value)) + value


def uwsgi_stream(rng: random.Random) -> bytes:
    """One uwsgi packet as nginx's uwsgi_pass sends it, then its body: valid, or (one time in three)
    with one flaw; sometimes mutated or cut short like an HTTP stream."""
    flaw = rng.choice(UWSGI_FLAWS) if rng.random() < 0.33 else None
    body = bytes(rng.choice(b"abc\n\x00\xff") for _ in range(rng.choice([0, 0, 3, 40, 300])))
    query = _query(rng)[1:]
    path = rng.choice(["/mirror", "/mirror", "/mirror", "/p/caf\xc3\xa9", "/mirror/", "/p/a b"])
    variables = [
        (b"QUERY_STRING", query.encode()), (b"REQUEST_METHOD", rng.choice([b"GET", b"POST", b"HEAD", b"PUT"])),
        (b"CONTENT_TYPE", rng.choice([b"", b"text/plain"])), (b"CONTENT_LENGTH", str(len(body)).encode() if body else b""),
        (b"REQUEST_URI", (path + ("?" + query if query else "")).encode("latin-1")),
        (b"PATH_INFO", path.encode("latin-1")), (b"DOCUMENT_ROOT", b"/srv/www"),
        (b"SERVER_PROTOCOL", rng.choice([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0"])),
        (b"REQUEST_SCHEME", b"http"), (b"REMOTE_ADDR", b"203.0.113.7"), (b"REMOTE_PORT", b"51234"),
        (b"SERVER_PORT", b"80"), (b"SERVER_NAME", b"example.org"), (b"HTTP_HOST", b"example.org"),
    ]
    variables += rng.sample([(b"HTTPS", b"on"), (b"UWSGI_SCHEME", b"https"), (b"SCRIPT_NAME", b"/app"),
                             (b"HTTP_USER_AGENT", b"parity/1.0"), (b"HTTP_X_FORWARDED_FOR", b"10.0.0.1"),
                             (b"HTTP_EXPECT", b"100-continue"), (b"HTTP_X_OBS", b"caf\xe9"),
                             (b"HTTP_COOKIE", b"a=1; b=2")], rng.choice([0, 1, 3]))
    rng.shuffle(variables)
    modifier1 = 0
    if flaw == "modifier":
        modifier1 = rng.choice([1, 5, 255])
    elif flaw == "content_length":
        variables.append((b"CONTENT_LENGTH", rng.choice([b"abc", b"-1", b"99999999999999999999", b"+3"])))
    elif flaw == "duplicate":
        variables.append(rng.choice(variables))
    elif flaw == "missing":
        variables = [pair for pair in variables if pair[0] != rng.choice([b"REQUEST_METHOD", b"PATH_INFO",
                                                                          b"SERVER_PROTOCOL"])]
    elif flaw == "value":
        variables.append((b"HTTP_X_BAD", rng.choice([b"a\r\nb", b"a\x00b", b"\n"])))
    elif flaw == "big":
        variables.append((b"HTTP_X_BIG", b"v" * rng.choice([9000, 70000 // 2])))
    block = b"".join(_pair(key, value) for key, value in variables)
    if flaw == "pair":  # a length that runs past the block
        block += struct.pack("<H", 200) + b"KEY"
    size = len(block) & 0xFFFF
    if flaw == "datasize":
        size = rng.choice([0, 3, max(0, len(block) - 5), min(0xFFFF, len(block) + 5)])
    data = struct.pack("<BHB", modifier1, size, 0) + block + body
    if flaw == "truncated":
        data = data[:rng.randrange(1, len(data))]
    if rng.random() < 0.1:
        data = _mutate(rng, data)
    return data


def _address(rng: random.Random, six: bool) -> str:
    if six:
        return f"2001:db8::{rng.randrange(1, 0xffff):x}"
    return f"{rng.choice([203, 198, 10])}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def proxy_header(rng: random.Random) -> bytes:
    """A PROXY header as HAProxy, an AWS NLB or nginx's stream module writes it; one in six is flawed
    (the connection must then close without a response)."""
    six = rng.random() < 0.3
    src, dst = _address(rng, six), _address(rng, six)
    sport, dport = rng.randrange(1, 65536), rng.choice([80, 443, 8000])
    if rng.random() < 1 / 6:
        return rng.choice([
            b"", v1(src, dst, sport, dport, "TCP6" if six else "TCP4")[:-2] + b"\n",
            v1(src, dst, 65536, dport, "TCP6" if six else "TCP4"), b"PROXY TCP5 " + v1()[11:],
            V2_SIGNATURE + b"\x31" + v2(src, dst, sport, dport)[13:],
            v2(src, dst, sport, dport, tlvs=b"\x01\x00\x09ab"), b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n"])
    return rng.choice([
        v1(src, dst, sport, dport, "TCP6" if six else "TCP4"), b"PROXY UNKNOWN\r\n", v2(src, dst, sport, dport),
        v2(src, dst, sport, dport, tlvs=b"\xea\x00\x05\x01vpce"), v2_local()])


def proxy_stream(rng: random.Random) -> bytes:
    """A PROXY header, then the same streams as the strict flavour's."""
    return proxy_header(rng) + stream(rng)


# -- the client ----------------------------------------------------------------------------------

def exchange(port: int, data: bytes, cuts=()) -> bytes:
    """Send `data` (in pieces split at `cuts`, a pause between them), shut our side down, read to
    EOF: every byte the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            start = 0
            for cut in cuts:
                sock.sendall(data[start:cut])
                start = cut
                time.sleep(PAUSE)
            sock.sendall(data[start:])
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before all of it is sent: read what it said
        received = []
        while True:
            try:
                piece = sock.recv(65536)
            except ConnectionResetError:
                # a server that closed at once after a request that said close (nothing buffered
                # behind it yet) resets a piece sent after that: when depends on timing, not on
                # the server, and what it answered before is in `received` already
                break
            if not piece:
                break
            received.append(piece)
    return DATE.sub(b"\r\nDate: <date>", b"".join(received))


def tls_exchange(context):
    """exchange() over TLS: the stream, then the client's close_notify and SHUT_WR."""
    def send(port: int, data: bytes, cuts=()) -> bytes:
        answer = stream_over_tls(port, data, context, cuts, PAUSE)
        return DATE.sub(b"\r\nDate: <date>", answer)
    return send


# every leniency both backends offer, on; the generator's bare-LF and missing-Host flaws then pass
LENIENT = ("--allow-bare-lf", "--allow-missing-host")
FLAVOURS = {"strict": ((), stream), "lenient": (LENIENT, stream),
            "uwsgi": (("--protocol", "uwsgi"), uwsgi_stream),
            "proxy": (("--proxy-protocol",), proxy_stream),
            "tls": (None, stream)}  # flags: the test certificates'


@pytest.fixture(scope="module", params=list(FLAVOURS))
def servers(pool, request, certs):
    """(the four servers of one flavour by matrix id, the flavour's stream generator, its client)."""
    flags, generate = FLAVOURS[request.param]
    send = exchange
    if flags is None:
        flags, send = tls_args(certs), tls_exchange(client_context(certs))
    started = {matrix_id(param): use_server(pool, param, flags, DEFAULT_APP) for param in FULL_MATRIX}
    yield started, generate, send
    for server in started.values():
        check_alive(server)
        internal = [line for line in server.stderr_lines if "Internal error" in line]
        assert not internal, "".join(internal)


@pytest.mark.parametrize("batch", range(BATCHES))
def test_every_server_answers_a_stream_with_the_same_bytes(servers, batch):
    servers, generate, send = servers
    rng = random.Random(SEED * 1000 + batch)
    reference_name = matrix_id(FULL_MATRIX[0])
    for case in range(CASES):
        data = generate(rng)
        # a third of the streams arrive in 2-3 pieces: the server's reads must not change its answers
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.choice([1, 2]))))
        cuts = cuts if rng.random() < 0.33 else []
        answers = {name: send(server.port, data, cuts) for name, server in servers.items()}
        reference = answers[reference_name]
        assert reference == b"" or reference.startswith(b"HTTP/1."), (case, data, cuts, reference)
        for name, answer in answers.items():
            assert answer == reference, (
                f"case {case} of batch {batch}: {name} differs from {reference_name}\n"
                f"stream: {data!r}, cut at {cuts}\n{reference_name}: {reference!r}\n{name}: {answer!r}")
