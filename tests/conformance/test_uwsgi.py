"""uwsgi packet corpus (cases/uwsgi/*.txt) x both backends x every split strategy.

The executable form of docs/uwsgi-spec.md, run exactly like the request-head corpus
(test_heads.py): each case is fed to a fresh UwsgiParser through one growing buffer, piece by
piece, and must give the stated Head (reported by the first call whose buffer holds the whole
packet), error or "incomplete". The C backend comes from get_backend("c"), which raises when the
extension is not built: those tests then fail, never skip.
"""

import pytest

from fastwsgi.errors import ERRORS
from fastwsgi.parser import get_backend

from . import corpus
from .runner import (BACKENDS, STRATEGIES, check_head_outcome, check_parse_next, feed_head,
                     parse_once, split, typed)

CASES = corpus.load("uwsgi")
PARAMS = [
    pytest.param(case, backend, strategy, id=f"{case.id}:{backend}:{strategy}")
    for case in CASES for backend in BACKENDS for strategy in STRATEGIES
]


@pytest.mark.parametrize("case, backend_name, strategy", PARAMS)
def test_uwsgi_packet(case, backend_name, strategy):
    backend = get_backend(backend_name)
    pieces = split(case.data, strategy, case.id)
    outcome, calls = feed_head(backend, case.limits, pieces, parser_class="UwsgiParser")
    check_head_outcome(case, outcome, calls, pieces)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_reset_makes_a_parser_reusable(backend_name):
    """A UwsgiParser reused via reset() (results and errors are sticky until then) acts like a
    fresh one on every case, whatever it parsed before."""
    backend = get_backend(backend_name)
    reused = {}
    mismatches = []
    for case in CASES:
        parser = reused.setdefault(case.limits, backend.UwsgiParser(case.limits))
        parser.reset()
        again = parse_once(parser, case.data)
        fresh = parse_once(backend.UwsgiParser(case.limits), case.data)
        if typed(again) != typed(fresh):
            mismatches.append((case.id, again, fresh))
    assert mismatches == []


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_results_and_errors_are_sticky(backend_name):
    """After a Head or an error, parse() answers the same without looking at the buffer again."""
    backend = get_backend(backend_name)
    for case in CASES:
        parser = backend.UwsgiParser(case.limits)
        first = parse_once(parser, case.data)
        if first != ("incomplete",):
            assert parse_once(parser, b"\x01garbage") == first, case.id


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("strategy", ("whole", "bytewise", "random0"))
def test_parse_next_leaves_the_parser_ready_for_the_next_packet(backend_name, strategy):
    """The corpus through a UwsgiParser's parse_next (runner.check_parse_next), each case twice."""
    check_parse_next(get_backend(backend_name), CASES, strategy, passes=2,
                     parser_class="UwsgiParser")


def test_corpus_is_large_enough():
    kinds = {("error" if c.error else "incomplete" if c.expected is None else "head")
             for c in CASES}
    assert len(CASES) >= 60
    assert kinds == {"error", "incomplete", "head"}


def test_every_uwsgi_error_code_is_reachable():
    """Every code docs/uwsgi-spec.md names has at least one case."""
    spec_codes = {"UWSGI_BAD_MODIFIER", "UWSGI_BAD_VARS", "UWSGI_DUPLICATE_VAR", "HEAD_TOO_LARGE",
                  "BAD_HEADER_VALUE", "HEADER_LINE_TOO_LONG", "URI_TOO_LONG", "TOO_MANY_HEADERS",
                  "BAD_METHOD", "BAD_CONTENT_LENGTH", "BAD_VERSION"}
    assert spec_codes <= set(ERRORS)
    covered = {case.error[0] for case in CASES if case.error}
    assert spec_codes - covered == set()
    assert covered - spec_codes == set()
