"""The corpus again, through parsers that have just parsed heads with the same field names.

Theory of operation
-------------------
Both backends remember field-name sequences: the C backend's thread memo (csrc/fw_binding.c) and
the Python backend's layouts (`_python._Layout`: a regex made for a name sequence accepted twice,
tried first by the parser that last used it). A remembered sequence must change nothing but the
cost. So every head case whose field lines have token names is fed, whole, to a parser that has
first parsed a valid head with the same names in the same order, twice: for the Python backend the
case then goes through that layout's regex before anything else, and must still get the corpus
outcome (error cases included: a layout must refuse exactly what the general way refuses).
A hypothesis test does the same for mutated valid heads, against a fresh parser of each backend.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, strategies as st

from fastwsgi.errors import ParseError
from fastwsgi.parser import Limits, get_backend
from fastwsgi.parser import _python

from . import corpus
from .runner import BACKENDS, check_head_outcome, feed_head, parse_once, typed
from .test_parity import SETTINGS, mutated, valid_heads

CASES = corpus.load("head")
_TOKEN_LINE = re.compile(f"([{_python._TCHAR}]+):".encode())
# a value each name accepts on HTTP/1.1 (other names take "v")
_VALID_VALUE = {b"host": b"h", b"content-length": b"0", b"transfer-encoding": b"chunked",
                b"expect": b"100-continue", b"connection": b"keep-alive"}
# other valid values for the second warm-up, so its field lines are not a byte-identical repeat
_OTHER_VALUE = {b"host": b"h2", b"content-length": b"00", b"transfer-encoding": b"chunked",
                b"expect": b"100-continue", b"connection": b"close"}


def field_names(data: bytes) -> list[bytes] | None:
    """The field names of a head's lines, or None when a line does not start with `token:`."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    names = []
    for line in data[:end].split(b"\r\n")[1:]:
        found = _TOKEN_LINE.match(line)
        if found is None:
            return None
        names.append(found[1])
    return names


def warmed_parser(backend, limits: Limits, names: list[bytes]):
    """A parser that has parsed, twice, a valid head with these field names in this order; None
    when no such head is valid under `limits` (both Content-Length and Transfer-Encoding...). The
    second time the values differ where they can (_OTHER_VALUE): a byte-identical repeat of the
    field lines would skip the general way, and no layout would be made (test_repeats.py)."""
    parser = backend.RequestParser(limits)
    for version in (b"HTTP/1.1", b"HTTP/1.0"):
        try:
            for values, default in ((_VALID_VALUE, b"v"), (_OTHER_VALUE, b"w")):
                warm = b"GET / " + version + b"\r\n" + b"".join(
                    name + b": " + values.get(name.lower(), default) + b"\r\n"
                    for name in names) + b"\r\n"
                parser.reset()
                if parser.parse(warm) is None:
                    return None
        except ParseError:
            continue
        parser.reset()
        return parser
    return None


WARMABLE = [case for case in CASES if field_names(case.data)]


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("case", WARMABLE, ids=[case.id for case in WARMABLE])
def test_head_after_the_same_names(case, backend_name):
    backend = get_backend(backend_name)
    parser = warmed_parser(backend, case.limits, field_names(case.data))
    if parser is None:  # no valid head has these names under these limits: nothing to remember
        parser = backend.RequestParser(case.limits)
    outcome, calls = feed_head(backend, case.limits, [case.data], parser=parser)
    check_head_outcome(case, outcome, calls, [case.data])


def test_most_of_the_corpus_goes_through_a_layout():
    """The test above is only worth something if the Python parsers it warms hold a layout."""
    python = get_backend("python")
    with_layout = [case.id for case in WARMABLE
                   if getattr(warmed_parser(python, case.limits, field_names(case.data)),
                              "_layouts", (None,))[0] is not None]
    if not _python._LAYOUTS_SUPPORTED:  # Python 3.10: no possessive quantifiers, no layouts
        assert with_layout == []
        return
    errors = [case for case in WARMABLE if case.error and case.id in set(with_layout)]
    assert len(with_layout) >= 150, len(with_layout)
    assert len(errors) >= 40, len(errors)  # refusals, not only valid heads, meet a layout


BROWSER_GET = (b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test/1.0\r\n"
               b"Accept: */*\r\nCookie: a=1; b=2\r\nConnection: keep-alive\r\n\r\n")


def test_a_layout_takes_the_head_without_the_general_way(monkeypatch):
    """Once made, the layout parses the head alone: with the general field-line regex unusable,
    the warmed parser still returns the same head as a fresh parser did."""
    parser = _python.RequestParser(Limits())
    first = parser.parse(BROWSER_GET)
    parser.reset()
    parser.parse(BROWSER_GET.replace(b"a=1", b"a=0"))  # not byte-identical: no repeat (test_repeats)
    if not _python._LAYOUTS_SUPPORTED:
        assert parser._layouts == (None, None)
        return
    assert parser._layouts[0] is _python._LAYOUTS[
        ("HTTP_HOST", "HTTP_USER_AGENT", "HTTP_ACCEPT", "HTTP_COOKIE", "HTTP_CONNECTION")]

    class Unusable:
        def findall(self, *args):
            raise AssertionError("the general way was taken")
    monkeypatch.setattr(_python, "_FIELD_LINE", Unusable())
    parser.reset()
    again = parser.parse(BROWSER_GET.replace(b"a=1", b"a=2"))
    assert again.headers == {**first.headers, "HTTP_COOKIE": "a=2; b=2"}
    assert again.as_dict() | {"headers": None} == first.as_dict() | {"headers": None}
    # names are compared without regard to ASCII case, as their environ keys are
    parser.reset()
    lower = BROWSER_GET.replace(b"User-Agent", b"user-agent").replace(b"Host:", b"HOST:")
    assert parser.parse(lower).as_dict() == first.as_dict() | {"consumed": len(lower)}
    # a head the layout does not fit (one more field) needs the general way: here, an error
    parser.reset()
    with pytest.raises(AssertionError, match="general way"):
        parser.parse(BROWSER_GET.replace(b"\r\n\r\n", b"\r\nX-More: 1\r\n\r\n"))


def test_two_name_sequences_in_turn_take_their_layouts(monkeypatch):
    """A client alternating two name sequences (a page, then its images) keeps both layouts: once
    both are made, neither needs the general way, and each head is a fresh parser's."""
    page = BROWSER_GET.replace(b"Accept: */*", b"Upgrade-Insecure-Requests: 1")
    parser = _python.RequestParser(Limits())
    for number in range(6):  # each sequence twice makes its layout; different values: no repeats
        parser.reset()
        parser.parse((page, BROWSER_GET)[number % 2].replace(b"a=1", b"a=%d" % number))
    if not _python._LAYOUTS_SUPPORTED:
        assert parser._layouts == (None, None)
        return
    assert {layout.keys[2] for layout in parser._layouts} == {"HTTP_UPGRADE_INSECURE_REQUESTS",
                                                             "HTTP_ACCEPT"}

    class Unusable:
        def findall(self, *args):
            raise AssertionError("the general way was taken")
    monkeypatch.setattr(_python, "_FIELD_LINE", Unusable())
    for number in range(6, 12):
        data = (page, BROWSER_GET)[number % 2].replace(b"a=1", b"a=%d" % number)
        parser.reset()
        fresh = _python.RequestParser(Limits())
        monkeypatch.undo()
        expected = fresh.parse(data).as_dict()
        monkeypatch.setattr(_python, "_FIELD_LINE", Unusable())
        assert parser.parse(data).as_dict() == expected


def test_layouts_are_bounded(monkeypatch):
    """At most _LAYOUTS_MAX layouts; once full, a new one replaces the oldest only after
    _MISSES_PER_REPLACEMENT heads went the general way; a sequence seen once makes none."""
    if not _python._LAYOUTS_SUPPORTED:
        assert _python._record_layout(("HTTP_A",), [("A", "", "1")]) is None
        return
    monkeypatch.setattr(_python, "_LAYOUTS", {})
    monkeypatch.setattr(_python, "_SEEN_ONCE", set())
    monkeypatch.setattr(_python, "_LAYOUTS_MAX", 3)
    monkeypatch.setattr(_python, "_MISSES_PER_REPLACEMENT", 10)
    monkeypatch.setattr(_python, "_misses", 0)

    def accepted(*names):
        keys = tuple(f"HTTP_{name}" for name in names)
        return _python._record_layout(keys, [(name, " ", "v") for name in names])
    assert accepted("A") is None  # first sighting
    made = accepted("A")
    assert made is not None and made.keys == ("HTTP_A",) and accepted("A") is made
    assert made.fullmatch("\na: v\r\n") is not None and made.fullmatch("\nb: v\r\n") is None
    for name in ("B", "C"):
        accepted(name)
        accepted(name)
    assert list(_python._LAYOUTS) == [("HTTP_A",), ("HTTP_B",), ("HTTP_C",)]
    accepted("D")
    assert accepted("D") is None  # full, and fewer than 10 misses since the last replacement
    for _ in range(10):
        accepted("E")
    assert list(_python._LAYOUTS)[-1] == ("HTTP_E",) and ("HTTP_A",) not in _python._LAYOUTS
    assert len(_python._LAYOUTS) == 3
    too_many = tuple(f"N{i}" for i in range(_python._LAYOUT_MAX_FIELDS + 1))
    accepted(*too_many)
    assert accepted(*too_many) is None


CRLF_HEADS = valid_heads().filter(lambda data: b"\n" not in data.replace(b"\r\n", b""))


def test_layout_parity():
    """A warmed parser of each backend and a fresh Python parser agree on mutations of the head
    they were warmed with."""
    c, python = get_backend("c"), get_backend("python")

    @SETTINGS
    @given(seed=CRLF_HEADS, draw=st.data())
    def check(seed, draw):
        names = field_names(seed)
        limits = Limits()
        warmed = {backend.NAME: warmed_parser(backend, limits, names or []) for backend in (c, python)}
        data = draw.draw(mutated(st.just(seed)))
        reference = typed(parse_once(python.RequestParser(limits), data))
        for name, parser in warmed.items():
            if parser is not None:
                assert typed(parse_once(parser, data)) == reference, (name, data)

    check()
