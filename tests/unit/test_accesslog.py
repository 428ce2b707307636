"""fastwsgi/accesslog.py: gunicorn's atoms, the JSON format, escaping of hostile values, targets.

Lines are compared as exact strings. The time zone is pinned per test (TZ + tzset) and the per-second
time cache is replaced, so %(t)s is deterministic.
"""

import base64
import io
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastwsgi import accesslog
from fastwsgi.accesslog import (DEFAULT_FORMAT, JSON_FIELDS, AccessLogger, RequestTimings, check_format,
                                escape_text)

START = 1700000000.25  # 2023-11-14 22:13:20.250 UTC
REPO_ROOT = Path(__file__).resolve().parents[2]
TIMINGS = RequestTimings(START, queue=0.0015, app=0.0123456, total=1.0138456)


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr(accesslog, "_seconds", accesslog._SecondCache())
    yield
    monkeypatch.undo()
    time.tzset()


def environ(**extra):
    base = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/search?q=caf%C3%A9",
        "PATH_INFO": "/search",
        "QUERY_STRING": "q=caf%C3%A9",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "198.51.100.7",
        "REMOTE_PORT": "50123",
        "HTTP_HOST": "shop.example",
        "HTTP_REFERER": "https://shop.example/",
        "HTTP_USER_AGENT": "curl/8.4.0",
        "CONTENT_TYPE": "text/plain",
        "wsgi.url_scheme": "https",
    }
    base.update(extra)
    return base


HEADERS = [("Content-Type", "text/html"), ("Content-Length", "1234"), ("X-Request-Id", "abc"),
           ("x-request-id", "def")]


def line(fmt=DEFAULT_FORMAT, env=None, status="200 OK", headers=HEADERS, sent=1234, timings=TIMINGS):
    stream = io.StringIO()
    AccessLogger(fmt, stream).log(env if env is not None else environ(), status, headers, sent, timings)
    text = stream.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    return text[:-1]


# -- the text format ----------------------------------------------------------------------------------

def test_default_format_is_gunicorns():
    assert DEFAULT_FORMAT == '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
    assert line() == ('198.51.100.7 - - [14/Nov/2023:22:13:20 +0000] "GET /search?q=caf%C3%A9 HTTP/1.1" '
                      '200 1234 "https://shop.example/" "curl/8.4.0"')


def test_every_gunicorn_atom():
    fmt = "h=%(h)s l=%(l)s u=%(u)s t=%(t)s r=%(r)s m=%(m)s U=%(U)s q=%(q)s H=%(H)s s=%(s)s b=%(b)s " \
          "B=%(B)s f=%(f)s a=%(a)s T=%(T)s M=%(M)s D=%(D)s L=%(L)s p=%(p)s"
    assert line(fmt) == (
        "h=198.51.100.7 l=- u=- t=[14/Nov/2023:22:13:20 +0000] r=GET /search?q=caf%C3%A9 HTTP/1.1 m=GET "
        "U=/search q=q=caf%C3%A9 H=HTTP/1.1 s=200 b=1234 B=1234 f=https://shop.example/ a=curl/8.4.0 "
        f"T=1 M=1013 D=1013845 L=1.013845 p=<{os.getpid()}>")


def test_timing_atoms_and_conversions():
    assert line("%(queue_ms)s %(app_ms)s %(M)d %(D)08d %(T)03d %(app_ms).1f %(L)s %%") == \
        "1.5 12.346 1013 01013845 001 12.3 1.013845 %"


def test_braced_atoms_request_response_environ():
    fmt = "%({Host}i)s %({content-type}i)s %({X-Missing}i)s %({x-request-id}o)s %({CONTENT-TYPE}o)s " \
          "%({Nope}o)s %({wsgi.url_scheme}e)s %({remote_port}e)s %({REMOTE_ADDR}e)s %({nothing}e)s"
    # response headers: case-insensitive, the last of repeated names wins (gunicorn builds a dict)
    assert line(fmt) == "shop.example text/plain - def text/html - https 50123 198.51.100.7 -"


def test_literal_text_with_braces_quotes_and_percent_signs_is_kept_as_written():
    """A format of plain %s atoms becomes an f-string: its literal text must survive as text."""
    fmt = "{%(m)s} }{ 100%% '\"%(U)s\"' \\n {x} %%(s)s \t%(s)s"
    assert line(fmt) == "{GET} }{ 100% '\"/search\"' \\n {x} %(s)s \t200"
    assert line("%(s)s {%(s)5s}") == "200 {  200}"  # not every atom is a plain %s: the % operator


def test_a_plain_atom_is_str_of_the_value_as_percent_s_gives():
    """An application may leave an object with its own __format__ in the environ: %s means str()."""
    class Formatted:
        def __str__(self):
            return "str"

        def __format__(self, spec):
            return "format"
    assert line("%(a)s %(f)s", env=environ(HTTP_USER_AGENT=Formatted(), HTTP_REFERER=Formatted())) == "str str"


def test_zero_bytes_clf_dash_and_int_status():
    assert line("%(b)s %(B)s %(s)s", status=304, sent=0) == "- 0 304"
    assert line("%(s)s", status="404 Not Found") == "404"


def test_missing_environ_values_become_dash():
    env = {"REQUEST_METHOD": "GET"}
    assert line(DEFAULT_FORMAT, env=env) == '- - - [14/Nov/2023:22:13:20 +0000] "GET - -" 200 1234 "-" "-"'
    assert line("%(h)s", env={"REMOTE_ADDR": ""}) == "-"  # a UNIX-socket peer


def test_user_from_basic_auth_and_remote_user():
    token = base64.b64encode(b"alice:s3cret").decode()
    assert line("%(u)s", env=environ(HTTP_AUTHORIZATION=f"Basic {token}")) == "alice"
    assert line("%(u)s", env=environ(HTTP_AUTHORIZATION=f"basic {token}", REMOTE_USER="bob")) == "bob"
    assert line("%(u)s", env=environ(HTTP_AUTHORIZATION="Basic !!!notbase64")) == "-"
    assert line("%(u)s", env=environ(HTTP_AUTHORIZATION=f"Bearer {token}")) == "-"
    hostile = base64.b64encode(b'ev"il\nname:pw').decode()
    assert line("%(u)s", env=environ(HTTP_AUTHORIZATION=f"Basic {hostile}")) == 'ev\\"il\\x0aname'


def test_time_zone_offset_and_month_are_locale_independent(monkeypatch):
    monkeypatch.setenv("TZ", "XYZ+07:30")  # POSIX: 7h30 west of UTC
    time.tzset()
    assert line("%(t)s") == "[14/Nov/2023:14:43:20 -0730]"
    assert line("json").startswith('{"time":"2023-11-14T14:43:20.250-07:30",')


def test_no_timings_means_now_and_zero_durations():
    before = time.time()
    out = line("%(t)s %(M)s %(queue_ms)s", timings=None)
    stamp, millis, queue = out.rsplit(" ", 2)
    assert (millis, queue) == ("0", "0.0")
    parsed = time.mktime(time.strptime(stamp, "[%d/%b/%Y:%H:%M:%S +0000]"))
    assert int(before) <= parsed <= time.time()


# -- format errors are found when the format is built -------------------------------------------------

@pytest.mark.parametrize("fmt, message", [
    ("%(hh)s", "unknown access log atom %(hh) (did you mean %(h)s?)"),
    ("%(queue)s", "unknown access log atom %(queue) (did you mean %(queue_ms)s?)"),
    ("%(h)s 100% sure", "access log format: stray '%' at offset 9"),
    ("%(h)", "access log format: stray '%' at offset 0"),
    ("%s", "access log format: stray '%' at offset 0"),
    ("%(s)d", "access log format '%(s)d' cannot be rendered: %d format: a real number is required"),
    ("%(L)d", "access log format '%(L)d' cannot be rendered: %d format: a real number is required, not str"),
    ("%({}i)s", "unknown access log atom %({}i)"),
    ("%({Host}x)s", "unknown access log atom %({Host}x)"),
])
def test_bad_formats_raise_value_error(fmt, message):
    for build in (lambda: AccessLogger(fmt, io.StringIO()), lambda: check_format(fmt)):
        with pytest.raises(ValueError) as info:
            build()
        assert str(info.value).startswith(message)
        assert "\n" not in str(info.value)


def test_check_format_returns_good_formats():
    assert check_format("json") == "json"
    assert check_format(DEFAULT_FORMAT) == DEFAULT_FORMAT
    assert check_format("%(M)d ms %%") == "%(M)d ms %%"


def test_bad_targets_raise_value_error():
    with pytest.raises(ValueError, match="access log target"):
        AccessLogger(DEFAULT_FORMAT, 42)
    with pytest.raises(ValueError, match="must be a string"):
        AccessLogger(None, io.StringIO())


# -- escaping ------------------------------------------------------------------------------------------

def test_escape_text_cases():
    assert escape_text("plain text 123") == "plain text 123"
    assert escape_text('a"b') == 'a\\"b'
    assert escape_text("a\\b") == "a\\\\b"
    assert escape_text("a\r\nb\tc\x00\x7f") == "a\\x0d\\x0ab\\x09c\\x00\\x7f"
    assert escape_text("caf\xc3\xa9") == "caf\\xc3\\xa9"  # the raw UTF-8 bytes, as latin-1 text
    assert escape_text("\x85\u2028\U0001f600") == "\\x85\\u2028\\U0001f600"


def test_hostile_header_cannot_forge_a_text_line_or_field():
    hostile = ('x" 999 "-" "evil\n'
               '127.0.0.1 - - [01/Jan/2000:00:00:00 +0000] "GET /admin HTTP/1.1" 200 1 "-" "-')
    env = environ(HTTP_USER_AGENT=hostile, HTTP_REFERER="\r\n\x1b[31mred", RAW_URI='/a"b\\c')
    out = line(env=env)
    assert "\n" not in out and "\r" not in out and "\x1b" not in out
    assert out == ('198.51.100.7 - - [14/Nov/2023:22:13:20 +0000] "GET /a\\"b\\\\c HTTP/1.1" 200 1234 '
                   '"\\x0d\\x0a\\x1b[31mred" '
                   '"x\\" 999 \\"-\\" \\"evil\\x0a127.0.0.1 - - [01/Jan/2000:00:00:00 +0000] '
                   '\\"GET /admin HTTP/1.1\\" 200 1 \\"-\\" \\"-"')
    # every unescaped quote is one of the format's six: the fields cannot be re-split by a client
    unescaped = out.replace('\\\\', "").replace('\\"', "")
    assert unescaped.count('"') == 6


def test_braced_atom_values_are_escaped_too():
    env = environ(HTTP_X_EVIL='a"\n', **{"odd.key": b"\x00bytes"})
    out = line('%({X-Evil}i)s %({odd.key}e)s %({x-bad}o)s', env=env, headers=[("X-Bad", "q\"\x01")])
    assert out == 'a\\"\\x0a b\'\\\\x00bytes\' q\\"\\x01'


_hostile = st.text(alphabet=st.sampled_from(list("ab /?=-.;:'") + ['"', "\\", "\n", "\r", "\x00", "\x7f",
                                                                      "\xe9", "\x85", "\u2028", "%"]),
                   max_size=12)


@settings(max_examples=500, deadline=None)
@given(ua=_hostile, ref=_hostile, uri=_hostile, tag=st.one_of(st.none(), _hostile))
def test_a_line_is_every_value_escaped_then_formatted(ua, ref, uri, tag):
    """The renderer formats raw values once and escapes only lines that need it: the result must be
    the rule itself, each value escaped and then formatted (also under %r and a precision)."""
    env = environ(HTTP_USER_AGENT=ua, HTTP_REFERER=ref, RAW_URI="/" + uri)
    if tag is not None:
        env["HTTP_X_TAG"] = tag
    e = escape_text
    assert line(env=env) == (f'198.51.100.7 - - [14/Nov/2023:22:13:20 +0000] "{e(f"GET /{uri} HTTP/1.1")}" '
                             f'200 1234 "{e(ref or "-")}" "{e(ua or "-")}"')
    assert line('%(a)r|%(f).4s|%({X-Tag}i)s', env=env) == (
        f"{e(ua or '-')!r}|{e(ref or '-')[:4]}|{e(tag) if tag is not None else '-'}")


@pytest.mark.parametrize("kind", ["i", "o", "e"])
def test_a_braced_name_is_data_never_code(kind):
    """Formats are compiled into Python source; a name in braces enters it as a literal only."""
    name = "x' + 'y\" or \"z\\\n"  # pasted unquoted, it would name another key (or not compile)
    key = {"i": "HTTP_" + name.upper().replace("-", "_"), "o": None, "e": name}[kind]
    env = environ(**({key: "found"} if key else {}))
    headers = [(name, "found")] if kind == "o" else []
    assert line(f"%({{{name}}}{kind})s|%({{absent}}{kind})s", env=env, headers=headers) == "found|-"


def test_a_value_that_is_not_a_string_is_escaped_as_its_text():
    """An application may leave anything in its environ: its text is escaped like any value."""
    class Sneaky:
        def __str__(self):
            return 'x"\nforged line'
    assert line('"%({sneaky}e)s" %(a)s', env=environ(sneaky=Sneaky(), HTTP_USER_AGENT=Sneaky())) == \
        '"x\\"\\x0aforged line" x\\"\\x0aforged line'


# -- the JSON format -----------------------------------------------------------------------------------

def test_json_record_exact():
    token = base64.b64encode(b"alice:pw").decode()
    out = line("json", env=environ(HTTP_AUTHORIZATION=f"Basic {token}"))
    assert out == (
        '{"time":"2023-11-14T22:13:20.250+00:00","remote_addr":"198.51.100.7","user":"alice",'
        '"method":"GET","uri":"/search?q=caf%C3%A9","protocol":"HTTP/1.1","status":200,"bytes":1234,'
        '"host":"shop.example","referer":"https://shop.example/","user_agent":"curl/8.4.0",'
        f'"duration_ms":1013.846,"queue_ms":1.5,"app_ms":12.346,"pid":{os.getpid()}}}')
    assert list(json.loads(out)) == list(JSON_FIELDS)


def test_json_missing_values_are_null():
    record = json.loads(line("json", env={"REQUEST_METHOD": "GET", "REMOTE_ADDR": ""}, status=None,
                             timings=None))
    assert record["remote_addr"] is None and record["uri"] is None and record["user"] is None
    assert record["status"] == "-" and record["duration_ms"] is None


HOSTILE_VALUES = [
    'quote " and \\ backslash',
    'newline\n{"status":200,"forged":true}',
    "cr\rlf\r\n",
    "controls \x00\x01\x1b[2J\x7f",
    "latin-1 bytes \xc3\xa9 \xff \x80",
    "line separators \x85 \u2028 \u2029",
    '","remote_addr":"10.0.0.1',
    "lone surrogate \udcff",
]


def test_json_escapes_everything_one_line_per_record():
    stream = io.StringIO()
    logger = AccessLogger("json", stream)
    for value in HOSTILE_VALUES:
        env = environ(HTTP_USER_AGENT=value, HTTP_REFERER=value, RAW_URI="/" + value, HTTP_HOST=value)
        logger.log(env, "200 OK", HEADERS, 1, TIMINGS)
    text = stream.getvalue()
    assert text.isascii()
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) == len(HOSTILE_VALUES) + 1
    for value, raw in zip(HOSTILE_VALUES, lines):
        record = json.loads(raw)
        assert list(record) == list(JSON_FIELDS)  # nothing forged, nothing missing
        assert record["user_agent"] == value
        assert record["referer"] == value
        assert record["host"] == value
        assert record["uri"] == "/" + value
        assert record["remote_addr"] == "198.51.100.7"
        assert record["status"] == 200


# -- targets -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("held", [False, True], ids=["each-line", "held"])
def test_file_target_appends_and_reopen_follows_rotation(tmp_path, held):
    """Held lines too go to the file they were logged in: reopen() writes them first."""
    path = tmp_path / "access.log"
    logger = AccessLogger("%(s)s %(U)s", str(path))
    if held:
        logger.hold()
    logger.log(environ(PATH_INFO="/one"), "200 OK", [], 1, TIMINGS)
    os.rename(path, tmp_path / "access.log.1")  # logrotate moves the file away
    logger.log(environ(PATH_INFO="/two"), "201 Created", [], 1, TIMINGS)  # still the old file
    logger.reopen()
    logger.log(environ(PATH_INFO="/three"), "404 Not Found", [], 1, TIMINGS)
    logger.close()
    assert (tmp_path / "access.log.1").read_text() == "200 /one\n201 /two\n"
    assert path.read_text() == "404 /three\n"


def test_file_target_finishes_a_short_write(tmp_path, monkeypatch):
    """os.write may take part of a line (a signal, a nearly full disk): the rest follows, in order."""
    path = tmp_path / "access.log"
    logger = AccessLogger("%(U)s %(a)s", str(path))
    real_write, calls = os.write, []

    def five_bytes_at_most(fd, data):
        calls.append(len(data))
        return real_write(fd, bytes(data[:5]))

    monkeypatch.setattr(accesslog.os, "write", five_bytes_at_most)
    logger.log(environ(PATH_INFO="/short", HTTP_USER_AGENT="agent"), "200 OK", [], 1, TIMINGS)
    monkeypatch.undo()
    logger.close()
    assert path.read_text() == "/short agent\n"
    assert calls == [13, 8, 3]  # the whole line, then what was left of it, twice

def test_file_target_shared_by_threads_keeps_lines_whole(tmp_path):
    path = tmp_path / "access.log"
    logger = AccessLogger("json", path)
    per_thread, threads = 200, 4

    def work(n):
        for i in range(per_thread):
            logger.log(environ(PATH_INFO=f"/{n}/{i}", HTTP_USER_AGENT="x" * 500), "200 OK", [], i, TIMINGS)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    logger.close()
    records = [json.loads(raw) for raw in path.read_text().splitlines()]
    assert len(records) == per_thread * threads
    assert sorted(record["bytes"] for record in records) == sorted(list(range(per_thread)) * threads)


def test_logger_target_and_disabled_level():
    log = logging.getLogger("fastwsgi.test.access")
    log.propagate = False
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    log.addHandler(handler)
    try:
        log.setLevel(logging.INFO)
        logger = AccessLogger("%(s)s 100%% %(U)s", log)
        logger.log(environ(), "200 OK", [], 1, TIMINGS)
        assert [record.getMessage() for record in records] == ["200 100% /search"]
        log.setLevel(logging.WARNING)
        logger.log(environ(), "200 OK", [], 1, TIMINGS)
        assert len(records) == 1
    finally:
        log.removeHandler(handler)


def test_logger_target_reopen_reopens_file_handlers(tmp_path):
    log = logging.getLogger("fastwsgi.test.access.file")
    log.propagate = False
    log.setLevel(logging.INFO)
    path = tmp_path / "a.log"
    handler = logging.FileHandler(path)
    log.addHandler(handler)
    try:
        logger = AccessLogger("%(U)s", log)
        logger.log(environ(PATH_INFO="/before"), "200 OK", [], 1, TIMINGS)
        os.rename(path, tmp_path / "a.log.1")
        logger.reopen()
        logger.log(environ(PATH_INFO="/after"), "200 OK", [], 1, TIMINGS)
        handler.flush()
        assert (tmp_path / "a.log.1").read_text() == "/before\n"
        assert path.read_text() == "/after\n"
    finally:
        log.removeHandler(handler)
        handler.close()


class RecordingStream:
    def __init__(self):
        self.writes = []
        self.flushes = 0

    def write(self, text):
        self.writes.append(text)

    def flush(self):
        self.flushes += 1


def test_held_lines_leave_on_flush_in_order_in_pieces_of_whole_lines(tmp_path):
    """An event loop holds a turn's lines and writes them at once: each write is whole lines of at most
    PIPE_BUF bytes (what a pipe shared by worker processes writes atomically); a longer line alone."""
    stream = RecordingStream()
    logger = AccessLogger("%(U)s %(a)s", stream)
    assert logger.hold()
    agents = ["a" * 100, "b" * 900, "c" * (accesslog.PIPE_BUF + 10), "d", "e" * 3000, "f" * 1500]
    for number, agent in enumerate(agents):
        logger.log(environ(PATH_INFO=f"/{number}", HTTP_USER_AGENT=agent), "200 OK", [], 1, TIMINGS)
    assert stream.writes == []  # held
    logger.flush()
    expected = "".join(f"/{number} {agent}\n" for number, agent in enumerate(agents))
    assert "".join(stream.writes) == expected
    assert all(piece.endswith("\n") for piece in stream.writes)
    long_line = f"/2 {agents[2]}\n"
    assert long_line in stream.writes  # alone
    assert all(len(piece) <= accesslog.PIPE_BUF for piece in stream.writes if piece != long_line)
    assert len(stream.writes) == 4 and stream.flushes == 4  # [/0 /1] [/2] [/3 /4] [/5]
    logger.flush()
    assert len(stream.writes) == 4  # nothing held: nothing written

    path = tmp_path / "access.log"
    file_logger = AccessLogger("%(U)s", str(path))
    file_logger.hold()
    for number in range(accesslog.HELD_LINES + 3):
        file_logger.log(environ(PATH_INFO=f"/{number}"), "200 OK", [], 1, TIMINGS)
    # a turn that logs HELD_LINES lines writes them before it ends; the rest wait for flush()
    assert path.read_text().count("\n") == accesslog.HELD_LINES
    file_logger.close()  # writes the held lines first
    assert path.read_text() == "".join(f"/{number}\n" for number in range(accesslog.HELD_LINES + 3))


def test_pieces_are_whole_lines_within_the_limit():
    data = b"".join(b"x" * size + b"\n" for size in (3, 0, 9, 2, 2, 30, 1))
    pieces = list(accesslog._pieces(data, b"\n", 10))
    assert b"".join(pieces) == data
    assert pieces == [b"xxx\n\n", b"xxxxxxxxx\n", b"xx\nxx\n", b"x" * 30 + b"\n", b"x\n"]
    assert list(accesslog._pieces(b"", b"\n", 10)) == []


def test_a_logger_target_is_never_held():
    log = logging.getLogger("fastwsgi.test.access.held")
    log.propagate = False
    log.setLevel(logging.INFO)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    log.addHandler(handler)
    try:
        logger = AccessLogger("%(U)s", log)
        assert not logger.hold()
        logger.log(environ(), "200 OK", [], 1, TIMINGS)
        assert [record.getMessage() for record in records] == ["/search"]  # at once
    finally:
        log.removeHandler(handler)


class BrokenStream:
    def __init__(self):
        self.broken = True
        self.lines = []

    def write(self, text):
        if self.broken:
            raise OSError(28, "No space left on device")
        self.lines.append(text)

    def flush(self):
        pass


def test_write_failure_never_raises_and_is_reported_once(caplog):
    stream = BrokenStream()
    logger = AccessLogger("%(s)s", stream)
    with caplog.at_level(logging.WARNING, logger="fastwsgi.error"):
        for _ in range(3):
            logger.log(environ(), "200 OK", [], 1, TIMINGS)
        stream.broken = False
        logger.log(environ(), "201 Created", [], 1, TIMINGS)
    messages = [record.getMessage() for record in caplog.records if record.name == "fastwsgi.error"]
    assert messages == ["cannot write the access log: [Errno 28] No space left on device",
                        "the access log is being written again"]
    assert stream.lines == ["201\n"]


def test_a_held_batch_that_cannot_be_written_is_reported_once(caplog):
    stream = BrokenStream()
    logger = AccessLogger("%(s)s", stream)
    logger.hold()
    with caplog.at_level(logging.WARNING, logger="fastwsgi.error"):
        for _ in range(2):
            logger.log(environ(), "200 OK", [], 1, TIMINGS)
            logger.flush()
        stream.broken = False
        logger.log(environ(), "201 Created", [], 1, TIMINGS)
        logger.log(environ(), "202 Accepted", [], 1, TIMINGS)
        logger.flush()
    messages = [record.getMessage() for record in caplog.records if record.name == "fastwsgi.error"]
    assert messages == ["cannot write the access log: [Errno 28] No space left on device",
                        "the access log is being written again"]
    assert stream.lines == ["201\n202\n"]


def test_render_error_on_odd_input_never_raises(caplog):
    stream = io.StringIO()
    logger = AccessLogger("%(B)d", stream)
    with caplog.at_level(logging.ERROR, logger="fastwsgi.error"):
        logger.log(environ(), "200 OK", [], None, TIMINGS)  # sent=None cannot be %d
    assert stream.getvalue() == ""
    assert "cannot write the access log" in caplog.text


FORK_SCRIPT = """
import io, os
from tests.unit.test_accesslog import TIMINGS, environ
from fastwsgi.accesslog import AccessLogger
logger = AccessLogger("%(p)s", io.StringIO())
parent_line = logger.render(environ(), "200 OK", [], 0, TIMINGS)  # cached before the fork
read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        os.write(write_end, logger.render(environ(), "200 OK", [], 0, TIMINGS).encode())
    finally:
        os._exit(0)
os.close(write_end)
child_line = os.read(read_end, 100).decode()
os.waitpid(pid, 0)
print(os.getpid(), pid, parent_line, child_line, logger.render(environ(), "200 OK", [], 0, TIMINGS))
"""


def test_pid_atom_follows_fork():
    """The child of a fork logs its own pid. Forked in a fresh single-threaded interpreter: forking
    pytest's process, which has threads, is unsafe (CPython 3.12+ warns)."""
    result = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True,
                            timeout=30, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    parent, child, before, in_child, after = result.stdout.split()
    assert (before, in_child, after) == (f"<{parent}>", f"<{child}>", f"<{parent}>")
