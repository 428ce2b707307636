"""The C backend: a thin layer over the C core (csrc/) through the cffi extension `fastwsgi._cparser`.

Theory of operation
-------------------
The C functions do all byte-level work; this module only moves results across the boundary, with as
few crossings as possible because each one costs more than parsing a short line in C:

* `RequestParser.parse_next` (the server's call: a head it returns also resets the parser for the
  next request, so there is no `reset()` call per request; `parse`, which keeps its Head until
  `reset()`, is built on it) makes one call, `fw_parse_head` (csrc/fw_binding.h): it parses
  (resumable: the C state lives in a per-parser `fw_parser` struct, so a head fed in pieces is
  scanned once) and, when the head is complete, writes every CGI value, then method, target,
  version, query, PATH_INFO and, unless the thread's memo knows the head's names, all CGI keys into
  one buffer as latin-1, separated by \\x01 and ended by a NUL. The result (< 2**30, so one-digit
  int arithmetic) holds the head's length, the framing facts and the keys' state: found in memo slot
  s (clients send the same names request after request: the keys are then the tuple this module
  stored for slot s, whose strings keep their hash, and C neither indexes the names nor writes
  keys), or written (and stored in slot s). One `ffi.string`, one decode and one split make the
  strings; they become the PackedHead's `values`, the slot's tuple (the names' keys, then
  REQUEST_KEYS) its `keys`, and the server's `head.environ(base)` is then one dict copy and one
  `update(zip(keys, values))`: no intermediate dict, no new key strings, no hashing. The Head's
  slots are filled in place (no 13-argument __init__); no per-header cffi access happens in Python.
* Repeats: a keep-alive client usually sends the same field values request after request. C keeps,
  in a per-parser buffer (`fw_parser.prev`, allocated here once a memoised head arrives, at most
  REPEAT_MAX_HEAD bytes), the values it last packed for memoised names, with the memo slot's stamp;
  when the next head has the same names (same slot, same stamp) and byte-identical values, C writes
  only the 5 request fields and answers FW_HEAD_REPEAT. The parser then returns a `RepeatHead`
  pointing at the PackedHead those values came from (`_source`, set exactly when C may have kept
  values), whose environ is a copy of a template (the base plus the fields' variables) with 6
  request keys stored: no field value is decoded, split or inserted again. The source's first
  repeat makes the template on its base. When the source moves to another base (a spare parser on
  a new connection: most that close send one request), the first repeat there merges the base with
  the source's fields as a dict (`fields`, made once), as the Python backend merges its headers (a
  zip into a copy costs ~1.8k instructions more before its first item), and the second makes the
  template. When only a few values differ (a link followed: target and Referer; an API
  client's next Content-Length), C writes just those with their indexes (FW_HEAD_CHANGED) and the
  parser returns a `ChangedHead`: the same template copy, plus one store per changed value. The
  values C keeps stay the source's, so a client alternating between two requests repeats one and
  changes a little of the other; only the same change twice in a row (a cookie set once, kept
  from then on) makes C answer FOUND and keep the new values, so that the next ones repeat.
  fw_pack_environ (the public C API's packer) serves only the rare head that cannot take this path
  (a PATH_INFO that decodes to a NUL or \\x01, a head beyond 128 KiB).
* The same head again, byte for byte (a poller, a health check, a load generator): the parser keeps
  the last RepeatHead it returned and that head's bytes (`_kept_bytes`, up to REPEAT_MAX_HEAD), and a
  buffer that starts with exactly those bytes gets that Head back with no C call (one slice and
  one comparison; the Python backend does the same). A Head depends only on its bytes and the
  Limits, and nothing changes it once returned; its environ is still a new dict on every call.
  Only repeats are kept: a head never seen twice pays the comparison (~0.7k instructions), not a
  copy.
* `ChunkedDecoder.decode` is one call that copies the decoded body into a per-decoder buffer.
* `serialize_head` joins the application's (name, value) pairs into `name\\0value\\0...`, encodes once
  and makes one call. Anything unusual (a NUL, a non-str, a non-latin-1 char) is replaced by a byte
  that the C rules reject in the same place, so C alone decides which error code applies.

A parser owns only its `fw_parser` struct (state, limits, pointers), allocated once in `__init__`;
`reset()`, as a head from `parse_next`, only marks it for re-initialisation by the next call (an
error is left in the struct, where C keeps it sticky until then). The packed-output buffer, the
header array and the memo of names are shared by all parsers of a thread (`_ThreadScratch`; per
thread because cffi releases the GIL during the call; a parser used from another thread rebinds
itself): each call fills and reads them before returning. Only a head with fields that arrives in
pieces needs its header offsets kept between calls; its parser then copies them into an array of its
own. So an idle connection costs a few hundred bytes and a new one no buffer allocation. A bytearray
is copied when small (cheaper than borrowing it) or borrowed with `ffi.from_buffer` only for the
duration of the call, so the caller can resize it afterwards. The module refuses to load an
extension whose FW_ABI_VERSION differs from the one it was written for (a stale build), so
fastwsgi.parser falls back to the Python twin instead of misreading structs.
"""

from __future__ import annotations

import functools
import threading

from .._cparser import ffi, lib
from ..errors import NAMES_BY_NUMBER, ParseError, ResponseError
from ._types import NOTHING_KEPT, REPEAT_MAX_HEAD, Head, KeepsItsHead, Limits

__all__ = ["NAME", "RequestParser", "ChunkedDecoder", "serialize_head"]

NAME = "c"

EXPECTED_ABI_VERSION = 7
if lib.FW_ABI_VERSION != EXPECTED_ABI_VERSION:
    raise ImportError(
        f"fastwsgi._cparser was built for C ABI {lib.FW_ABI_VERSION}, this code expects "
        f"{EXPECTED_ABI_VERSION}: rebuild it (pip install -e . or python setup.py build_ext --inplace)")

_INCOMPLETE = lib.FW_INCOMPLETE
_CHUNKED = lib.FW_REQ_CHUNKED
_KEEP_ALIVE = lib.FW_REQ_KEEP_ALIVE
_EXPECT_CONTINUE = lib.FW_REQ_EXPECT_CONTINUE
_UPGRADE = lib.FW_REQ_UPGRADE

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

_FIRST_OUT_SIZE = 16384  # packed-head buffer per thread; grows to 8 * head + 128 (always enough)
_HEADER_SIZE = ffi.sizeof("fw_header")
# A bytearray up to this size is copied for the call (cheaper than ffi.from_buffer, ~0.4 us, up to
# about 4 KiB); beyond, borrowed. Bounded, so a head fed in tiny pieces costs O(1) per call here.
_COPY_MAX = 4096
_parse_head = lib.fw_parse_head
_TOO_SMALL = lib.FW_PACKED_TOO_SMALL
_KEEP_FIELDS = lib.FW_HEAD_KEEP_FIELDS
_CONSUMED_MASK = lib.FW_HEAD_CONSUMED_MASK
_FLAGS_SHIFT = lib.FW_HEAD_FLAGS_SHIFT
_KEYS_SHIFT = lib.FW_HEAD_KEYS_SHIFT
_STORED = lib.FW_HEAD_STORED  # keys state: < _STORED found in slot, < _NEW stored in slot - 8
_NEW = lib.FW_HEAD_NEW
_SLOW = lib.FW_HEAD_SLOW
_REPEAT = lib.FW_HEAD_REPEAT
_CHANGED = lib.FW_HEAD_CHANGED
_CHANGE_INDEX_BASE = lib.FW_HEAD_CHANGE_INDEX_BASE
_string = ffi.string
assert lib.FW_HEAD_FOUND == 0 and _STORED == lib.FW_MEMO_SLOTS and _NEW == 2 * _STORED
assert lib.FW_HEAD_MINOR_SHIFT == _FLAGS_SHIFT + 4
# (minor, chunked, keep_alive, expect_continue, upgrade) for each flags + minor << 4 byte
_FACTS = tuple(
    (info >> 4, info & _CHUNKED != 0, info & _KEEP_ALIVE != 0,
     info & _EXPECT_CONTINUE != 0, info & _UPGRADE != 0)
    for info in range(256))
_new_head = object.__new__
_get_ident = threading.get_ident


# The request's own CGI variables, after the header fields' in PackedHead.keys; their values follow
# the fields' in the packed output: method, target, version, query, path.
REQUEST_KEYS = ("REQUEST_METHOD", "RAW_URI", "SERVER_PROTOCOL", "QUERY_STRING", "PATH_INFO")
_REQUEST_FIELDS = len(REQUEST_KEYS)  # method, target, version, query, path in the packed output


class PackedHead(Head):
    """The C backend's Head: the CGI variables stay as C packed them, `keys` (the memo slot's tuple:
    the fields' keys, then REQUEST_KEYS) and `values` (the split output: the fields' values, the 5
    request fields, maybe the keys C wrote; zip stops after the keys). So the server's environ is one
    copy and one update, with no intermediate dict (-3.3k instructions per browser-like request,
    callgrind); `headers` is built only when asked for (tests, introspection)."""

    __slots__ = ("keys", "values", "template", "template_base", "changes", "fields")

    @property
    def headers(self) -> dict:
        return dict(zip(self.keys[:-_REQUEST_FIELDS], self.values))

    def environ(self, base: dict) -> dict:
        environ = base.copy()
        environ.update(zip(self.keys, self.values))
        environ["REQUEST_URI"] = self.target
        return environ


class RepeatHead(PackedHead):
    """A head whose field names and values are exactly those of `source`, the PackedHead its parser
    last had them from (C said FW_HEAD_REPEAT): only the 5 request fields are new. Its
    environ is a copy of `source.template` (base + the fields' CGI variables, made by the second
    repeat on that base; the first is `base | source.fields`) with the request's variables set: no
    field value is decoded again.
    `keys`, `values` and `headers` are source's, with this request's own fields."""

    __slots__ = ("source",)

    @property
    def keys(self) -> tuple:
        return self.source.keys

    @property
    def values(self) -> list:
        return [*self.source.values[:len(self.keys) - _REQUEST_FIELDS],
                self.method, self.target, self.version, self.query, self.path]

    def environ(self, base: dict) -> dict:
        source = self.source
        if source.template_base is base:
            template = source.template
            if template is not None:  # the common case: a repeat on a keep-alive connection
                environ = template.copy()
                template_wanted = False
            else:  # the second request with source's values on a base it moved to (below)
                environ = base | source.fields
                template_wanted = True
        elif source.template_base is None:  # source's first repeat: its environ (fields, then
            # request keys, which the stores below overwrite) is the template
            environ = source.environ(base)
            source.template_base = base
            template_wanted = True
        else:  # source moves to another base: a spare parser on a new connection. Most of those
            # send one request (Connection: close), so no template yet; the fields as a dict
            # (made once), merged like the Python backend's headers: a copy and a zip would cost
            # ~1.8k instructions more before the first item
            fields = source.fields
            if fields is None:
                fields = source.fields = source.headers
            environ = base | fields
            source.template_base = base
            source.template = None
            template_wanted = False
        environ["REQUEST_METHOD"] = self.method  # REQUEST_KEYS, as stores: cheaper than a zip
        environ["RAW_URI"] = environ["REQUEST_URI"] = self.target
        environ["SERVER_PROTOCOL"] = self.version
        environ["QUERY_STRING"] = self.query
        environ["PATH_INFO"] = self.path
        if template_wanted:  # the request keys are in it too: a copy's stores replace, never grow
            source.template = environ.copy()
        return environ


class ChangedHead(RepeatHead):
    """A head with `source`'s field names and a few values of its own (C said FW_HEAD_CHANGED):
    `changed_keys` are their keys and `changed_values` starts with their values (zip stops there).
    Its environ is a RepeatHead's with those stored over the template's (stores: a zip costs more
    than the one or two values a client changes)."""

    __slots__ = ("changed_keys", "changed_values")

    @property
    def values(self) -> list:
        values = RepeatHead.values.fget(self)
        for key, value in zip(self.changed_keys, self.changed_values):
            values[self.keys.index(key)] = value
        return values

    def environ(self, base: dict) -> dict:
        environ = RepeatHead.environ(self, base)
        values = self.changed_values
        at = 0
        for key in self.changed_keys:  # one or two, mostly: stores, cheaper than a zip (~1.8k)
            environ[key] = values[at]
            at += 1
        return environ


def _changes_of(source: PackedHead, indexes: str) -> tuple:
    """(the keys of the values at these FW_HEAD_CHANGED indexes, the position of CONTENT_LENGTH's
    among them or -1), remembered by `source` (clients change the same fields again)."""
    if source.changes is None:
        source.changes = {}
    keys = tuple(source.keys[ord(index) - _CHANGE_INDEX_BASE] for index in indexes)
    change = source.changes[indexes] = (keys, keys.index("CONTENT_LENGTH")
                                        if "CONTENT_LENGTH" in keys else -1)
    return change


def _keys_of(items: list) -> tuple:
    """(PackedHead.keys, index of CONTENT_LENGTH's value or -1) from a packed head whose keys C wrote:
    items are n values, the 5 request fields, then the n keys."""
    keys = (*items[(len(items) + _REQUEST_FIELDS) >> 1:], *REQUEST_KEYS)
    return keys, keys.index("CONTENT_LENGTH") if "CONTENT_LENGTH" in keys else -1


class _ThreadScratch:
    """One thread's C buffers (`fw_scratch`: packed output, header array, memo of names), shared by
    all its parsers, and `keys`: (PackedHead.keys, index of CONTENT_LENGTH's value or -1) of each
    memo slot. The uwsgi parser (_uwsgi_c.py) uses the same output and header array, and `uwsgi`,
    its fw_uwsgi result struct.

    A parse() call fills the buffers and reads them back before it returns, so parsers of one thread
    never see each other's data; cffi releases the GIL during the call, hence one per thread. When C
    reports a head's names as new in memo slot s, the caller stores their keys in keys[s]; when it
    reports them found in slot s, keys[s] are the keys (the names, in order, are exactly the same).
    """

    __slots__ = ("c", "out", "headers", "header_count", "keys", "uwsgi")

    def __init__(self):
        self.c = ffi.new("fw_scratch *")  # zeroed: every memo slot empty
        self.keys = [((), -1)] * lib.FW_MEMO_SLOTS
        self.uwsgi = ffi.new("fw_uwsgi *")
        self.header_count = 0
        self.grow_out(_FIRST_OUT_SIZE)

    def grow_out(self, size: int) -> None:
        self.out = _new_unzeroed("char[]", size)
        self.c.out = self.out
        self.c.cap = size

    def ensure_headers(self, count: int) -> None:
        if count > self.header_count:
            self.headers = _new_unzeroed("fw_header[]", count)
            self.c.headers = self.headers
            self.header_count = count


_scratch_by_thread = threading.local()


def _thread_scratch(header_count: int) -> _ThreadScratch:
    scratch = getattr(_scratch_by_thread, "scratch", None)
    if scratch is None:
        scratch = _scratch_by_thread.scratch = _ThreadScratch()
    scratch.ensure_headers(header_count)
    return scratch


class RequestParser(KeepsItsHead):
    """Incremental request-head parser; one per connection, `reset()` between requests (or a head
    from `parse_next`)."""

    __slots__ = ("_limits", "_lim", "_p", "_own_headers", "_scratch", "_thread", "_fresh",
                 "_prev", "_prev_cap", "_source", "_kept_len", "_kept_bytes", "_kept_head", "_kept_hidden")

    def __init__(self, limits: Limits | None = None):
        self._limits = limits if limits is not None else Limits()
        self._p = ffi.new("fw_parser *")  # own_headers NULL: the thread's array
        # kept alive here: the lru_cache evicts (and frees) it once 32 other Limits were used
        self._lim = self._p.lim = _c_limits(self._limits)
        self._own_headers = None  # allocated only when a head with fields arrives in pieces
        self._prev = self._source = None  # C's copy of the last values, and their PackedHead
        self._prev_cap = 0  # _p.prev_cap, read here without a cffi field access
        self._kept_len, self._kept_bytes, self._kept_head = NOTHING_KEPT  # the last repeat, whole
        self._kept_hidden = None  # the last repeat while an error is sticky (_not_packed), until reset()
        self._bind_thread()
        self.reset()

    def _bind_thread(self) -> None:
        self._thread = _get_ident()
        self._scratch = _thread_scratch(max(1, self._limits.max_header_count))
        self._p.scratch = self._scratch.c
        self._p.prev_stamp = 0  # the values kept were for the other thread's memo slots

    def reset(self) -> None:
        self._fresh = 1  # the next C call starts with fw_request_init
        self._result = None
        if self._kept_hidden is not None:
            (self._kept_len, self._kept_bytes, self._kept_head), self._kept_hidden = self._kept_hidden, None

    def parse_next(self, buf) -> Head | None:
        """parse(buf), and a Head it returns resets the parser (as reset() would) for the next
        request: the server's one call per head."""
        if type(buf) is bytes:
            data = buf
        elif len(buf) <= _COPY_MAX:  # a small bytearray/memoryview: copying beats borrowing
            data = bytes(buf)
        else:
            data = None  # borrowed for the call only, and never kept
        if data is not None and data[:self._kept_len] == self._kept_bytes:  # the last repeat again
            self._fresh = 1  # (_types.py) no C call; the next one starts anew, even after pieces
            return self._kept_head
        if self._thread != _get_ident():  # used from another thread: use that thread's buffers
            self._bind_thread()
        if data is not None:
            result = _parse_head(self._p, data, len(data), self._fresh)
        else:
            with ffi.from_buffer(buf) as cbuf:  # released at once, so the caller may resize buf
                result = _parse_head(self._p, cbuf, len(buf), self._fresh)
        self._fresh = 0 if result < 0 else 1  # after a head, the next call starts the next request
        if result < 0:
            if result == _INCOMPLETE:
                return None
            return self._not_packed(result, buf)
        keys_state = result >> _KEYS_SHIFT  # the result is < 2**30: one-digit int arithmetic
        # value 1..n, method, target, version, query, path[, key 1..n], \x01-separated (fw_binding.h)
        scratch = self._scratch
        if keys_state == _REPEAT:  # names and values of self._source: only the request fields
            head = _new_head(RepeatHead)
            head.method, head.target, head.version, head.query, head.path = \
                _string(scratch.out).decode("latin-1").split("\x01")
            head.source = source = self._source
            head.consumed = result & _CONSUMED_MASK
            head.content_length = source.content_length
            head.minor, head.chunked, head.keep_alive, head.expect_continue, head.upgrade = \
                _FACTS[(result >> _FLAGS_SHIFT) & 0xFF]
            if data is not None and head.consumed <= REPEAT_MAX_HEAD:  # kept whole (_types.py)
                self._kept_len, self._kept_bytes, self._kept_head = head.consumed, data[:head.consumed], head
            return head
        if keys_state == _CHANGED:  # self._source's names, a few values of its own (fw_binding.h)
            items = _string(scratch.out).decode("latin-1").split("\x01")
            source = self._source
            indexes = items[-1]
            count = len(indexes)
            head = _new_head(ChangedHead)
            head.method, head.target, head.version, head.query, head.path = \
                items[count:count + _REQUEST_FIELDS]
            head.source = source
            head.changed_keys, length_at = (source.changes is not None and source.changes.get(indexes)
                                            or _changes_of(source, indexes))
            head.changed_values = items
            head.consumed = result & _CONSUMED_MASK
            head.content_length = source.content_length if length_at < 0 else int(items[length_at])
            head.minor, head.chunked, head.keep_alive, head.expect_continue, head.upgrade = \
                _FACTS[(result >> _FLAGS_SHIFT) & 0xFF]
            return head
        if keys_state < _STORED:  # the names of an earlier head: its keys
            keys, length_at = scratch.keys[keys_state]
            items = _string(scratch.out).decode("latin-1").split("\x01")
        elif keys_state < _SLOW:
            items = _string(scratch.out).decode("latin-1").split("\x01")
            keys, length_at = _keys_of(items)
            if keys_state < _NEW:
                scratch.keys[keys_state - _STORED] = (keys, length_at)
        else:
            return self._head_from_environ(buf)
        count = len(keys) - _REQUEST_FIELDS
        head = _new_head(PackedHead)  # slots filled in place: cheaper than a 13-argument __init__
        head.method, head.target, head.version, head.query, head.path = \
            items[count:count + _REQUEST_FIELDS]
        head.consumed = result & _CONSUMED_MASK
        head.keys = keys
        head.values = items  # zip(keys, items) stops after the 5 request fields
        # Content-Length is 1*DIGIT <= 2**63 - 1 once accepted: its environ value is the number
        head.content_length = -1 if length_at < 0 else int(items[length_at])
        head.minor, head.chunked, head.keep_alive, head.expect_continue, head.upgrade = \
            _FACTS[(result >> _FLAGS_SHIFT) & 0xFF]
        if keys_state < _NEW:  # C kept these values (if they fit): a repeat of them is of this head
            head.template = head.template_base = head.changes = head.fields = None
            self._source = head
            if head.consumed > self._prev_cap and self._prev_cap < REPEAT_MAX_HEAD:
                self._grow_prev(head.consumed)
        return head

    def _grow_prev(self, consumed: int) -> None:
        """Room for C to keep the values of heads half as long again as `consumed` bytes (values
        take fewer bytes than their head), up to REPEAT_MAX_HEAD; the values kept stay kept."""
        size = min(consumed + consumed // 2, REPEAT_MAX_HEAD)
        prev = _new_unzeroed("char[]", size)
        if self._prev is not None:
            ffi.memmove(prev, self._prev, self._p.prev_len)
        self._prev = self._p.prev = prev
        self._p.prev_cap = self._prev_cap = size

    def _not_packed(self, result: int, buf) -> None:
        """parse() when C returned no head: fields to keep, output too small, or an error."""
        req = self._p.req
        if result == _KEEP_FIELDS:
            # incomplete, and the fields so far must survive until the next call: copy them from
            # the thread's array to one of our own, which C uses from now on
            count = max(1, self._limits.max_header_count)
            self._own_headers = own = _new_unzeroed("fw_header[]", count)
            ffi.memmove(own, self._scratch.headers, req.num_headers * _HEADER_SIZE)
            self._p.own_headers = own
            return None
        if result == _TOO_SMALL:
            self._scratch.grow_out(8 * len(buf) + 128)  # always enough (fw_binding.h)
            return self.parse_next(buf)  # the head is parsed: this call only packs it again
        if self._kept_head is not None:  # C's error is sticky until reset(): so is it before the
            self._kept_hidden = (self._kept_len, self._kept_bytes, self._kept_head)  # repeat check
            self._kept_len, self._kept_bytes, self._kept_head = NOTHING_KEPT
        raise _error(req.error, req.status)

    def _head_from_environ(self, buf) -> Head:
        """Rare: PATH_INFO decodes to a NUL or \\x01 (%00, %01), or a head beyond 128 KiB: take the
        environ from fw_pack_environ and the numbers from the state struct."""
        req = self._p.req
        headers = self._own_headers or self._scratch.headers
        path_len = ffi.new("size_t *")
        size = 8 * len(buf) + 128  # room for the name index too: linear for any number of fields
        out = _new_unzeroed("char[]", size)
        with ffi.from_buffer(buf) as cbuf:
            packed_len = lib.fw_pack_environ(cbuf, ffi.addressof(req), headers, out, size, path_len)
        packed = _buffer(out, packed_len)[:].decode("latin-1")
        path = packed[:path_len[0]]
        items = packed[path_len[0]:].split("\0") if packed_len > path_len[0] else []
        request_line = bytes(buf[req.method_off:req.version_off + 8]).decode("latin-1")
        method, target, version = request_line.split(" ")
        flags = req.flags
        return Head(
            req.line_start, method, target, path, target.partition("?")[2], version,
            req.version_minor, dict(zip(items[::2], items[1::2])), req.content_length,
            flags & _CHUNKED != 0, flags & _KEEP_ALIVE != 0, flags & _EXPECT_CONTINUE != 0,
            flags & _UPGRADE != 0)


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


from ._uwsgi_c import UwsgiParser  # noqa: E402,F401  (docs/uwsgi-spec.md; imports _c_limits from here)
