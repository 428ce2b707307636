"""The access log: one line per response, in gunicorn's text format or as JSON.

Theory of operation. `AccessLogger(fmt, target)` compiles the format once. A text format uses
gunicorn's atoms (`%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"` is the default, exactly
gunicorn's): the format string is split into literal text and atoms, the format becomes a positional
%-string keeping each atom's conversion (`%(M)d`, `%(L)s`, `%(D)08d`...), and each atom is a Python
expression (`_ATOMS`); the format is compiled into one function that evaluates its atoms' expressions
and applies the `%` (`_RENDER_SOURCE`: no call per atom, which cost ~40 % of a line), or, when every
atom is a plain `%s` (the default format), an f-string of the same text (half the cost of the `%`).
Names a format holds (`{Header}i`, `{VAR}e`) enter that source only as repr() literals. Unknown atoms
and conversions that cannot format the atom's type are rejected when the format is built (ValueError
with a one-line reason), not on the first request. `fmt="json"` selects a fixed JSON object per line,
serialized with ensure_ascii, keys in JSON_FIELDS order: time (request start, ISO 8601 local time with
milliseconds and offset), remote_addr, user, method, uri (RAW_URI), protocol, status (an int), bytes
(body bytes), host, referer, user_agent, duration_ms, queue_ms, app_ms (floats), pid; null when absent.

Escaping. Request values come from the client, so they must not be able to forge a field or a line.
In the text format every string value has `"` and `\\` backslash-escaped and every control or
non-ASCII character written as `\\xNN` (`\\uNNNN` above U+00FF), as Apache's mod_log_config does; the
server's strings are latin-1 views of the raw bytes, so `\\xNN` is the byte that arrived. JSON
escapes everything itself: a record is always exactly one line of ASCII. The getters return raw
values and the renderer formats them once: a line that is ASCII, printable, without a backslash
and with no `"` but the format's own is what escaping every value would have given (escaping changes
a value only by such characters, and %r/%a only add backslashes or quotes), so it is written as is;
any other line is formatted again from the values escaped one by one.

Atoms (gunicorn's, same meaning and type):
  h remote address ("-" if none)    l "-"                       u user (REMOTE_USER or Basic auth)
  t request start, [10/Oct/2000:13:55:36 -0700]                 r request line "GET /x?y HTTP/1.1"
  m method      U path (PATH_INFO)  q query string              H protocol
  s status code b body bytes or "-" (CLF)   B body bytes (int)  f referer     a user agent
  T request time, whole seconds (int)   M milliseconds (int)    D microseconds (int)
  L request time in decimal seconds ("0.012345")                p "<pid>"
  {Header}i request header   {Header}o response header   {VAR}e WSGI environ variable (exact or upper)
fastwsgi's additions (float milliseconds, rounded to 3 decimals):
  queue_ms  time between the request head being parsed and the application being called (receiving
            a body that did not come with its head, then waiting for a worker thread)
  app_ms    time from calling the application until the response was complete (includes sending)
`t` is the time the request started (Apache's meaning; gunicorn logs the time the line is written,
which differs only for slow requests). The request time of T/M/D/L is `RequestTimings.total`.

Output targets: "-" (sys.stdout), a path (opened O_APPEND; `reopen()` after logrotate, e.g. on
SIGUSR1, swaps the file under the same descriptor with dup2 so a concurrent writer never sees a closed
descriptor), a text stream (written and flushed under a lock) or a `logging.Logger` (`info(line)`, so
--log-config can route it). A failing write never raises into the server: it is reported once on
"fastwsgi.error" until writes succeed again.

Writes. Unheld, each line is one write() (a stream: one write and flush). An event loop that answers
on its own thread calls `hold()` once and `flush()` at the end of each loop turn: the turn's lines
then leave in one write() instead of one each (a write to a pipe or to journald costs more than
rendering the line), and no line waits longer than the turn that produced it. A held batch is written
in pieces of whole lines of at most PIPE_BUF bytes, the size a pipe writes atomically, so the worker
processes sharing one stdout pipe or one file never interleave their lines (a single line longer than
that is written alone, as it would have been unheld); `reopen()` and `close()` write what is held first.
"""

import base64
import binascii
import json
import logging
import os
import re
import select
import sys
import threading
import time

from .privileges import open_log

__all__ = ["AccessLogger", "RequestTimings", "DEFAULT_FORMAT", "JSON_FIELDS", "check_format", "escape_text"]

DEFAULT_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
JSON_FIELDS = ("time", "remote_addr", "user", "method", "uri", "protocol", "status", "bytes", "host",
               "referer", "user_agent", "duration_ms", "queue_ms", "app_ms", "pid")

error_log = logging.getLogger("fastwsgi.error")

# a held batch is written in pieces of whole lines of at most this many bytes (a pipe writes that much
# atomically: POSIX guarantees 512, Linux 4096)
PIPE_BUF = getattr(select, "PIPE_BUF", 512)
HELD_LINES = 256  # a loop turn that logs more than this many lines writes them before it ends


class RequestTimings:
    """What the server measured for one request.

    start: wall-clock time (time.time()) when the request head was parsed.
    queue: seconds from then until the application was called (the body's arrival, when it did not
           come with the head, and the worker-thread wait).
    app:   seconds from calling the application until the response was complete.
    total: seconds from the head being parsed until the response was complete (queue + app).
    """

    __slots__ = ("start", "queue", "app", "total")

    def __init__(self, start: float, queue: float = 0.0, app: float = 0.0, total: float = 0.0):
        self.start = start
        self.queue = queue
        self.app = app
        self.total = total

    def __repr__(self) -> str:
        return (f"RequestTimings(start={self.start!r}, queue={self.queue!r}, app={self.app!r}, "
                f"total={self.total!r})")


# -- escaping ---------------------------------------------------------------------------------------

_TEXT_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)}
_TEXT_ESCAPES[ord('"')] = '\\"'
_TEXT_ESCAPES[ord("\\")] = "\\\\"


def escape_text(value: str) -> str:
    """Make `value` one safe token of a text log line: ASCII only, no control character, no bare quote."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return value  # the common case: nothing to do
    value = value.translate(_TEXT_ESCAPES)
    if not value.isascii():
        value = value.encode("ascii", "backslashreplace").decode("ascii")
    return value


# -- clock and process id -------------------------------------------------------------------------

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class _SecondCache:
    """Formats of one wall-clock second, recomputed when the second changes (locale-independent)."""

    __slots__ = ("_entry",)

    def __init__(self):
        self._entry = (None, "", "", "")

    def get(self, second: int):
        """-> (CLF "[10/Oct/2000:13:55:36 -0700]", ISO prefix "2000-10-10T13:55:36", offset "-07:00")."""
        entry = self._entry
        if entry[0] != second:
            local = time.localtime(second)
            offset = local.tm_gmtoff // 60
            sign = "-" if offset < 0 else "+"
            hours, minutes = divmod(abs(offset), 60)
            clock = f"{local.tm_hour:02d}:{local.tm_min:02d}:{local.tm_sec:02d}"
            clf = (f"[{local.tm_mday:02d}/{_MONTHS[local.tm_mon - 1]}/{local.tm_year:04d}:{clock} "
                   f"{sign}{hours:02d}{minutes:02d}]")
            iso = f"{local.tm_year:04d}-{local.tm_mon:02d}-{local.tm_mday:02d}T{clock}"
            entry = self._entry = (second, clf, iso, f"{sign}{hours:02d}:{minutes:02d}")
        return entry


_seconds = _SecondCache()
_pid = [os.getpid()]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))


def _start(timings) -> float:
    return timings.start if timings is not None else time.time()


def _iso_time(start: float) -> str:
    second = int(start)
    _, _, iso, offset = _seconds.get(second)
    return f"{iso}.{int((start - second) * 1000):03d}{offset}"


# -- request facts shared by both formats ------------------------------------------------------------

def _user(environ):
    """REMOTE_USER, else the user name of HTTP Basic authentication (RFC 7617), else None."""
    user = environ.get("REMOTE_USER")
    if user:
        return str(user)
    auth = environ.get("HTTP_AUTHORIZATION")
    if not auth or auth[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(auth[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    name = decoded.partition(b":")[0]
    try:
        return name.decode("utf-8")
    except UnicodeDecodeError:
        return name.decode("latin-1")


def _status_code(status) -> str:
    if type(status) is str:
        return status.partition(" ")[0] or "-"
    return "-" if status is None else str(status)


def _response_header(headers, lower_name: str):
    value = None
    for name, field in headers:  # last one wins, as in gunicorn
        if name.lower() == lower_name:
            value = field
    return value


def _milliseconds(seconds) -> float:
    return round(seconds * 1000.0, 3)


# -- the text format --------------------------------------------------------------------------------

# %(name)conversion, %% or a stray % (an error): Python's %-format mini-language, mapping keys only
_FORMAT_TOKEN = re.compile(r"%(?:\((?P<name>[^()]*)\)(?P<spec>[#0 +\-]*[0-9]*(?:\.[0-9]+)?"
                           r"[diouxXeEfFgGcrsa])|(?P<percent>%))")


# Each atom is a Python expression over the render function's arguments (environ, status, headers,
# sent, timings) and `get` (environ.get); a format becomes one function evaluating its atoms' expressions
# (_text_renderer). Names from the format ({Header}i, {VAR}e) enter that source only as repr() literals.

def _environ_text(key: str) -> str:
    return f'"-" if (value := get({key!r})) is None else value'


def _total_us(timings) -> int:
    return int(timings.total * 1_000_000) if timings is not None else 0


def _decimal_seconds(timings) -> str:
    seconds, micro = divmod(_total_us(timings), 1_000_000)
    return f"{seconds}.{micro:06d}"


_ATOMS = {
    "h": 'get("REMOTE_ADDR") or "-"',
    "l": '"-"',
    # _user's frame only when there is a user to find (most requests have neither key)
    "u": '(_user(environ) or "-") if "REMOTE_USER" in environ or "HTTP_AUTHORIZATION" in environ else "-"',
    "t": "_seconds.get(int(timings.start if timings is not None else _time()))[1]",
    "r": "f\"{get('REQUEST_METHOD', '-')} {get('RAW_URI', '-')} {get('SERVER_PROTOCOL', '-')}\"",
    "m": _environ_text("REQUEST_METHOD"),
    "U": _environ_text("PATH_INFO"),
    "q": _environ_text("QUERY_STRING"),
    "H": _environ_text("SERVER_PROTOCOL"),
    "s": "status",
    "b": 'str(sent) if sent else "-"',
    "B": "sent",
    "f": 'get("HTTP_REFERER") or "-"',
    "a": 'get("HTTP_USER_AGENT") or "-"',
    "T": "_total_us(timings) // 1_000_000",
    "M": "_total_us(timings) // 1_000",
    "D": "_total_us(timings)",
    "L": "_decimal_seconds(timings)",
    "p": 'f"<{_pid[0]}>"',
    "queue_ms": "_milliseconds(timings.queue) if timings is not None else 0.0",
    "app_ms": "_milliseconds(timings.app) if timings is not None else 0.0",
}


def _request_header_atom(name: str) -> str:
    """{Header}i -> the environ key the server stored it under (RFC 3875 §4.1.18 mapping)."""
    key = name.upper().replace("-", "_")
    return _environ_text(key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key)


def _response_text(headers, lower_name: str):
    value = _response_header(headers, lower_name)
    return "-" if value is None else str(value)


def _response_header_atom(name: str) -> str:
    return f"_response_text(headers, {name.lower()!r})"


def _environ_value(environ, name: str, upper: str):
    value = environ.get(name)
    if value is None:
        value = environ.get(upper)
    return "-" if value is None else value if type(value) is str else str(value)


def _environ_atom(name: str) -> str:
    return f"_environ_value(environ, {name!r}, {name.upper()!r})"


_BRACED = re.compile(r"\{([^{}]+)\}([ioe])")
_BRACED_MAKERS = {"i": _request_header_atom, "o": _response_header_atom, "e": _environ_atom}


def _atom_expression(name: str) -> str:
    expression = _ATOMS.get(name)
    if expression is not None:
        return expression
    braced = _BRACED.fullmatch(name)
    if braced is not None:
        return _BRACED_MAKERS[braced.group(2)](braced.group(1))
    import difflib
    close = difflib.get_close_matches(name, list(_ATOMS), n=1)
    hint = f" (did you mean %({close[0]})s?)" if close else ""
    raise ValueError(f"unknown access log atom %({name}){hint}")


def _compile_text(fmt: str):
    """-> render(environ, status code, headers, sent, timings) -> str for a gunicorn-style format."""
    if not isinstance(fmt, str):
        raise ValueError(f"the access log format must be a string, got {type(fmt).__name__}")
    literals, specs, expressions = [], [], []  # literals: the text before each atom, and after the last
    position = 0
    literal = ""
    for match in _FORMAT_TOKEN.finditer(fmt):
        between = fmt[position:match.start()]
        if "%" in between:
            break
        literal += between
        position = match.end()
        if match.group("percent"):
            literal += "%"
            continue
        literals.append(literal)
        literal = ""
        specs.append(match.group("spec"))
        expressions.append(_atom_expression(match.group("name")))
    else:
        between = fmt[position:]
        if "%" not in between:
            literals.append(literal + between)
            return _text_renderer(literals, specs, expressions)
    stray = fmt.index("%", position)
    raise ValueError(f"access log format: stray '%' at offset {stray} "
                     "(atoms are written %(name)s; a literal percent sign is %%)")


# the bytes a value may hold and still be written as is: printable ASCII but the quote and the backslash
_PLAIN_ASCII = bytes(code for code in range(0x20, 0x7F) if code not in b'"\\')

# v0, v1, ... are the atoms' values; `line` is the format applied to them: an f-string when every atom is
# a plain %s ({v!s}: str() of the value, as %s, at about half the cost of the % operator), else the %
_RENDER_SOURCE = """\
def render(environ, status, headers, sent, timings):
    get = environ.get
{assignments}
    line = {line}
    # deleting the printable ASCII bytes but " and \\ must leave the format's own quotes, exactly
    if line.isascii() and line.encode("ascii").translate(None, _PLAIN_ASCII) == quotes:
        return line  # no value held anything to escape (module docstring)
    return template % tuple([value if isinstance(value, (int, float)) else escape_text(str(value))
                             for value in ({names},)])
"""


def _interleave(literals: list, fields: list, escape) -> str:
    """literals[0] fields[0] literals[1] ... fields[-1] literals[-1], each literal through `escape`."""
    return "".join(escape(literal) + field for literal, field in zip(literals, [*fields, ""]))


def _text_renderer(literals: list, specs: list, expressions: list):
    template = _interleave(literals, ["%" + spec for spec in specs], lambda text: text.replace("%", "%%"))
    if not expressions:
        line = template % ()
        return lambda environ, status, headers, sent, timings: line
    names = [f"v{index}" for index in range(len(expressions))]
    if all(spec == "s" for spec in specs):
        fields = _interleave(literals, [f"{{{name}!s}}" for name in names],
                             lambda text: text.replace("{", "{{").replace("}", "}}"))
        line = "f" + repr(fields)
    else:
        line = f"template % ({', '.join(names)},)"
    namespace = {"template": template, "quotes": b'"' * "".join(literals).count('"'),
                 "escape_text": escape_text, "_PLAIN_ASCII": _PLAIN_ASCII,
                 "_user": _user, "_seconds": _seconds, "_time": time.time, "_total_us": _total_us,
                 "_decimal_seconds": _decimal_seconds, "_pid": _pid, "_milliseconds": _milliseconds,
                 "_response_text": _response_text, "_environ_value": _environ_value}
    assignments = "\n".join(f"    {name} = ({expression})" for name, expression in zip(names, expressions))
    exec(_RENDER_SOURCE.format(assignments=assignments, line=line, names=", ".join(names)), namespace)
    return namespace["render"]


# -- the JSON format --------------------------------------------------------------------------------

_json_encode = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), default=str).encode


def _render_json(environ, status, headers, sent, timings):
    get = environ.get
    record = {
        "time": _iso_time(_start(timings)),
        "remote_addr": get("REMOTE_ADDR") or None,
        "user": _user(environ),
        "method": get("REQUEST_METHOD"),
        "uri": get("RAW_URI"),
        "protocol": get("SERVER_PROTOCOL"),
        "status": int(status) if status.isdigit() and status.isascii() else status,
        "bytes": sent,
        "host": get("HTTP_HOST"),
        "referer": get("HTTP_REFERER"),
        "user_agent": get("HTTP_USER_AGENT"),
        "duration_ms": _milliseconds(timings.total) if timings is not None else None,
        "queue_ms": _milliseconds(timings.queue) if timings is not None else None,
        "app_ms": _milliseconds(timings.app) if timings is not None else None,
        "pid": _pid[0],
    }
    return _json_encode(record)


# -- sample request: a format is tried once when it is built -----------------------------------------

_SAMPLE = ({"REQUEST_METHOD": "GET", "RAW_URI": "/", "PATH_INFO": "/", "QUERY_STRING": "",
            "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1"},
           "200", [("Content-Length", "0")], 0, RequestTimings(0.0))


def _compile(fmt):
    """-> the render function of `fmt` ("json" or a text format), tried once on a sample request."""
    render = _render_json if fmt == "json" else _compile_text(fmt)
    try:
        render(*_SAMPLE)
    except (TypeError, ValueError) as exc:  # e.g. %(s)d: the status atom is a string
        raise ValueError(f"access log format {fmt!r} cannot be rendered: {exc}") from None
    return render


def check_format(fmt: str) -> str:
    """Return `fmt` if it is "json" or a valid text format, else ValueError (an option converter)."""
    _compile(fmt)
    return fmt


# -- output targets ------------------------------------------------------------------------------------

def _pieces(data, newline, limit: int = PIPE_BUF):
    """`data` (whole lines, str or bytes) in pieces of whole lines of at most `limit` characters, a longer
    line alone."""
    start, end = 0, len(data)
    while end - start > limit:
        cut = data.rfind(newline, start, start + limit) + 1
        if cut <= start:  # the first line is longer than limit: it goes alone
            cut = data.find(newline, start + limit) + 1 or end
        yield data[start:cut]
        start = cut
    if start < end:
        yield data[start:]


class _FileTarget:
    """A path opened O_APPEND: one os.write per line, or per piece of held lines (appends of whole
    lines, shared by processes)."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.fd = self._open()

    def _open(self) -> int:
        return open_log(self.path)

    def write(self, line: str) -> None:
        self._write_all((line + "\n").encode("utf-8", "backslashreplace"))

    def write_lines(self, lines: list) -> None:
        data = ("\n".join(lines) + "\n").encode("utf-8", "backslashreplace")
        for piece in _pieces(data, b"\n"):
            self._write_all(piece)

    def _write_all(self, data: bytes) -> None:
        written = os.write(self.fd, data)
        while written < len(data):  # a short write (a full disk, a signal): write the rest
            data = data[written:]
            written = os.write(self.fd, data)

    def reopen(self) -> None:
        fresh = self._open()  # fails -> keep writing to the old file
        try:
            os.dup2(fresh, self.fd, inheritable=False)  # same number, new file: no window for writers
        finally:
            os.close(fresh)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _StreamTarget:
    def __init__(self, stream):
        self.stream = stream
        self.lock = threading.Lock()

    def write(self, line: str) -> None:
        stream = self.stream
        with self.lock:
            stream.write(line + "\n")
            stream.flush()

    def write_lines(self, lines: list) -> None:
        # pieces in characters: the lines are ASCII unless the format's own text is not
        stream = self.stream
        with self.lock:
            for piece in _pieces("\n".join(lines) + "\n", "\n"):
                stream.write(piece)
                stream.flush()

    def reopen(self) -> None:
        with self.lock:
            self.stream.flush()

    def close(self) -> None:
        pass


class _LoggerTarget:
    def __init__(self, logger: logging.Logger):
        self.logger = logger

    def write(self, line: str) -> None:
        self.logger.info(line)

    write_lines = None  # not held: the logger's handlers decide how records are written

    def reopen(self) -> None:
        """Reopen the logger's FileHandlers (what gunicorn does on USR1)."""
        for handler in self.logger.handlers:
            if isinstance(handler, logging.FileHandler) and handler.stream is not None:
                handler.acquire()
                try:
                    old, handler.stream = handler.stream, handler._open()
                    old.close()
                finally:
                    handler.release()

    def close(self) -> None:
        pass


def _target(target):
    if isinstance(target, logging.Logger):
        return _LoggerTarget(target)
    if target == "-":
        return _StreamTarget(sys.stdout)
    if isinstance(target, (str, bytes, os.PathLike)):
        return _FileTarget(target)
    if hasattr(target, "write"):
        return _StreamTarget(target)
    raise ValueError(f"an access log target is '-', a path, a stream or a logging.Logger, not {target!r}")


# -- the logger ----------------------------------------------------------------------------------------

class AccessLogger:
    """`AccessLogger(fmt, target)`; `log(...)` once per response; `reopen()` after log rotation; an event
    loop's `hold()` and `flush()` (module docstring, Writes)."""

    __slots__ = ("format", "_render", "_target", "_enabled", "_failing", "_held")

    def __init__(self, fmt: str = DEFAULT_FORMAT, target="-"):
        self.format = fmt
        self._render = _compile(fmt)
        self._target = _target(target)
        logger = target if isinstance(target, logging.Logger) else None
        self._enabled = (lambda: logger.isEnabledFor(logging.INFO)) if logger is not None else None
        self._failing = False
        self._held = None  # the lines of this loop turn, once hold() was called

    def render(self, environ: dict, status, response_headers=(), bytes_sent: int = 0,
               timings: RequestTimings | None = None) -> str:
        """The log line (without newline) for one response."""
        return self._render(environ, _status_code(status), response_headers, bytes_sent, timings)

    def log(self, environ: dict, status, response_headers=(), bytes_sent: int = 0,
            timings: RequestTimings | None = None) -> None:
        """Write one line (or keep it until flush() when held). status: "200 OK" or 200; bytes_sent:
        body bytes (not head, not framing)."""
        if self._enabled is not None and not self._enabled():
            return
        try:
            line = self._render(environ, _status_code(status), response_headers, bytes_sent, timings)
        except Exception as exc:  # the access log must never break a response
            self._report(exc)
            return
        held = self._held
        if held is None:
            self._write(self._target.write, line)
            return
        held.append(line)
        if len(held) >= HELD_LINES:
            self.flush()

    def hold(self) -> bool:
        """Keep lines until flush(), from now on; only for one thread (an event loop's). False, and
        nothing changes, when the target is a logging.Logger."""
        if self._target.write_lines is None:
            return False
        if self._held is None:
            self._held = []
        return True

    def flush(self) -> None:
        """Write the lines held since the last flush (in pieces of at most PIPE_BUF bytes)."""
        held = self._held
        if held:
            self._held = []
            self._write(self._target.write_lines, held)

    def _write(self, write, data) -> None:
        """write(data) (a line, or the held lines), reporting a failure once and a recovery."""
        try:
            write(data)
        except Exception as exc:  # the access log must never break a response
            self._report(exc)
            return
        if self._failing:
            self._failing = False
            error_log.warning("the access log is being written again")

    def _report(self, exc: Exception) -> None:
        if not self._failing:
            self._failing = True
            error_log.error("cannot write the access log: %s", exc)

    def reopen(self) -> None:
        """Reopen the log file (after logrotate); call from the loop, not from the signal handler. Held
        lines go to the file they were logged in first."""
        self.flush()
        try:
            self._target.reopen()
        except OSError as exc:
            error_log.error("cannot reopen the access log: %s", exc)

    def close(self) -> None:
        self.flush()
        self._target.close()
