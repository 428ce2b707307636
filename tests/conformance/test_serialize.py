"""Response-head corpus (cases/serialize/*.txt) x both backends.

serialize_head has no partial input, so there is nothing to split: each case is called once per
backend and must return exactly the expected bytes or raise ResponseError with the expected code
(a ValueError subclass, whose status per the error table is 500).
"""

import pytest

from fastwsgi.errors import ResponseError
from fastwsgi.parser import get_backend

from . import corpus
from .runner import BACKENDS, call_serializer

CASES = corpus.load("serialize")
PARAMS = [pytest.param(case, backend, id=f"{case.id}:{backend}:call")
          for case in CASES for backend in BACKENDS]


@pytest.mark.parametrize("case, backend_name", PARAMS)
def test_serialize(case, backend_name):
    backend = get_backend(backend_name)
    outcome = call_serializer(backend, case.expected)
    where = f"\n{case.file} line {case.line} ({case.ref})\nargs: {case.expected!r}"
    if case.error:
        assert outcome == ("error", case.error[0]), where
    else:
        assert outcome == ("bytes", case.data), where


def test_response_error_is_a_value_error():
    assert issubclass(ResponseError, ValueError)


def test_corpus_is_large_enough():
    assert len(CASES) >= 30
    codes = {case.error[0] for case in CASES if case.error}
    assert {"BAD_STATUS", "BAD_RESPONSE_HEADER_NAME", "BAD_RESPONSE_HEADER_VALUE",
            "HOP_BY_HOP_HEADER"} <= codes
