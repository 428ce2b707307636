"""The C backend: a thin layer over the C core (csrc/) through the cffi extension `fastwsgi._cparser`.

Theory of operation
-------------------
The C functions do all byte-level work; this module only moves results across the boundary, with as
few crossings as possible because each one costs more than parsing a short line in C:

* `RequestParser.parse` makes one call, `fw_parse_packed` (csrc/fw_binding.h): it parses (resumable:
  the C state lives in a per-parser `fw_request` struct, so a head fed in pieces is scanned once)
  and, when the head is complete, writes every CGI value, then method, target, version, query,
  PATH_INFO and last all CGI keys into one buffer as latin-1 separated by NULs, and returns the
  framing facts and the key count in the result's high bits. One decode and one bounded split
  make the values and leave the keys as one string, which a small cache maps to a tuple of key
  strings (clients repeat their header names), so `dict(zip(keys, items))` needs neither new key
  strings nor hashing. The Head's slots are filled in place (no 13-argument __init__); no
  per-header cffi access happens in Python. (fw_pack_environ,
  the public C API's packer, serves only the rare PATH_INFO that decodes to a NUL.)
* `ChunkedDecoder.decode` is one call that copies the decoded body into a per-decoder buffer.
* `serialize_head` joins the application's (name, value) pairs into `name\\0value\\0...`, encodes once
  and makes one call. Anything unusual (a NUL, a non-str, a non-latin-1 char) is replaced by a byte
  that the C rules reject in the same place, so C alone decides which error code applies.

Every per-parser cffi object (state struct, header array, output buffer) is allocated once in
`__init__` and reused; `reset()` only marks the state for re-initialisation by the next call. A
bytearray is copied when small (cheaper than borrowing it) or borrowed with `ffi.from_buffer` only
for the duration of the call, so the caller can resize it afterwards. The module refuses to load
an extension whose FW_ABI_VERSION differs from the one it was written for (a stale build), so
fastwsgi.parser falls back to the Python twin instead of misreading structs.
"""

from __future__ import annotations

import functools

from .._cparser import ffi, lib
from ..errors import NAMES_BY_NUMBER, ParseError, ResponseError
from ._types import Head, Limits

__all__ = ["NAME", "RequestParser", "ChunkedDecoder", "serialize_head"]

NAME = "c"

EXPECTED_ABI_VERSION = 2
if lib.FW_ABI_VERSION != EXPECTED_ABI_VERSION:
    raise ImportError(
        f"fastwsgi._cparser was built for C ABI {lib.FW_ABI_VERSION}, this code expects "
        f"{EXPECTED_ABI_VERSION}: rebuild it (pip install -e . or python setup.py build_ext --inplace)")

_INCOMPLETE = lib.FW_INCOMPLETE
_CHUNKED = lib.FW_REQ_CHUNKED
_KEEP_ALIVE = lib.FW_REQ_KEEP_ALIVE
_EXPECT_CONTINUE = lib.FW_REQ_EXPECT_CONTINUE
_UPGRADE = lib.FW_REQ_UPGRADE

_parse_packed = lib.fw_parse_packed
_from_buffer = ffi.from_buffer
_buffer = ffi.buffer
_unpack = ffi.unpack
# Output buffers are always written before they are read: skip zero-filling them.
_new_unzeroed = ffi.new_allocator(should_clear_after_alloc=False)


@functools.lru_cache(maxsize=32)
def _c_limits(limits: Limits):
    """The `fw_limits *` for a Limits; shared (C only reads it), built once per distinct Limits."""
    lim = ffi.new("fw_limits *")
    lim.max_request_line = limits.max_request_line
    lim.max_header_line = limits.max_header_line
    lim.max_header_count = limits.max_header_count
    lim.max_head_size = limits.max_head_size
    lim.max_chunk_line = limits.max_chunk_line
    lim.flags = ((lib.FW_ALLOW_BARE_LF if limits.allow_bare_lf else 0)
                 | (lib.FW_ALLOW_MISSING_HOST if limits.allow_missing_host else 0))
    return lim


def _error(number: int, status: int) -> ParseError:
    return ParseError(NAMES_BY_NUMBER[number], status)


# ---------------------------------------------------------------------------------------------
# Request parser
# ---------------------------------------------------------------------------------------------

_FIRST_OUT_SIZE = 8192  # packed-head buffer (half scratch); grows to 8 * head + 128 (always enough)
_LOW32 = 0xFFFFFFFF
_HAS_LENGTH = lib.FW_PACKED_HAS_LENGTH
_USE_ENVIRON = lib.FW_PACKED_USE_ENVIRON
_KEYS_SHIFT = lib.FW_PACKED_KEYS_SHIFT
_TOO_SMALL = lib.FW_PACKED_TOO_SMALL
# (minor, chunked, keep_alive, expect_continue, upgrade) for each value of the info's low byte
_FACTS = tuple(
    (info >> lib.FW_PACKED_MINOR_SHIFT, info & _CHUNKED != 0, info & _KEEP_ALIVE != 0,
     info & _EXPECT_CONTINUE != 0, info & _UPGRADE != 0)
    for info in range(256))


# The environ keys of a head, packed as one "key\0key..." string -> their tuple. Clients repeat the
# same header names request after request, so a hit saves creating and hashing every key string
# (the tuple's strings keep their hash). Bounded: cleared when full; long key lists are not kept.
_KEYS_CACHE: dict = {"": ()}
_KEYS_CACHE_SIZE = 256
_KEYS_CACHE_MAX_CHARS = 2048
_new_head = object.__new__


def _cache_keys(packed_keys: str) -> tuple:
    keys = tuple(packed_keys.split("\0"))
    if len(packed_keys) <= _KEYS_CACHE_MAX_CHARS:
        if len(_KEYS_CACHE) >= _KEYS_CACHE_SIZE:
            _KEYS_CACHE.clear()
            _KEYS_CACHE[""] = ()
        _KEYS_CACHE[packed_keys] = keys
    return keys


class RequestParser:
    """Incremental request-head parser; one per connection, `reset()` between requests."""

    __slots__ = ("_limits", "_lim", "_req", "_headers", "_out", "_out_size", "_fresh", "_result")

    def __init__(self, limits: Limits | None = None):
        self._limits = limits if limits is not None else Limits()
        self._lim = _c_limits(self._limits)
        self._req = ffi.new("fw_request *")
        self._headers = ffi.new("fw_header[]", max(1, self._limits.max_header_count))
        self._out = _new_unzeroed("char[]", _FIRST_OUT_SIZE)
        self._out_size = _FIRST_OUT_SIZE
        self.reset()

    def reset(self) -> None:
        self._fresh = 1  # the next C call starts with fw_request_init
        self._result = None

    def parse(self, buf) -> Head | None:
        """Parse everything received for this request so far; None means "call again with more"."""
        if self._result is not None:
            return self._result
        req = self._req
        if type(buf) is bytes:
            result = _parse_packed(buf, len(buf), self._lim, req, self._headers, self._out,
                                   self._out_size, self._fresh)
        else:
            result = self._parse_buffer(buf)
        self._fresh = 0
        if result < 0:
            if result == _INCOMPLETE:
                return None
            if result == _TOO_SMALL:
                self._out_size = 8 * len(buf) + 128  # always enough (fw_binding.h)
                self._out = _new_unzeroed("char[]", self._out_size)
                return self.parse(buf)  # the head is parsed: this call only packs it again
            raise _error(req.error, req.status)
        info = result >> 32
        if info & _USE_ENVIRON:
            return self._head_from_environ(buf)
        # value 1..n, method, target, version, query, path, "key 1\0...\0key n" (fw_binding.h)
        count = info >> _KEYS_SHIFT
        items = _unpack(self._out, result & _LOW32).decode("latin-1").split("\0", count + 5)
        keys = _KEYS_CACHE.get(items[-1])
        if keys is None:
            keys = _cache_keys(items[-1])
        head = _new_head(Head)  # slots filled in place: cheaper than a 13-argument __init__
        head.consumed = req.line_start
        head.method = items[-6]
        head.target = items[-5]
        head.version = items[-4]
        head.query = items[-3]
        head.path = items[-2]
        head.headers = dict(zip(keys, items))  # zip stops after the values
        head.content_length = req.content_length if info & _HAS_LENGTH else -1
        head.minor, head.chunked, head.keep_alive, head.expect_continue, head.upgrade = \
            _FACTS[info & 0xFF]
        self._result = head
        return head

    def _parse_buffer(self, buf) -> int:
        """parse() for a bytearray/memoryview: copy a small one, else borrow it only for the call."""
        if len(buf) <= 16384:
            return _parse_packed(bytes(buf), len(buf), self._lim, self._req, self._headers,
                                 self._out, self._out_size, self._fresh)
        with ffi.from_buffer(buf) as cbuf:  # released at once, so the caller may resize buf
            return _parse_packed(cbuf, len(buf), self._lim, self._req, self._headers, self._out,
                                 self._out_size, self._fresh)

    def _head_from_environ(self, buf) -> Head:
        """Rare: PATH_INFO decodes to a NUL (%00): take the environ from fw_pack_environ."""
        req = self._req
        path_len = ffi.new("size_t *")
        with ffi.from_buffer(buf) as cbuf:
            packed_len = lib.fw_pack_environ(cbuf, req, self._headers, self._out, self._out_size,
                                             path_len)
        packed = _buffer(self._out, packed_len)[:].decode("latin-1")
        path = packed[:path_len[0]]
        items = packed[path_len[0]:].split("\0") if packed_len > path_len[0] else []
        request_line = bytes(buf[req.method_off:req.version_off + 8]).decode("latin-1")
        method, target, version = request_line.split(" ")
        flags = req.flags
        self._result = head = Head(
            req.line_start, method, target, path, target.partition("?")[2], version,
            req.version_minor, dict(zip(items[::2], items[1::2])), req.content_length,
            flags & _CHUNKED != 0, flags & _KEEP_ALIVE != 0, flags & _EXPECT_CONTINUE != 0,
            flags & _UPGRADE != 0)
        return head


# ---------------------------------------------------------------------------------------------
# Chunked body decoder
# ---------------------------------------------------------------------------------------------

_FIRST_BODY_SIZE = 16384


class ChunkedDecoder:
    """Streaming decoder of one chunked body: `decode(buf)` -> (data, consumed); `done` at the end."""

    __slots__ = ("_limits", "_lim", "_st", "_dst", "_dst_size", "_dst_len")

    def __init__(self, limits: Limits | None = None):
        self._limits = limits if limits is not None else Limits()
        self._lim = _c_limits(self._limits)
        self._st = ffi.new("fw_chunked *")
        lib.fw_chunked_init(self._st)
        self._dst = _new_unzeroed("char[]", _FIRST_BODY_SIZE)
        self._dst_size = _FIRST_BODY_SIZE
        self._dst_len = ffi.new("size_t *")

    @property
    def done(self) -> bool:
        """True once the last chunk and the trailer section have been consumed."""
        return self._st.done != 0

    def decode(self, buf) -> tuple[bytes, int]:
        size = len(buf)
        if size > self._dst_size:  # decoded data never outgrows its input
            self._dst_size = size
            self._dst = _new_unzeroed("char[]", size)
        self._dst_len[0] = self._dst_size
        st = self._st
        consumed = lib.fw_decode_chunked(st, buf if type(buf) is bytes else _from_buffer(buf), size,
                                         self._dst, self._dst_len, self._lim)
        if consumed < 0:
            raise _error(st.error, st.status)
        return _buffer(self._dst, self._dst_len[0])[:], consumed


# ---------------------------------------------------------------------------------------------
# Response head serializer
# ---------------------------------------------------------------------------------------------

_CONNECTION_FLAGS = {None: 0, "close": lib.FW_RESP_CLOSE, "keep-alive": lib.FW_RESP_KEEP_ALIVE}
_REJECTED = "\x01"  # a control byte: invalid wherever a NUL or an unencodable value would be


def _latin1_or_rejected(text) -> str:
    """`text` if it can cross as latin-1 without a NUL, else a string the C rules reject alike."""
    if not isinstance(text, str):  # a str subclass (e.g. Django SafeString) is a str
        return _REJECTED
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return _REJECTED
    return text.replace("\0", _REJECTED)


def _pack_fields_slowly(headers) -> str:
    """Pack any header list, replacing what cannot cross so C reports the right error in order."""
    parts = []
    for header in headers:
        try:
            name, value = header
        except (TypeError, ValueError):
            name, value = None, ""  # not a pair: reported as a bad name, like the Python twin
        parts.append(_latin1_or_rejected(name) + "\0" + _latin1_or_rejected(value))
    return "\0".join(parts)


def serialize_head(status, headers, *, date, server=None, chunked=False, connection=None) -> bytes:
    """Build "HTTP/1.1 <status>" + fields + blank line as latin-1 bytes, or raise ResponseError."""
    if type(headers) is not list:
        headers = list(headers)
    count = len(headers)
    try:
        fields = "\0".join([name + "\0" + value for name, value in headers])
        if fields.count("\0") != 2 * count - 1 and count:
            raise ValueError("a NUL inside a name or value")
        packed = fields.encode("latin-1")
    except (TypeError, ValueError):  # UnicodeEncodeError is a ValueError
        packed = _pack_fields_slowly(headers).encode("latin-1")
    status_bytes = _latin1_or_rejected(status).encode("latin-1")
    date_bytes = date.encode("latin-1")
    server_bytes = server.encode("latin-1") if server else b""
    try:
        flags = _CONNECTION_FLAGS[connection]
        connection_ok = True
    except (KeyError, TypeError):  # reported after the headers, like the Python twin
        flags, connection_ok = 0, False
    if chunked:
        flags |= lib.FW_RESP_CHUNKED
    size = (len(status_bytes) + len(packed) + 3 * count + len(date_bytes) + len(server_bytes)
            + 128)
    out = _new_unzeroed("char[]", size)
    error = _new_unzeroed("int *")
    written = lib.fw_serialize_head(out, size, status_bytes, len(status_bytes), packed, len(packed),
                                    count, date_bytes, len(date_bytes), server_bytes,
                                    len(server_bytes), flags, error)
    if written < 0:
        code = NAMES_BY_NUMBER[error[0]]
        raise ResponseError(code, repr(status) if code == "BAD_STATUS" else "")
    if not connection_ok:
        raise ValueError(f"connection must be None, 'close' or 'keep-alive', not {connection!r}")
    return _buffer(out, written)[:]
