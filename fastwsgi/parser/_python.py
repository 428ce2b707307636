"""Pure-Python twin of the C core: request-head parser, chunked decoder, response-head serializer.

Theory of operation
-------------------
Behaviour is fixed by docs/parser-spec.md; this module and csrc/ must agree on every input, however it
is split into pieces. The code is organised around that contract, with two ways through it:

* The **slow path** (`RequestParser._parse_lines`) is the spec written out: a line-at-a-time state
  machine. It remembers where the first incomplete line starts (`_line_start`) and how far that line has
  been scanned for an LF (`_scan`), so feeding a head in n pieces costs O(total length), and each
  complete line is checked exactly once, in the spec's order of checks. It alone decides *which* error a
  bad head gets. The one check made on an incomplete line is the request line's method prefix
  (`_check_method_prefix`: binary input sent to the HTTP port fails at once), resumable the same way.
* The **fast path** (`_parse_whole_head`) handles the common case, a whole valid head in one buffer:
  one regex fullmatch for the request line, one anchored `findall` over the field block (every line
  must match, which a count of LFs proves), and the header dict built by one comprehension over a
  bounded name -> environ-key cache. Anything it does not recognise (a bad byte, a limit, leading
  empty lines, bare LF, trailing OWS in a value...) makes it return None and the slow path starts
  from the first byte, so the error for a bad line always comes from the slow path. It is tried at
  most once per request (when the first LF arrives), so it never spoils linearity.
* Inside the fast path, a **layout** (`_Layout`) takes the field block in one step. Clients send the
  same field names in the same order request after request (the C backend memoizes them too). Once a
  sequence of distinct, mapped names has been accepted twice, a regex made for it (the names as
  literals without regard to ASCII case, like their environ keys; each value captured under
  `_FIELD_LINE`'s rules) matches the whole block in one `fullmatch`: no per-line search, no name
  substrings, no hashing, and the environ keys come with the layout. A parser keeps the layout it last
  used and the one before (a browser alternates a page's names and its images'); a head neither
  fits (other names, or a line the rules refuse) goes the general way, which gives the same
  result. Layouts are bounded in number and in how often they may be made (`_record_layout`);
  possessive quantifiers keep each match linear, so they exist from Python 3.11 (3.10 always takes
  the general way).
* Before either, a **repeat** (`_repeat_head`): a keep-alive client usually sends the same field lines
  again. The parser keeps the last origin-form head its fast path built and that head's field block
  as text (up to REPEAT_MAX_HEAD characters); a head whose block is the same text, whose version is
  the same and whose target is again origin-form (all the end-of-head checks depend on besides the
  block) gets that head's headers dict (shared: nothing changes a Head's headers) and framing facts,
  and only its request line is parsed. The C backend does the same from its kept values (FW_HEAD_REPEAT).
  A head that took this way is then kept whole (its bytes and its Head, as in the C backend): a
  buffer starting with exactly those bytes gets that Head back without parsing (_types.py).

Both paths hand the accepted field lines (names and trimmed values, latin-1 str) to `_build_head`, which
runs the end-of-head checks (Host, Transfer-Encoding, Content-Length, Connection, Expect, Upgrade; RFC
9112 §3.2, §6, §9.3, RFC 9110 §10.1.1) and maps names to CGI keys.

Limits follow the spec's trip-point rule: a line starting at `s` with limit `L` trips once the buffer
holds `s + L + 1` bytes with no LF at or after `s`; the head (or trailer section) with limit `H` trips
once it holds `H + 1` bytes and is not complete; when one line crosses both, the smaller trip point
wins, the line limit on a tie. `_find_line` implements that rule once for heads, chunk-size lines and
trailer sections.

`ChunkedDecoder` is a small state machine (size line, data, data end, trailers, done) that returns
chunk data as soon as it arrives and never consumes an incomplete line. Where a size line is due, it
first takes the run of *plain* chunks that starts there (`_plain_chunks`: a size of 1-15 hex digits
and CRLF, no extension, its data and CRLF all in the buffer) at about one regex match per chunk; the
state machine goes on from the first chunk that is not one (the last chunk, an extension, a partial
or malformed chunk, a bare LF), so the steps still meet every error and every partial line. The
stride accepts nothing the steps would refuse (it runs only while max_chunk_line admits a 15-digit
size line). It makes a body of many small chunks ~3x cheaper: the cost per chunk is what a client
sending one-byte chunks (6 wire bytes each) charges a pure-Python server (benchmarks/results/
chunked-flood-2026-11-25.md). `serialize_head` validates the whole header list with two regexes and
builds the head with one join; any failure re-walks the list in order to report the first offending
header's exact code.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from ..errors import ParseError, ResponseError
from ._types import NOTHING_KEPT, REPEAT_MAX_HEAD, Head, Limits, StickyParser
from ._uwsgi_python import UwsgiParser  # noqa: F401  (docs/uwsgi-spec.md)

__all__ = ["NAME", "RequestParser", "ChunkedDecoder", "serialize_head", "UwsgiParser"]

NAME = "python"

_MAX_INT63 = (1 << 63) - 1
_NO_LIMIT = 1 << 62  # a head limit that never trips (chunk-size lines have none)

# ---------------------------------------------------------------------------------------------
# Grammar (all patterns work on latin-1 decoded str, so one char is one byte)
# ---------------------------------------------------------------------------------------------

# tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
#       / DIGIT / ALPHA                                                     (RFC 9110 §5.6.2)
_TCHAR = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
# token = 1*tchar
_TOKEN = re.compile(f"[{_TCHAR}]+")
# the first byte of a request line that is not a tchar (spec "Method prefix"), on the raw bytes
_NOT_TCHAR = re.compile(f"[^{_TCHAR}]".encode())
# ...and the ones that end the prefix without deciding anything: SP, HTAB, CR, LF
_METHOD_PREFIX_ENDS = frozenset(b" \t\r\n")
# field-value = *field-content; after trimming OWS: HTAB / SP / VCHAR / obs-text   (RFC 9110 §5.5)
_VALUE_CHAR = r"[\t\x20-\x7e\x80-\xff]"
_FIELD_VALUE = re.compile(_VALUE_CHAR + "*")
# HTTP-version = "HTTP/" DIGIT "." DIGIT                                           (RFC 9112 §2.3)
_VERSION = re.compile(r"HTTP/([0-9])\.([0-9])")
# request-target bytes: VCHAR only, no SP/CTL/obs-text                               (RFC 9112 §3.2)
_TARGET_CHARS = re.compile(r"[\x21\x22\x24-\x7e]+")  # no "#": a fragment is never sent (RFC 9112 §3.2)
# absolute-form prefix: scheme "://" authority (authority up to "/" or "?")   (RFC 9112 §3.2.2)
_ABSOLUTE_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*://([^/?]*)")
# Host = uri-host [ ":" port ]; uri-host = IP-literal / reg-name    (RFC 9112 §3.2, RFC 3986 §3.2.2)
# IP-literal = "[" ( IPv6address / IPvFuture ) "]"; IPv6address spelled out as in RFC 3986 §3.2.2
_H16 = "[0-9A-Fa-f]{1,4}"
_DEC_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_IPV4 = rf"{_DEC_OCTET}\.{_DEC_OCTET}\.{_DEC_OCTET}\.{_DEC_OCTET}"
_LS32 = f"(?:{_H16}:{_H16}|{_IPV4})"
_IPV6 = "|".join((
    f"(?:{_H16}:){{6}}{_LS32}",
    f"::(?:{_H16}:){{5}}{_LS32}",
    f"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
    f"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
    f"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
    f"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
    f"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
    f"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
    f"(?:(?:{_H16}:){{0,6}}{_H16})?::",
))
_IPVFUTURE = r"[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+"
_REG_NAME = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*"
_HOST = re.compile(f"(?:\\[(?:{_IPV6}|{_IPVFUTURE})\\]|{_REG_NAME})(?::[0-9]*)?")
# authority-form = uri-host ":" port (RFC 9112 §3.2.3): the port, which CONNECT must send (RFC 9110
# §9.3.6), ends the target; the rest is checked as a Host value
_PORT_AT_END = re.compile(r":[0-9]+\Z")
_CONTENT_LENGTH = re.compile(r"[0-9]+")

# Fast path: a whole request line, and one field line matched from the LF before it to its CR,
# captured as (name, leading OWS, value). The literal LF first lets findall skip to line starts at
# memchr speed; the OWS is taken atomically (`(?=(X))\2` is an atomic group that also works before
# Python 3.11), so the value cannot start with OWS and nothing can be re-split; the literal CR after
# the value lets a failing line backtrack in one tight loop. So a line that does not match costs
# time linear in its length. A value ending in OWS fails the lookbehind (rare: the slow path then
# trims it).
_REQUEST_LINE = re.compile(f"([{_TCHAR}]+) ([\\x21-\\x7e]+) HTTP/1\\.([0-9])")  # "#": see the fast path
_FIELD_LINE = re.compile(f"\\n([{_TCHAR}]+):(?=([ \\t]*))\\2({_VALUE_CHAR}*)\\r(?<![ \\t]\\r)(?=\\n)")

# chunk = chunk-size [ chunk-ext ] CRLF; chunk-size = 1*HEXDIG                       (RFC 9112 §7.1)
_CHUNK_SIZE = re.compile(r"[0-9A-Fa-f]+")
# a plain chunk-size line (no extension): at most 15 digits, so the size is below 2^63 and the line
# (16 bytes before its LF) within any max_chunk_line >= _PLAIN_LINE_MAX; on the raw bytes
_PLAIN_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,15})\r\n")
_PLAIN_LINE_MAX = 16
_CHUNK_EXT_START = re.compile(r"[ \t]*;")
# chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )        (RFC 9112 §7.1.1)
# chunk-ext-val = token / quoted-string; quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
_QUOTED_STRING = r'"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"'
_CHUNK_EXT = re.compile(
    f"(?:[ \\t]*;[ \\t]*[{_TCHAR}]+(?:[ \\t]*=[ \\t]*(?:[{_TCHAR}]+|{_QUOTED_STRING}))?)*"
)
# transfer-coding = token *( OWS ";" OWS transfer-parameter ), then OWS up to the next "," or the
# end; transfer-parameter = token BWS "=" BWS ( token / quoted-string )   (RFC 9112 §6.1, §7)
_TRANSFER_CODING = re.compile(
    f"([{_TCHAR}]+)(?:[ \\t]*;[ \\t]*[{_TCHAR}]+[ \\t]*=[ \\t]*(?:[{_TCHAR}]+|{_QUOTED_STRING}))*"
    "[ \\t]*"
)
# what comes before a list element: empty elements and OWS (RFC 9110 §5.6.1)
_LIST_SEPARATORS = re.compile(r"[ \t,]*")

# Response side: status-line = HTTP-version SP status-code SP [ reason-phrase ]   (RFC 9112 §4)
_STATUS = re.compile(r"[1-5][0-9][0-9] [\t\x20-\x7e\x80-\xff]*")
_TOKEN_CHARS_OR_EMPTY = re.compile(f"[{_TCHAR}]*")
# Connection-specific fields a WSGI application must not set (PEP 3333, RFC 9110 §7.6.1)
_HOP_BY_HOP = frozenset((
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade",
))

_CR = 13
_new_head = object.__new__
_DIGITS = {str(digit): digit for digit in range(10)}
_LF = 10
_SP_HTAB = " \t"

# Environ key per field name ("" = never mapped: names with "_", CVE-2015-0219). Bounded cache.
_KEY_CACHE: dict[str, str] = {}
_KEY_CACHE_MAX = 1024
# Host values already found valid (a server sees few distinct ones). Bounded like _KEY_CACHE.
_VALID_HOSTS: set[str] = set()


def _environ_key(name: str) -> str:
    """Environ key of a (valid) field name; "" if the name is never mapped."""
    if "_" in name:
        key = ""
    else:
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
    if len(_KEY_CACHE) < _KEY_CACHE_MAX:
        _KEY_CACHE[name] = key
    return key


class _Layout:
    """The field names of heads seen before, as their environ keys: `fullmatch(head, first_lf)`
    matches a head whose field lines carry names with exactly these keys in this order (names
    compared without regard to ASCII case, as the keys are), from the LF that ends the request line
    to the head's last LF; its groups are the values."""

    __slots__ = ("fullmatch", "keys")

    def __init__(self, names: list[str], keys: tuple[str, ...]):
        line = f":[ \\t]*+({_VALUE_CHAR}*+)\\r(?<![ \\t]\\r)"  # _FIELD_LINE's rules, possessive
        self.fullmatch = re.compile(
            "".join(f"\\n(?i:{re.escape(name)})" + line for name in names) + "\\n", re.ASCII).fullmatch
        self.keys = keys


try:
    re.compile("a*+")
    _LAYOUTS_SUPPORTED = True
except re.error:  # Python 3.10: no possessive quantifiers, so no linear layout regex
    _LAYOUTS_SUPPORTED = False
_LAYOUTS: dict[tuple[str, ...], _Layout] = {}  # by keys; oldest first
_LAYOUTS_MAX = 64
_LAYOUT_MAX_FIELDS = 32  # a longer head takes the general way
_SEEN_ONCE: set[tuple[str, ...]] = set()  # keys accepted once; cleared when it reaches 256
# Once _LAYOUTS is full, a new layout replaces the oldest only after this many heads went the
# general way since the last replacement: a client cycling through name sequences costs at most one
# regex compile (~0.5 ms) per this many requests.
_MISSES_PER_REPLACEMENT = 1024
_misses = 0


def _record_layout(keys: tuple[str, ...], pairs) -> _Layout | None:
    """After the general way accepted a head whose field lines `pairs` have the distinct, mapped
    `keys`: their layout, made on their second sighting within the bounds above, or None."""
    global _misses
    layout = _LAYOUTS.get(keys)
    if layout is not None or not _LAYOUTS_SUPPORTED or len(keys) > _LAYOUT_MAX_FIELDS:
        return layout
    _misses += 1
    if keys not in _SEEN_ONCE:
        if len(_SEEN_ONCE) >= 256:
            _SEEN_ONCE.clear()
        _SEEN_ONCE.add(keys)
        return None
    if len(_LAYOUTS) >= _LAYOUTS_MAX:
        if _misses < _MISSES_PER_REPLACEMENT:
            return None
        _LAYOUTS.pop(next(iter(_LAYOUTS)), None)  # the oldest (another thread may race us)
        _misses = 0
    _SEEN_ONCE.discard(keys)
    layout = _LAYOUTS[keys] = _Layout([pair[0] for pair in pairs], keys)
    return layout


# ---------------------------------------------------------------------------------------------
# Lines (spec "Lines")
# ---------------------------------------------------------------------------------------------

_INCOMPLETE = -1
_LINE_LIMIT = -2
_HEAD_LIMIT = -3


def _find_line(buf, start: int, scan: int, line_limit: int, head_end: int) -> int:
    """Return the offset of the LF ending the line that starts at `start`, or a negative verdict.

    `scan` is where to resume looking (bytes before it hold no LF past `start`). `head_end` is the
    buffer offset at which the enclosing section reaches its size limit (its limit H plus the
    section's start), so the section trips at buffer length head_end + 1.
    Verdicts: _INCOMPLETE (no trip yet), _LINE_LIMIT, _HEAD_LIMIT (spec: smaller trip point wins,
    the line limit on a tie).
    """
    line_trip = start + line_limit + 1  # buffer length at which the line limit trips
    window_end = min(line_trip, head_end)  # an LF before this offset crosses no limit
    lf = buf.find(b"\n", scan, window_end)
    if lf >= 0:
        return lf
    length = len(buf)
    if length < window_end:
        return _INCOMPLETE
    lf = buf.find(b"\n", window_end)
    if lf >= 0:  # complete line whose LF lies beyond a limit
        crosses_line = lf >= line_trip
        crosses_head = lf >= head_end
    else:
        crosses_line = length >= line_trip
        crosses_head = length >= head_end + 1
    if crosses_line and crosses_head:
        return _LINE_LIMIT if line_trip <= head_end + 1 else _HEAD_LIMIT
    if crosses_line:
        return _LINE_LIMIT
    if crosses_head:
        return _HEAD_LIMIT
    return _INCOMPLETE


def _content_end(buf, start: int, lf: int, allow_bare_lf: bool) -> int:
    """Offset where the line's content ends (its CR, or the LF when bare LF is allowed)."""
    if lf > start and buf[lf - 1] == _CR:
        end = lf - 1
    elif allow_bare_lf:
        end = lf
    else:
        raise ParseError("BARE_LF")
    if buf.find(b"\r", start, end) >= 0:
        raise ParseError("BARE_CR")
    return end


def _check_field_line(content: str) -> tuple[str, str]:
    """Validate one complete, non-empty field line (spec "Field lines" 3-7); return (name, value)."""
    if content[0] in _SP_HTAB:
        raise ParseError("OBS_FOLD")  # RFC 9112 §5.2
    colon = content.find(":")
    if colon < 0:
        raise ParseError("BAD_HEADER_NAME")
    name = content[:colon]
    if name and name[-1] in _SP_HTAB:
        raise ParseError("SPACE_BEFORE_COLON")  # RFC 9112 §5.1
    if _TOKEN.fullmatch(name) is None:
        raise ParseError("BAD_HEADER_NAME")
    value = content[colon + 1:].strip(_SP_HTAB)
    if _FIELD_VALUE.fullmatch(value) is None:
        raise ParseError("BAD_HEADER_VALUE")  # RFC 9110 §5.5
    return name, value


# ---------------------------------------------------------------------------------------------
# Request line (RFC 9112 §3)
# ---------------------------------------------------------------------------------------------

def _split_target(method: str, target: str) -> tuple[str, str]:
    """Return (raw path, raw query) of a request-target whose bytes are already checked."""
    if method == "CONNECT":  # authority-form, with a host (RFC 9110 §4.2.1) and a port (§9.3.6)
        if target[0] == ":" or _PORT_AT_END.search(target) is None or _HOST.fullmatch(target) is None:
            raise ParseError("BAD_TARGET")
        # well-formed, but a WSGI server cannot hand the connection over as a tunnel: 501 for a
        # method the origin server does not implement (RFC 9110 §9.1)
        raise ParseError("METHOD_NOT_IMPLEMENTED")
    if target[0] == "/":  # origin-form
        path, _, query = target.partition("?")
        return path, query
    if target == "*":  # asterisk-form, OPTIONS only (RFC 9112 §3.2.4)
        if method == "OPTIONS":
            return "*", ""
        raise ParseError("BAD_TARGET")
    prefix = _ABSOLUTE_PREFIX.match(target)  # absolute-form (RFC 9112 §3.2.2)
    if prefix is None:
        raise ParseError("BAD_TARGET")  # authority-form included: it is CONNECT's alone
    # authority = uri-host [ ":" port ], the host not empty (RFC 9110 §4.2.1), no userinfo (§4.2.4)
    authority = prefix[1]
    if authority[:1] in ("", ":") or _HOST.fullmatch(authority) is None:
        raise ParseError("BAD_TARGET")
    path, _, query = target[prefix.end():].partition("?")
    return path, query


def _check_request_line(content: str) -> tuple[str, str, str, str, str, int]:
    """Validate a request line in the spec's order.

    Returns (method, target, path, query, version, minor) with the path still percent-encoded.
    """
    if content.count(" ") != 2:
        raise ParseError("BAD_REQUEST_LINE")
    method, target, version = content.split(" ")
    if _TOKEN.fullmatch(method) is None:
        raise ParseError("BAD_METHOD")
    digits = _VERSION.fullmatch(version)
    if digits is None:
        raise ParseError("BAD_VERSION")
    if digits[1] != "1":
        raise ParseError("VERSION_NOT_SUPPORTED")
    if _TARGET_CHARS.fullmatch(target) is None:
        raise ParseError("BAD_TARGET")
    path, query = _split_target(method, target)
    return method, target, path, query, version, int(digits[2])


# ---------------------------------------------------------------------------------------------
# End of head (spec "End of head" and "Environ variables")
# ---------------------------------------------------------------------------------------------

def _comma_list(value: str):
    """Elements of a #list value, OWS trimmed, lower-cased, empty ones dropped (RFC 9110 §5.6.1)."""
    for element in value.lower().split(","):
        element = element.strip(_SP_HTAB)
        if element:
            yield element


def _check_transfer_encoding(values) -> None:
    """RFC 9112 §6.1: chunked must be the final coding, exactly once; we implement no other coding.

    `values` holds each Transfer-Encoding field line's value; each is a list on its own (a
    quoted-string cannot run from one line into the next)."""
    names = []
    for value in values:
        pos = _LIST_SEPARATORS.match(value).end()
        while pos < len(value):  # scanned, not split on ",": a quoted-string may hold a comma
            coding = _TRANSFER_CODING.match(value, pos)
            if coding is None or (coding.end() < len(value) and value[coding.end()] != ","):
                raise ParseError("BAD_TRANSFER_ENCODING")
            names.append(coding[1].lower())
            pos = _LIST_SEPARATORS.match(value, coding.end()).end()
    if not names or names[-1] != "chunked" or names.count("chunked") != 1:
        raise ParseError("BAD_TRANSFER_ENCODING")
    if len(names) > 1:
        raise ParseError("UNKNOWN_TRANSFER_CODING")


def _build_head(consumed, method, target, path, query, version, minor, fields, headers, limits):
    """Run the end-of-head checks and build the Head.

    `fields` are the field lines as tuples (name, ..., value); `headers` is
    {_environ_key(name): value for each field}, which is already the environ when every name is
    distinct and mapped.
    """
    get_key = _KEY_CACHE.get
    if len(headers) == len(fields) and "" not in headers:  # each name once, all mapped
        host_count = 1 if "HTTP_HOST" in headers else 0
        length_count = 1 if "CONTENT_LENGTH" in headers else 0
        expects = (headers["HTTP_EXPECT"],) if "HTTP_EXPECT" in headers else ()
        codings = ((headers["HTTP_TRANSFER_ENCODING"],) if "HTTP_TRANSFER_ENCODING" in headers
                   else ())
    else:  # repeated names (joined with "," in arrival order, Cookie with "; ") or names never mapped
        headers = {}
        keys = []
        for field in fields:
            name, value = field[0], field[-1]
            key = get_key(name) or _environ_key(name)
            keys.append(key)
            if key:
                if key in headers:  # Cookie with "; " (RFC 9113 §8.2.3): "," would merge two cookies
                    headers[key] += ("; " if key == "HTTP_COOKIE" else ",") + value
                else:
                    headers[key] = value
        host_count = keys.count("HTTP_HOST")
        length_count = keys.count("CONTENT_LENGTH")
        expects = [field[-1] for key, field in zip(keys, fields) if key == "HTTP_EXPECT"]
        codings = [field[-1] for key, field in zip(keys, fields)
                   if key == "HTTP_TRANSFER_ENCODING"]

    # 1. Host (RFC 9112 §3.2)
    if host_count:
        if host_count > 1:
            raise ParseError("DUPLICATE_HOST")
        host = headers["HTTP_HOST"]
        if host not in _VALID_HOSTS:
            if _HOST.fullmatch(host) is None:
                raise ParseError("BAD_HOST")
            if len(_VALID_HOSTS) < _KEY_CACHE_MAX:
                _VALID_HOSTS.add(host)
    elif minor and not limits.allow_missing_host:
        raise ParseError("MISSING_HOST")
    if target[0] != "/" and target != "*":  # absolute-form: the server MUST use its authority instead
        headers["HTTP_HOST"] = _ABSOLUTE_PREFIX.match(target)[1]  # of the Host field (RFC 9112 §3.2.2)

    # 2. Transfer-Encoding (RFC 9112 §6.1, §6.3)
    chunked = False
    if codings:
        if not minor:
            raise ParseError("TE_ON_HTTP10")
        if length_count:
            raise ParseError("CONTENT_LENGTH_AND_TE")
        _check_transfer_encoding(codings)
        chunked = True

    # 3. Content-Length (RFC 9112 §6.3, RFC 9110 §8.6)
    content_length = -1
    if length_count:
        if length_count > 1:
            raise ParseError("DUPLICATE_CONTENT_LENGTH")
        text = headers["CONTENT_LENGTH"]
        if _CONTENT_LENGTH.fullmatch(text) is None:
            raise ParseError("BAD_CONTENT_LENGTH")
        significant = text.lstrip("0")  # leading zeros are fine; int() refuses > 4300 digits
        if len(significant) > 19:
            raise ParseError("BAD_CONTENT_LENGTH")
        content_length = int(significant or "0")
        if content_length > _MAX_INT63:
            raise ParseError("BAD_CONTENT_LENGTH")

    # 4. Connection (RFC 9112 §9.3)
    keep_alive = minor >= 1
    upgrade = False
    connection = headers.get("HTTP_CONNECTION")
    if connection is not None:
        if connection == "keep-alive":  # the common value, without the general split
            keep_alive = True
        else:
            options = set(_comma_list(connection))
            if "close" in options:
                keep_alive = False
            elif "keep-alive" in options:
                keep_alive = True
            upgrade = "upgrade" in options

    # 5. Expect (RFC 9110 §10.1.1), each field line on its own; ignored on HTTP/1.0
    expect_continue = False
    if minor:
        for expect in expects:
            if expect.lower() == "100-continue":
                expect_continue = True
            elif expect:
                raise ParseError("BAD_EXPECT")

    # 6. Upgrade (RFC 9110 §7.8: a server MUST ignore Upgrade received in an HTTP/1.0 request)
    upgrade = upgrade and minor >= 1 and "HTTP_UPGRADE" in headers

    if "%" in path:
        path = unquote(path, encoding="latin-1")  # %XX -> byte; any other "%" kept as is
    head = _new_head(Head)  # slots filled in place: cheaper than a 13-argument __init__
    head.consumed = consumed
    head.method = method
    head.target = target
    head.path = path
    head.query = query
    head.version = version
    head.minor = minor
    head.headers = headers
    head.content_length = content_length
    head.chunked = chunked
    head.keep_alive = keep_alive
    head.expect_continue = expect_continue
    head.upgrade = upgrade
    return head


def _parse_whole_head(buf, first_lf: int, limits: Limits, layouts: tuple,
                      source: Head | None, source_block: str | None):
    """Fast path: parse a whole, valid, CRLF-only head starting at offset 0, or return None.

    `layouts` are the parser's last layout and the one before (each may be None); `source` an
    origin-form head this parser accepted whose field block (from the request line's LF to the last
    CRLF) was `source_block`. Returns (Head, the layouts to keep, the source and block to keep) or
    None."""
    if first_lf == 0 or buf[first_lf - 1] != _CR:
        return None
    end = buf.find(b"\r\n\r\n", first_lf - 1, limits.max_head_size)
    if end < 0:
        return None
    if first_lf > limits.max_request_line or limits.max_header_line < 1:
        return None
    head = buf[:end + 2].decode("latin-1")  # request line and field lines, each with its CRLF
    request_line = _REQUEST_LINE.fullmatch(head, 0, first_lf - 1)
    if request_line is None:
        return None
    method, target, minor = request_line.groups()
    if "#" in target:  # a fragment (refused): one VCHAR range keeps the regex fast, str.find is cheap
        return None
    version = head[first_lf - 9:first_lf - 1]
    origin_form = target[0] == "/" and method != "CONNECT"  # the common case of _split_target
    if origin_form:
        path, _, query = target.partition("?")
    block = head[first_lf:]
    if origin_form and block == source_block and _DIGITS[minor] == source.minor:
        # the field lines of `source` again, byte for byte, under the same HTTP version and an
        # origin-form target: the same headers and framing facts (they depend on nothing else)
        return _repeat_head(end + 4, method, target, path, query, version, source), \
            layouts, source, block
    block_start = first_lf + 1
    if block_start < len(head):
        if len(head) - block_start > limits.max_header_line and \
                max(map(len, head[block_start:].split("\r\n"))) + 1 > limits.max_header_line:
            return None
        layout, other = layouts
        match = None if layout is None else layout.fullmatch(head, first_lf)
        if match is None and other is not None:  # a client alternating two name sequences
            match = other.fullmatch(head, first_lf)  # (a page and its images...)
            if match is not None:
                layouts = layout, other = other, layout
        if match is not None and len(layout.keys) <= limits.max_header_count:
            fields = layout.keys  # distinct and mapped: _build_head only takes their number
            headers = dict(zip(fields, match.groups()))
        else:
            fields = _FIELD_LINE.findall(head, first_lf)
            # each match is one whole line (from the LF before it to its CR, no CR or LF inside),
            # so as many matches as field lines (LFs after the request line) means every line
            # matched
            if len(fields) != head.count("\n", block_start) or len(fields) > limits.max_header_count:
                return None
            get_key = _KEY_CACHE.get
            headers = {get_key(name) or _environ_key(name): value for name, _, value in fields}
            # a name repeated or never mapped: no layout fits (None), so the parser tries its old
            # one second
            found = (_record_layout(tuple(headers), fields)
                     if len(headers) == len(fields) and "" not in headers else None)
            if found is not layout:
                layouts = found, layout
    else:
        fields = ()
        headers = {}
    if not origin_form:
        path, query = _split_target(method, target)
    built = _build_head(end + 4, method, target, path, query, version, _DIGITS[minor], fields,
                        headers, limits)
    if not origin_form or len(block) > REPEAT_MAX_HEAD:  # kept: origin-form heads up to the bound
        return built, layouts, None, None
    return built, layouts, built, block


def _repeat_head(consumed: int, method: str, target: str, path: str, query: str, version: str,
                 source: Head) -> Head:
    """A head with its own origin-form request line and `source`'s field lines: `source`'s headers
    (the same dict: nothing changes a Head's headers) and framing facts."""
    if "%" in path:
        path = unquote(path, encoding="latin-1")
    head = _new_head(Head)
    head.consumed, head.method, head.target, head.path, head.query, head.version = \
        consumed, method, target, path, query, version
    head.minor, head.headers, head.content_length, head.chunked, head.keep_alive, \
        head.expect_continue, head.upgrade = source.minor, source.headers, source.content_length, \
        source.chunked, source.keep_alive, source.expect_continue, source.upgrade
    return head


# ---------------------------------------------------------------------------------------------
# Request parser
# ---------------------------------------------------------------------------------------------

class RequestParser(StickyParser):
    """Incremental request-head parser; one per connection, `reset()` between requests."""

    __slots__ = ("_line_start", "_scan", "_method_scan", "_fresh", "_request", "_fields", "_layouts",
                 "_source", "_source_block", "_kept_len", "_kept_bytes", "_kept_head")

    def __init__(self, limits: Limits | None = None):
        # the layouts of the last head the fast path took and of the one before (or None): kept
        # across reset()
        self._layouts = (None, None)
        self._source = self._source_block = None  # the last origin-form head it took, its fields
        self._kept_len, self._kept_bytes, self._kept_head = NOTHING_KEPT  # the last repeat, whole
        super().__init__(limits)

    def reset(self) -> None:
        self._result = self._error = None  # StickyParser.reset, without the super() call's cost
        self._line_start = 0  # offset of the first line not yet complete
        self._scan = 0  # bytes before this hold no LF past _line_start
        self._method_scan = 0  # request line bytes before this are tchar; None: the prefix ended
        self._fresh = True  # no LF seen yet: the fast path may still take the whole head
        self._request = None  # (method, target, path, query, version, minor) once the line is in
        self._fields: list[tuple[str, str]] = []  # accepted field lines (name, value)

    def _parse(self, buf) -> Head | None:
        if buf[:self._kept_len] == self._kept_bytes:  # the last repeat again (_types.py)
            return self._kept_head
        if self._fresh:
            first_lf = buf.find(b"\n", self._scan)
            if first_lf < 0:
                self._scan = len(buf)  # the slow path below applies the limits
            else:
                self._fresh = False
                self._scan = first_lf
                parsed = _parse_whole_head(buf, first_lf, self._limits, self._layouts, self._source,
                                           self._source_block)
                if parsed is not None:
                    head, self._layouts, source, self._source_block = parsed
                    if source is self._source and source is not None and \
                            head.consumed <= REPEAT_MAX_HEAD:  # a repeat: kept whole (_types.py)
                        self._kept_len, self._kept_bytes, self._kept_head = \
                            head.consumed, bytes(buf[:head.consumed]), head
                    self._source = source
                    return head
        return self._parse_lines(buf)

    def _parse_lines(self, buf) -> Head | None:
        """The slow path: take every complete line once, in order, and check it per the spec."""
        limits = self._limits
        head_limit = limits.max_head_size
        allow_bare_lf = limits.allow_bare_lf
        while True:
            start = self._line_start
            if self._request is None:
                if self._method_scan is not None:
                    self._check_method_prefix(buf, start)
                line_limit, too_long = limits.max_request_line, "URI_TOO_LONG"
            else:
                line_limit, too_long = limits.max_header_line, "HEADER_LINE_TOO_LONG"
            lf = _find_line(buf, start, max(self._scan, start), line_limit, head_limit)
            if lf < 0:
                if lf == _INCOMPLETE:
                    self._scan = len(buf)
                    return None
                raise ParseError(too_long if lf == _LINE_LIMIT else "HEAD_TOO_LARGE")
            end = _content_end(buf, start, lf, allow_bare_lf)
            self._line_start = self._scan = lf + 1
            if end == start:  # empty line
                if self._request is None:
                    self._method_scan = lf + 1  # the request line may start after it
                    continue  # RFC 9112 §2.2: empty lines before the request line are skipped
                fields = self._fields
                get_key = _KEY_CACHE.get
                headers = {get_key(name) or _environ_key(name): value for name, value in fields}
                return _build_head(lf + 1, *self._request, fields, headers, limits)
            content = buf[start:end].decode("latin-1")
            if self._request is None:
                self._request = _check_request_line(content)
            else:
                if len(self._fields) >= limits.max_header_count:
                    raise ParseError("TOO_MANY_HEADERS")
                self._fields.append(_check_field_line(content))

    def _check_method_prefix(self, buf, start: int) -> None:
        """Spec "Method prefix": BAD_METHOD once the request line's first non-tchar byte is in, unless
        it is SP, HTAB, CR or LF, or a limit trips at a buffer length <= its offset + 1 (the bytes
        from `bound` on are left to _find_line, whose limit trips first or at the same length).
        Resumes at _method_scan, so each byte of the prefix is looked at once."""
        limits = self._limits
        bound = min(len(buf), start + limits.max_request_line, limits.max_head_size)
        scan = self._method_scan
        if scan >= bound:
            return
        found = _NOT_TCHAR.search(buf, scan, bound)
        if found is None:
            self._method_scan = bound
        elif buf[found.start()] in _METHOD_PREFIX_ENDS:
            self._method_scan = None  # the line is checked when complete
        else:
            raise ParseError("BAD_METHOD")


# ---------------------------------------------------------------------------------------------
# Chunked body (RFC 9112 §7.1)
# ---------------------------------------------------------------------------------------------

_SIZE_LINE, _DATA, _DATA_END, _TRAILERS, _DONE = range(5)


def _chunk_size(content: str) -> int:
    """Parse a chunk-size line's content (spec "Chunked body" 2-3); extensions are discarded."""
    digits = _CHUNK_SIZE.match(content)
    if digits is None:
        raise ParseError("BAD_CHUNK_SIZE")
    size = int(digits[0], 16)
    if size > _MAX_INT63:
        raise ParseError("BAD_CHUNK_SIZE")
    rest = digits.end()
    if rest < len(content):
        if _CHUNK_EXT_START.match(content, rest) is None:
            raise ParseError("BAD_CHUNK_SIZE")
        if _CHUNK_EXT.fullmatch(content, rest) is None:
            raise ParseError("BAD_CHUNK_EXTENSION")
    return size


def _plain_chunks(buf, pos: int, pieces: list) -> int:
    """Append the data of the whole plain chunks starting at `pos` to `pieces`; return where the
    first other thing starts (the last chunk, an extension, a partial or malformed chunk)."""
    match = _PLAIN_CHUNK_LINE.match
    append = pieces.append
    while True:
        line = match(buf, pos)
        if line is None:
            return pos
        size = int(line[1], 16)
        start = line.end()
        end = start + size
        if not size or buf[end:end + 2] != b"\r\n":
            return pos
        append(buf[start:end])
        pos = end + 2


class ChunkedDecoder:
    """Streaming decoder of one chunked body: `decode(buf)` -> (data, consumed); `done` at the end."""

    __slots__ = ("_limits", "_state", "_scanned", "_remaining", "_trailer_bytes", "_trailer_count",
                 "_error", "done")

    def __init__(self, limits: Limits | None = None):
        self._limits = limits if limits is not None else Limits()
        self._state = _SIZE_LINE
        self._scanned = 0  # bytes of the pending line (at buf[0]) already known to hold no LF
        self._remaining = 0  # data bytes left in the current chunk
        self._trailer_bytes = 0  # bytes of the trailer section consumed so far
        self._trailer_count = 0
        self._error = None
        self.done = False

    def decode(self, buf) -> tuple[bytes, int]:
        if self._error is not None:
            raise self._error
        try:
            return self._decode(buf)
        except ParseError as exc:
            self._error = exc
            raise

    def _decode(self, buf) -> tuple[bytes, int]:
        limits = self._limits
        length = len(buf)
        pos = 0
        pieces = []
        state = self._state
        while pos < length or state == _DONE:
            if state == _DATA:
                take = min(self._remaining, length - pos)
                pieces.append(buf[pos:pos + take])
                pos += take
                self._remaining -= take
                if self._remaining:
                    break
                state = _DATA_END
            elif state == _DATA_END:  # exactly CRLF after the data, checked byte by byte
                first = buf[pos]
                if first == _CR:
                    if pos + 1 >= length:
                        break
                    if buf[pos + 1] != _LF:
                        raise ParseError("BAD_CHUNK_DATA_END")
                    pos += 2
                elif first == _LF and limits.allow_bare_lf:
                    pos += 1
                else:
                    raise ParseError("BAD_CHUNK_DATA_END")
                state = _SIZE_LINE
            elif state == _DONE:
                self.done = True
                break
            else:  # a line: chunk size or trailer field
                in_trailers = state == _TRAILERS
                if not in_trailers and limits.max_chunk_line >= _PLAIN_LINE_MAX:
                    run_end = _plain_chunks(buf, pos, pieces)
                    if run_end != pos:  # (the pending line was the run's first: complete)
                        pos, self._scanned = run_end, 0
                        if pos == length:
                            break
                if in_trailers:
                    line_limit = limits.max_header_line
                    section_end = pos - self._trailer_bytes + limits.max_head_size
                else:
                    line_limit = limits.max_chunk_line
                    section_end = _NO_LIMIT
                lf = _find_line(buf, pos, pos + self._scanned, line_limit, section_end)
                if lf < 0:
                    if lf == _INCOMPLETE:
                        self._scanned = length - pos
                        break
                    if not in_trailers:
                        raise ParseError("CHUNK_LINE_TOO_LONG")
                    raise ParseError("HEADER_LINE_TOO_LONG" if lf == _LINE_LIMIT else "HEAD_TOO_LARGE")
                end = _content_end(buf, pos, lf, limits.allow_bare_lf)
                self._scanned = 0
                if in_trailers:
                    self._trailer_bytes += lf + 1 - pos
                    if end == pos:
                        state = _DONE
                    else:
                        if self._trailer_count >= limits.max_header_count:
                            raise ParseError("TOO_MANY_HEADERS")
                        _check_field_line(buf[pos:end].decode("latin-1"))
                        self._trailer_count += 1
                else:
                    size = _chunk_size(buf[pos:end].decode("latin-1"))
                    if size:
                        self._remaining = size
                        state = _DATA
                    else:
                        state = _TRAILERS
                pos = lf + 1
        self._state = state
        if not pieces:
            return b"", pos
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        return (data if type(data) is bytes else bytes(data)), pos


# ---------------------------------------------------------------------------------------------
# Response head (spec "Response head")
# ---------------------------------------------------------------------------------------------

_CONNECTION_LINES = {
    None: "",
    "close": "Connection: close\r\n",
    "keep-alive": "Connection: keep-alive\r\n",
}


def _first_header_error(headers) -> str:
    """Walk the headers in order and name the first rule broken (the slow half of serialize_head)."""
    for header in headers:
        try:
            name, value = header
        except (TypeError, ValueError):
            return "BAD_RESPONSE_HEADER_NAME"  # not a (name, value) pair
        if not isinstance(name, str) or _TOKEN.fullmatch(name) is None:
            return "BAD_RESPONSE_HEADER_NAME"  # field-name = token (RFC 9110 §5.1)
        if name.lower() in _HOP_BY_HOP:
            return "HOP_BY_HOP_HEADER"
        if not isinstance(value, str) or _FIELD_VALUE.fullmatch(value) is None:
            return "BAD_RESPONSE_HEADER_VALUE"  # no CR, LF, NUL or other CTL (RFC 9110 §5.5)
    return ""


def serialize_head(status, headers, *, date, server=None, chunked=False, connection=None) -> bytes:
    """Build "HTTP/1.1 <status>" + fields + blank line as latin-1 bytes, or raise ResponseError."""
    if not isinstance(status, str) or _STATUS.fullmatch(status) is None:
        raise ResponseError("BAD_STATUS", repr(status))
    if type(headers) is not list:
        headers = list(headers)
    # Fast check of the whole list: every name a token, every value clean, no hop-by-hop name.
    try:
        names = [name for name, _ in headers]
        valid = (_TOKEN_CHARS_OR_EMPTY.fullmatch("".join(names)) is not None and all(names)
                 and _FIELD_VALUE.fullmatch("".join([value for _, value in headers])) is not None)
    except (TypeError, ValueError):  # not pairs, or not str
        valid = False
    if valid:
        lowered = set(map(str.lower, names))
        valid = _HOP_BY_HOP.isdisjoint(lowered)
    if not valid:
        raise ResponseError(_first_header_error(headers) or "BAD_RESPONSE_HEADER_NAME")
    try:
        connection_line = _CONNECTION_LINES[connection]
    except (KeyError, TypeError):
        raise ValueError(f"connection must be None, 'close' or 'keep-alive', not {connection!r}")
    parts = ["HTTP/1.1 ", status, "\r\n"]
    if server and "server" not in lowered:
        parts += ("Server: ", server, "\r\n")
    if "date" not in lowered:
        parts += ("Date: ", date, "\r\n")
    if headers:
        parts += ("\r\n".join(map(": ".join, headers)), "\r\n")
    if chunked:
        parts.append("Transfer-Encoding: chunked\r\n")
    parts += (connection_line, "\r\n")
    return "".join(parts).encode("latin-1")
