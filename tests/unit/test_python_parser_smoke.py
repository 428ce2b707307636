"""Focused checks of the pure-Python backend (fastwsgi/parser/_python.py).

The shared corpus in tests/conformance/ is the full contract; these are the quick, hand-written checks
of the Python twin's own machinery: the fast path and the line-at-a-time path agree, every error code
is reachable, limits trip at the spec's exact buffer lengths, incremental feeding is linear, and the
chunked decoder and serializer keep their streaming and ordering promises.
"""

import pytest

from fastwsgi.errors import ParseError, ResponseError
from fastwsgi.parser import Head, Limits
from fastwsgi.parser import _python as P

BROWSER_GET = (
    b"GET /wp-content/uploads/2010/03/hello%20kitty.jpg?size=large&x=%41 HTTP/1.1\r\n"
    b"Host: www.kittyhell.com\r\n"
    b"User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 10_6_6) Gecko/20100401 Firefox/3.6.3\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: ja,en-us;q=0.7,en;q=0.3\r\n"
    b"Accept-Encoding: gzip,deflate\r\n"
    b"Accept-Charset: Shift_JIS,utf-8;q=0.7,*;q=0.7\r\n"
    b"Keep-Alive: 115\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: wp_ozh_wsa_visits=2; __utma=xxxxxxxxx.xxxxxxxxxx.x\r\n"
    b"Cache-Control: max-age=0\r\n"
    b"\r\n"
)


def parse_in_pieces(data: bytes, limits=Limits(), step=None):
    """Feed `data` through one growing bytearray; return the Head, a ParseError, or None."""
    parser = P.RequestParser(limits)
    buf = bytearray()
    step = step or len(data) or 1
    for i in range(0, len(data), step):
        buf += data[i:i + step]
        try:
            head = parser.parse(buf)
        except ParseError as exc:
            return exc
        if head is not None:
            return head
    return None


def outcome(data: bytes, limits=Limits()):
    """Parse whole and byte by byte; both must agree. Returns the common result."""
    whole = parse_in_pieces(data, limits)
    for step in (1, 2, 7):
        assert parse_in_pieces(data, limits, step) == whole, (step, data[:80])
    return whole


def error_of(data: bytes, limits=Limits()) -> str:
    result = outcome(data, limits)
    assert isinstance(result, ParseError), result
    return result.code


# ---- valid heads -----------------------------------------------------------------------------------

def test_browser_get_fast_and_slow_paths_agree():
    head = outcome(BROWSER_GET)
    assert type(head) is Head
    assert head.consumed == len(BROWSER_GET)
    assert (head.method, head.version, head.minor) == ("GET", "HTTP/1.1", 1)
    assert head.target == "/wp-content/uploads/2010/03/hello%20kitty.jpg?size=large&x=%41"
    assert head.path == "/wp-content/uploads/2010/03/hello kitty.jpg"
    assert head.query == "size=large&x=%41"
    assert head.headers["HTTP_HOST"] == "www.kittyhell.com"
    assert head.headers["HTTP_ACCEPT_CHARSET"] == "Shift_JIS,utf-8;q=0.7,*;q=0.7"
    assert list(head.headers)[0] == "HTTP_HOST" and len(head.headers) == 10
    assert (head.content_length, head.chunked, head.keep_alive) == (-1, False, True)
    assert (head.expect_continue, head.upgrade) == (False, False)


def test_bytes_after_the_head_are_not_consumed():
    head = outcome(BROWSER_GET + b"POST / HTTP/1.1\r\n")
    assert head.consumed == len(BROWSER_GET)


def test_trailing_ows_duplicates_and_underscores_take_the_general_path():
    data = (b"POST /a%2Fb%zz HTTP/1.0\r\nX-A: 1 \t\r\nx-a:2\r\nX_A: spoof\r\nContent-Type: t/p\r\n"
            b"Content-Length: 0005\r\nConnection: Keep-Alive\r\n\r\n")
    head = outcome(data)
    assert head.path == "/a/b%zz"
    assert head.headers == {"HTTP_X_A": "1,2", "CONTENT_TYPE": "t/p", "CONTENT_LENGTH": "0005",
                            "HTTP_CONNECTION": "Keep-Alive"}
    assert (head.content_length, head.keep_alive, head.minor) == (5, True, 0)


def test_leading_empty_lines_absolute_form_and_asterisk():
    head = outcome(b"\r\n\r\nGET http://h:80?q HTTP/1.1\r\nHost: h:80\r\n\r\n")
    assert (head.consumed, head.path, head.query) == (46, "", "q")
    head = outcome(b"OPTIONS * HTTP/1.1\r\nHost: [::1]:8\r\n\r\n")
    assert (head.path, head.query) == ("*", "")


def test_framing_flags():
    head = outcome(b"PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: x-none;q=1 ,\r\n"
                   b"Transfer-Encoding: Chunked\r\nExpect: 100-Continue\r\n"
                   b"Connection: upgrade, close\r\nUpgrade: h2c\r\n\r\n")
    assert isinstance(head, ParseError) and head.code == "UNKNOWN_TRANSFER_CODING"
    head = outcome(b"PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                   b"Expect: 100-Continue\r\nConnection: upgrade, close\r\nUpgrade: h2c\r\n\r\n")
    assert (head.chunked, head.expect_continue, head.upgrade) == (True, True, True)
    assert head.keep_alive is False
    # RFC 9110 §7.8: Upgrade on HTTP/1.0 is ignored
    head = outcome(b"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n")
    assert (head.upgrade, head.keep_alive) == (False, False)


def test_bare_lf_when_allowed():
    lenient = Limits(allow_bare_lf=True)
    head = outcome(b"\nGET / HTTP/1.1\nHost: a\r\n\n", lenient)
    assert head.consumed == 26 and head.headers == {"HTTP_HOST": "a"}


def test_incomplete_returns_none_and_parser_resets():
    parser = P.RequestParser(Limits())
    assert parser.parse(b"GET / HTTP/1.1\r\nHost: a\r\n") is None
    assert parser.parse(b"GET / HTTP/1.1\r\nHost: a\r\n\r") is None
    head = parser.parse(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert head.consumed == 27
    parser.reset()
    assert parser.parse(b"GET /x HTTP/1.1\r\nHost: b\r\n\r\n").path == "/x"


# ---- every request error, in the spec's order -------------------------------------------------------

REQUEST_ERRORS = [
    (b"GET  / HTTP/1.1\r\n\r\n", "BAD_REQUEST_LINE"),
    (b"GET /\r\n\r\n", "BAD_REQUEST_LINE"),
    (b"G(T / HTTP/1.1\r\n\r\n", "BAD_METHOD"),
    (b"G(T / HTTP/x.1\r\n\r\n", "BAD_METHOD"),  # method before version
    (b"GET / HTTP/1.10\r\n\r\n", "BAD_VERSION"),
    (b"GET \x7f HTTP/1.1\r\n\r\n", "BAD_TARGET"),
    (b"GET / HTTP/2.0\r\n\r\n", "VERSION_NOT_SUPPORTED"),
    (b"GET \x7f HTTP/2.0\r\n\r\n", "VERSION_NOT_SUPPORTED"),  # version before target
    (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", "BAD_TARGET"),
    (b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", "BAD_TARGET"),  # CONNECT takes authority-form only
    (b"CONNECT a:443 HTTP/2.0\r\n\r\n", "VERSION_NOT_SUPPORTED"),  # version before CONNECT
    (b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", "METHOD_NOT_IMPLEMENTED"),
    (b"GET / HTTP/1.1\nHost: a\r\n\r\n", "BARE_LF"),
    (b"GET / HTTP/1.1\r\nHost: a\r\n\n", "BARE_LF"),
    (b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", "BARE_CR"),
    (b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", "OBS_FOLD"),
    (b"GET / HTTP/1.1\r\nHost a\r\n\r\n", "BAD_HEADER_NAME"),
    (b"GET / HTTP/1.1\r\n: a\r\n\r\n", "BAD_HEADER_NAME"),
    (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", "SPACE_BEFORE_COLON"),
    (b"GET / HTTP/1.1\r\nHost: a\x00\r\n\r\n", "BAD_HEADER_VALUE"),
    (b"GET / HTTP/1.1\r\n\r\n", "MISSING_HOST"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", "DUPLICATE_HOST"),
    (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "BAD_HOST"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", "BAD_CONTENT_LENGTH"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", "BAD_CONTENT_LENGTH"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\n",
     "DUPLICATE_CONTENT_LENGTH"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
     "CONTENT_LENGTH_AND_TE"),
    (b"GET / HTTP/1.0\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "TE_ON_HTTP10"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
     "BAD_TRANSFER_ENCODING"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked x\r\n\r\n", "BAD_TRANSFER_ENCODING"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
     "UNKNOWN_TRANSFER_CODING"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nExpect: x\r\n\r\n", "BAD_EXPECT"),
]


@pytest.mark.parametrize("data, code", REQUEST_ERRORS, ids=[c for _, c in REQUEST_ERRORS])
def test_request_error(data, code):
    assert error_of(data) == code


def test_error_carries_status_and_is_sticky():
    parser = P.RequestParser(Limits())
    with pytest.raises(ParseError) as first:
        parser.parse(b"GET / HTTP/2.0\r\n")
    assert (first.value.code, first.value.status) == ("VERSION_NOT_SUPPORTED", 505)
    with pytest.raises(ParseError) as again:
        parser.parse(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert again.value == first.value


def test_huge_content_length_with_leading_zeros():
    head = outcome(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + b"0" * 5000 + b"7\r\n\r\n")
    assert head.content_length == 7
    assert error_of(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + b"1" * 5000 + b"\r\n\r\n") \
        == "BAD_CONTENT_LENGTH"


# ---- limits: exact trip points -----------------------------------------------------------------------

def first_error_length(data: bytes, limits: Limits):
    """Buffer length at which byte-by-byte feeding first raises, and the code."""
    parser = P.RequestParser(limits)
    for n in range(1, len(data) + 1):
        try:
            parser.parse(data[:n])
        except ParseError as exc:
            return n, exc.code
    return None


def test_request_line_limit_trips_at_L_plus_1():
    limits = Limits(max_request_line=20)
    line = b"GET /" + b"a" * 13 + b" HTTP/1.1"  # 27 bytes of content
    assert first_error_length(line + b"\r\n", limits) == (21, "URI_TOO_LONG")
    ok = b"GET /" + b"a" * 2 + b" HTTP/1.1\r\n"  # 18 content + CR = 19 bytes before the LF
    assert first_error_length(ok + b"Host: a\r\n\r\n", limits) is None
    # 20 bytes before the LF is the most allowed; 21 (content 20 + CR) is one too many
    assert outcome(b"GET /" + b"a" * 5 + b" HTTP/1.1\r\nHost: a\r\n\r\n", limits).target == "/aaaaa"
    assert error_of(b"GET /" + b"a" * 6 + b" HTTP/1.1\r\nHost: a\r\n\r\n", limits) == "URI_TOO_LONG"


def test_header_line_and_head_limits_and_their_tie():
    start = b"GET / HTTP/1.1\r\n"  # 16 bytes; the field line starts at 16
    field = b"X: " + b"v" * 100 + b"\r\n"
    # line limit 30 trips at 16+31 = 47; head limit 100 trips at 101 -> line wins
    assert first_error_length(start + field, Limits(max_header_line=30, max_head_size=100)) == \
        (47, "HEADER_LINE_TOO_LONG")
    # head limit 40 trips at 41 < 47 -> head wins
    assert first_error_length(start + field, Limits(max_header_line=30, max_head_size=40)) == \
        (41, "HEAD_TOO_LARGE")
    # tie (47 == 46 + 1): the line limit
    assert first_error_length(start + field, Limits(max_header_line=30, max_head_size=46)) == \
        (47, "HEADER_LINE_TOO_LONG")
    # and the whole input gives the same codes
    assert error_of(start + field + b"\r\n", Limits(max_header_line=30, max_head_size=40)) == \
        "HEAD_TOO_LARGE"


def test_head_limit_counts_through_the_final_lf():
    data = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"  # 27 bytes
    assert outcome(data, Limits(max_head_size=27)).consumed == 27
    assert error_of(data, Limits(max_head_size=26)) == "HEAD_TOO_LARGE"
    assert error_of(b"\r\n" * 20 + data, Limits(max_head_size=40)) == "HEAD_TOO_LARGE"


def test_too_many_headers():
    data = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"
    assert outcome(data, Limits(max_header_count=3)).headers["HTTP_B"] == "2"
    assert error_of(data, Limits(max_header_count=2)) == "TOO_MANY_HEADERS"


class CountingBuffer(bytearray):
    """A receive buffer that counts the bytes its find() calls look at (the parser's only scans)."""

    scanned = 0

    def find(self, sub, start=0, end=None):
        stop = len(self) if end is None else min(end, len(self))
        self.scanned += max(0, stop - start)
        return super().find(sub, start, end)


@pytest.mark.parametrize("shape", ["one long field", "many short fields", "long request line"])
def test_byte_by_byte_feeding_is_linear(shape):
    if shape == "one long field":
        data = b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 65000 + b"\r\n\r\n"
    elif shape == "many short fields":
        data = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-Field: value\r\n" * 99 + b"\r\n"
    else:
        data = b"GET /" + b"p" * 20000 + b" HTTP/1.1\r\nHost: a\r\n\r\n"
    limits = Limits(max_request_line=65536, max_header_line=65536, max_head_size=70000)
    parser = P.RequestParser(limits)
    buf = CountingBuffer()
    for i in range(len(data)):
        buf.append(data[i])
        head = parser.parse(buf)
    assert head is not None and head.consumed == len(data)
    assert buf.scanned <= 3 * len(data), (buf.scanned, len(data))  # quadratic would be ~len**2 / 2
    assert head == outcome(data, limits)


# ---- chunked decoder ---------------------------------------------------------------------------------

def decode_in_pieces(data: bytes, step: int, limits=Limits()):
    decoder = P.ChunkedDecoder(limits)
    pending, out, consumed = b"", b"", 0
    for i in range(0, len(data), step):
        buf = pending + data[i:i + step]
        piece, used = decoder.decode(buf)
        assert type(piece) is bytes and 0 <= used <= len(buf)
        out += piece
        consumed += used
        pending = buf[used:]
    return out, consumed, decoder.done


BODY = b"5;name=\"q\\\"v\"\r\nhello\r\n00A\r\n0123456789\r\n0\r\nX-Trailer: yes\r\n\r\nNEXT"


@pytest.mark.parametrize("step", [1, 2, 3, 5, 1000])
def test_chunked_decodes_identically_in_any_pieces(step):
    assert decode_in_pieces(BODY, step) == (b"hello0123456789", len(BODY) - 4, True)


def test_chunked_returns_partial_data_and_keeps_incomplete_lines():
    decoder = P.ChunkedDecoder(Limits())
    assert decoder.decode(b"a\r\nhel") == (b"hel", 6)
    assert decoder.decode(b"lo") == (b"lo", 2)
    assert decoder.decode(b"12345\r") == (b"12345", 5)  # the CR alone is left
    assert decoder.decode(b"\r\n0\r") == (b"", 2)
    assert decoder.decode(b"0\r\n\r\nrest") == (b"", 5)
    assert decoder.done is True
    assert decoder.decode(b"rest") == (b"", 0)


CHUNK_ERRORS = [
    (b"5 \r\nhello\r\n", "BAD_CHUNK_SIZE"),
    (b"0x5\r\n", "BAD_CHUNK_SIZE"),
    (b"\r\n", "BAD_CHUNK_SIZE"),
    (b"8000000000000000\r\n", "BAD_CHUNK_SIZE"),
    (b"5;\r\n", "BAD_CHUNK_EXTENSION"),
    (b"5;a=\"x\r\n", "BAD_CHUNK_EXTENSION"),
    (b"5;a \r\n", "BAD_CHUNK_EXTENSION"),
    (b"5\nhello\r\n", "BARE_LF"),
    (b"5\r\r\n", "BARE_CR"),
    (b"5\r\nhelloX", "BAD_CHUNK_DATA_END"),
    (b"5\r\nhello\rX", "BAD_CHUNK_DATA_END"),
    (b"F" * 30 + b"\r\n", "CHUNK_LINE_TOO_LONG"),
    (b"0\r\n Folded: x\r\n\r\n", "OBS_FOLD"),
    (b"0\r\nBad Name: x\r\n\r\n", "BAD_HEADER_NAME"),
    (b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", "TOO_MANY_HEADERS"),
    (b"0\r\nA: " + b"x" * 40 + b"\r\n\r\n", "HEADER_LINE_TOO_LONG"),
    (b"0\r\nA: 1234567890\r\nB: 1234567890\r\n\r\n", "HEAD_TOO_LARGE"),
]


@pytest.mark.parametrize("data, code", CHUNK_ERRORS, ids=[c for _, c in CHUNK_ERRORS])
def test_chunked_errors_do_not_depend_on_splitting(data, code):
    # trailer section starts at 3: a line trips at start + 16, the section at 3 + 25 + 1 = 29
    limits = Limits(max_chunk_line=20, max_header_count=2, max_header_line=15, max_head_size=25)
    for step in (1, 4, len(data)):
        with pytest.raises(ParseError) as exc:
            decode_in_pieces(data, step, limits)
        assert exc.value.code == code, step


def test_chunked_bad_data_end_fails_at_the_first_wrong_byte():
    decoder = P.ChunkedDecoder(Limits())
    assert decoder.decode(b"1\r\nx") == (b"x", 4)
    with pytest.raises(ParseError) as exc:
        decoder.decode(b"y")
    assert exc.value.code == "BAD_CHUNK_DATA_END"


# ---- response head ---------------------------------------------------------------------------------

DATE = "Sun, 22 Nov 2026 04:00:00 GMT"


def test_serialize_common_response():
    out = P.serialize_head("200 OK", [("Content-Type", "text/plain"), ("X-A", " spaced\t")],
                           date=DATE, server="fastwsgi", chunked=True, connection="close")
    assert out == (b"HTTP/1.1 200 OK\r\nServer: fastwsgi\r\nDate: " + DATE.encode() +
                   b"\r\nContent-Type: text/plain\r\nX-A:  spaced\t\r\n"
                   b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")


def test_serialize_keeps_application_server_and_date():
    out = P.serialize_head("404 Not Found", iter([("server", "app"), ("DATE", "then")]), date=DATE,
                           server="fastwsgi", connection="keep-alive")
    assert out == (b"HTTP/1.1 404 Not Found\r\nserver: app\r\nDATE: then\r\n"
                   b"Connection: keep-alive\r\n\r\n")
    assert P.serialize_head("204 ", [], date="d") == b"HTTP/1.1 204 \r\nDate: d\r\n\r\n"


@pytest.mark.parametrize("status, headers, code", [
    ("200", [], "BAD_STATUS"),
    ("600 X", [], "BAD_STATUS"),
    ("200 OK\r\nX: y", [], "BAD_STATUS"),
    (b"200 OK", [], "BAD_STATUS"),
    ("200 OK", [("X Y", "v")], "BAD_RESPONSE_HEADER_NAME"),
    ("200 OK", [("", "v")], "BAD_RESPONSE_HEADER_NAME"),
    ("200 OK", [(b"X", "v")], "BAD_RESPONSE_HEADER_NAME"),
    ("200 OK", [("X", "v", "w")], "BAD_RESPONSE_HEADER_NAME"),
    ("200 OK", [("Transfer-Encoding", "chunked")], "HOP_BY_HOP_HEADER"),
    ("200 OK", [("A", "ok"), ("keep-alive", "5"), ("B", "\n")], "HOP_BY_HOP_HEADER"),
    ("200 OK", [("A", "x\r\nSet-Cookie: evil")], "BAD_RESPONSE_HEADER_VALUE"),
    ("200 OK", [("A", "\u20ac")], "BAD_RESPONSE_HEADER_VALUE"),
    ("200 OK", [("A", 5)], "BAD_RESPONSE_HEADER_VALUE"),
    ("200 OK", [("A", "\x00"), ("B C", "x")], "BAD_RESPONSE_HEADER_VALUE"),
])
def test_serialize_errors_in_order(status, headers, code):
    with pytest.raises(ResponseError) as exc:
        P.serialize_head(status, headers, date=DATE)
    assert exc.value.code == code
