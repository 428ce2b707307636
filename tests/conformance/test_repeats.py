"""The corpus again, through parsers that have just parsed the very same head.

Theory of operation
-------------------
On a keep-alive connection a client usually sends the same field values request after request, and
both backends take a shortcut for it:

* the C backend keeps, per parser, the values it last packed for a remembered name sequence
  (csrc/binding.c fw_keep_values); when the next head's names and values are exactly those, C writes
  only the request fields and the parser returns a `_cffi.RepeatHead`, whose environ is a copy of a
  per-source template (the base plus the fields' variables) with the request's variables set;
* the Python backend's fast path keeps the last origin-form head it built and its field block as
  text: a head whose field block is the same text, under the same HTTP version and again with an
  origin-form target, gets that head's headers dict and framing facts (`_python._repeat_head`),
  with no field line matched or checked again.

That must change nothing but the cost, so:

* every head case is parsed three times by one parser (each head's environ built over the
  conformance base, so the later ones take the template), then a fourth time checked against the
  corpus, on both backends;
* an environ the application changes, another base, a parser used from another thread, and
  sequences of mutated heads through one parser (hypothesis) must all give what a fresh parser
  gives.
"""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, strategies as st

from fastwsgi.errors import ParseError
from fastwsgi.parser import Limits, _python, get_backend
from fastwsgi.parser._types import REPEAT_MAX_HEAD

from . import corpus
from .runner import BACKENDS, check_head_outcome, feed_head, parse_once, typed
from .test_parity import SETTINGS, mutated, valid_heads

CASES = corpus.load("head")
BROWSER_GET = (b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test/1.0\r\n"
               b"Accept: */*\r\nCookie: a=1; b=2\r\nContent-Length: 0\r\n\r\n")


def parsed_three_times(backend, limits: Limits, data: bytes):
    """A parser that has parsed `data` three times (outcomes with environs, as the corpus checks
    them), reset for the next request."""
    parser = backend.RequestParser(limits)
    for _ in range(3):
        parse_once(parser, data)
        parser.reset()
    return parser


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_head_after_the_same_head(case, backend_name):
    backend = get_backend(backend_name)
    parser = parsed_three_times(backend, case.limits, case.data)
    outcome, calls = feed_head(backend, case.limits, [case.data], parser=parser)
    check_head_outcome(case, outcome, calls, [case.data])


def took_the_repeat_path(backend, parser, data: bytes) -> bool:
    try:
        head = parser.parse(data)
    except ParseError:
        return False
    if backend.NAME == "c":
        return type(head).__name__ == "RepeatHead"
    source = parser._source
    return source is not None and head is not source and head.headers is source.headers


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_most_valid_heads_of_the_corpus_repeat(backend_name):
    """The test above is only worth something if the parsers it warms take the repeat path."""
    backend = get_backend(backend_name)
    valid = [case for case in CASES if case.expected is not None and not case.error]
    repeated = [case.id for case in valid if took_the_repeat_path(
        backend, parsed_three_times(backend, case.limits, case.data), case.data)]
    assert len(repeated) >= 100, (len(repeated), len(valid))


SAME_FIELDS = [  # (what differs from BROWSER_GET, the head): the same field lines each time
    ("path", BROWSER_GET.replace(b"/a?b=1", b"/%41%2fb?c")),
    ("HTTP/1.0 (other framing defaults)", BROWSER_GET.replace(b"HTTP/1.1", b"HTTP/1.0")),
    ("absolute-form (its authority is HTTP_HOST)", BROWSER_GET.replace(b"/a?b=1", b"http://other:81/x")),
    ("asterisk-form", BROWSER_GET.replace(b"GET /a?b=1", b"OPTIONS *")),
    ("CONNECT", BROWSER_GET.replace(b"GET /a?b=1", b"CONNECT example.com:443")),
    ("CONNECT, origin-form (refused)", BROWSER_GET.replace(b"GET", b"CONNECT")),
    ("a fragment (refused)", BROWSER_GET.replace(b"/a?b=1", b"/a#f")),
    ("POST", BROWSER_GET.replace(b"GET", b"POST")),
]


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("differs, data", SAME_FIELDS, ids=[differs for differs, _ in SAME_FIELDS])
def test_same_field_lines_under_another_request_line(differs, data, backend_name):
    """A head whose field lines repeat the last head's but whose request line changes what they
    mean (version, target form) gets what a fresh parser gives."""
    parser = parsed_three_times(get_backend(backend_name), Limits(), BROWSER_GET)
    assert typed(parse_once(parser, data)) == typed(parse_once(
        get_backend("python").RequestParser(Limits()), data)), differs


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_a_head_over_repeat_max_head_is_not_kept(backend_name):
    """Heads beyond REPEAT_MAX_HEAD bytes are parsed in full every time: an idle connection never
    keeps more than that for repeats; a smaller head after one is kept again."""
    backend = get_backend(backend_name)
    big = BROWSER_GET.replace(b"\r\n\r\n", b"".join(
        b"\r\nX-Big-%d: %s" % (i, b"x" * 3000) for i in range(3)) + b"\r\n\r\n")
    assert len(big) > REPEAT_MAX_HEAD
    parser = parsed_three_times(backend, Limits(), big)
    assert not took_the_repeat_path(backend, parser, big)
    parser.reset()
    outcome = parse_once(parser, big)
    assert outcome[0] == "head" and outcome == parse_once(backend.RequestParser(Limits()), big)
    if backend_name == "c":
        assert parser._prev_cap == REPEAT_MAX_HEAD
    else:
        assert parser._source is None and parser._source_block is None
    for _ in range(2):
        parser.reset()
        parser.parse(BROWSER_GET)
    parser.reset()
    assert took_the_repeat_path(backend, parser, BROWSER_GET)


def test_a_python_repeat_checks_no_field_line_again(monkeypatch):
    """The Python backend's repeat takes nothing from the general way or a layout: with both
    unusable, it still returns the head a fresh parser returned."""
    parser = _python.RequestParser(Limits())
    first = parser.parse(BROWSER_GET)
    parser.reset()

    class Unusable:
        def __getattr__(self, name):
            raise AssertionError("a field line was matched again")
    monkeypatch.setattr(_python, "_FIELD_LINE", Unusable())
    monkeypatch.setattr(_python, "_build_head", Unusable())
    parser._layout = Unusable()
    again = parser.parse(BROWSER_GET.replace(b"/a?b=1", b"/b"))
    assert again.as_dict() == first.as_dict() | {"path": "/b", "target": "/b", "query": "",
                                                 "consumed": len(BROWSER_GET) - 4}


def fresh_environ(data: bytes, base: dict) -> dict:
    return get_backend("python").RequestParser(Limits()).parse(data).environ(base)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_a_repeated_head_gets_a_fresh_environ(backend_name):
    """Changes an application makes to its environ, and another base (a new connection taking a
    spare parser), never show in the next request's environ."""
    backend = get_backend(backend_name)
    parser = backend.RequestParser(Limits())
    base = {"REMOTE_ADDR": "10.0.0.1", "wsgi.url_scheme": "http"}
    for path in (b"/1", b"/2", b"/3", b"/4", b"/5", b"/6"):
        data = BROWSER_GET.replace(b"/a", path)
        parser.reset()
        environ = parser.parse(data).environ(base)
        assert environ == fresh_environ(data, base)
        environ["HTTP_COOKIE"] = "changed"
        environ["wsgi.input"] = object()
        del environ["HTTP_HOST"]
    assert base == {"REMOTE_ADDR": "10.0.0.1", "wsgi.url_scheme": "http"}
    assert took_the_repeat_path(backend, parser, data)  # what this test is about
    other = {"REMOTE_ADDR": "10.0.0.2", "SERVER_PORT": "81"}
    parser.reset()
    assert parser.parse(BROWSER_GET).environ(other) == fresh_environ(BROWSER_GET, other)
    parser.reset()
    changed = BROWSER_GET.replace(b"a=1", b"a=9")
    assert parser.parse(changed).environ(base) == fresh_environ(changed, base)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_a_parser_used_from_another_thread(backend_name):
    """The C memo is per thread: a parser that kept values under one thread's memo must not take
    them for a head of the other thread whose names (another sequence, same values) sit in a memo
    slot with the same stamp."""
    backend = get_backend(backend_name)
    first = b"GET / HTTP/1.1\r\nHost: h\r\nX-A: v\r\n\r\n"
    second = first.replace(b"X-A", b"X-B")
    results = {}
    b_done = threading.Event()

    def in_a_new_thread(name, work):  # thread a lives until b is done: no thread id is reused
        def run():
            results[name] = work()
            if name == "a":
                b_done.wait(30)
        thread = threading.Thread(target=run)
        thread.start()
        return thread

    parser = backend.RequestParser(Limits())

    def thread_a():  # the first names this thread's memo stores, twice: C keeps the values
        for _ in range(2):
            parser.reset()
            parser.parse(first)
        return parser.parse(first).environ({})

    def thread_b():  # the same stamp in this thread's memo, for other names with the same values
        backend.RequestParser(Limits()).parse(second)
        parser.reset()
        return parser.parse(second).environ({})

    a = in_a_new_thread("a", thread_a)
    while "a" not in results and a.is_alive():
        a.join(0.01)
    in_a_new_thread("b", thread_b).join()
    b_done.set()
    a.join()
    assert results["a"] == fresh_environ(first, {})
    assert results["b"] == fresh_environ(second, {})


CRLF_HEADS = valid_heads().filter(lambda data: b"\n" not in data.replace(b"\r\n", b""))


def test_repeat_parity():
    """One parser of each backend takes a sequence of heads, each the seed again or a mutation of
    it; every outcome is a fresh Python parser's."""
    backends = [get_backend(name) for name in ("c", "python")]

    @SETTINGS
    @given(seed=CRLF_HEADS, draw=st.data())
    def check(seed, draw):
        limits = Limits()
        parsers = [backend.RequestParser(limits) for backend in backends]
        for _ in range(5):
            data = draw.draw(st.one_of(st.just(seed), mutated(st.just(seed))))
            reference = typed(parse_once(backends[1].RequestParser(limits), data))
            for parser in parsers:
                parser.reset()
                assert typed(parse_once(parser, data)) == reference, (parser, data)

    check()
