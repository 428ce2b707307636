"""Differential test: the C and Python backends must agree on generated and mutated input.

Theory of operation
-------------------
The corpus pins behaviour where we wrote it down; this test looks between the pins. Hypothesis
builds inputs from two sources, corpus inputs and freshly generated valid messages, then applies a
few byte mutations (insert, delete, replace) drawn from bytes that matter to HTTP framing: CR, LF,
NUL, SP, HTAB, ':', ',', ';', '"', '%', 0x80, 0xFF, digits, letters. Each input is fed to both
backends whole and in pieces (cut points also drawn), and all four outcomes must be equal: the same
Head (compared type-strictly), the same error code and status, or both incomplete. Chunked bodies,
uwsgi packets and serialize_head get the same treatment; uwsgi packets are generated at the
variable level (keys and values chosen to hit every rule of docs/uwsgi-spec.md, runs of CGI vars
around the 64 limit, header overrides) and then byte-mutated like the rest. Runs are bounded and derandomized so CI is stable; a
failure prints the minimal input hypothesis found.
"""

from hypothesis import HealthCheck, given, settings, strategies as st

from fastwsgi.parser import Limits, get_backend

from . import corpus
from .corpus import build_packet
from .runner import call_serializer, feed_chunked, feed_head, typed

SETTINGS = settings(max_examples=400, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

INTERESTING = [b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b":", b",", b";", b"=", b'"', b"\\",
               b"%", b"?", b"/", b"_", b"-", b"\x7f", b"\x80", b"\xff", b"0", b"5", b"9", b"a",
               b"f", b"x", b"Z"]

LIMITS = st.one_of(
    st.just(Limits()),
    st.just(Limits()),
    st.builds(Limits, max_request_line=st.integers(4, 40), max_header_line=st.integers(4, 40),
              max_header_count=st.integers(0, 4), max_head_size=st.integers(8, 120),
              max_chunk_line=st.integers(2, 20), allow_bare_lf=st.booleans(),
              allow_missing_host=st.booleans()),
    st.builds(Limits, allow_bare_lf=st.booleans(), allow_missing_host=st.booleans()),
)


def _corpus_inputs(kind):
    # the big default-limit cases are left out: they make every example slow
    return [case.data for case in corpus.load(kind) if len(case.data) <= 2048]


@st.composite
def mutated(draw, seed_strategy):
    data = bytearray(draw(seed_strategy))
    for _ in range(draw(st.sampled_from((0, 0, 1, 1, 1, 2, 3, 4)))):
        op = draw(st.sampled_from(("insert", "delete", "replace")))
        pos = draw(st.integers(0, len(data)))
        if op == "insert":
            data[pos:pos] = draw(st.sampled_from(INTERESTING))
        elif data and pos < len(data):
            if op == "delete":
                del data[pos:pos + draw(st.integers(1, 3))]
            else:
                data[pos:pos + 1] = draw(st.sampled_from(INTERESTING))
    return bytes(data)


@st.composite
def cut(draw, data: bytes):
    """Split points for data: 1-8 cuts, or one byte per piece."""
    if len(data) < 2:
        return [data]
    if draw(st.integers(0, 9)) == 0:
        return [data[i:i + 1] for i in range(len(data))]
    cuts = sorted(set(draw(st.lists(st.integers(1, len(data) - 1), min_size=1, max_size=8))))
    bounds = [0] + cuts + [len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


# ---- request heads -----------------------------------------------------------------------------

TOKEN = st.text("abcXYZ019-!#_.~", min_size=1, max_size=8)
FIELD_NAMES = st.one_of(TOKEN, st.sampled_from([
    "Host", "Content-Length", "Transfer-Encoding", "Connection", "Expect", "Upgrade",
    "Content-Type", "host", "X_Y", "TRANSFER-ENCODING"]))
FIELD_VALUES = st.one_of(
    st.text(" \tabz09,;=\"-./:%\x80\xff", max_size=12),
    st.sampled_from(["chunked", "gzip, chunked", "close", "keep-alive", "upgrade", "100-continue",
                     "0", "5", "00", "9223372036854775808", "a:80", "[::1]", "", " chunked "]))


@st.composite
def valid_heads(draw):
    method = draw(st.sampled_from(["GET", "POST", "HEAD", "OPTIONS", "PUT", "M-X"]))
    target = draw(st.sampled_from(["/", "/a?b", "*", "http://h/p?q", "/%2F%zz%41", "/a%00"]))
    version = draw(st.sampled_from(["HTTP/1.1"] * 4 + ["HTTP/1.0", "HTTP/1.2", "HTTP/2.0"]))
    eol = draw(st.sampled_from(["\r\n"] * 5 + ["\n"]))
    fields = draw(st.lists(st.tuples(FIELD_NAMES, FIELD_VALUES), max_size=6))
    if draw(st.integers(0, 4)):  # usually a valid Host, somewhere
        fields.insert(draw(st.integers(0, len(fields))), ("Host", "a"))
    lines = [f"{method} {target} {version}"] + [f"{name}: {value}" for name, value in fields]
    tail = draw(st.sampled_from(["", "", "abc", "0\r\n\r\n", "GET / HTTP/1.1\r\n\r\n"]))
    return (eol.join(lines) + eol + eol + tail).encode("latin-1")


HEAD_INPUTS = mutated(st.one_of(st.sampled_from(_corpus_inputs("head")),
                                valid_heads(), valid_heads()))


def test_request_parser_parity():
    c, python = get_backend("c"), get_backend("python")  # fails at once when C is not built

    @SETTINGS
    @given(data=HEAD_INPUTS, limits=LIMITS, draw=st.data())
    def check(data, limits, draw):
        pieces = draw.draw(cut(data))
        results = {
            "python whole": feed_head(python, limits, [data])[0],
            "python split": feed_head(python, limits, pieces)[0],
            "c whole": feed_head(c, limits, [data])[0],
            "c split": feed_head(c, limits, pieces)[0],
        }
        reference = typed(results["python whole"])
        for name, outcome in results.items():
            assert typed(outcome) == reference, (name, results)

    check()


# ---- uwsgi packets -----------------------------------------------------------------------------

_GOOD_KEYS = st.sampled_from([
    b"REQUEST_METHOD", b"PATH_INFO", b"QUERY_STRING", b"REQUEST_URI", b"SERVER_PROTOCOL",
    b"CONTENT_LENGTH", b"HTTP_HOST", b"HTTP_COOKIE", b"HTTP_", b"HTTP", b"http_x", b"SCRIPT_NAME"])
UWSGI_KEYS = st.one_of(_GOOD_KEYS, _GOOD_KEYS,
                       st.text("AZ_09-.!~", min_size=1, max_size=6).map(str.encode))
BAD_UWSGI_KEYS = st.one_of(st.sampled_from([b"", b"A B", b"K\x00", b"\x7f", b"\xe9"]),
                           st.binary(min_size=1, max_size=4))
UWSGI_VALUES = st.one_of(
    st.sampled_from([b"GET", b"POST", b"G T", b"", b"HTTP/1.1", b"HTTP/2.0", b"HTTP/1", b"5",
                     b"007", b"-1", b"+5", b" 5", b"0x10", b"9223372036854775807",
                     b"9223372036854775808", b"\xb2", b"/caf\xe9", b"a\rb", b"\x00", b"x" * 40]),
    st.binary(max_size=12))


@st.composite
def uwsgi_packets(draw):
    pairs = draw(st.lists(st.tuples(UWSGI_KEYS, UWSGI_VALUES), max_size=6))
    if draw(st.integers(0, 4)):  # usually a valid method, somewhere
        pairs.insert(draw(st.integers(0, len(pairs))), (b"REQUEST_METHOD", b"GET"))
    if draw(st.integers(0, 4)) == 0:  # sometimes a key that may break rule 3
        pairs.insert(draw(st.integers(0, len(pairs))), (draw(BAD_UWSGI_KEYS), b"v"))
    if draw(st.integers(0, 5)) == 0:  # around the 64 CGI vars limit
        count = draw(st.integers(60, 66))
        pairs[draw(st.integers(0, len(pairs))):0] = [(b"V%d" % i, b"") for i in range(count)]
    items = [("var", key, value) for key, value in pairs]
    if draw(st.integers(0, 5)) == 0:
        items.append(("append", draw(st.binary(max_size=3))))
    header = draw(st.sampled_from([{}] * 16 + [{"modifier1": 1}, {"modifier2": 9},
                                               {"datasize": 0}, {"datasize": 65535}]))
    if "datasize" in header and header["datasize"] == 0:
        header = {"datasize": draw(st.integers(0, 200))}
    body = draw(st.sampled_from([b"", b"", b"hello", b"\x00\x05\x00\x00"]))
    return build_packet(items, **header) + body


UWSGI_INPUTS = st.one_of(uwsgi_packets(), uwsgi_packets(),  # byte mutations mostly break the sizes
                         mutated(st.one_of(st.sampled_from(_corpus_inputs("uwsgi")),
                                           uwsgi_packets())))


def test_uwsgi_parser_parity():
    c, python = get_backend("c"), get_backend("python")

    @SETTINGS
    @given(data=UWSGI_INPUTS, limits=LIMITS, draw=st.data())
    def check(data, limits, draw):
        pieces = draw.draw(cut(data))
        results = {
            "python whole": feed_head(python, limits, [data], "UwsgiParser")[0],
            "python split": feed_head(python, limits, pieces, "UwsgiParser")[0],
            "c whole": feed_head(c, limits, [data], "UwsgiParser")[0],
            "c split": feed_head(c, limits, pieces, "UwsgiParser")[0],
        }
        reference = typed(results["python whole"])
        for name, outcome in results.items():
            assert typed(outcome) == reference, (name, results)

    check()


# ---- chunked bodies ----------------------------------------------------------------------------

@st.composite
def valid_chunked(draw):
    out = []
    for chunk in draw(st.lists(st.binary(min_size=1, max_size=20), max_size=4)):
        size = draw(st.sampled_from(["{:x}", "{:X}", "00{:x}"])).format(len(chunk))
        ext = draw(st.sampled_from(["", ";a", ";a=b", ' ; a = "q\\"x"', ";a=\xff"]))
        out.append(f"{size}{ext}\r\n".encode("latin-1") + chunk + b"\r\n")
    if draw(st.integers(0, 5)) == 0:  # sometimes cut short: an unfinished body
        return b"".join(out)
    trailers = draw(st.lists(st.tuples(TOKEN, FIELD_VALUES), max_size=3))
    out.append(b"0\r\n" + "".join(f"{n}: {v}\r\n" for n, v in trailers).encode("latin-1") + b"\r\n")
    out.append(draw(st.sampled_from([b"", b"GET / HTTP/1.1\r\n"])))
    return b"".join(out)


CHUNKED_INPUTS = mutated(st.one_of(st.sampled_from(_corpus_inputs("chunked")), valid_chunked()))


def test_chunked_decoder_parity():
    c, python = get_backend("c"), get_backend("python")

    @SETTINGS
    @given(data=CHUNKED_INPUTS, limits=LIMITS, draw=st.data())
    def check(data, limits, draw):
        pieces = draw.draw(cut(data))
        results = {
            "python whole": feed_chunked(python, limits, [data]),
            "python split": feed_chunked(python, limits, pieces, use_bytearray=True),
            "c whole": feed_chunked(c, limits, [data]),
            "c split": feed_chunked(c, limits, pieces, use_bytearray=True),
        }
        reference = results["python whole"]
        for name, outcome in results.items():
            assert outcome == reference, (name, results)

    check()


# ---- response heads ----------------------------------------------------------------------------

HEADER_TEXT = st.text(st.sampled_from("aZ09 \t:-_@,;\r\n\x00\x7f\x80\xe9\xff\u20ac"), max_size=10)
ANY_TEXT = st.one_of(HEADER_TEXT, TOKEN, st.sampled_from(
    ["Connection", "keep-alive", "TE", "Date", "server", "Content-Length", "Set-Cookie"]))
NON_STR = st.sampled_from([None, 5, b"X", 1.5])
STATUS = st.one_of(
    st.sampled_from(["200 OK", "404 Not Found", "599 x", "600 x", "200 ", "200", "099 a"]),
    st.builds(lambda code, reason: code + reason,
              st.text("0123456789 x", min_size=0, max_size=4), HEADER_TEXT),
    NON_STR,
)


def test_serializer_parity():
    c, python = get_backend("c"), get_backend("python")

    @SETTINGS
    @given(
        status=STATUS,
        headers=st.lists(st.tuples(st.one_of(ANY_TEXT, NON_STR), st.one_of(ANY_TEXT, NON_STR)),
                         max_size=5),
        date=st.sampled_from(["Sun, 06 Nov 1994 08:49:37 GMT", "d"]),
        server=st.sampled_from([None, "fastwsgi", "x y/1.0"]),
        chunked=st.booleans(),
        connection=st.sampled_from([None, "close", "keep-alive"]),
    )
    def check(status, headers, date, server, chunked, connection):
        args = dict(status=status, headers=headers, date=date, server=server, chunked=chunked,
                    connection=connection)
        assert call_serializer(c, args) == call_serializer(python, args)

    check()
