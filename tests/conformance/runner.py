"""How corpus cases are fed to a backend: split strategies and one driver per kind.

Theory of operation
-------------------
The spec promises the same outcome however the input is split (docs/parser-spec.md, first
paragraph), so every head and chunked case is run once per split strategy:

    whole      one piece
    bytewise   one byte per piece
    lines      a cut after every LF (so after every CRLF)
    cr         a cut after every CR (the terminator arrives in two pieces)
    randomK    K = 0..4: 1-12 cuts at positions drawn from a PRNG seeded with the case id and K,
               so a failure reproduces exactly

The head driver grows ONE bytearray piece by piece and calls parse(buf) after each piece, as the
server does with its receive buffer; it drives a RequestParser or, for uwsgi packets, a
UwsgiParser (same interface), and `check_head_outcome` holds the assertions both corpora share. The chunked driver passes the unconsumed bytes again followed
by the next piece and concatenates the decoded data. Both report the outcome as plain values so the
tests (and the parity test) compare with ==; only ParseError counts as a rejection, anything else
(TypeError, IndexError, ...) propagates and fails the test as a crash.
"""

from __future__ import annotations

import random

from fastwsgi.errors import ParseError
from fastwsgi.parser import Head

BACKENDS = ("python", "c")
STRATEGIES = ("whole", "bytewise", "lines", "cr") + tuple(f"random{k}" for k in range(5))


def split(data: bytes, strategy: str, seed: str) -> list[bytes]:
    """Cut `data` into pieces per `strategy`; never returns an empty list."""
    if strategy == "whole" or len(data) < 2:
        return [data]
    if strategy == "bytewise":
        return [data[i:i + 1] for i in range(len(data))]
    if strategy in ("lines", "cr"):
        end = b"\n" if strategy == "lines" else b"\r"
        cuts = [i + 1 for i in range(len(data) - 1) if data[i:i + 1] == end]
    elif strategy.startswith("random"):
        rng = random.Random(f"{seed}:{strategy}")
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 12))))
    else:
        raise ValueError(strategy)
    bounds = [0] + cuts + [len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def typed(value):
    """Make == type-strict (True != 1, "1" != 1) for comparing results."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    return (type(value).__name__, value)


# ---- heads ---------------------------------------------------------------------------------------

def feed_head(backend, limits, pieces, parser_class: str = "RequestParser", parser=None,
              method: str = "parse"):
    """Feed pieces to one RequestParser (or `parser_class`) through one growing bytearray; a given
    `parser` (already reset, or after a Head from parse_next) is used instead of a new one, and
    `method` names the parser's call (parse, or parse_next: the server's).

    Returns (outcome, calls) where outcome is ("head", Head.as_dict()), ("error", code, status) or
    ("incomplete",), and calls lists (buffer length, result kind) per parse() call.
    """
    if parser is None:
        parser = getattr(backend, parser_class)(limits)
    parse = getattr(parser, method)
    buf = bytearray()
    calls = []
    for piece in pieces:
        buf += piece
        try:
            result = parse(buf)
        except ParseError as exc:
            calls.append((len(buf), "error"))
            return ("error", exc.code, exc.status), calls
        if result is None:
            calls.append((len(buf), "none"))
            continue
        if not isinstance(result, Head):
            raise AssertionError(f"parse() returned {type(result).__name__}, not Head or None")
        calls.append((len(buf), "head"))
        return head_outcome(result), calls
    return ("incomplete",), calls


# What the server's listener puts in every environ; a head's variables go over it.
ENVIRON_BASE = {"SCRIPT_NAME": "", "SERVER_NAME": "127.0.0.1", "REQUEST_METHOD": "BASE",
                "wsgi.url_scheme": "http"}


def head_outcome(head: Head) -> tuple:
    """("head", as_dict, environ): the environ (head.environ over ENVIRON_BASE) is part of the
    outcome, so both backends must build the same one too (the C backend's comes from its packed
    keys and values, the Python one's from its headers dict)."""
    environ = head.environ(ENVIRON_BASE)
    assert ENVIRON_BASE["REQUEST_METHOD"] == "BASE"  # a copy, never the base itself
    return ("head", head.as_dict(), environ)


def expected_environ(expected: dict) -> dict:
    """The environ a case's expected head implies: the base, its headers, its request variables."""
    return {**ENVIRON_BASE, **expected["headers"], "REQUEST_METHOD": expected["method"],
            "PATH_INFO": expected["path"], "QUERY_STRING": expected["query"],
            "RAW_URI": expected["target"], "REQUEST_URI": expected["target"],
            "SERVER_PROTOCOL": expected["version"]}


def describe(case) -> str:
    return f"\n{case.file} line {case.line} ({case.ref})\ninput: {case.data[:300]!r}"


def check_head_outcome(case, outcome, calls, pieces) -> None:
    """Assert a feed_head result against a head or uwsgi case: the outcome, and that a head is
    reported by the first call whose buffer holds all of it, every earlier call returning None."""
    if case.error:
        assert outcome == ("error", *case.error), describe(case)
    elif case.expected is None:
        assert outcome == ("incomplete",), describe(case)
    else:
        assert outcome[0] == "head", f"expected a head, got {outcome}" + describe(case)
        assert typed(outcome[1]) == typed(case.expected), describe(case)
        assert typed(outcome[2]) == typed(expected_environ(case.expected)), describe(case)
        consumed = case.expected["consumed"]
        fed_before_last = calls[-1][0] - len(pieces[len(calls) - 1])
        assert fed_before_last < consumed <= calls[-1][0], (calls[-1], describe(case))
    assert all(kind == "none" for _length, kind in calls[:-1])


def check_parse_next(backend, cases, strategy: str, passes: int,
                     parser_class: str = "RequestParser") -> None:
    """parse_next(), the server's one call per head: every case through one parser per Limits,
    `passes` times in a row, fed in pieces, with no reset() after a Head. Every outcome must be the
    corpus's, arriving when check_head_outcome requires. An error must be sticky, as parse()'s, and
    an error or an incomplete case is followed by reset(), as the server closes such a connection
    and resets its parser before reusing it."""
    parsers = {}
    for case in cases:
        parser = parsers.setdefault(case.limits, getattr(backend, parser_class)(case.limits))
        pieces = split(case.data, strategy, case.id)
        for _ in range(passes):
            outcome, calls = feed_head(backend, case.limits, pieces, parser=parser,
                                       method="parse_next")
            check_head_outcome(case, outcome, calls, pieces)
            if outcome[0] == "error":
                assert parse_once(parser, b"\x01garbage", "parse_next") == outcome, case.id
            if outcome[0] != "head":
                parser.reset()


def parse_once(parser, data, method: str = "parse"):
    """One parse() (or `method`) call with `data` as bytes; the outcome in feed_head's form."""
    try:
        result = getattr(parser, method)(bytes(data))
    except ParseError as exc:
        return ("error", exc.code, exc.status)
    return ("incomplete",) if result is None else head_outcome(result)


# ---- chunked bodies ------------------------------------------------------------------------------

def feed_chunked(backend, limits, pieces, use_bytearray: bool = False):
    """Feed pieces to one ChunkedDecoder, re-passing unconsumed bytes before each new piece.

    Returns ("body", data, consumed, done) or ("error", code, status).
    """
    decoder = backend.ChunkedDecoder(limits)
    pending = b""
    data = bytearray()
    consumed = 0
    for piece in pieces:
        buf = pending + piece
        if use_bytearray:
            buf = bytearray(buf)
        try:
            out, used = decoder.decode(buf)
        except ParseError as exc:
            return ("error", exc.code, exc.status)
        if not (isinstance(used, int) and 0 <= used <= len(buf)):
            raise AssertionError(f"decode() consumed {used!r} of {len(buf)} bytes")
        data += out
        consumed += used
        pending = bytes(buf[used:])
    if type(decoder.done) is not bool:
        raise AssertionError(f"done is {decoder.done!r}, not a bool")
    return ("body", bytes(data), consumed, decoder.done)


# ---- response heads ------------------------------------------------------------------------------

def call_serializer(backend, args: dict):
    """Returns ("bytes", output) or ("error", code)."""
    from fastwsgi.errors import ResponseError
    try:
        out = backend.serialize_head(args["status"], args["headers"], date=args["date"],
                                     server=args["server"], chunked=args["chunked"],
                                     connection=args["connection"])
    except ResponseError as exc:
        return ("error", exc.code)
    if type(out) is not bytes:
        raise AssertionError(f"serialize_head returned {type(out).__name__}, not bytes")
    return ("bytes", out)
