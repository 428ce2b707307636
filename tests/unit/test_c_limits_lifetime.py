"""The C parsers point at a C copy of their Limits (fastwsgi/parser/_cffi.py `_c_limits`, an
lru_cache of 32): each parser must own a reference to it, or the cache frees it once 32 other
Limits were used and the parser reads freed memory (ASan: heap-use-after-free in fw_parse_lines),
applying whatever limits were allocated there since. The server builds one Limits, so it never
evicts; an embedder or a test suite building many does. get_backend("c") raises when the
extension is not built: this test then fails, never skips."""

import gc

import pytest

from fastwsgi.errors import ParseError
from fastwsgi.parser import Limits, get_backend

C = get_backend("c")
LONG_LINE = b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: a\r\n\r\n"


def test_a_request_parser_keeps_its_limits_after_the_cache_moved_on():
    parser = C.RequestParser(Limits(max_request_line=100))
    for extra in range(40):  # 40 other Limits through the cache: the first one is evicted
        C.ChunkedDecoder(Limits(max_chunk_line=100 + extra))
        C.RequestParser(Limits(max_request_line=300 + extra))
    gc.collect()
    with pytest.raises(ParseError) as caught:
        parser.parse(LONG_LINE)
    assert caught.value.status == 414
