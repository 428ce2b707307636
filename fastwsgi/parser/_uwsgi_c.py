"""The C backend's uwsgi packet parser: a thin layer over fw_parse_uwsgi (csrc/uwsgi.c).

Theory of operation
-------------------
`UwsgiParser.parse` makes one cffi call, `fw_parse_uwsgi_packed` (csrc/uwsgi_binding.h): the C core
runs every check of docs/uwsgi-spec.md and, once the packet is complete, writes all values and
then all keys into one buffer, NUL-separated latin-1, and returns the variable count, the
datasize and whether CONTENT_LENGTH was set in the result's high bits. One decode and one bounded
split give the values and leave the keys as one string, which a small cache maps to the twin's
`key_plan` of those keys (a front end sends the same keys every request). The Head is then
assembled by the Python twin's `environ_of` / `build_head`, so both backends build it with the
same code and only the byte-level work differs.

The C parser keeps no state between calls (csrc/fastwsgi.h), so a parser owns no buffer at all:
the vars array (an `fw_header[]`, at least max_header_count + FW_UWSGI_MAX_CGI_VARS or
FW_UWSGI_MAX_VARS entries, whichever is smaller, since either always suffices), the output buffer
(grown to the block size when it is too small) and the fw_uwsgi result struct are the thread's
`_ThreadScratch` of _cffi.py, the one the HTTP parser uses: each call fills them and reads them
back before it returns, and cffi releases the GIL during the call, hence per thread (a parser used
from another thread rebinds itself). An idle uwsgi connection then costs its parser object only.
It subclasses the twin's UwsgiParser, whose parse() keeps the result or error sticky until
reset(), and replaces only `_parse`. It is imported by _cffi.py, which has already refused a stale
extension.
"""

from __future__ import annotations

from .._cparser import ffi, lib
from ..errors import NAMES_BY_NUMBER, ParseError
from ._cffi import _c_limits, _get_ident, _thread_scratch
from ._types import Head, Limits
from ._uwsgi_python import UwsgiParser as _TwinUwsgiParser
from ._uwsgi_python import build_head, environ_of, key_plan

__all__ = ["UwsgiParser"]

_parse_uwsgi_packed = lib.fw_parse_uwsgi_packed
_INCOMPLETE = lib.FW_INCOMPLETE
_TOO_SMALL = lib.FW_UWSGI_PACKED_TOO_SMALL
_HAS_LENGTH = lib.FW_UWSGI_PACKED_HAS_LENGTH
_VARS_SHIFT = lib.FW_UWSGI_PACKED_VARS_SHIFT
_VARS_MASK = lib.FW_UWSGI_PACKED_VARS_MASK
_DATASIZE_SHIFT = lib.FW_UWSGI_PACKED_DATASIZE_SHIFT
_LOW32 = 0xFFFFFFFF
_unpack = ffi.unpack

# "KEY\0KEY..." -> key_plan of those keys; bounded: cleared when full, long key lists are not kept.
# nginx sends the same keys, in the same order, request after request.
_PLAN_CACHE: dict = {}
_PLAN_CACHE_SIZE = 64
_PLAN_CACHE_MAX_CHARS = 4096


def _plan_of(packed_keys: str) -> tuple:
    plan = _PLAN_CACHE.get(packed_keys)
    if plan is None:
        plan = key_plan(tuple(packed_keys.split("\0")))
        if len(packed_keys) <= _PLAN_CACHE_MAX_CHARS:
            if len(_PLAN_CACHE) >= _PLAN_CACHE_SIZE:
                _PLAN_CACHE.clear()
            _PLAN_CACHE[packed_keys] = plan
    return plan


class UwsgiParser(_TwinUwsgiParser):
    """uwsgi packet parser; same interface as RequestParser (parse(buf) -> None | Head). The
    twin's parse() keeps the result or error sticky until reset(); only `_parse` differs."""

    __slots__ = ("_lim", "_max_vars", "_scratch", "_thread")

    def __init__(self, limits: Limits | None = None):
        _TwinUwsgiParser.__init__(self, limits)
        self._lim = _c_limits(self._limits)
        self._max_vars = min(self._limits.max_header_count + lib.FW_UWSGI_MAX_CGI_VARS,
                             lib.FW_UWSGI_MAX_VARS)  # either always suffices (fastwsgi.h)
        self._bind_thread()

    def _bind_thread(self) -> None:
        self._thread = _get_ident()
        self._scratch = _thread_scratch(self._max_vars)

    def _parse(self, buf) -> Head | None:
        if self._thread != _get_ident():  # used from another thread: use that thread's buffers
            self._bind_thread()
        if type(buf) is not bytes:
            with ffi.from_buffer(buf) as cbuf:  # released at once, so the caller may resize buf
                return self._parse_at(cbuf, len(buf))
        return self._parse_at(buf, len(buf))

    def _parse_at(self, cbuf, length: int) -> Head | None:
        """_parse of `length` bytes at `cbuf` (bytes, or a cdata borrowing the caller's buffer)."""
        scratch = self._scratch
        out = scratch.out
        result = _parse_uwsgi_packed(cbuf, length, self._lim, scratch.uwsgi, scratch.headers,
                                     self._max_vars, out, len(out))
        if result < 0:
            if result == _INCOMPLETE:
                return None
            if result == _TOO_SMALL:  # the packet is parsed; the packed form needs datasize bytes
                scratch.grow_out(scratch.uwsgi.datasize)
                return self._parse_at(cbuf, length)
            pkt = scratch.uwsgi
            raise ParseError(NAMES_BY_NUMBER[pkt.error], pkt.status)
        info = result >> 32
        count = (info >> _VARS_SHIFT) & _VARS_MASK
        items = _unpack(out, result & _LOW32).decode("latin-1").split("\0", count)
        packed_keys = items[-1]
        plan = _PLAN_CACHE.get(packed_keys) or _plan_of(packed_keys)
        env = environ_of(plan, items)  # zip stops after the values
        content_length = scratch.uwsgi.content_length if info & _HAS_LENGTH else -1
        return build_head(4 + (info >> _DATASIZE_SHIFT), env, content_length)
