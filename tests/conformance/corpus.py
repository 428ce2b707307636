"""Loader for the conformance corpus in tests/conformance/cases/.

Theory of operation
-------------------
The corpus is plain text, one file per topic, grouped by what it exercises:

    cases/head/*.txt       request heads      -> RequestParser.parse
    cases/chunked/*.txt    chunked bodies     -> ChunkedDecoder.decode
    cases/serialize/*.txt  response heads     -> serialize_head
    cases/uwsgi/*.txt      uwsgi packets      -> UwsgiParser.parse (docs/uwsgi-spec.md)

A file is a sequence of cases. Each case starts with ``=== name`` and holds ``key: value`` lines and
data lines starting with ``> ``. Lines starting with ``#`` are comments; blank lines are ignored.
cases/README.md documents the keys of each kind; this module turns a file into `Case` objects and
rejects anything it does not understand (a typo in the corpus must fail loudly, never drop a check).

Data lines are byte strings written in printable ASCII. The newline ending a data line is NOT
part of the data: every CR, LF and other control byte is written as an escape, so the file says
exactly which bytes are sent. Escapes: ``\\r`` ``\\n`` ``\\t`` ``\\\\`` ``\\xHH`` and ``\\{N*text}``
(``text`` repeated N times; it may hold escapes and nested repeats, and ends at the matching
``}``). Literal tabs, control bytes, non-ASCII and trailing white space are refused in data lines
(write ``\\x20`` for a trailing space). Expected str values use the same escapes (latin-1).

uwsgi cases may build their packet instead of spelling out binary sizes: ``packet:`` starts a
packet, each ``var: KEY=VALUE`` adds a pair (sizes computed; KEY is split off at the first literal
``=``, then both sides are unescaped), ``append: BYTES`` adds raw bytes inside the vars block
(counted in datasize), ``modifier1:``/``modifier2:``/``datasize:`` override the header,
``> `` lines are raw bytes after the packet (a body) and ``truncate: N`` keeps only the first N
bytes of it all; ``consumed: packet`` expects 4 + the header's datasize. `build_packet` is the one
place that encodes this.
"""

from __future__ import annotations

import ast
import dataclasses
import pathlib
import re
import struct

from fastwsgi.errors import ERRORS
from fastwsgi.parser import Limits

CASES_DIR = pathlib.Path(__file__).resolve().parent / "cases"
KINDS = ("head", "chunked", "serialize", "uwsgi")

_LIMIT_FIELDS = {f.name: f.type for f in dataclasses.fields(Limits)}
_BOOL = {"yes": True, "no": False}


class CorpusError(ValueError):
    """The corpus file is malformed (not a parser failure: the test data itself is wrong)."""


@dataclasses.dataclass
class Case:
    kind: str                 # "head", "chunked", "serialize" or "uwsgi"
    file: str                 # e.g. "head/request-line.txt"
    name: str
    line: int                 # line number of the "===" line, for messages
    ref: str
    limits: Limits
    data: bytes               # request/body bytes (head, chunked) or expected output (serialize)
    fields: dict              # every other key, raw text (unescaped per kind below)
    error: tuple | None = None    # (code, status) when the case expects an error
    expected: object = None       # kind-specific expected result, see the load_* functions

    @property
    def id(self) -> str:
        return f"{self.file}:{self.name}"


# ---- escapes -------------------------------------------------------------------------------------

_SIMPLE = {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\"}
_HEX = "0123456789abcdefABCDEF"


def unescape(text: str) -> bytes:
    data, pos = _unescape(text, 0, nested=False)
    return data


def _unescape(text: str, pos: int, nested: bool) -> tuple[bytes, int]:
    """Decode from text[pos:] up to the end (or, when nested, up to the closing '}')."""
    out = bytearray()
    while pos < len(text):
        ch = text[pos]
        if nested and ch == "}":
            return bytes(out), pos + 1
        if ch != "\\":
            out += ch.encode("ascii")
            pos += 1
            continue
        kind = text[pos + 1:pos + 2]
        if kind in ("r", "n", "t", "\\"):
            out += _SIMPLE[kind]
            pos += 2
        elif kind == "x" and len(text) >= pos + 4 and all(c in _HEX for c in text[pos + 2:pos + 4]):
            out.append(int(text[pos + 2:pos + 4], 16))
            pos += 4
        elif kind == "{":
            match = re.compile(r"(\d+)\*").match(text, pos + 2)
            if not match:
                raise CorpusError(f"repeat escape is \\{{N*text}}: {text!r}")
            inner, pos = _unescape(text, match.end(), nested=True)
            out += inner * int(match.group(1))
        else:
            raise CorpusError(f"unknown escape {text[pos:pos + 4]!r} in {text!r}")
    if nested:
        raise CorpusError(f"unclosed \\{{N*...}} in {text!r}")
    return bytes(out), pos


def _check_printable(text: str, where: str) -> None:
    if any(not (0x20 <= ord(ch) <= 0x7E) for ch in text):
        raise CorpusError(f"{where}: data must be printable ASCII (use escapes): {text!r}")
    if text != text.rstrip():
        raise CorpusError(f"{where}: trailing white space in data; write it as \\x20")


# ---- file reader ---------------------------------------------------------------------------------

def _parse_limits(text: str, where: str) -> Limits:
    values = {}
    for word in text.split():
        key, eq, value = word.partition("=")
        if key not in _LIMIT_FIELDS:
            raise CorpusError(f"{where}: unknown limit {key!r}")
        if key.startswith("allow_"):
            if eq:
                raise CorpusError(f"{where}: {key} is a flag, write it without a value")
            values[key] = True
        else:
            if not value.isdigit():
                raise CorpusError(f"{where}: {key} needs a number")
            values[key] = int(value)
    return Limits(**values)


def _parse_error(text: str, where: str) -> tuple:
    parts = text.split()
    if len(parts) != 2 or parts[0] not in ERRORS or not parts[1].isdigit():
        raise CorpusError(f"{where}: expected 'error: CODE STATUS', got {text!r}")
    code, status = parts[0], int(parts[1])
    if ERRORS[code][1] != status:
        raise CorpusError(f"{where}: {code} has status {ERRORS[code][1]}, not {status}")
    return code, status


def read_file(path: pathlib.Path, kind: str) -> list[Case]:
    rel = f"{kind}/{path.name}"
    cases: list[Case] = []
    current = None
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        where = f"{rel}:{lineno}"
        if raw.startswith("==="):
            name = raw[3:].strip()
            if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", name):
                raise CorpusError(f"{where}: case names are lower-case words joined by '-': "
                                  f"{name!r}")
            current = {"name": name, "line": lineno, "data": [], "fields": {}, "env": [],
                       "block": [], "incomplete": False}
            cases.append(current)
            continue
        if not raw.strip() or raw.startswith("#"):
            continue
        if current is None:
            raise CorpusError(f"{where}: text before the first '=== name' line")
        if raw.startswith(">"):
            text = raw[2:] if raw.startswith("> ") else raw[1:]
            if raw not in (">",) and not raw.startswith("> "):
                raise CorpusError(f"{where}: data lines start with '> '")
            _check_printable(text, where)
            current["data"].append(text)
            continue
        if raw.strip() == "incomplete":
            current["incomplete"] = True
            continue
        key, colon, value = raw.partition(":")
        if not colon or not re.fullmatch(r"[a-z_][a-z0-9_]*", key):
            raise CorpusError(f"{where}: expected 'key: value', '> data' or 'incomplete': {raw!r}")
        if value and not value.startswith(" "):
            raise CorpusError(f"{where}: write 'key: value' with one space")
        value = value[1:]
        if value != value.rstrip():
            raise CorpusError(f"{where}: trailing white space; write it as \\x20")
        if key == "env":
            current["env"].append(value)
        elif key in ("var", "append") and kind == "uwsgi":
            current["block"].append((key, value, where))
        elif key in current["fields"]:
            raise CorpusError(f"{where}: {key} given twice")
        else:
            current["fields"][key] = (value, where)

    names = [c["name"] for c in cases]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise CorpusError(f"{rel}: duplicate case names {sorted(duplicates)}")

    loader = {"head": _finish_head, "chunked": _finish_chunked,
              "serialize": _finish_serialize, "uwsgi": _finish_uwsgi}[kind]
    result = []
    for c in cases:
        where = f"{rel}:{c['line']}"
        fields = c["fields"]
        ref = fields.pop("ref", (None,))[0]
        if not ref:
            raise CorpusError(f"{where}: every case needs 'ref:' (the RFC or spec rule it checks)")
        limits = _parse_limits(fields.pop("limits")[0], where) if "limits" in fields else Limits()
        error = _parse_error(fields.pop("error")[0], where) if "error" in fields else None
        case = Case(kind=kind, file=rel, name=c["name"], line=c["line"], ref=ref, limits=limits,
                    data=unescape("".join(c["data"])), fields=fields, error=error)
        loader(case, c, where)
        result.append(case)
    return result


def _take(fields: dict, key: str, where: str):
    if key not in fields:
        raise CorpusError(f"{where}: missing '{key}:'")
    return fields.pop(key)[0]


def _reject_leftovers(fields: dict, where: str) -> None:
    if fields:
        raise CorpusError(f"{where}: unknown or unexpected keys {sorted(fields)}")


def _text(value: str) -> str:
    return unescape(value).decode("latin-1")


def _consumed(value: str, data: bytes, where: str) -> int:
    if value == "all":
        return len(data)
    if not value.isdigit() or int(value) > len(data):
        raise CorpusError(f"{where}: consumed is 'all' or a byte count within the input")
    return int(value)


def _bool(value: str, where: str) -> bool:
    if value not in _BOOL:
        raise CorpusError(f"{where}: expected yes or no, got {value!r}")
    return _BOOL[value]


# ---- kinds ---------------------------------------------------------------------------------------

HEAD_TEXT_KEYS = ("method", "target", "path", "query", "version")
HEAD_FRAMING = ("chunked", "keep_alive", "expect_continue", "upgrade")


def _finish_head(case: Case, raw: dict, where: str, framing_defaults: dict | None = None) -> None:
    """Head cases expect exactly one of: 'error: CODE STATUS', 'incomplete', or a full Head.

    A full Head states consumed, method, target, path, query, version, minor and the environ
    ('env: KEY=value' lines, or 'env: none'). content_length defaults to -1 and the framing booleans
    to a request without framing headers: chunked, expect_continue and upgrade 'no', keep_alive
    'yes' for minor >= 1 and 'no' for HTTP/1.0 (RFC 9112 §9.3). Stating them is always allowed.
    """
    fields = case.fields
    outcomes = (case.error is not None) + raw["incomplete"] + ("consumed" in fields)
    if outcomes != 1:
        raise CorpusError(f"{where}: a head case expects exactly one of error, incomplete, a head")
    if case.error or raw["incomplete"]:
        if raw["env"]:
            raise CorpusError(f"{where}: env lines only go with an expected head")
        _reject_leftovers(fields, where)
        case.expected = None
        return
    expected = {"consumed": _consumed(_take(fields, "consumed", where), case.data, where)}
    for key in HEAD_TEXT_KEYS:
        expected[key] = _text(_take(fields, key, where))
    minor = _take(fields, "minor", where)
    if not minor.isdigit():
        raise CorpusError(f"{where}: minor is a digit")
    expected["minor"] = int(minor)
    env = {}
    if raw["env"] == ["none"]:
        pass
    elif not raw["env"]:
        raise CorpusError(f"{where}: state the environ with 'env: KEY=value' lines or 'env: none'")
    else:
        for item in raw["env"]:
            key, eq, value = item.partition("=")
            key = _text(key)  # escapes allowed (a uwsgi key may hold any visible byte)
            if not eq or key in env:
                raise CorpusError(f"{where}: bad or repeated env line {item!r}")
            env[key] = _text(value)
    expected["headers"] = env
    content_length = fields.pop("content_length", ("-1",))[0]
    if not re.fullmatch(r"-1|\d+", content_length):
        raise CorpusError(f"{where}: content_length is -1 or a number")
    expected["content_length"] = int(content_length)
    defaults = framing_defaults or {
        "chunked": "no", "keep_alive": "yes" if expected["minor"] >= 1 else "no",
        "expect_continue": "no", "upgrade": "no"}
    for key in HEAD_FRAMING:
        expected[key] = _bool(fields.pop(key, (defaults[key],))[0], where)
    _reject_leftovers(fields, where)
    case.expected = expected


def _finish_chunked(case: Case, raw: dict, where: str) -> None:
    """Chunked cases expect 'error: CODE STATUS', or 'data:' (decoded bytes, escaped), 'consumed:'
    ('all' or a count) and 'done: yes|no'."""
    fields = case.fields
    if raw["incomplete"] or raw["env"]:
        raise CorpusError(f"{where}: chunked cases state data/consumed/done instead")
    if case.error:
        _reject_leftovers(fields, where)
        return
    case.expected = {
        "data": unescape(_take(fields, "data", where)),
        "consumed": _consumed(_take(fields, "consumed", where), case.data, where),
        "done": _bool(_take(fields, "done", where), where),
    }
    _reject_leftovers(fields, where)


SERIALIZE_DEFAULTS = {
    "date": "'Sun, 06 Nov 1994 08:49:37 GMT'",
    "server": "None",
    "chunked": "False",
    "connection": "None",
}


def _finish_serialize(case: Case, raw: dict, where: str) -> None:
    """Serializer cases give the call's arguments as Python literals: 'status:', 'headers:' and
    optionally 'date:' (default below), 'server:' (None), 'chunked:' (False), 'connection:' (None).
    The '> ' lines are the exact expected output, unless the case says 'error: CODE STATUS'."""
    fields = case.fields
    if raw["incomplete"] or raw["env"]:
        raise CorpusError(f"{where}: serializer cases state arguments and output")
    args = {}
    for key in ("status", "headers"):
        args[key] = _literal(_take(fields, key, where), where)
    for key, default in SERIALIZE_DEFAULTS.items():
        args[key] = _literal(fields.pop(key, (default,))[0], where)
    _reject_leftovers(fields, where)
    if case.error and case.data:
        raise CorpusError(f"{where}: an error case has no expected output")
    if not case.error and not case.data:
        raise CorpusError(f"{where}: give the expected output as '> ' lines")
    case.expected = args


UWSGI_FRAMING = {"chunked": "no", "keep_alive": "no", "expect_continue": "no", "upgrade": "no"}


def build_packet(block_items, modifier1: int = 0, modifier2: int = 0,
                 datasize: int | None = None) -> bytes:
    """A uwsgi packet (docs/uwsgi-spec.md "Packet") from ("var", key, value) and ("append", raw)
    items in order; datasize defaults to the block's real length."""
    block = bytearray()
    for item in block_items:
        if item[0] == "var":
            for part in item[1:]:
                block += struct.pack("<H", len(part)) + part
        else:
            block += item[1]
    size = len(block) if datasize is None else datasize
    return bytes([modifier1]) + struct.pack("<H", size) + bytes([modifier2]) + bytes(block)


def _byte_field(fields: dict, key: str, where: str, limit: int):
    if key not in fields:
        return None
    value = fields.pop(key)[0]
    if not value.isdigit() or int(value) > limit:
        raise CorpusError(f"{where}: {key} is a number from 0 to {limit}")
    return int(value)


def _finish_uwsgi(case: Case, raw: dict, where: str) -> None:
    """uwsgi cases: the input is built by 'packet:' and its 'var:'/'append:'/'modifier1:'/
    'modifier2:'/'datasize:' lines (then the '> ' bytes after it, then 'truncate: N'), or given raw
    by '> ' lines alone; the expectation is that of a head case, with every framing fact 'no' by
    default (the front end deals with framing; there is no keep-alive over uwsgi), and
    'consumed: packet' standing for 4 + the built header's datasize."""
    fields = case.fields
    builder = ("modifier1", "modifier2", "datasize")
    if "packet" in fields:
        if fields.pop("packet")[0]:
            raise CorpusError(f"{where}: 'packet:' takes no value")
        items = []
        for key, value, line_where in raw["block"]:
            if key == "var":
                name, eq, text = value.partition("=")
                if not eq:
                    raise CorpusError(f"{line_where}: write 'var: KEY=VALUE'")
                items.append(("var", unescape(name), unescape(text)))
            else:
                items.append(("append", unescape(value)))
        modifiers = [_byte_field(fields, key, where, 255) for key in builder[:2]]
        datasize = _byte_field(fields, "datasize", where, 0xFFFF)
        packet = build_packet(items, modifiers[0] or 0, modifiers[1] or 0, datasize)
        case.data = packet + case.data
        if fields.get("consumed", ("",))[0] == "packet":  # 4 + datasize, as the header says
            fields["consumed"] = (str(4 + (packet[1] | packet[2] << 8)), where)
    elif raw["block"] or any(key in fields for key in builder):
        raise CorpusError(f"{where}: var/append/modifier/datasize lines need 'packet:' first")
    truncate = _byte_field(fields, "truncate", where, 1 << 30)
    if truncate is not None:
        if truncate >= len(case.data):
            raise CorpusError(f"{where}: truncate: {truncate} does not shorten the input")
        case.data = case.data[:truncate]
    _finish_head(case, raw, where, UWSGI_FRAMING)


def _literal(text: str, where: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise CorpusError(f"{where}: not a Python literal: {text!r} ({exc})") from None


# ---- public --------------------------------------------------------------------------------------

def load(kind: str) -> list[Case]:
    if kind not in KINDS:
        raise ValueError(kind)
    files = sorted((CASES_DIR / kind).glob("*.txt"))
    cases = [case for path in files for case in read_file(path, kind)]
    if not cases:
        raise CorpusError(f"no {kind} cases found under {CASES_DIR / kind}")
    return cases
