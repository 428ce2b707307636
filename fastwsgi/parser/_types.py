"""Value types shared by both parser backends: the caller's limits and the parsed head.

Both backends build exactly these objects, so the server (and the parity tests) never know which
backend produced a result. See docs/parser-spec.md for what each field means.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ParseError

__all__ = ["Limits", "Head", "KeepsItsHead", "StickyParser", "REPEAT_MAX_HEAD", "NOTHING_KEPT"]

# Both backends keep the last head's field lines (C: its values; Python: its field block) so that a
# head repeating them reuses that head's strings. And they keep the last head that did so, whole
# (its bytes and its Head): a buffer starting with exactly those bytes holds that head again, so
# the parser returns that Head without parsing (a Head depends only on its bytes and the parser's
# Limits, and is never changed once returned). Both only for heads up to this size, so an idle
# connection never holds more than this for each however large the head it sent.
REPEAT_MAX_HEAD = 8192
# A parser's (_kept_len, _kept_bytes, _kept_head) while it keeps no head whole: no buffer's first 0
# bytes are b"-", so `buf[:kept_len] == kept_bytes` never holds.
NOTHING_KEPT = (0, b"-", None)


@dataclass(frozen=True)
class Limits:
    max_request_line: int = 8190
    max_header_line: int = 8190
    max_header_count: int = 100
    max_head_size: int = 65536
    max_chunk_line: int = 4096
    allow_bare_lf: bool = False
    allow_missing_host: bool = False


class Head:
    """A complete, validated request head.

    `environ(base)` is the request's WSGI environ on top of a copy of `base`. The C backend returns
    a subclass (_cffi.PackedHead) that keeps the CGI variables as the key tuple and value list it
    gets from C and builds `headers` only on demand: same attributes, same results. Its RepeatHead
    (the same field values as the parser's previous head) may copy a template made from `base` by
    an earlier head: a base must not change once it has been used (the server fills each
    connection's base before its first request).
    """

    __slots__ = (
        "consumed", "method", "target", "path", "query", "version", "minor", "headers",
        "content_length", "chunked", "keep_alive", "expect_continue", "upgrade",
    )

    def __init__(self, consumed, method, target, path, query, version, minor, headers,
                 content_length, chunked, keep_alive, expect_continue, upgrade):
        self.consumed = consumed
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.version = version
        self.minor = minor
        self.headers = headers
        self.content_length = content_length
        self.chunked = chunked
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.upgrade = upgrade

    def environ(self, base: dict) -> dict:
        """A new dict: `base`, then this request's CGI variables over it (the header fields',
        REQUEST_METHOD, PATH_INFO, QUERY_STRING, RAW_URI, REQUEST_URI, SERVER_PROTOCOL)."""
        environ = base | self.headers  # copy and merge in one operation
        environ["REQUEST_METHOD"] = self.method
        environ["PATH_INFO"] = self.path
        environ["QUERY_STRING"] = self.query
        environ["RAW_URI"] = environ["REQUEST_URI"] = self.target
        environ["SERVER_PROTOCOL"] = self.version
        return environ

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in Head.__slots__}

    def __eq__(self, other):
        return isinstance(other, Head) and self.as_dict() == other.as_dict()

    def __repr__(self):
        return f"Head({self.as_dict()!r})"


class KeepsItsHead:
    """`parse(buf)` on top of a parser's `parse_next(buf)` (one call per request, a Head it returns
    resets the parser): the Head once returned stays the answer until `reset()` clears `_result`."""

    __slots__ = ("_result",)

    def parse(self, buf) -> Head | None:
        """Parse everything received for this request so far; None means "call again with more"."""
        if self._result is None:
            self._result = self.parse_next(buf)
        return self._result


class StickyParser(KeepsItsHead):
    """What every pure-Python parser's parse(buf) promises (HTTP heads and uwsgi packets alike).

    `parse(buf)` is given everything received for the current request so far and returns None
    ("call again with more") or the Head; once it has returned a Head it returns the same Head, and
    once it has raised a ParseError it raises that error again, until `reset()`. `parse_next(buf)`,
    the server's call, is the same except that a Head it returns also resets the parser: its next
    call starts the next request (one call per request instead of parse() and reset()). Subclasses
    only implement `_parse(buf)` (one attempt on the bytes so far) and extend `reset()` with their
    own resumable state. The C backend's HTTP parser keeps the same contract in C (errors are sticky
    in its struct); the C uwsgi wrapper subclasses the Python uwsgi parser and replaces `_parse`."""

    __slots__ = ("_limits", "_error")

    def __init__(self, limits: Limits | None = None):
        self._limits = limits if limits is not None else Limits()
        self.reset()

    def reset(self) -> None:
        self._result = None
        self._error = None

    def parse_next(self, buf) -> Head | None:
        """parse(buf), and a Head it returns resets the parser (reset()) for the next request."""
        if self._error is not None:
            raise self._error  # errors are sticky until reset()
        try:
            head = self._parse(buf)
        except ParseError as exc:
            self._error = exc
            raise
        if head is not None:
            self.reset()
        return head

    def _parse(self, buf) -> Head | None:
        raise NotImplementedError
