"""Chunked-body corpus (cases/chunked/*.txt) x both backends x every split strategy.

Each test feeds one case to a fresh ChunkedDecoder piece by piece, passing the bytes it did not
consume again in front of the next piece, and requires the stated decoded data, total consumed
count and `done` flag, or the stated error. Random strategies hand the decoder a bytearray, the
others bytes, so both buffer types are exercised.
"""

import pytest

from fastwsgi.parser import Limits, get_backend

from . import corpus
from .runner import BACKENDS, STRATEGIES, feed_chunked, split

CASES = corpus.load("chunked")
PARAMS = [
    pytest.param(case, backend, strategy, id=f"{case.id}:{backend}:{strategy}")
    for case in CASES for backend in BACKENDS for strategy in STRATEGIES
]


@pytest.mark.parametrize("case, backend_name, strategy", PARAMS)
def test_chunked(case, backend_name, strategy):
    backend = get_backend(backend_name)
    pieces = split(case.data, strategy, case.id)
    use_bytearray = strategy.startswith("random")
    outcome = feed_chunked(backend, case.limits, pieces, use_bytearray=use_bytearray)
    where = f"\n{case.file} line {case.line} ({case.ref})\ninput: {case.data[:300]!r}"
    if case.error:
        assert outcome == ("error", *case.error), where
    else:
        exp = case.expected
        assert outcome == ("body", exp["data"], exp["consumed"], exp["done"]), where


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_decoder_after_done_consumes_nothing(backend_name):
    decoder = get_backend(backend_name).ChunkedDecoder(Limits())
    data, used = decoder.decode(b"1\r\na\r\n0\r\n\r\nXYZ")
    assert (bytes(data), used, decoder.done) == (b"a", 11, True)
    data, used = decoder.decode(b"XYZ0\r\n\r\n")
    assert (bytes(data), used, decoder.done) == (b"", 0, True)


def test_corpus_is_large_enough():
    assert len(CASES) >= 50
    chunk_codes = {"BAD_CHUNK_SIZE", "BAD_CHUNK_EXTENSION", "CHUNK_LINE_TOO_LONG",
                   "BAD_CHUNK_DATA_END", "BARE_LF", "BARE_CR", "OBS_FOLD", "HEAD_TOO_LARGE",
                   "TOO_MANY_HEADERS", "HEADER_LINE_TOO_LONG", "BAD_HEADER_NAME",
                   "BAD_HEADER_VALUE", "SPACE_BEFORE_COLON"}
    assert chunk_codes - {case.error[0] for case in CASES if case.error} == set()
