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
server does with its receive buffer. The chunked driver passes the unconsumed bytes again followed
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

def feed_head(backend, limits, pieces):
    """Feed pieces to one RequestParser through one growing bytearray.

    Returns (outcome, calls) where outcome is ("head", Head.as_dict()), ("error", code, status) or
    ("incomplete",), and calls lists (buffer length, result kind) per parse() call.
    """
    parser = backend.RequestParser(limits)
    buf = bytearray()
    calls = []
    for piece in pieces:
        buf += piece
        try:
            result = parser.parse(buf)
        except ParseError as exc:
            calls.append((len(buf), "error"))
            return ("error", exc.code, exc.status), calls
        if result is None:
            calls.append((len(buf), "none"))
            continue
        if type(result) is not Head:
            raise AssertionError(f"parse() returned {type(result).__name__}, not Head or None")
        calls.append((len(buf), "head"))
        return ("head", result.as_dict()), calls
    return ("incomplete",), calls


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
