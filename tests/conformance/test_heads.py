"""Request-head corpus (cases/head/*.txt) x both backends x every split strategy.

Each test feeds one case to a fresh RequestParser through one growing buffer and requires the
outcome stated in the corpus. Beyond the outcome it checks *when* it arrives: a head is reported at
the first call whose buffer holds all of it (never later), an incomplete case returns None at every
call, and no call after the first non-None result is needed. The C backend is requested with
get_backend("c"), which raises when the extension is not built: those tests then fail, never skip.
"""

import pytest

from fastwsgi.parser import get_backend

from . import corpus
from .runner import (BACKENDS, STRATEGIES, check_head_outcome, check_parse_next, feed_head,
                     parse_once, split, typed)

CASES = corpus.load("head")
PARAMS = [
    pytest.param(case, backend, strategy, id=f"{case.id}:{backend}:{strategy}")
    for case in CASES for backend in BACKENDS for strategy in STRATEGIES
]


@pytest.mark.parametrize("case, backend_name, strategy", PARAMS)
def test_head(case, backend_name, strategy):
    backend = get_backend(backend_name)
    pieces = split(case.data, strategy, case.id)
    outcome, calls = feed_head(backend, case.limits, pieces)
    check_head_outcome(case, outcome, calls, pieces)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_reset_makes_a_parser_reusable(backend_name):
    """A parser reused via reset() (errors are sticky until then) acts like a fresh one.

    Compared with a fresh parser rather than the corpus so that a corpus failure shows up once,
    in test_head, and this test isolates reset() itself.
    """
    backend = get_backend(backend_name)
    reused = {}
    mismatches = []
    for case in CASES:
        if case.limits not in reused:
            reused[case.limits] = backend.RequestParser(case.limits)
        parser = reused[case.limits]
        parser.reset()
        again = parse_once(parser, case.data)  # bytes here; the corpus runs use a bytearray
        fresh = parse_once(backend.RequestParser(case.limits), case.data)
        if typed(again) != typed(fresh):
            mismatches.append((case.id, again, fresh))
    assert mismatches == []


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("strategy", ("whole", "bytewise", "random0"))
def test_parse_next_leaves_the_parser_ready_for_the_next_head(backend_name, strategy):
    """The corpus through parse_next (runner.check_parse_next), each case three times in a row: from
    the third on, a repeat is the parser's kept head, found with no parsing (_types.py), also
    after pieces that left the parser mid-head."""
    check_parse_next(get_backend(backend_name), CASES, strategy, passes=3)


def test_corpus_is_large_enough():
    kinds = [("error" if c.error else "incomplete" if c.expected is None else "head")
             for c in CASES]
    assert len(CASES) >= 200
    assert {"error", "incomplete", "head"} <= set(kinds)


def test_every_request_error_code_is_reachable():
    from fastwsgi.errors import ERRORS
    request_codes = {name for name in ERRORS if name not in (
        "NONE", "BAD_CHUNK_SIZE", "BAD_CHUNK_EXTENSION", "CHUNK_LINE_TOO_LONG",
        "BAD_CHUNK_DATA_END",
        "BAD_STATUS", "BAD_RESPONSE_HEADER_NAME", "BAD_RESPONSE_HEADER_VALUE", "HOP_BY_HOP_HEADER",
        "BUFFER_TOO_SMALL") and not name.startswith("UWSGI_")}  # uwsgi: test_uwsgi.py
    covered = {case.error[0] for case in CASES if case.error}
    assert request_codes - covered == set()
