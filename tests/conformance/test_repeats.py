"""The corpus again, through parsers that have just parsed the very same head.

Theory of operation
-------------------
On a keep-alive connection a client usually sends the same field values request after request, and
both backends take a shortcut for it:

* the C backend keeps, per parser, the values it last packed for a remembered name sequence
  (csrc/binding.c fw_keep_values); when the next head's names and values are exactly those, C writes
  only the request fields and the parser returns a `_cffi.RepeatHead`, whose environ is a copy of a
  per-source template (the base plus the fields' variables) with the request's variables set; when
  a few values differ from those kept, C writes only those (FW_HEAD_CHANGED) and the parser returns
  a `_cffi.ChangedHead`, the same copy with those values stored over it;
* the Python backend's fast path keeps the last origin-form head it built and its field block as
  text: a head whose field block is the same text, under the same HTTP version and again with an
  origin-form target, gets that head's headers dict and framing facts (`_python._repeat_head`),
  with no field line matched or checked again.

That must change nothing but the cost, so:

* every head case is parsed three times by one parser (each head's environ built over the
  conformance base, so the later ones take the template), then a fourth time checked against the
  corpus, on both backends; likewise after three parses of the same head with one field value
  changed (`one_value_changed`);
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
from fastwsgi.parser._types import NOTHING_KEPT, REPEAT_MAX_HEAD

from . import corpus
from .runner import BACKENDS, check_head_outcome, feed_head, head_outcome, parse_once, typed
from .test_parity import SETTINGS, mutated, valid_heads

CASES = corpus.load("head")
BROWSER_GET = (b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test/1.0\r\n"
               b"Accept: */*\r\nCookie: a=1; b=2\r\nContent-Length: 0\r\n\r\n")


def parsed_three_times(backend, limits: Limits, data: bytes, keep_whole: bool = True):
    """A parser that has parsed `data` three times (outcomes with environs, as the corpus checks
    them), reset for the next request. By then both backends keep its field lines (C keeps values
    from the second parse on) and, when the last parse took them as a repeat, the head itself whole
    (_types.REPEAT_MAX_HEAD); without `keep_whole` the parser forgets the head kept whole, so that
    the next parse of `data` takes the field-line repeat."""
    parser = backend.RequestParser(limits)
    for _ in range(3):
        parse_once(parser, data)
        parser.reset()
    if not keep_whole:
        parser._kept_len, parser._kept_bytes, parser._kept_head = NOTHING_KEPT
    return parser


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("keep_whole", [False, True], ids=["field lines repeat", "head kept whole"])
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_head_after_the_same_head(case, keep_whole, backend_name):
    backend = get_backend(backend_name)
    parser = parsed_three_times(backend, case.limits, case.data, keep_whole)
    outcome, calls = feed_head(backend, case.limits, [case.data], parser=parser)
    check_head_outcome(case, outcome, calls, [case.data])


def took_the_repeat_path(backend, parser, data: bytes) -> bool:
    """parse(data) gave a head that reuses the kept field lines (not necessarily parsed anew: the
    head kept whole is one too)."""
    try:
        head = parser.parse(data)
    except ParseError:
        return False
    if backend.NAME == "c":
        return type(head).__name__ == "RepeatHead"
    source = parser._source
    return source is not None and head is not source and head.headers is source.headers


def took_the_kept_head(parser, data: bytes) -> bool:
    """parse(data) returned the head the parser kept whole, without parsing."""
    kept = parser._kept_head
    try:
        return kept is not None and parser.parse(data) is kept
    except ParseError:
        return False


FRAMING_NAMES = {b"host", b"content-length", b"transfer-encoding", b"connection", b"expect", b"upgrade"}


def one_value_changed(data: bytes) -> bytes | None:
    """`data` with the last letter or digit of its last field value (of a name that does not frame
    the request) changed to another of its kind, or None when there is none."""
    end = data.find(b"\r\n\r\n")
    lines = data[:end].split(b"\r\n") if end > 0 else []
    for number in range(len(lines) - 1, 0, -1):
        name, colon, value = lines[number].partition(b":")
        if not colon or name.strip().lower() in FRAMING_NAMES:
            continue
        for at in range(len(value) - 1, -1, -1):
            char = value[at:at + 1]
            if char.isalnum():
                other = b"0" if char == b"9" else b"a" if char == b"z" else bytes([char[0] + 1])
                lines[number] = name + colon + value[:at] + other + value[at + 1:]
                return b"\r\n".join(lines) + data[end:]
    return None


CHANGEABLE = [(case, one_value_changed(case.data)) for case in CASES if one_value_changed(case.data)]


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("case, warm", CHANGEABLE, ids=[case.id for case, _ in CHANGEABLE])
def test_head_after_the_same_names_with_a_value_changed(case, warm, backend_name):
    backend = get_backend(backend_name)
    parser = parsed_three_times(backend, case.limits, warm)
    outcome, calls = feed_head(backend, case.limits, [case.data], parser=parser)
    check_head_outcome(case, outcome, calls, [case.data])


def test_most_changeable_heads_of_the_corpus_take_the_change_path():
    """The test above is worth something for the C backend only if it writes just the changed
    values for many of them (the Python backend has no such path: it parses them in full)."""
    backend = get_backend("c")
    changed = []
    for case, warm in CHANGEABLE:
        if case.expected is None or case.error:
            continue
        parser = parsed_three_times(backend, case.limits, warm)
        if type(parser.parse(case.data)).__name__ == "ChangedHead":
            changed.append(case.id)
    # most corpus heads have one or two fields (FW_HEAD_CHANGED_MAX allows no change of one value)
    assert len(changed) >= 20, (len(changed), len(CHANGEABLE))


UPLOAD = (b"POST /u?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\nContent-Length: 5\r\n"
          b"Connection: keep-alive\r\nExpect: 100-continue\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n")
FRAMING_CHANGES = [  # (what changes, the head): one or two values of UPLOAD's, the same names
    ("Content-Length", UPLOAD.replace(b"Length: 5", b"Length: 1234567")),
    ("Content-Length 0", UPLOAD.replace(b"Length: 5", b"Length: 0")),
    ("Connection: close", UPLOAD.replace(b"keep-alive", b"close")),
    ("Expect in other case", UPLOAD.replace(b"100-continue", b"100-Continue")),
    ("Host", UPLOAD.replace(b"example.com", b"other.example:8080")),
    ("a joined value", UPLOAD.replace(b"b=2", b"b=3")),
    ("target, Content-Length and Cookie", UPLOAD.replace(b"/u?x=1", b"/v").replace(b"Length: 5", b"Length: 7")
     .replace(b"a=1", b"a=%")),
    ("HTTP/1.0", UPLOAD.replace(b"HTTP/1.1", b"HTTP/1.0").replace(b"keep-alive", b"x")),
]


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_values_that_frame_the_request_change(backend_name):
    """Each of FRAMING_CHANGES after UPLOAD was kept, then after each other (there and back through
    one parser, each head a change of the one before): the head (Content-Length, keep-alive,
    100-continue...) and environ a fresh parser gives; the C backend writes only the changed values
    for each."""
    backend = get_backend(backend_name)
    parser = parsed_three_times(backend, Limits(), UPLOAD)
    kinds = []
    for differs, data in FRAMING_CHANGES + FRAMING_CHANGES[-2::-1]:
        parser.reset()
        head = parser.parse(data)
        kinds.append(type(head).__name__)
        assert typed(head_outcome(head)) == typed(parse_once(
            get_backend("python").RequestParser(Limits()), data)), differs
        assert head.headers == get_backend("python").RequestParser(Limits()).parse(data).headers, differs
    if backend_name == "c":
        assert kinds == ["ChangedHead"] * len(kinds)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_a_value_changed_for_good_is_kept(backend_name):
    """A client alternating two heads keeps the first's values (the second is a change each time);
    a value changed for good (a cookie set once) is kept after the same change twice in a row,
    and the heads after it repeat. Every head is what a fresh parser gives. (Each target is new,
    so that no head is one kept whole: this is about the field values.)"""
    backend = get_backend(backend_name)
    cookie_set = UPLOAD.replace(b"a=1", b"a=2; session=9f86d081")
    parser = parsed_three_times(backend, Limits(), UPLOAD)
    kinds = []
    sequence = [cookie_set, UPLOAD, cookie_set, UPLOAD, cookie_set, cookie_set, cookie_set, UPLOAD]
    for number, data in enumerate(sequence):
        data = data.replace(b"/u?x=1", b"/u?x=%d" % (number + 2))
        parser.reset()
        head = parser.parse(data)
        kinds.append(type(head).__name__)
        assert typed(head_outcome(head)) == typed(parse_once(
            get_backend("python").RequestParser(Limits()), data))
    if backend_name == "c":
        assert kinds == ["ChangedHead", "RepeatHead", "ChangedHead", "RepeatHead",
                         "ChangedHead", "PackedHead", "RepeatHead", "ChangedHead"]


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_most_valid_heads_of_the_corpus_repeat(backend_name):
    """test_head_after_the_same_head is only worth something if its parsers take the field-line
    repeat (and parse), or return the head kept whole, for most heads."""
    backend = get_backend(backend_name)
    valid = [case for case in CASES if case.expected is not None and not case.error]
    repeated = [case.id for case in valid if took_the_repeat_path(
        backend, parsed_three_times(backend, case.limits, case.data, keep_whole=False), case.data)]
    kept = [case.id for case in valid if took_the_kept_head(
        parsed_three_times(backend, case.limits, case.data), case.data)]
    assert len(repeated) >= 100, (len(repeated), len(valid))
    assert len(kept) >= 100 and set(kept) <= set(repeated), (len(kept), set(kept) - set(repeated))


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


def fresh_outcome(data: bytes):
    return typed(parse_once(get_backend("python").RequestParser(Limits()), data))


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_a_head_kept_whole_is_taken_only_for_its_very_bytes(backend_name):
    """A parser returns the head it kept whole exactly when the buffer starts with that head's bytes
    (alone, in pieces, or with the next request behind it); a head differing from it in any one byte
    is parsed, and gets what a fresh parser gives (or its error)."""
    backend = get_backend(backend_name)
    parser = parsed_three_times(backend, Limits(), BROWSER_GET)
    kept = parser._kept_head
    assert kept is not None and kept.consumed == len(BROWSER_GET)

    following = b"GET /next HTTP/1.1\r\nHost: example.com\r\n\r\n"
    for data in (BROWSER_GET, BROWSER_GET + following, BROWSER_GET + b"\r\n"):
        parser.reset()
        assert parser.parse(data) is kept
    parser.reset()
    assert parser.parse(BROWSER_GET[:-1]) is None  # not complete yet
    assert parser.parse(bytearray(BROWSER_GET)) is kept
    assert parser.parse(b"anything") is kept  # sticky until reset, as for any head
    parser.reset()
    assert typed(parse_once(parser, following)) == fresh_outcome(following)

    parser = parsed_three_times(backend, Limits(), BROWSER_GET)
    taken = 0
    for at in range(len(BROWSER_GET)):
        for other in {b"X", b" ", b"\n", b"\x00", bytes([BROWSER_GET[at] ^ 0x20])} - {BROWSER_GET[at:at + 1]}:
            data = BROWSER_GET[:at] + other + BROWSER_GET[at + 1:]
            parser.reset()
            assert typed(parse_once(parser, data)) == fresh_outcome(data), (at, other)
            parser.reset()
            taken += took_the_kept_head(parser, BROWSER_GET)  # unless one replaced it
    assert taken > len(BROWSER_GET)
    cut = BROWSER_GET[:-2] + b"X-More: 1\r\n\r\n"  # the kept head without its end, then more
    parser.reset()
    assert typed(parse_once(parser, cut)) == fresh_outcome(cut)


@pytest.mark.parametrize("method", ["parse", "parse_next"])
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_an_error_stays_until_reset_even_before_the_head_kept_whole(backend_name, method):
    """A parser that raised a ParseError raises it again for any buffer until reset(), the head it
    kept whole included (it was taken before the C call, and so before C's sticky error); after
    reset() that head is taken again."""
    backend = get_backend(backend_name)
    parser = parsed_three_times(backend, Limits(), BROWSER_GET)
    kept = parser._kept_head
    call = getattr(parser, method)
    with pytest.raises(ParseError) as first:
        call(b"\x01bad / HTTP/1.1\r\n\r\n")
    for data in (BROWSER_GET, bytearray(BROWSER_GET), BROWSER_GET + BROWSER_GET):
        with pytest.raises(ParseError) as again:
            call(data)
        assert (again.value.code, again.value.status) == (first.value.code, first.value.status)
    parser.reset()
    assert call(BROWSER_GET) is kept


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
    parser._layouts = (Unusable(), Unusable())
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
    for turn_base in (other, other, other, base, other, base):  # a base's first, second, third...
        parser.reset()
        environ = parser.parse(BROWSER_GET).environ(turn_base)
        assert environ == fresh_environ(BROWSER_GET, turn_base)
        environ["HTTP_COOKIE"] = "changed"
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


FIELD_POOLS = [  # the same names in every head, each value one of a few: repeats, changes, misses
    (b"Host", [b"a.example", b"b.example:81"]),
    (b"User-Agent", [b"x/1", b"y/2"]),
    (b"Accept", [b"*/*", b"text/html"]),
    (b"Cookie", [b"a=1", b"b=2", b""]),
    (b"Content-Length", [b"0", b"12"]),
    (b"Connection", [b"keep-alive", b"close"]),
    (b"Cookie", [b"c=3", b"d=%41"]),
    (b"X-Trace", [b"1", b"22", b"333"]),
]


def test_sequences_of_heads_with_a_few_values_changed():
    """One parser of each backend takes a sequence of heads with the same field names and values
    drawn from small pools (so values repeat, a few change, or many do); every outcome is a fresh
    Python parser's, and the C backend met some of each kind."""
    backends = [get_backend(name) for name in ("c", "python")]
    kinds = set()

    @SETTINGS
    @given(st.lists(st.tuples(st.sampled_from([b"/", b"/a?b", b"/%7e"]),
                              st.tuples(*[st.sampled_from(values) for _, values in FIELD_POOLS])),
                    min_size=2, max_size=12))
    def check(sequence):
        parsers = [backend.RequestParser(Limits()) for backend in backends]
        for target, values in sequence:
            data = b"GET " + target + b" HTTP/1.1\r\n" + b"".join(
                name + b": " + value + b"\r\n" for (name, _), value in zip(FIELD_POOLS, values)) + b"\r\n"
            reference = typed(parse_once(backends[1].RequestParser(Limits()), data))
            for parser in parsers:
                parser.reset()
                assert typed(parse_once(parser, data)) == reference, (parser, data)
            kinds.add(type(parsers[0].parse(data)).__name__)

    check()
    assert {"PackedHead", "RepeatHead", "ChangedHead"} <= kinds, kinds
