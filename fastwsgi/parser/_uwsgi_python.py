"""Pure-Python twin of csrc/uwsgi.c: the uwsgi packet parser (docs/uwsgi-spec.md).

Theory of operation
-------------------
A uwsgi packet is a 4-byte header (modifier1, datasize u16 LE, modifier2) and a block of
length-prefixed key/value pairs holding the CGI variables a front end (nginx `uwsgi_pass`) already
extracted from the client's request. `UwsgiParser` has the interface of `RequestParser`:
`parse(buf)` gets everything received so far and returns None (incomplete), a `Head`, or raises
`ParseError`; errors are sticky until `reset()`.

Parsing is stateless apart from the sticky result: before the block is complete only the header
bytes are looked at (O(1) per call), and the block is parsed once, when it is all in. The spec's
checks run in its order, so the first failing rule decides the error whatever the split:

1. modifiers (each as soon as its byte is in), 2. the packet size against `max_head_size`,
3. `_split_block`: the block's structure as a whole (sizes inside the block, keys non-empty
   visible ASCII), 4. `_check_pairs`: per pair in block order (value bytes, value length, counts, a
   repeated CONTENT_LENGTH; any other CGI key sent again is nginx's uwsgi_param override, whose
   last value wins, as uWSGI takes it), 5. `_check_required`: REQUEST_METHOD, CONTENT_LENGTH,
   SERVER_PROTOCOL.

The block is decoded once and the keys and values are slices of it; rule 4 is first proved for
all pairs at once with a few whole-list operations (one regex over the joined values, max of the
lengths, a count of CONTENT_LENGTH), and only when that fails does a pair-by-pair walk name the
first error, so the common case costs a handful of C-level passes.

`environ_of` (repeated HTTP_ keys joined with "," but HTTP_COOKIE with "; ", any other repeated key
with its last value; HTTP_CONTENT_LENGTH, HTTP_CONTENT_TYPE and "wsgi."-prefixed keys dropped,
following the `key_plan` of the packet's keys, cached per key sequence since a front end sends the
same keys request after request) and `build_head` (defaults for absent PATH_INFO, QUERY_STRING,
REQUEST_URI, SERVER_PROTOCOL) turn checked variables into the Head; the C backend's wrapper
(_uwsgi_c.py) uses them too, on the variables the C core has checked, so the Head is assembled by
one piece of code for both backends.
"""

from __future__ import annotations

import re

from ..errors import ParseError
from ._types import Head, Limits, StickyParser

__all__ = ["UwsgiParser", "environ_of", "key_plan", "build_head", "MAX_CGI_VARS"]

MAX_CGI_VARS = 64  # FW_UWSGI_MAX_CGI_VARS in csrc/fastwsgi.h
_MAX_INT63 = (1 << 63) - 1

# key bytes: visible ASCII (0x21-0x7E); each key has at least one (checked apart)
_KEY_CHARS = re.compile(r"[\x21-\x7e]+")
# a value may hold any byte but CR, LF and NUL (they could split a header or an environ string)
_BAD_VALUE_BYTE = re.compile(r"[\r\n\x00]")
# method = token (RFC 9110 §9.1, §5.6.2)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DIGITS = re.compile(r"[0-9]+")
_VERSION = re.compile(r"HTTP/[0-9]\.[0-9]")


def _split_block(block: bytes) -> tuple[list[str], list[str]]:
    """Rule 3: the keys and values of a vars block, latin-1 decoded, or UWSGI_BAD_VARS."""
    text = block.decode("latin-1")  # once: keys and values are slices of it
    keys, values = [], []
    pos, end = 0, len(block)
    while pos < end:
        if end - pos < 2:
            raise ParseError("UWSGI_BAD_VARS")  # the block ends inside a key size
        key_end = pos + 2 + (block[pos] | block[pos + 1] << 8)
        if key_end + 2 > end:
            raise ParseError("UWSGI_BAD_VARS")  # key or value size runs past the block
        value_end = key_end + 2 + (block[key_end] | block[key_end + 1] << 8)
        if value_end > end:
            raise ParseError("UWSGI_BAD_VARS")
        keys.append(text[pos + 2:key_end])
        values.append(text[key_end + 2:value_end])
        pos = value_end
    if not all(keys) or (keys and _KEY_CHARS.fullmatch("".join(keys)) is None):
        raise ParseError("UWSGI_BAD_VARS")  # an empty key, or a byte outside 0x21-0x7E
    return keys, values


def _check_pairs(keys, values, limits: Limits) -> None:
    """Rule 4, pair by pair in block order: the first failing pair decides.

    The common case (no rule broken anywhere) is proved with a few whole-list operations; only
    when one of them fails does the loop below walk the pairs in order to name the first error.
    """
    cgi_keys = [key for key in keys if not key.startswith("HTTP_")]
    http_count = len(keys) - len(cgi_keys)
    if (_BAD_VALUE_BYTE.search("".join(values)) is None
            and max(map(len, values), default=0) <= min(limits.max_header_line,
                                                        limits.max_request_line)
            and http_count <= limits.max_header_count and len(cgi_keys) <= MAX_CGI_VARS
            and cgi_keys.count("CONTENT_LENGTH") <= 1):
        return
    http_count = cgi_count = 0
    seen_length = False
    for key, value in zip(keys, values):
        if _BAD_VALUE_BYTE.search(value) is not None:
            raise ParseError("BAD_HEADER_VALUE")
        if key == "REQUEST_URI":
            if len(value) > limits.max_request_line:
                raise ParseError("URI_TOO_LONG")
        elif len(value) > limits.max_header_line:
            raise ParseError("HEADER_LINE_TOO_LONG")
        if key.startswith("HTTP_"):
            http_count += 1
            if http_count > limits.max_header_count:
                raise ParseError("TOO_MANY_HEADERS")
        else:
            if cgi_count >= MAX_CGI_VARS:
                raise ParseError("TOO_MANY_HEADERS")
            cgi_count += 1
            if key == "CONTENT_LENGTH":
                if seen_length:
                    raise ParseError("UWSGI_DUPLICATE_VAR")  # the body's framing must be unambiguous
                seen_length = True


def _check_required(env: dict) -> int:
    """Rule 5: REQUEST_METHOD, CONTENT_LENGTH, SERVER_PROTOCOL; returns the content length."""
    method = env.get("REQUEST_METHOD")
    if not method or _TOKEN.fullmatch(method) is None:
        raise ParseError("BAD_METHOD")
    content_length = -1
    text = env.get("CONTENT_LENGTH")
    if text:  # absent or empty: no body
        if _DIGITS.fullmatch(text) is None:
            raise ParseError("BAD_CONTENT_LENGTH")
        significant = text.lstrip("0")  # leading zeros are fine; int() refuses > 4300 digits
        content_length = int(significant or "0") if len(significant) <= 19 else _MAX_INT63 + 1
        if content_length > _MAX_INT63:
            raise ParseError("BAD_CONTENT_LENGTH")
    version = env.get("SERVER_PROTOCOL")
    if version is not None and _VERSION.fullmatch(version) is None:
        raise ParseError("BAD_VERSION")
    return content_length


# Never in the environ: CGI carries these two as CONTENT_LENGTH / CONTENT_TYPE (RFC 3875 §4.1.18;
# the HTTP parser never makes them, and nginx sends both forms), and the "wsgi." prefix belongs to
# the server (PEP 3333): a front end's variable never replaces wsgi.errors or the like.
_DROPPED_KEYS = frozenset(("HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE"))
_RESERVED_PREFIX = "wsgi."

# keys tuple -> key_plan(keys): a front end sends the same keys request after request
_PLANS: dict = {}
_PLANS_SIZE = 64


def key_plan(keys: tuple) -> tuple:
    """(keys, fixups) for a packet's keys: fixups is None when the environ is dict(zip(keys, values))
    as it is (no HTTP_ key repeated, none dropped: the common case), else (repeats, dropped):
    repeats is ((key, indexes), ...) for every HTTP_ key that occurs more than once, in
    first-occurrence order (any other repeated key keeps its last value: nginx's uwsgi_param
    override); dropped the keys the environ never gets."""
    plan = _PLANS.get(keys)
    if plan is None:
        positions: dict = {}
        for index, key in enumerate(keys):
            positions.setdefault(key, []).append(index)
        repeats = tuple((key, tuple(indexes)) for key, indexes in positions.items()
                        if len(indexes) > 1 and key.startswith("HTTP_"))
        dropped = tuple(key for key in positions
                        if key in _DROPPED_KEYS or key.startswith(_RESERVED_PREFIX))
        plan = (keys, (repeats, dropped) if repeats or dropped else None)
        if len(_PLANS) >= _PLANS_SIZE:
            _PLANS.clear()
        _PLANS[keys] = plan
    return plan


def environ_of(plan: tuple, values) -> dict:
    """The packet's variables (`values` in block order; items beyond the keys are ignored) as a
    dict in block order, following `plan` = key_plan(keys): without the dropped keys, and a repeated
    HTTP_ key (nginx sends one var per header line) gets its values joined with "," (HTTP_COOKIE: "; ")
    in order, under its first position; any other repeated key has its last value there."""
    keys, fixups = plan
    env = dict(zip(keys, values))  # a repeated key keeps its first position, with its last value
    if fixups is not None:
        repeats, dropped = fixups
        for key, indexes in repeats:
            # Cookie with "; " as the HTTP parser joins it (RFC 9113 §8.2.3)
            env[key] = ("; " if key == "HTTP_COOKIE" else ",").join([values[index] for index in indexes])
        for key in dropped:
            del env[key]
    return env


_new_head = object.__new__


def build_head(consumed: int, env: dict, content_length: int) -> Head:
    """The Head of docs/uwsgi-spec.md from a packet's checked variables (its slots are filled in
    place: cheaper than the 13-argument __init__)."""
    head = _new_head(Head)
    head.consumed = consumed
    head.method = env["REQUEST_METHOD"]
    head.path = path = env.get("PATH_INFO", "")
    head.query = query = env.get("QUERY_STRING", "")
    target = env.get("REQUEST_URI")
    head.target = target if target is not None else path + "?" + query if query else path
    head.version = version = env.get("SERVER_PROTOCOL", "HTTP/1.0")
    head.minor = ord(version[7]) - 48
    head.headers = env
    head.content_length = content_length
    head.chunked = head.keep_alive = head.expect_continue = head.upgrade = False
    return head


class UwsgiParser(StickyParser):
    """uwsgi packet parser; same interface as RequestParser (parse(buf) -> None | Head)."""

    __slots__ = ()

    def _parse(self, buf) -> Head | None:
        length = len(buf)
        if length == 0:
            return None
        if buf[0] != 0:
            raise ParseError("UWSGI_BAD_MODIFIER")  # rule 1: modifier1 0 is a WSGI request
        if length < 4:
            return None
        if buf[3] != 0:
            raise ParseError("UWSGI_BAD_MODIFIER")
        end = 4 + (buf[1] | buf[2] << 8)
        if end > self._limits.max_head_size:
            raise ParseError("HEAD_TOO_LARGE")  # rule 2
        if length < end:
            return None
        keys, values = _split_block(bytes(buf[4:end]))
        _check_pairs(keys, values, self._limits)
        env = environ_of(key_plan(tuple(keys)), values)
        return build_head(end, env, _check_required(env))
