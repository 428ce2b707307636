"""A gunicorn user's command line and gunicorn.conf.py on real processes: a typical gunicorn.conf.py
serves with every setting in effect; gunicorn's settings names are renamed to ours, and one option set
under both names stops the start; -k sync/gthread are served, every other worker class is refused with
the reason; each gunicorn option fastwsgi does not implement is one error line, exit status 2, on the
command line and in a config file; --no-sendfile (or SENDFILE=0) makes wsgi.file_wrapper read the file."""

from __future__ import annotations

import ast
import io
import json
import os
import socket
import threading
import time

import pytest

from tests.functional.client import Conn, get
from tests.functional.ops import wait_booted
from tests.functional.serverproc import ServerProcess
from tests.functional.test_cli import assert_one_error_line, printed, run_cli

IMPORTED_IN = os.getpid()  # with preload_app the master imports this module
APP = "tests.functional.test_gunicorn_compat:report_app"


def report_app(environ, start_response):
    """What a test needs to see the settings at work: the process, where the module was imported,
    the thread that calls the application and the wsgi.* flags."""
    body = json.dumps({"pid": os.getpid(), "imported_in": IMPORTED_IN,
                       "thread": threading.current_thread().name,
                       "multithread": environ["wsgi.multithread"],
                       "multiprocess": environ["wsgi.multiprocess"],
                       "url_scheme": environ["wsgi.url_scheme"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class UpperFile(io.FileIO):
    """A real file whose read() upper-cases: os.sendfile sends the bytes on disk, reading sends these."""

    def read(self, size=-1):
        return super().read(size).upper()


def file_app(environ, start_response):
    path = environ["QUERY_STRING"]
    start_response("200 OK", [("Content-Length", str(os.path.getsize(path)))])
    return environ["wsgi.file_wrapper"](UpperFile(path, "r"), 4096)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


TYPICAL_CONF = """\
import multiprocessing
bind = "127.0.0.1:{port}"
workers = multiprocessing.cpu_count() * 2 + 1
worker_class = "gthread"
threads = 4
timeout = 120
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = "info"
max_requests = 1000
max_requests_jitter = 50
preload_app = True
pidfile = "{pidfile}"
worker_tmp_dir = "{tmp_dir}"
tmp_upload_dir = "{tmp_dir}"
forwarded_allow_ips = "*"
"""


@pytest.fixture
def typical_conf(tmp_path):
    tmp_dir = tmp_path / "heartbeats"
    tmp_dir.mkdir()
    path = tmp_path / "gunicorn.conf.py"
    path.write_text(TYPICAL_CONF.format(port=free_port(), pidfile=tmp_path / "g.pid", tmp_dir=tmp_dir))
    return path


def test_typical_gunicorn_conf_is_read_under_our_names(typical_conf):
    options = printed("-c", str(typical_conf))
    assert options["workers"] == os.cpu_count() * 2 + 1
    assert (options["worker_class"], options["threads"], options["timeout"]) == ("gthread", 4, 120.0)
    assert (options["keep_alive"], options["access_logfile"], options["error_logfile"]) == (5.0, "-", "-")
    assert (options["max_requests"], options["max_requests_jitter"], options["preload"]) == (1000, 50, True)
    assert options["pid"] == str(typical_conf.parent / "g.pid")
    assert options["worker_tmp_dir"] == options["tmp_upload_dir"] == str(typical_conf.parent / "heartbeats")
    assert (options["log_level"], options["forwarded_allow_ips"]) == ("info", "*")
    check = run_cli("-c", str(typical_conf), "--check-config", APP)
    assert check.returncode == 0 and "configuration OK" in check.stdout, check.stderr


@pytest.mark.parametrize("parser", ["c", "python"])
def test_typical_gunicorn_conf_serves(typical_conf, parser):
    server = ServerProcess(["-c", str(typical_conf), "--http-parser", parser, APP]).start()
    try:
        workers = os.cpu_count() * 2 + 1
        wait_booted(server, workers)
        master = server.proc.pid
        assert (typical_conf.parent / "g.pid").read_text().strip() == str(master)
        with Conn(server.port) as conn:  # keepalive = 5: the connection serves a second request
            answers = []
            for _ in range(2):
                conn.request("GET", "/gunicorn")
                response = conn.read_response()
                assert response.status == 200
                answers.append(json.loads(response.body))
        report = answers[0]
        assert report["imported_in"] == master  # preload_app: imported once, in the master
        assert report["pid"] != master and report["multiprocess"] is True
        assert report["multithread"] is True and report["thread"].startswith("fastwsgi-app-")  # threads = 4
        deadline = time.monotonic() + 5
        while sum('"GET /gunicorn HTTP/1.1" 200' in line for line in server.stdout_lines) < 2 \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        # accesslog = "-": one line per request on stdout
        assert sum('"GET /gunicorn HTTP/1.1" 200' in line for line in server.stdout_lines) == 2
        heartbeats = [os.readlink(f"/proc/{master}/fd/{fd}") for fd in os.listdir(f"/proc/{master}/fd")]
        in_tmp_dir = [link for link in heartbeats if link.startswith(str(typical_conf.parent / "heartbeats"))]
        assert len(in_tmp_dir) == workers, heartbeats  # worker_tmp_dir: one heartbeat file per worker
    finally:
        assert server.stop(timeout=10) == 0
    assert not (typical_conf.parent / "g.pid").exists()


# -- gunicorn's settings names ---------------------------------------------------------------------

ALIASES = [  # (gunicorn's config-file name, its value, our name, the value --print-config shows)
    ("keepalive", "3", "keep_alive", 3.0),
    ("accesslog", '"access.log"', "access_logfile", "access.log"),
    ("errorlog", '"error.log"', "error_logfile", "error.log"),
    ("loglevel", '"debug"', "log_level", "debug"),
    ("pidfile", '"app.pid"', "pid", "app.pid"),
    ("raw_env", '["A=1", "B=2"]', "env", ["A=1", "B=2"]),
    ("proxy_allow_ips", '"10.0.0.1,10.0.0.2"', "proxy_allow_from", "10.0.0.1,10.0.0.2"),
    ("proxy_allow_ips", '["10.0.0.1", "10.0.0.2"]', "proxy_allow_from", "10.0.0.1,10.0.0.2"),
    ("access_log_format", '"%(h)s %(s)s"', "access_logformat", "%(h)s %(s)s"),
    ("logconfig", '"logging.ini"', "log_config", "logging.ini"),
    ("logconfig_json", '"logging.json"', "log_config", "logging.json"),
    ("reload_extra_files", '["a.txt", "b.txt"]', "reload_extra_file", ["a.txt", "b.txt"]),
    ("preload_app", "True", "preload", True),
    # same names as gunicorn's, in gunicorn's value forms
    ("bind", '["127.0.0.1:8001", "unix:/tmp/g.sock"]', "bind", ["127.0.0.1:8001", "unix:/tmp/g.sock"]),
    ("forwarded_allow_ips", '["10.0.0.0/8", "::1"]', "forwarded_allow_ips", "10.0.0.0/8,::1"),
    ("pythonpath", '"src,lib"', "pythonpath", ["src", "lib"]),
    ("umask", '"0o027"', "umask", 0o027),
    ("cert_reqs", "2", "cert_reqs", "required"),
]


@pytest.mark.parametrize("gunicorn_name,value,ours,shown", ALIASES,
                         ids=[f"{a[0]}-{i}" for i, a in enumerate(ALIASES)])
def test_gunicorn_setting_names_in_a_python_file(tmp_path, gunicorn_name, value, ours, shown):
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(f"{gunicorn_name} = {value}\n")
    assert printed("-c", str(conf))[ours] == shown


def test_gunicorn_setting_names_in_a_toml_table(tmp_path):
    conf = tmp_path / "pyproject.toml"
    conf.write_text('[tool.fastwsgi]\nkeepalive = 9\nloglevel = "warning"\npreload_app = true\n'
                    'worker_class = "sync"\nraw_env = ["X=1"]\n')
    options = printed("-c", str(conf))
    assert (options["keep_alive"], options["log_level"], options["preload"]) == (9.0, "warning", True)
    assert (options["worker_class"], options["env"]) == ("sync", ["X=1"])


@pytest.mark.parametrize("content", [
    "keepalive = 3\nkeep_alive = 4\n",
    "pidfile = 'a.pid'\npid = 'b.pid'\n",
    "logconfig = 'a.ini'\nlogconfig_dict = {'version': 1}\n",
])
def test_both_spellings_of_one_option_are_an_error(tmp_path, content):
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(content)
    line = assert_one_error_line(run_cli("-c", str(conf), "--check-config"), 2)
    assert "are the same option" in line


def test_logconfig_dict_configures_logging(tmp_path):
    log = tmp_path / "routed.log"
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text("logconfig_dict = {'version': 1, 'formatters': {'p': {'format': 'ROUTED %(message)s'}},\n"
                    f"    'handlers': {{'f': {{'class': 'logging.FileHandler', 'filename': {str(log)!r},\n"
                    "                       'formatter': 'p'}},\n"
                    "    'loggers': {'fastwsgi': {'handlers': ['f'], 'level': 'INFO'}}}\n"
                    "workers = 1\n")
    assert "ROUTED Booting worker with pid" in logged_at_boot(log, "-c", str(conf))


def logged_at_boot(log, *args: str) -> str:
    """Start a server with `args`, answer one request, and return what `log` holds once it shows the
    worker booting."""
    server = ServerProcess([*args, "--bind", "127.0.0.1:0", APP]).start()
    try:
        deadline = time.monotonic() + 10
        while "Booting worker" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, server.stderr_text()
            time.sleep(0.05)
        assert get(server.port, "/").status == 200
        return log.read_text() if log.exists() else ""
    finally:
        server.stop(timeout=10)


def test_gunicorn_log_config_ini_file(tmp_path):
    """gunicorn's --log-config is a logging.config.fileConfig file; fastwsgi reads it too."""
    log = tmp_path / "routed.log"
    ini = tmp_path / "logging.conf"
    ini.write_text("[loggers]\nkeys=root,fastwsgi\n[handlers]\nkeys=file\n[formatters]\nkeys=p\n"
                   "[logger_root]\nhandlers=\n"
                   "[logger_fastwsgi]\nlevel=INFO\nhandlers=file\nqualname=fastwsgi\n"
                   f"[handler_file]\nclass=FileHandler\nformatter=p\nargs=({str(log)!r},)\n"
                   "[formatter_p]\nformat=INI %(message)s\n")
    assert "INI Booting worker with pid" in logged_at_boot(log, "--log-config", str(ini), "-w", "1")


def test_a_gunicorn_log_config_routing_gunicorns_loggers_is_warned_about(tmp_path):
    """gunicorn's example logging.conf gives handlers to gunicorn.error and gunicorn.access: no
    fastwsgi line reaches them, and there is no access log without --access-logfile. Their files
    used to stay empty without a word."""
    ini = tmp_path / "logging.conf"
    ini.write_text("[loggers]\nkeys=root,gunicorn.error,gunicorn.access\n[handlers]\nkeys=console,error_file,"
                   "access_file\n[formatters]\nkeys=generic\n"
                   "[logger_root]\nlevel=INFO\nhandlers=console\n"
                   "[logger_gunicorn.error]\nlevel=INFO\nhandlers=error_file\npropagate=1\nqualname=gunicorn.error\n"
                   "[logger_gunicorn.access]\nlevel=INFO\nhandlers=access_file\npropagate=0\n"
                   "qualname=gunicorn.access\n"
                   "[handler_console]\nclass=StreamHandler\nformatter=generic\nargs=(sys.stderr,)\n"
                   f"[handler_error_file]\nclass=FileHandler\nformatter=generic\nargs=({str(tmp_path / 'e.log')!r},)\n"
                   f"[handler_access_file]\nclass=FileHandler\nformatter=generic\nargs=({str(tmp_path / 'a.log')!r},)\n"
                   "[formatter_generic]\nformat=%(levelname)s %(message)s\n")
    server = ServerProcess(["--log-config", str(ini), "--bind", "127.0.0.1:0", APP]).start()
    try:
        assert get(server.port, "/").status == 200
    finally:
        server.stop(timeout=10)
    warnings = [line for line in server.stderr_lines if line.startswith("WARNING --log-config")]
    assert warnings == [
        "WARNING --log-config gives handlers to the logger 'gunicorn.error', which fastwsgi never logs to: "
        "fastwsgi's error log is the logger 'fastwsgi'\n",
        "WARNING --log-config gives handlers to the logger 'gunicorn.access', which fastwsgi never logs to: "
        "fastwsgi's access log is --access-logfile (with --access-logformat) and goes through no logger\n",
    ], server.stderr_text()


def test_gunicorn_short_flags():
    options = printed("-m", "0o027", "--log-config-json", "logging.json", "-k", "gthread")
    assert options["umask"] == 0o027 and options["worker_class"] == "gthread"
    assert options["log_config"] == "logging.json"
    version = run_cli("-v")
    assert version.returncode == 0 and version.stdout.startswith("fastwsgi ")


# -- worker classes --------------------------------------------------------------------------------

@pytest.mark.parametrize("given,shown", [
    ("sync", "sync"), ("gthread", "gthread"),
    ("gunicorn.workers.sync.SyncWorker", "sync"), ("gunicorn.workers.gthread.ThreadWorker", "gthread"),
])
def test_sync_and_gthread_worker_classes_are_served(given, shown, tmp_path):
    assert printed("-k", given)["worker_class"] == shown
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(f"worker_class = {given!r}\n")
    assert printed("-c", str(conf))["worker_class"] == shown


@pytest.mark.parametrize("given,why", [
    ("gevent", "own event loop"),
    ("eventlet", "own event loop"),
    ("gunicorn.workers.ggevent.GeventWorker", "use --threads N"),
    ("tornado", "Tornado worker"),
    ("uvicorn.workers.UvicornWorker", "WSGI (PEP 3333) server"),
    ("uvicorn_worker.UvicornWorker", "ASGI worker"),
    ("myproject.workers.CustomWorker", "loads no worker classes"),
])
def test_other_worker_classes_are_refused_with_the_reason(given, why, tmp_path):
    line = assert_one_error_line(run_cli("--worker-class", given, "fastwsgi.demo:app"), 2)
    assert repr(given) in line and why in line and "unrecognized" not in line
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(f"worker_class = {given!r}\n")
    line = assert_one_error_line(run_cli("-c", str(conf), "--check-config"), 2)
    assert "'worker_class'" in line and why in line


# -- gunicorn options fastwsgi refuses ---------------------------------------------------------------

REFUSED = [  # (config-file name, a value, gunicorn's flag or None, its argument or None, in the message)
    ("statsd_host", '"localhost:8125"', "--statsd-host", "localhost:8125", "--metrics-bind"),
    ("statsd_prefix", '"app"', "--statsd-prefix", "app", "--metrics-bind"),
    ("dogstatsd_tags", '"env:prod"', "--dogstatsd-tags", "env:prod", "--metrics-bind"),
    ("paste", '"development.ini"', "--paste", "development.ini", "PasteDeploy"),
    ("paste", '"development.ini"', "--paster", "development.ini", "PasteDeploy"),
    ("raw_paste_global_conf", '["A=1"]', "--paste-global", "A=1", "PasteDeploy"),
    ("spew", "True", "--spew", None, "tracer"),
    ("strip_header_spaces", "True", "--strip-header-spaces", None, "smuggled"),
    ("syslog", "True", "--log-syslog", None, "SysLogHandler"),
    ("syslog_addr", '"udp://localhost:514"', "--log-syslog-to", "udp://localhost:514", "SysLogHandler"),
    ("syslog_prefix", '"app"', "--log-syslog-prefix", "app", "SysLogHandler"),
    ("syslog_facility", '"user"', "--log-syslog-facility", "user", "SysLogHandler"),
    ("disable_redirect_access_to_syslog", "True", "--disable-redirect-access-to-syslog", None,
     "SysLogHandler"),
    ("logger_class", '"gunicorn.glogging.Logger"', "--logger-class", "x.Logger", "--log-config"),
    ("reload_engine", '"inotify"', "--reload-engine", "inotify", "one engine"),
    ("ssl_version", '"TLSv1_2"', "--ssl-version", "TLSv1_2", "ssl_context"),
    ("do_handshake_on_connect", "True", "--do-handshake-on-connect", None, "handshake"),
    ("suppress_ragged_eofs", "False", "--suppress-ragged-eofs", None, "close_notify"),
    ("enable_stdio_inheritance", "True", "-R", None, "-R"),
    ("enable_stdio_inheritance", "True", "--enable-stdio-inheritance", None, "-R"),
    ("secure_scheme_headers", '{"X-FORWARDED-SSL": "on"}', None, None, "--forwarded-allow-ips"),
    ("forwarder_headers", '"SCRIPT_NAME"', "--forwarder-headers", "SCRIPT_NAME", "--url-prefix"),
    ("casefold_http_method", "True", "--casefold-http-method", None, "leniency"),
    ("permit_unconventional_http_method", "True", "--permit-unconventional-http-method", None, "leniency"),
    ("permit_unconventional_http_version", "True", "--permit-unconventional-http-version", None, "505"),
    ("permit_obsolete_folding", "True", "--permit-obsolete-folding", None, "obs-fold"),
    ("tolerate_dangerous_framing", "True", "--tolerate-dangerous-framing", None, "framing"),
    ("header_map", '"dangerous"', "--header-map", "dangerous", "drops header fields"),
]


@pytest.mark.parametrize("name,value,flag,argument,why", REFUSED,
                         ids=[f"{r[0]}{r[2] or ''}" for r in REFUSED])
def test_refused_gunicorn_option_is_one_line(tmp_path, name, value, flag, argument, why):
    if flag is not None:  # the application after it must not be swallowed into the message
        line = assert_one_error_line(run_cli(flag, *([argument] if argument else []), "fastwsgi.demo:app"), 2)
        assert f"gunicorn's {flag!r} is not supported" in line and why in line, line
        assert "unrecognized" not in line and "fastwsgi.demo" not in line
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(f"bind = '127.0.0.1:0'\n{name} = {value}\n")
    line = assert_one_error_line(run_cli("-c", str(conf), "--check-config"), 2)
    assert f"gunicorn's {name!r} is not supported" in line and why in line, line
    toml = tmp_path / "pyproject.toml"
    toml.write_text(f"[tool.fastwsgi]\n{name} = {toml_value(ast.literal_eval(value))}\n")
    line = assert_one_error_line(run_cli("-c", str(toml), "--check-config"), 2)
    assert f"gunicorn's {name!r} is not supported" in line, line


OURS = """\
secure_scheme_headers = {"X-Forwarded-Proto": "https"}
strip_header_spaces = False
casefold_http_method = False
permit_unconventional_http_method = False
permit_unconventional_http_version = False
permit_obsolete_folding = False
tolerate_dangerous_framing = False
header_map = "drop"
do_handshake_on_connect = False
suppress_ragged_eofs = True
enable_stdio_inheritance = False
spew = False
syslog = False
disable_redirect_access_to_syslog = False
"""


@pytest.mark.parametrize("parser", ["c", "python"])
def test_refused_settings_asking_for_what_fastwsgi_does_are_accepted(tmp_path, parser):
    """A gunicorn config that sets a leniency off, or secure_scheme_headers to X-Forwarded-Proto:
    https, asks for what fastwsgi does anyway: it starts (it was refused), and behaves so."""
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(f"bind = '127.0.0.1:0'\nforwarded_allow_ips = '127.0.0.1'\n{OURS}"
                    f"statsd_host = None\npaste = None\n")
    toml = tmp_path / "pyproject.toml"
    toml.write_text("[tool.fastwsgi]\n" + OURS.replace("False", "false").replace("True", "true")
                    .replace('{"X-Forwarded-Proto": "https"}', '{"X-Forwarded-Proto" = "https"}'))
    for path in (conf, toml):
        check = run_cli("-c", str(path), "--check-config", APP)
        assert check.returncode == 0 and "configuration OK" in check.stdout, check.stderr
    server = ServerProcess(["-c", str(conf), "--http-parser", parser, APP]).start()
    try:
        with Conn(server.port) as conn:
            conn.request("GET", "/", headers=[("X-Forwarded-Proto", "https")])
            assert json.loads(conn.read_response().body)["url_scheme"] == "https"
            conn.send(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length : 0\r\n\r\n")  # no stripping
            assert conn.read_response().status == 400
    finally:
        assert server.stop(timeout=10) == 0


def test_a_refused_setting_names_the_value_a_config_file_may_give_it(tmp_path):
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text("secure_scheme_headers = {'X-FORWARDED-PROTO': 'https', 'X-FORWARDED-SSL': 'on'}\n")
    line = assert_one_error_line(run_cli("-c", str(conf), "--check-config"), 2)
    assert "may set it to {'X-FORWARDED-PROTO': 'https'}, what fastwsgi does anyway" in line, line


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def test_worker_tmp_dir_must_exist(tmp_path):
    line = assert_one_error_line(run_cli("--worker-tmp-dir", str(tmp_path / "missing"), "--check-config"), 2)
    assert "no such directory" in line


# -- --no-sendfile ---------------------------------------------------------------------------------

@pytest.mark.parametrize("parser", ["c", "python"])
def test_no_sendfile_reads_the_file_wrapper(tmp_path, parser):
    data = tmp_path / "data.txt"
    data.write_bytes(b"sendfile copies these bytes; reading upper-cases them\n" * 2000)
    bodies = {}
    for flags, sendfile in (((), None), (("--no-sendfile",), None), ((), "0"), (("--sendfile",), "0")):
        server = ServerProcess(["--bind", "127.0.0.1:0", "--http-parser", parser, *flags,
                                "tests.functional.test_gunicorn_compat:file_app"],
                               env=None if sendfile is None else {"SENDFILE": sendfile}).start()
        try:
            response = get(server.port, f"/?{data}")
            assert response.status == 200
            bodies[flags, sendfile] = response.body
        finally:
            server.stop()
    assert bodies[(), None] == data.read_bytes()  # os.sendfile: the bytes on disk
    assert bodies[("--no-sendfile",), None] == data.read_bytes().upper()  # read(): what the file object gives
    assert bodies[(), "0"] == data.read_bytes().upper()  # gunicorn's $SENDFILE, when no flag is given
    assert bodies[("--sendfile",), "0"] == data.read_bytes()  # the flag wins over it
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text("sendfile = False\n")
    assert printed("-c", str(conf))["sendfile"] is False


def test_an_unknown_flag_is_named_alone():
    """argparse would say 'unrecognized arguments: --max-request fastwsgi.demo:app' (5 taken as the app)."""
    line = assert_one_error_line(run_cli("--max-request", "5", "fastwsgi.demo:app"), 2)
    assert line == "fastwsgi: error: unrecognized arguments: --max-request (did you mean --max-requests?)"
