"""The command line: app specs, the demo app, error reporting (one line, exit 2 for usage, 1 otherwise),
--version, binds (IPv6, unix socket, several) and clean shutdown on SIGTERM/SIGINT."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import wsgiref.util

import pytest

from tests.functional.client import Conn
from tests.functional.serverproc import REPO_ROOT

ERROR_LINE = re.compile(r"^fastwsgi: error: \S.*$")


def run_cli(*args: str, timeout: float = 30, env=None, cwd=REPO_ROOT) -> subprocess.CompletedProcess:
    """`python -m fastwsgi ARGS` in `cwd`, with this process's environment (tests/conftest.py took
    out the variables that configure fastwsgi) plus `env`. Run elsewhere than the checkout, this
    checkout's fastwsgi is found through PYTHONPATH."""
    environ = {**os.environ, **(env or {})}
    if cwd != REPO_ROOT:
        environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "fastwsgi", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=environ, stdin=subprocess.DEVNULL)


def printed(*args: str, env=None, cwd=REPO_ROOT) -> dict:
    """The options `fastwsgi --print-config ARGS` reports, as {name: value}."""
    result = run_cli("--print-config", *args, env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return {key: json.loads(value) for key, _, value in
            (line.partition(" = ") for line in result.stdout.splitlines()[1:] if not line.startswith("#"))}


def assert_one_error_line(result: subprocess.CompletedProcess, code: int) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, (result.returncode, result.stderr)
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert ERROR_LINE.match(lines[0]), lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


def http_get(port: int, target: str = "/") -> tuple[int, bytes]:
    with Conn(port) as conn:
        conn.request("GET", target)
        resp = conn.read_response()
        return resp.status, resp.body


@pytest.mark.parametrize("parser", ["c", "python"])
def test_demo_app_without_an_app_spec(started, parser):
    proc = started("--http-parser", parser)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", proc.url), proc.url
    assert proc.port and proc.port > 0
    status, body = http_get(proc.port)
    assert status == 200 and body
    assert proc.stop() == 0


def test_module_only_spec_uses_application(started):
    proc = started("tests.functional.apps")
    assert http_get(proc.port) == (200, b"module-level application")


@pytest.mark.parametrize("spec,body", [
    ("tests.functional.apps:create_app()", b"hi"),
    ('tests.functional.apps:create_app("hey", 3)', b"hey hey hey"),
    ("tests.functional.apps:create_app(greeting='yo', times=2)", b"yo yo"),
])
def test_factory_spec(started, spec, body):
    proc = started(spec)
    assert http_get(proc.port) == (200, body)


def test_factory_arguments_are_literals_not_code(tmp_path):
    marker = tmp_path / "pwned"
    result = run_cli("--bind", "127.0.0.1:0",
                     f"tests.functional.apps:create_app(__import__('pathlib').Path({str(marker)!r}).touch())")
    assert result.returncode in (1, 2)
    assert_one_error_line(result, result.returncode)
    assert not marker.exists(), "the app spec was evaluated as code"


@pytest.mark.parametrize("args", [
    ["--no-such-flag"],
    ["--threads", "-1"],
    ["--threads", "many"],
    ["--http-parser", "rust"],
    ["--keep-alive", "-1"],
    ["--header-timeout", "0"],
    ["--limit-request-line", "0"],
    ["--limit-request-line", "4294967296"],  # (accepted once: then every request failed in C)
    ["--limit-request-fields", "1000000000"],
    ["--backlog", "2147483648"],  # (a traceback from listen() once)
    ["--bind", "127.0.0.1:notaport"],
], ids=lambda a: " ".join(a))
def test_usage_errors_exit_2_with_one_line(args):
    assert_one_error_line(run_cli(*args, "tests.functional.apps:app"), 2)


@pytest.mark.parametrize("spec", ["no_such_module_for_fastwsgi:app", "tests.functional.apps:no_such_attribute",
                                  "tests.functional.no_such_submodule"])
def test_unloadable_app_exits_1_with_one_line(spec):
    line = assert_one_error_line(run_cli("--bind", "127.0.0.1:0", spec), 1)
    assert "no_such" in line


@pytest.mark.parametrize("spec, hint", [
    ("tests/functional/apps.py", "invalid application spec 'tests/functional/apps.py' (expected MODULE:APP; "
                                 "name the module, not the file: tests.functional.apps)"),
    ("./tests/functional/apps.py:app", "(expected MODULE:APP; name the module, not the file: tests.functional.apps:app)"),
    ("tests.functional.apps.py:app", "no module named 'tests.functional.apps.py' "
                                     "(name the module, not the file: tests.functional.apps:app)"),
])
def test_an_app_named_by_its_file_gets_the_module_to_write(spec, hint):
    """gunicorn's users sometimes name the file (mysite/wsgi.py); the line says what to write."""
    line = assert_one_error_line(run_cli("--bind", "127.0.0.1:0", spec), 1)
    assert hint in line, line


@pytest.mark.parametrize("parser", ["c", "python"])
@pytest.mark.parametrize("workers", [[], ["-w", "1"], ["-w", "1", "--preload"]], ids=["single", "master", "preload"])
def test_app_that_raises_on_import_shows_where(tmp_path, parser, workers):
    """An exception inside the application's module (not a missing module) is a bug in the app: its
    traceback must reach the operator whichever process imports it, as gunicorn shows it."""
    (tmp_path / "raising_app_for_fastwsgi.py").write_text("x = 1\nraise KeyError('SECRET_KEY')\n")
    result = run_cli("--bind", "127.0.0.1:0", "--http-parser", parser, *workers, "raising_app_for_fastwsgi:app",
                     env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback (most recent call last)" in result.stderr, result.stderr
    assert 'raising_app_for_fastwsgi.py", line 2' in result.stderr, result.stderr
    assert "KeyError: 'SECRET_KEY'" in result.stderr, result.stderr
    assert ("fastwsgi: error: importing 'raising_app_for_fastwsgi' raised KeyError: 'SECRET_KEY'"
            in result.stderr.splitlines()), result.stderr
    assert "importlib" not in result.stderr  # the traceback starts in the application's code


@pytest.mark.parametrize("workers", [[], ["-w", "1"]], ids=["single", "master"])
@pytest.mark.parametrize("line, error", [
    ("import missing_dependency_for_fastwsgi", "ModuleNotFoundError: No module named 'missing_dependency_for_fastwsgi'"),
    ("from os import no_such_name", "ImportError: cannot import name 'no_such_name' from 'os'"),
], ids=["missing-dependency", "bad-from-import"])
def test_app_whose_own_import_fails_shows_where(tmp_path, workers, line, error):
    """The module named exists but an import in its code fails (a dependency not installed, Django
    settings naming a missing app): that is the application's bug, not a mistyped spec, and the
    operator needs the line that imports, as gunicorn shows it."""
    (tmp_path / "importing_app_for_fastwsgi.py").write_text(f"x = 1\n{line}\n")
    result = run_cli("--bind", "127.0.0.1:0", *workers, "importing_app_for_fastwsgi:app",
                     env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback (most recent call last)" in result.stderr, result.stderr
    assert 'importing_app_for_fastwsgi.py", line 2' in result.stderr, result.stderr
    assert f"fastwsgi: error: importing 'importing_app_for_fastwsgi' raised {error}" in result.stderr, result.stderr


@pytest.mark.parametrize("workers", [[], ["-w", "1"]], ids=["single", "master"])
def test_app_factory_that_raises_shows_where(tmp_path, workers):
    (tmp_path / "factory_app_for_fastwsgi.py").write_text(
        "def create_app(name):\n    raise ValueError(f'no config for {name}')\n")
    result = run_cli("--bind", "127.0.0.1:0", *workers, "factory_app_for_fastwsgi:create_app('prod')",
                     env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert 'factory_app_for_fastwsgi.py", line 2, in create_app' in result.stderr, result.stderr
    assert ("fastwsgi: error: the factory \"factory_app_for_fastwsgi:create_app('prod')\" raised "
            "ValueError: no config for prod" in result.stderr.splitlines()), result.stderr


@pytest.mark.parametrize("spec, message", [
    ("tests.functional.apps:app()", "cannot call tests.functional.apps:app as written in "
                                    "'tests.functional.apps:app()': app() missing 2 required positional arguments: "
                                    "'environ' and 'start_response' (if it is the application, not a factory: "
                                    "tests.functional.apps:app)"),
    ("tests.functional.apps:app(1, 2, 3)", "app() takes 2 positional arguments but 3 were given"),
])
def test_a_factory_call_with_the_wrong_arguments_is_one_line(spec, message):
    """The call in the spec failed, not code inside it: a traceback of fastwsgi's own frame looked
    like a crash of fastwsgi (the application named with '()' is the usual way to get there)."""
    line = assert_one_error_line(run_cli("--bind", "127.0.0.1:0", spec), 1)
    assert message in line, line


def test_port_in_use_exits_1_with_one_line():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        port = holder.getsockname()[1]
        assert_one_error_line(run_cli("--bind", f"127.0.0.1:{port}", "tests.functional.apps:app"), 1)
    finally:
        holder.close()


def test_help_has_a_one_line_usage_and_the_flags_in_sections():
    """The usage line listed every flag, refused ones too: 40 lines before the first help text. It
    names none now, as gunicorn's, and the flags are grouped as in docs/configuration.md."""
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["usage: fastwsgi [OPTIONS] [MODULE:APP]", ""], lines[:3]
    headings = [line for line in lines if line.endswith(":") and not line.startswith(" ")]
    assert headings == ["positional arguments:", "options:", "server:", "logging:", "processes:", "sockets:",
                        "proxy:", "application:", "tls:", "metrics:", "development:", "command:",
                        "gunicorn options fastwsgi refuses:"], headings
    # (argparse before 3.13 repeats the metavar after each flag: "-w N, --workers N")
    assert re.search(r"^  -w( N)?, --workers N ", result.stdout, re.M), result.stdout
    assert "  --statsd-host [...]" in result.stdout


def test_version():
    import fastwsgi
    from fastwsgi.parser import get_backend

    for args, env in ((["--version"], None), ([], {"FASTWSGI_CMD_ARGS": "--version"})):
        result = run_cli(*args, env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"fastwsgi {fastwsgi.__version__} (parser: {get_backend('auto').NAME})"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", fastwsgi.__version__)


def test_version_reports_the_c_parser_when_built_and_python_when_forced():
    # FASTWSGI_PUREPYTHON is cleared: the suite also runs with it set, and auto must then pick C
    unforced = run_cli("--version", env={"FASTWSGI_PUREPYTHON": ""})
    assert unforced.stdout.strip().endswith("(parser: c)"), "the C extension is not built"
    forced = run_cli("--version", env={"FASTWSGI_PUREPYTHON": "1"})
    assert forced.stdout.strip().endswith("(parser: python)")


@pytest.mark.parametrize("value, parser", [("false", "c"), ("off", "c"), ("0", "c"), ("yes", "python"),
                                           ("TRUE", "python")])
def test_purepython_variable_is_read_as_a_boolean(value, parser):
    """FASTWSGI_PUREPYTHON=false forced the Python backend (any value but "0" did)."""
    result = run_cli("--version", env={"FASTWSGI_PUREPYTHON": value})
    assert result.stdout.strip().endswith(f"(parser: {parser})"), result.stdout


def test_purepython_variable_that_is_no_boolean_stops_with_one_line():
    result = run_cli("--bind", "127.0.0.1:0", "fastwsgi.demo:application", env={"FASTWSGI_PUREPYTHON": "maybe"})
    line = assert_one_error_line(result, 1)
    assert "FASTWSGI_PUREPYTHON='maybe' is not a boolean" in line


def test_fastwsgi_entry_point_matches_python_m():
    exe = os.path.join(os.path.dirname(sys.executable), "fastwsgi")
    if not os.path.exists(exe):
        pytest.fail(f"console script {exe} is not installed (pip install -e .)")
    result = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0 and result.stdout == run_cli("--version").stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly_with_exit_0(started, signum):
    proc = started("tests.functional.apps:app")
    with Conn(proc.port) as idle:  # an open keep-alive connection must not block the shutdown
        idle.request("GET", "/hello")
        idle.read_response()
        proc.signal(signum)
        assert proc.wait(10) == 0, proc.stderr_text()
    assert "Traceback" not in proc.stderr_text()


def test_threads_mode_stops_cleanly(started):
    proc = started("--threads", "4", "tests.functional.apps:app")
    assert http_get(proc.port, "/hello") == (200, b"hello")
    proc.signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_ipv6_bind(started):
    proc = started("--bind", "[::1]:0", "tests.functional.apps:app", bind=())
    assert re.fullmatch(r"http://\[::1\]:\d+", proc.url), proc.url
    with socket.create_connection(("::1", proc.port), timeout=5) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"hello")


@pytest.mark.parametrize("parser", ["c", "python"])
def test_unix_socket_bind(started, tmp_path, parser):
    """Also PEP 3333: SERVER_NAME and SERVER_PORT are never empty. Behind a proxy on a unix socket a
    request without Host still rebuilds its URL from them (gunicorn reports port 80 too)."""
    path = tmp_path / "fw.sock"
    proc = started("--bind", f"unix:{path}", "--http-parser", parser, "tests.functional.apps:app", bind=())
    assert proc.url == f"unix:{path}"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(b"GET /environ HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    env = json.loads(body)
    assert env["SERVER_NAME"] and env["SERVER_PORT"] == "80", (env["SERVER_NAME"], env["SERVER_PORT"])
    assert wsgiref.util.request_uri(env) == f"http://{env['SERVER_NAME']}/environ"


def test_several_binds_each_print_a_line(started):
    proc = started("--bind", "127.0.0.1:0", "tests.functional.apps:app")
    urls = re.findall(r"Listening at: (\S+)", proc.stderr_text())
    for _ in range(50):
        if len(urls) == 2:
            break
        time.sleep(0.05)
        urls = re.findall(r"Listening at: (\S+)", proc.stderr_text())
    assert len(urls) == 2 and urls[0] != urls[1], urls
    for url in urls:
        port = int(url.rsplit(":", 1)[1])
        assert http_get(port, "/hello") == (200, b"hello")


def test_options_from_the_table_are_accepted(started):
    proc = started("--backlog", "16", "--limit-request-field-size", "100",
                   "--allow-bare-lf", "--allow-missing-host", "--url-scheme", "https", "--log-level", "debug",
                   "tests.functional.apps:app")
    with Conn(proc.port) as conn:
        conn.send(b"GET /environ HTTP/1.1\n\n")  # bare LF and no Host: both allowed by the flags
        resp = conn.read_response()
        assert resp.status == 200
        assert b'"wsgi.url_scheme": "https"' in resp.body
        conn.request("GET", "/hello", headers=[("X-Long", "v" * 200)])
        assert conn.read_response().status == 431


@pytest.mark.parametrize("parser", ["c", "python"])
def test_system_exit_from_the_application_stops_the_process_and_says_so(launch, parser):
    """With --threads 0 the application runs on the loop thread, so sys.exit() there ends the process
    (as it ends a gunicorn sync worker); the exit status is the application's and the log says why."""
    server = launch("--http-parser", parser, app="tests.functional.apps:app")
    with Conn(server.port) as conn:
        conn.request("GET", "/system-exit")
        assert conn.closed_by_server(timeout=5)
    assert server.wait(10) == 3
    assert "Stopping: the application raised SystemExit(3) on the event-loop thread" in server.stderr_text()


# -- edge cases found by the CLI bug hunt: each was a traceback, a silent choice or a hang ------------

@pytest.mark.parametrize("args, code, message", [
    # ast.literal_eval raises TypeError for an unhashable key, not ValueError
    (("--check-config", "tests.functional.apps:create_app({[]: 1})"), 1, "must be literals"),
    (("--check-config", "--bind", "fd://99999999999999999999"), 2, "invalid bind address"),
    (("--check-config", "--bind", "fd://2147483648"), 2, "invalid bind address"),
    # every thread of the pool starts before the server listens: a million took minutes, silently
    (("--check-config", "--threads", "1000000"), 2, "--threads: must be <= 10000"),
])
def test_bad_values_are_one_line_errors(args, code, message):
    line = assert_one_error_line(run_cli(*args), code)
    assert message in line, line


@pytest.mark.parametrize("content, suffix, message", [
    # a class given to an option is its value (gunicorn takes classes): an ASGI worker class is
    # refused, not dropped for the default worker
    ("class UvicornWorker:\n    pass\nworker_class = UvicornWorker\n", ".py", "option 'worker_class'"),
    ("pythonpath = 'src,\\x00lib'\n", ".py", "option 'pythonpath': NUL byte"),
    ("[tool.fastwsgi]\nkeep-alive = 3\nkeep_alive = 2\n", ".toml",
     "'keep-alive' and 'keep_alive' are the same option (keep_alive); set it once"),
])
def test_config_file_values_that_were_silently_ignored_or_crashed(tmp_path, content, suffix, message):
    path = tmp_path / f"conf{suffix}"
    path.write_text(content)
    line = assert_one_error_line(run_cli("-c", str(path), "--check-config"), 2)
    assert message in line, line


def test_print_config_round_trips_characters_outside_the_bmp(tmp_path):
    """JSON writes a surrogate pair for them, which TOML refuses: the printed table failed to load."""
    first = run_cli("--print-config", "--name", "shop \U0001F6D2 \\ud83d")
    assert first.returncode == 0, first.stderr
    assert "\\U0001F6D2" in first.stdout
    path = tmp_path / "printed.toml"
    path.write_text(first.stdout)
    again = run_cli("-c", str(path), "--print-config")
    assert again.returncode == 0 and again.stdout == first.stdout, again.stderr


def test_print_config_shows_the_application_given_as_the_argument(tmp_path):
    """The effective options include the application, wherever it was named: the positional argument
    (the usual way) was printed as '# wsgi_app is unset', so the table did not reproduce the start."""
    assert printed("tests.functional.apps:app")["wsgi_app"] == "tests.functional.apps:app"
    assert printed(env={"FASTWSGI_CMD_ARGS": "tests.functional.apps:app"})["wsgi_app"] == "tests.functional.apps:app"
    path = tmp_path / "printed.toml"
    path.write_text(run_cli("--print-config", "tests.functional.apps:app").stdout)
    assert printed("-c", str(path))["wsgi_app"] == "tests.functional.apps:app"
    assert "# wsgi_app is unset" in run_cli("--print-config").stdout  # no application: the demo app


def test_the_wsgi_app_flag_wins_over_fastwsgi_cmd_args(tmp_path):
    """Flags win over FASTWSGI_CMD_ARGS, an application given with --wsgi-app too."""
    result = run_cli("--check-config", "--wsgi-app", "no_such_module_from_the_flag:app",
                     env={"FASTWSGI_CMD_ARGS": "tests.functional.apps:app"})
    assert result.returncode == 1 and "no_such_module_from_the_flag" in result.stderr, result.stderr
