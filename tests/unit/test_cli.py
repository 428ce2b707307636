"""The `fastwsgi` command (fastwsgi/cli.py): exit codes, one-line errors, --version, app specs.

Process-level behaviour (exit status, what reaches stderr, signals) is checked on real
`python -m fastwsgi` subprocesses; app-spec resolution is also checked in-process through `load_app`,
against modules written to a temporary directory.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import fastwsgi
from fastwsgi.cli import AppCodeError, AppLoadError, load_app

REPO = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"Listening at: (\S+)")

FACTORY_MODULE = textwrap.dedent('''
    def create_app(name="default", count=1, **extra):
        body = f"{name}:{count}:{sorted(extra.items())}".encode()
        def app(environ, start_response):
            start_response("200 OK", [("Content-Length", str(len(body)))])
            return [body]
        return app

    def application(environ, start_response):
        start_response("200 OK", [("Content-Length", "11")])
        return [b"application"]

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "3")])
        return [b"app"]

    class holder:
        def inner(environ, start_response):
            start_response("200 OK", [("Content-Length", "5")])
            return [b"inner"]

    not_callable = 42

    def broken_factory():
        return len(42)
''')


@pytest.fixture
def app_dir(tmp_path):
    (tmp_path / "factmod.py").write_text(FACTORY_MODULE)
    (tmp_path / "onlyapp.py").write_text(FACTORY_MODULE.replace("def application(", "def _application("))
    (tmp_path / "nothing.py").write_text("x = 1\n")
    return tmp_path


def run_cli(args, cwd=REPO, timeout=30, pythonpath=()):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, pythonpath), str(REPO)])}
    return subprocess.run([sys.executable, "-m", "fastwsgi", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(result, code):
    assert result.returncode == code, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fastwsgi: error: ")
    assert "Traceback" not in result.stderr


class Running:
    """A server subprocess; the URL comes from its `Listening at:` line."""

    def __init__(self, args, cwd):
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen([sys.executable, "-m", "fastwsgi", "-b", "127.0.0.1:0", *args],
                                     cwd=cwd, env=env, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        match = LISTENING.search(line)
        assert match, line + self.proc.stderr.read()
        self.port = int(match.group(1).rsplit(":", 1)[1])

    def get(self, path="/"):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return head, body

    def stop(self, signum=signal.SIGTERM):
        self.proc.send_signal(signum)
        try:
            return self.proc.wait(10)
        finally:
            self.proc.stderr.close()


# -- process level ------------------------------------------------------------------------------

def test_version_prints_version_and_backend():
    result = run_cli(["--version"])
    assert result.returncode == 0
    assert result.stdout.strip() == f"fastwsgi {fastwsgi.__version__} (parser: {fastwsgi.BACKEND})"


@pytest.mark.parametrize("args", [
    ["--no-such-flag"], ["--threads", "-1"], ["--threads", "many"], ["--keep-alive", "-3"],
    ["--http-parser", "java"], ["--bind", "127.0.0.1:70000"], ["--limit-request-body"],
    ["one:app", "two:app"],
])
def test_usage_errors_are_one_line_and_exit_2(args):
    assert_one_line_error(run_cli(args), 2)


@pytest.mark.parametrize("spec, message", [
    ("no_such_module_xyz:app", "no module named 'no_such_module_xyz'"),
    ("factmod:missing", "has no attribute 'missing'"),
    ("nothing", "has no 'application' or 'app'"),
    ("factmod:not_callable", "not callable"),
    ("factmod:create_app(len)", "must be literals"),
    ("factmod:1+2", "invalid application spec"),
    ("bad-name:app", "invalid application spec"),
])
def test_app_load_errors_are_one_line_and_exit_1(app_dir, spec, message):
    result = run_cli(["-b", "127.0.0.1:0", spec], cwd=app_dir)
    assert_one_line_error(result, 1)
    assert message in result.stderr


def test_port_in_use_is_one_line_and_exit_1(app_dir):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        result = run_cli(["-b", f"127.0.0.1:{holder.getsockname()[1]}", "factmod:app"], cwd=app_dir)
    finally:
        holder.close()
    assert_one_line_error(result, 1)
    assert "cannot listen on" in result.stderr


BLOCK_C_EXTENSION = """
import importlib.abc, sys

class _NoCExtension(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "fastwsgi._cparser":
            raise ImportError("simulated: C extension not built")
        return None

sys.meta_path.insert(0, _NoCExtension())
"""


def test_c_parser_request_fails_cleanly_when_not_built(tmp_path):
    """With the extension missing (simulated by a sitecustomize that refuses to import it), asking
    for the C parser is a one-line error, auto falls back to Python, and --version says so."""
    (tmp_path / "sitecustomize.py").write_text(BLOCK_C_EXTENSION)
    version = run_cli(["--version"], pythonpath=[tmp_path])
    assert version.returncode == 0
    assert "parser: python" in version.stdout + version.stderr
    assert_one_line_error(run_cli(["-b", "127.0.0.1:0", "--http-parser", "c"], pythonpath=[tmp_path]), 1)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_the_server_with_exit_0(app_dir, signum):
    server = Running(["factmod:app"], app_dir)
    assert server.get()[1] == b"app"
    assert server.stop(signum) == 0


@pytest.mark.parametrize("spec, body", [
    ("factmod:app", b"app"),
    ("factmod", b"application"),  # module alone: `application` first
    ("onlyapp", b"app"),  # ... then `app`
    ("factmod:holder.inner", b"inner"),
    ("factmod:create_app()", b"default:1:[]"),
    ('factmod:create_app("x", 3)', b"x:3:[]"),
    ("factmod:create_app('y', count=2, flag=True)", b"y:2:[('flag', True)]"),
])
def test_app_specs_are_served_from_the_current_directory(app_dir, spec, body):
    server = Running([spec], app_dir)
    try:
        assert server.get()[1] == body
    finally:
        assert server.stop() == 0


def test_no_app_serves_the_demo():
    server = Running([], REPO)
    try:
        head, body = server.get("/")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"fastwsgi" in body
        assert server.get("/nowhere")[0].startswith(b"HTTP/1.1 404 ")
    finally:
        assert server.stop() == 0


# -- in process: load_app --------------------------------------------------------------------------

@pytest.fixture
def in_app_dir(app_dir, monkeypatch):
    monkeypatch.chdir(app_dir)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("factmod", "onlyapp", "nothing", "brokenimport"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return app_dir


def test_load_app_puts_cwd_on_sys_path(in_app_dir):
    load_app("factmod:app")
    assert os.getcwd() in sys.path


def test_load_app_factory_receives_literal_args(in_app_dir):
    application = load_app('factmod:create_app("z", count=9)')
    captured = []
    body = application({}, lambda status, headers: captured.append(status))
    assert body == [b"z:9:[]"] and captured == ["200 OK"]


@pytest.mark.parametrize("spec", [
    "factmod:create_app(__import__('os'))",  # not a literal: never evaluated
    "factmod:create_app(*[1])",
    "factmod:create_app(**{'a': 1})",
    "factmod:(lambda: 1)()",
    "factmod:",
    ":app",
    "fact mod:app",
])
def test_load_app_rejects_specs_it_must_not_evaluate(in_app_dir, spec):
    if spec == "factmod:":
        assert load_app(spec) is not None  # empty attribute: same as the module alone
        return
    with pytest.raises(AppLoadError):
        load_app(spec)


def test_load_app_never_evaluates_arguments(in_app_dir, tmp_path):
    marker = tmp_path / "evaluated"
    with pytest.raises(AppLoadError):
        load_app(f"factmod:create_app(open({str(marker)!r}, 'w'))")
    assert not marker.exists()


def test_load_app_reports_errors_inside_the_factory_with_their_cause(in_app_dir):
    with pytest.raises(AppCodeError) as info:
        load_app("factmod:broken_factory()")
    assert type(info.value.__cause__) is TypeError  # load_error_text shows its traceback
    assert "raised TypeError" in str(info.value)


def test_load_app_reports_a_call_with_the_wrong_arguments_as_the_spec_s_mistake(in_app_dir):
    with pytest.raises(AppLoadError) as info:  # the call failed, nothing inside the factory ran
        load_app("factmod:create_app(1, 2, 3)")
    assert not isinstance(info.value, AppCodeError) and info.value.__cause__ is None
    assert "cannot call factmod:create_app as written" in str(info.value)


def test_startup_line_names_every_listener(app_dir, tmp_path):
    sock_path = tmp_path / "s.sock"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "fastwsgi", "-b", "127.0.0.1:0", "-b",
                             f"unix:{sock_path}", "factmod:app"], cwd=app_dir, env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stderr.readline(), proc.stderr.readline()]
        urls = [LISTENING.search(line).group(1) for line in lines]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", urls[0]) and not urls[0].endswith(":0")
        assert urls[1] == f"unix:{sock_path}"
        deadline = time.monotonic() + 5
        while not sock_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        with socket.socket(socket.AF_UNIX) as unix:
            unix.settimeout(5)
            unix.connect(str(sock_path))
            unix.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert unix.recv(4096).endswith(b"\r\n\r\napp")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        proc.stderr.close()
    assert not sock_path.exists()  # our socket file is removed on exit


def test_the_version_says_when_the_c_extension_is_not_built(monkeypatch, tmp_path):
    """pip hides the build's warning unless run with -v: --version and the Listening line ("parser:
    python") must not look like a deliberate FASTWSGI_PUREPYTHON=1 when the compiler was missing."""
    from fastwsgi import cli, parser
    from fastwsgi.cli import version_string

    cli_how_to_build = cli._how_to_build
    monkeypatch.delenv("FASTWSGI_PUREPYTHON", raising=False)
    monkeypatch.setattr(parser, "_c_backend", None)
    monkeypatch.setattr(cli, "_how_to_build", lambda: cli_how_to_build(str(tmp_path / "fastwsgi")))
    text = version_string()
    assert "(parser: python; the C extension is not built: reinstall with a C compiler)" in text
    (tmp_path / "csrc").mkdir()  # a clone: `python -m fastwsgi` in it imports its own fastwsgi/
    assert version_string().endswith(f"the C extension is not built: {tmp_path / 'fastwsgi'} is a source "
                                     f"tree: build it there (pip install -e ., with a C compiler) or run "
                                     f"from another directory)")
