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


class Text(str):
    """A str subclass, as frameworks hand out (Django's SafeString): PEP 3333 native strings."""


def _serialize_outcome(backend_name, status, headers):
    try:
        return get_backend(backend_name).serialize_head(status, headers, date="D")
    except ResponseError as exc:
        return exc.code


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("status, headers, expected", [
    (Text("200 OK"), [(Text("X-A"), Text("1"))], b"HTTP/1.1 200 OK\r\nDate: D\r\nX-A: 1\r\n\r\n"),
    ("200 OK", [(Text("X"), "a\x00")], "BAD_RESPONSE_HEADER_VALUE"),
    (Text("200\r\nX: y"), [], "BAD_STATUS"),
], ids=["accepted", "nul-in-value", "crlf-in-status"])
def test_str_subclasses_are_strings_on_both_backends(backend_name, status, headers, expected):
    assert _serialize_outcome(backend_name, status, headers) == expected
