"""Configuration sources and logging on real processes: a Python config file and a pyproject.toml
[tool.fastwsgi] table, FASTWSGI_CMD_ARGS, PORT, WEB_CONCURRENCY and flags with their precedence
(defaults < WEB_CONCURRENCY/PORT/SCRIPT_NAME < config file < FASTWSGI_CMD_ARGS < flags),
--print-config, --check-config, unknown keys; the access log in gunicorn's text format and as JSON
(with USR1 reopening it), --error-logfile, and proxy headers from trusted and untrusted peers."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.functional.client import get
from tests.functional.ops import OPS_APP, wait_booted
from tests.functional.test_cli import assert_one_error_line, printed, run_cli
from tests.functional.test_signals import wait_text


@pytest.fixture
def py_config(tmp_path):
    path = tmp_path / "fastwsgi_conf.py"
    path.write_text("import multiprocessing\n"
                    "threads = 2\nkeep_alive = 7\nbacklog = 100\nmax_requests = 11\n"
                    "_private = 'ignored'\n")
    return path


def test_precedence_defaults_file_environment_flags(py_config):
    defaults = printed()
    assert defaults["threads"] == 0 and defaults["keep_alive"] == 5.0 and defaults["backlog"] == 2048
    from_file = printed("-c", str(py_config))
    assert (from_file["threads"], from_file["keep_alive"], from_file["backlog"]) == (2, 7.0, 100)
    env = {"FASTWSGI_CMD_ARGS": "--keep-alive 8 --backlog 200", "WEB_CONCURRENCY": "3"}
    from_env = printed("-c", str(py_config), env=env)
    assert (from_env["threads"], from_env["keep_alive"], from_env["backlog"]) == (2, 8.0, 200)
    assert from_env["workers"] == 3
    flagged = printed("-c", str(py_config), "--backlog", "300", "-w", "4", env=env)
    assert (flagged["threads"], flagged["keep_alive"], flagged["backlog"]) == (2, 8.0, 300)
    assert flagged["workers"] == 4 and flagged["max_requests"] == 11


def test_config_file_named_in_fastwsgi_cmd_args(py_config):
    assert printed(env={"FASTWSGI_CMD_ARGS": f"-c {py_config}"})["threads"] == 2


def test_port_environment_variable_binds_all_interfaces():
    assert printed(env={"PORT": "9123"})["bind"] == ["0.0.0.0:9123"]
    assert printed("-b", "127.0.0.1:1", env={"PORT": "9123"})["bind"] == ["127.0.0.1:1"]


def test_config_file_wins_over_the_variables_gunicorn_reads_as_defaults(tmp_path):
    """gunicorn takes WEB_CONCURRENCY, PORT (and SCRIPT_NAME) as defaults, below its config file: a
    platform that sets them unasked must not override the file the user wrote."""
    env = {"WEB_CONCURRENCY": "3", "PORT": "9123", "SCRIPT_NAME": "/env"}
    assert (printed(env=env)["workers"], printed(env=env)["bind"]) == (3, ["0.0.0.0:9123"])
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text('workers = 2\nbind = "127.0.0.1:1"\nurl_prefix = "/file"\n')
    from_file = printed("-c", str(conf), env=env)
    assert (from_file["workers"], from_file["bind"], from_file["url_prefix"]) == (2, ["127.0.0.1:1"], "/file")
    assert printed("-c", str(conf), env={**env, "FASTWSGI_CMD_ARGS": "-w 4"})["workers"] == 4


def test_config_file_wins_over_forwarded_allow_ips_and_sendfile_variables(tmp_path):
    env = {"FORWARDED_ALLOW_IPS": "*", "SENDFILE": "0"}  # Heroku's buildpack exports the first one
    from_env = printed(env=env)
    assert (from_env["forwarded_allow_ips"], from_env["sendfile"]) == ("*", False)
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text('forwarded_allow_ips = "10.0.0.1"\nsendfile = True\n')
    from_file = printed("-c", str(conf), env=env)
    assert (from_file["forwarded_allow_ips"], from_file["sendfile"]) == ("10.0.0.1", True)


@pytest.mark.parametrize("variable, value, message", [
    ("WEB_CONCURRENCY", "four", "expected an integer, got 'four'"),
    ("WEB_CONCURRENCY", "0", "must be >= 1, got 0"),
    ("PORT", "http", "invalid port 'http'"),
    ("FORWARDED_ALLOW_IPS", "10.0.0.1,proxy",
     "'proxy' is not an IP address or CIDR network (host names are not resolved)"),
    ("SENDFILE", "on", "expected 1, y, yes or true (on) or 0, n, no, false, off or empty (off), got 'on'"),
])
def test_bad_environment_defaults_are_one_line_errors_naming_the_variable(variable, value, message):
    result = run_cli("--check-config", OPS_APP, env={variable: value})
    assert assert_one_error_line(result, 2) == f"fastwsgi: error: environment variable {variable}: {message}"


def test_pyproject_table_configures_a_real_server(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "x"\n\n[tool.fastwsgi]\nbind = ["127.0.0.1:0"]\n'
                    f'wsgi-app = "{OPS_APP}"\nworkers = 2\n')
    from tests.functional.serverproc import ServerProcess

    server = ServerProcess(["-c", str(path)])
    try:
        server.start()
        assert len(set(wait_booted(server, 2))) == 2
        assert get(server.port, "/pid").status == 200
    finally:
        server.stop()


@pytest.mark.parametrize("content, suffix, message", [
    ("worker = 3\n", ".py", "unknown option 'worker' (did you mean 'workers'?)"),
    ("[tool.fastwsgi]\nkeep-alives = 3\n", ".toml", "unknown option 'keep_alives' (did you mean 'keep_alive'?)"),
    ("[tool.other]\nx = 1\n", ".toml", "no [tool.fastwsgi] table"),
    ("check_config = true\n", ".py", "unknown option 'check_config'"),
    ("threads = -2\n", ".py", "conf.py: option 'threads': must be >= 0"),  # names the file, as unknown keys do
    ("[tool.fastwsgi]\nworkers = 0\n", ".toml", "conf.toml: option 'workers': must be >= 1"),
    ("threads = \n", ".py", "cannot read config file"),
    ("import os\nworkers = int(os.environ['NO_SUCH_VARIABLE_FOR_FASTWSGI'])\n", ".py",
     "KeyError: 'NO_SUCH_VARIABLE_FOR_FASTWSGI' (conf.py, line 2)"),  # the file's line that raised
    ("import sys\nsys.exit('no production settings here')\n", ".py",
     "called sys.exit('no production settings here')"),  # used to exit 0, silently
    # a NUL byte in a path was a traceback (ValueError: embedded null byte) when it was used
    ('chdir = "/tmp\\x00x"\n', ".py", "option 'chdir': NUL byte"),
    ('pid = "/tmp/p\\x00x"\n', ".py", "option 'pid': NUL byte"),
    ('access_logfile = "/tmp/a\\x00x"\n', ".py", "option 'access_logfile': NUL byte"),
    ('error_logfile = "/tmp/e\\x00x"\n', ".py", "option 'error_logfile': NUL byte"),
    ('bind = ["unix:/tmp/s\\x00x"]\n', ".py", "NUL byte in the unix socket path"),
])
def test_bad_config_files_are_one_line_errors(tmp_path, content, suffix, message):
    path = tmp_path / f"conf{suffix}"
    path.write_text(content.replace("true", "True") if suffix == ".py" else content)
    result = run_cli("-c", str(path), OPS_APP)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("fastwsgi: error: ") and message in lines[0], lines[0]


def test_check_config():
    ok = run_cli("--check-config", "-w", "2", OPS_APP)
    assert ok.returncode == 0 and "configuration OK" in ok.stdout, ok.stderr
    missing = run_cli("--check-config", "no_such_module_xyz:app")
    assert missing.returncode == 1 and "no module named" in missing.stderr
    bad_format = run_cli("--check-config", "--access-logformat", "%(zz)s")
    assert bad_format.returncode == 2 and bad_format.stderr.startswith("fastwsgi: error: ")


@pytest.mark.parametrize("flags, message", [
    (("--error-logfile", "/nonexistent-dir/error.log"), "cannot open the error log '/nonexistent-dir/error.log'"),
    (("--access-logfile", "/nonexistent-dir/access.log"), "cannot open the access log '/nonexistent-dir/access.log'"),
    (("--log-config", "/nonexistent-dir/logging.ini"), "cannot use --log-config '/nonexistent-dir/logging.ini'"),
])
@pytest.mark.parametrize("check", [True, False], ids=["check-config", "start"])
def test_a_log_file_that_cannot_be_opened_is_named_in_a_one_line_error(flags, message, check):
    """--check-config fails as the server would start: on a log file it cannot open, named."""
    result = run_cli(*(["--check-config"] if check else ["-b", "127.0.0.1:0"]), *flags, OPS_APP)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and message in lines[0], result.stderr
    assert "configuration OK" not in result.stdout


def test_text_access_log_and_usr1_reopen(launch, tmp_path):
    log = tmp_path / "access.log"
    server = launch("-w", "1", "--access-logfile", str(log))
    wait_booted(server, 1)
    assert get(server.port, "/pid?x=1", headers=[("User-Agent", 'evil" 200 "x'),
                                                  ("Referer", "http://r/")]).status == 200
    lines = wait_lines(log, 1)
    assert lines[0].startswith('127.0.0.1 - - [')
    assert '"GET /pid?x=1 HTTP/1.1" 200 ' in lines[0]
    assert lines[0].endswith('"http://r/" "evil\\" 200 \\"x"')  # a header cannot forge a field
    os.rename(log, tmp_path / "access.log.1")
    server.signal(signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert get(server.port, "/after-rotation").status == 200
    assert '"GET /after-rotation HTTP/1.1" 200 2 ' in wait_lines(log, 1)[0]
    assert len((tmp_path / "access.log.1").read_text().splitlines()) == 1


def test_json_access_log_with_timings(launch, tmp_path):
    log = tmp_path / "access.json"
    server = launch("--access-logfile", str(log), "--access-logformat", "json", "--threads", "2")
    assert get(server.port, "/sleep?s=0.2", headers=[("User-Agent", 'a"\\b\tc')]).status == 200
    record = json.loads(wait_lines(log, 1)[0])
    assert record["method"] == "GET" and record["uri"] == "/sleep?s=0.2" and record["status"] == 200
    assert record["user_agent"] == 'a"\\b\tc' and record["bytes"] == len(b"slept 0.2")
    assert record["app_ms"] >= 190 and record["duration_ms"] >= record["app_ms"]


def test_no_access_log_by_default(launch, tmp_path):
    server = launch()
    assert get(server.port, "/pid").status == 200
    assert not any('"GET /pid' in line for line in server.stdout_lines + server.stderr_lines)


def test_error_logfile(launch, tmp_path):
    log = tmp_path / "error.log"
    server = launch("-w", "1", "--error-logfile", str(log))
    deadline = time.monotonic() + 10
    while "Booting worker" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Booting worker with pid" in log.read_text()
    assert get(server.port, "/pid").status == 200


@pytest.mark.parametrize("allow, env, trusted", [
    ((), None, True),
    (("--forwarded-allow-ips", "10.9.9.9"), None, False),
    ((), {"FORWARDED_ALLOW_IPS": "10.9.9.9"}, False),  # gunicorn's variable sets the default
    ((), {"FORWARDED_ALLOW_IPS": ""}, False),  # as gunicorn: empty trusts no TCP peer
    (("--forwarded-allow-ips", "127.0.0.1"), {"FORWARDED_ALLOW_IPS": "10.9.9.9"}, True),  # the flag wins
], ids=["trusted-peer", "untrusted-peer", "untrusted-by-variable", "empty-variable", "flag-over-variable"])
def test_proxy_headers(launch, allow, env, trusted):
    server = launch(*allow, env=env)
    response = get(server.port, "/addr", headers=[("X-Forwarded-For", "203.0.113.7"),
                                                  ("X-Forwarded-Proto", "https")])
    remote, scheme, _host, forwarded_for = response.body.decode().split()
    if trusted:  # the default trusts 127.0.0.1, our peer address
        assert (remote, scheme, forwarded_for) == ("203.0.113.7", "https", "203.0.113.7")
    else:  # removed, so the application cannot be fooled
        assert (remote, scheme, forwarded_for) == ("127.0.0.1", "http", "-")


def wait_lines(path, count: int, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


@pytest.mark.parametrize("workers", [[], ["-w", "1"]], ids=["single", "master"])
def test_error_logfile_tells_where_the_server_listens(launch, tmp_path, workers):
    """As gunicorn's error log does: an operator reading --error-logfile FILE (a daemon's only output)
    learns where it listens; the line went to stderr alone."""
    log = tmp_path / "error.log"
    server = launch(*workers, "--error-logfile", str(log))
    text = wait_text(log, f"[INFO] Listening at: {server.url} (fastwsgi ")
    assert text.count("Listening at:") == 1, text
    assert sum("Listening at:" in line for line in server.stderr_lines) == 1, server.stderr_text()


def test_log_config_dictconfig_file(launch, tmp_path):
    log = tmp_path / "routed.log"
    config = tmp_path / "logging.json"
    config.write_text(json.dumps({
        "version": 1,
        "formatters": {"plain": {"format": "ROUTED %(levelname)s %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log), "formatter": "plain"}},
        "loggers": {"fastwsgi": {"handlers": ["file"], "level": "INFO"}},
    }))
    server = launch("-w", "1", "--log-config", str(config))
    deadline = time.monotonic() + 10
    while "Booting worker" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "ROUTED INFO Booting worker with pid" in log.read_text()
    assert get(server.port, "/pid").status == 200


def test_bad_log_config_is_a_one_line_error(tmp_path):
    config = tmp_path / "logging.json"
    config.write_text("{not json")
    result = run_cli("--log-config", str(config), OPS_APP)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith("fastwsgi: error: cannot use --log-config")


def test_gunicorn_sources_fastwsgi_does_not_read_are_named(tmp_path):
    """A user who swapped `gunicorn` for `fastwsgi` and kept ./gunicorn.conf.py or $GUNICORN_CMD_ARGS
    (which gunicorn reads unasked) is told they are not read, instead of silently losing a bind."""
    (tmp_path / "gunicorn.conf.py").write_text("bind = '0.0.0.0:8000'\n")

    def run(*args, env=None):
        return run_cli("--print-config", *args, env=env, cwd=tmp_path)

    result = run()
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "fastwsgi: warning: ./gunicorn.conf.py is not read (gunicorn reads it by default): pass "
        "-c gunicorn.conf.py to use it"]
    assert 'bind = ["127.0.0.1:8000"]' in result.stdout  # really not read
    named = run("-c", "gunicorn.conf.py")
    assert named.stderr == "" and 'bind = ["0.0.0.0:8000"]' in named.stdout
    gunicorn_args = run("-c", "gunicorn.conf.py", env={"GUNICORN_CMD_ARGS": "--workers 3"})
    assert gunicorn_args.stderr.splitlines() == [
        "fastwsgi: warning: $GUNICORN_CMD_ARGS is not read: fastwsgi takes the same flags from "
        "$FASTWSGI_CMD_ARGS"]
    assert "workers = 3" not in gunicorn_args.stdout
    both = run("-c", "gunicorn.conf.py", env={"GUNICORN_CMD_ARGS": "--workers 3",
                                              "FASTWSGI_CMD_ARGS": "--workers 2"})
    assert both.stderr == "" and "workers = 2" in both.stdout
