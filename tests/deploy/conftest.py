"""Fixtures for the deployment suite: real Django/Flask applications and a real nginx, over real sockets.

Theory of operation. A `Target` is "an application being served on a loopback port", reached with
`request()` (http.client, bounded timeouts). Every application test is parametrized over the ways a user
serves it:

* `cli-c` / `cli-python`: `python -m fastwsgi mysite.wsgi:application` as a separate process with the
  project directory as cwd (exactly as Django's gunicorn page shows), one per parser backend. The process
  is a `tests.functional.serverproc.ServerProcess` whose command is prefixed with `env -C DIR`.
* `make_server`: the seed-style one-line swap, `fastwsgi.make_server(host, 0, app)` in this process,
  `serve_forever()` on a thread.
* `wsgiref`: `wsgiref.simple_server.make_server`, the reference; tests parametrize it only for features
  wsgiref supports (it has no chunked request bodies and no sendfile).

Targets are created on first use and cached for the session (a Django process costs ~1 s to start), and
all are stopped at the end. The Django project's data (sqlite database, collectstatic output, download
file) lives in a session temporary directory passed as MYSITE_DATA_DIR; `migrate`, `collectstatic` and
the admin user are done once, in a subprocess, before any server starts.

nginx: `NginxProcess` renders tests/deploy/nginx.conf.in (or another template: nginx_uwsgi.conf.in) (placeholders `{{NAME}}`, so nginx's own `$vars`
stay untouched) into a temporary prefix and runs the Debian binary in the foreground with its own pid file
and error log (`-p PREFIX -c CONF -g 'daemon off; pid ...; error_log ...'`), on a loopback port taken
from the kernel. It dies with pytest (PDEATHSIG) and is stopped in teardown.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import wsgiref.simple_server
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.functional.serverproc import REPO_ROOT, ServerProcess, _die_with_parent

EXAMPLES = REPO_ROOT / "examples"
DJANGO_DIR = EXAMPLES / "djangosite"
NGINX_BIN = shutil.which("nginx") or "/usr/sbin/nginx"
NGINX_TEMPLATE = Path(__file__).with_name("nginx.conf.in")
HTTP_TIMEOUT = 20.0
ADMIN_USER, ADMIN_PASSWORD = "admin", "fastwsgi-example-pw-1"

# how each application test runs; wsgiref only where the test says the feature exists there
FASTWSGI_KINDS = ["cli-c", "cli-python", "make_server"]
ALL_KINDS = FASTWSGI_KINDS + ["wsgiref"]


# -- HTTP client -------------------------------------------------------------------------------------

@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    version: int = 11

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def json(self):
        import json

        return json.loads(self.body)


@dataclass
class Target:
    kind: str
    host: str
    port: int
    stop: object = None  # callable
    info: dict = field(default_factory=dict)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                source: str | None = None, timeout: float = HTTP_TIMEOUT) -> Reply:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout,
                                          source_address=(source, 0) if source else None)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return Reply(resp.status, resp.headers, resp.read(), resp.version)
        finally:
            conn.close()

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[str, bytes]:
    """(content type, body) of a multipart/form-data request (RFC 7578)."""
    boundary = "----fastwsgi" + uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                     + value.encode() + b"\r\n")
    for name, (filename, data) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     "Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    return f"multipart/form-data; boundary={boundary}", b"".join(parts) + f"--{boundary}--\r\n".encode()


# -- serving -----------------------------------------------------------------------------------------

class ProjectServer(ServerProcess):
    """`python -m fastwsgi ...` run from `cwd` (the shared ServerProcess always starts in the repo root)."""

    def __init__(self, args, cwd: Path, env=None):
        super().__init__(args, env)
        self.cwd = cwd

    @property
    def command(self) -> list[str]:
        return ["env", "-C", str(self.cwd), *super().command]


def start_cli(cwd: Path, app_spec: str, parser: str, env: dict, *extra: str) -> Target:
    # PYTHONPATH: fastwsgi itself must import from the checkout even when it is not installed
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    proc = ProjectServer(["--bind", "127.0.0.1:0", "--http-parser", parser, *extra, app_spec], cwd, env).start()
    return Target(f"cli-{parser}", "127.0.0.1", proc.port, proc.stop, {"process": proc})


def start_in_process(kind: str, app) -> Target:
    if kind == "make_server":
        import fastwsgi

        httpd = fastwsgi.make_server("127.0.0.1", 0, app)
    else:
        class QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
            def log_message(self, *args):
                pass

        httpd = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()

    def stop():
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)

    return Target(kind, "127.0.0.1", httpd.server_port, stop)


class Targets:
    """Session cache: one running target per (application, kind)."""

    def __init__(self):
        self.running: dict[tuple[str, str], Target] = {}

    def get(self, key: str, kind: str, start) -> Target:
        target = self.running.get((key, kind))
        proc = target.info.get("process") if target else None
        if target is None or (proc is not None and not proc.alive()):
            target = self.running[(key, kind)] = start()
        return target

    def stop_all(self):
        for target in self.running.values():
            try:
                target.stop()
            except Exception:  # one failing stop must not leave the others running
                pass
        self.running.clear()


@pytest.fixture(scope="session")
def targets():
    cache = Targets()
    yield cache
    cache.stop_all()


@pytest.fixture(scope="session")
def django_env(tmp_path_factory):
    """MYSITE_DATA_DIR prepared like a deployment: migrate, collectstatic, an admin user."""
    data_dir = tmp_path_factory.mktemp("mysite-data")
    env = {"MYSITE_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "mysite.settings"}
    setup = ("import django; django.setup()\n"
             "from django.core.management import call_command\n"
             "call_command('migrate', interactive=False, verbosity=0)\n"
             "call_command('collectstatic', interactive=False, verbosity=0)\n"
             "from django.contrib.auth.models import User\n"
             f"User.objects.create_superuser({ADMIN_USER!r}, 'admin@example.com', {ADMIN_PASSWORD!r})\n")
    subprocess.run([sys.executable, "-c", setup], cwd=DJANGO_DIR, env={**os.environ, **env}, check=True,
                   timeout=60, capture_output=True)
    # the in-process targets import the same project with the same data directory
    os.environ.update(env)
    if str(DJANGO_DIR) not in sys.path:
        sys.path.insert(0, str(DJANGO_DIR))
    return env


def _django_target(targets, django_env, kind: str, app_spec: str) -> Target:
    def start():
        if kind.startswith("cli-"):
            return start_cli(DJANGO_DIR, app_spec, kind[4:], django_env)
        module, _, name = app_spec.partition(":")
        return start_in_process(kind, getattr(__import__(module, fromlist=[name]), name))

    return targets.get(app_spec, kind, start)


@pytest.fixture(params=ALL_KINDS)
def django_site(request, targets, django_env):
    """The example project's plain `mysite.wsgi:application`, served each way."""
    return _django_target(targets, django_env, request.param, "mysite.wsgi:application")


@pytest.fixture(params=FASTWSGI_KINDS)
def django_fastwsgi(request, targets, django_env):
    """Same, fastwsgi only (features wsgiref does not have)."""
    return _django_target(targets, django_env, request.param, "mysite.wsgi:application")


@pytest.fixture(params=ALL_KINDS)
def django_stack(request, targets, django_env):
    """`mysite.stack:application`: the Django app inside three recording WSGI middlewares."""
    return _django_target(targets, django_env, request.param, "mysite.stack:application")


@pytest.fixture(params=FASTWSGI_KINDS)
def django_stack_fastwsgi(request, targets, django_env):
    return _django_target(targets, django_env, request.param, "mysite.stack:application")


def _flask_target(targets, kind: str) -> Target:
    def start():
        if kind.startswith("cli-"):
            return start_cli(EXAMPLES, "flaskapp:app", kind[4:], {})
        if str(EXAMPLES) not in sys.path:
            sys.path.insert(0, str(EXAMPLES))
        import flaskapp

        return start_in_process(kind, flaskapp.app)

    return targets.get("flaskapp:app", kind, start)


@pytest.fixture(params=ALL_KINDS)
def flask_app(request, targets):
    return _flask_target(targets, request.param)


@pytest.fixture(params=FASTWSGI_KINDS)
def flask_fastwsgi(request, targets):
    return _flask_target(targets, request.param)


# -- nginx -------------------------------------------------------------------------------------------

def free_port() -> int:
    """A loopback port nobody listens on now (nginx cannot bind port 0 and report it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NginxProcess:
    # a request that failed on the upstream side (nginx logs one for a GET it then retried, too)
    UPSTREAM_ERRORS = ("upstream prematurely closed", "upstream sent invalid", "upstream sent no valid",
                       "upstream sent too big header", "upstream sent duplicate", "upstream sent more data",
                       "while reading response header from upstream", "while sending request to upstream")

    def __init__(self, prefix: Path, values: dict[str, object], template: Path = NGINX_TEMPLATE):
        self.prefix = prefix
        self.port = free_port()
        self.conf = prefix / "nginx.conf"
        self.error_log = prefix / "error.log"
        self.pid_file = prefix / "nginx.pid"
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (prefix / sub).mkdir(parents=True, exist_ok=True)
        text = template.read_text()
        values = {"PREFIX": prefix, "LISTEN_PORT": self.port,
                  # as root nginx would run its worker as `nobody`, which cannot enter pytest's 0700 tmp dirs
                  "USER": "user root;" if os.geteuid() == 0 else "", **values}
        for name, value in values.items():
            text = text.replace("{{" + name + "}}", str(value))
        assert "{{" not in text, "unfilled placeholder in nginx.conf.in"
        self.conf.write_text(text)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> "NginxProcess":
        if not os.access(NGINX_BIN, os.X_OK):
            pytest.fail(f"nginx not found at {NGINX_BIN} (Debian: apt-get install nginx-light)")
        globals_ = f"daemon off; pid {self.pid_file}; error_log {self.error_log} info;"
        self.proc = subprocess.Popen([NGINX_BIN, "-p", str(self.prefix), "-c", str(self.conf), "-g", globals_],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited {self.proc.returncode}: {self.proc.stdout.read().decode()}"
                                     f"\n{self.log_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"nginx did not listen within {timeout} s\n{self.log_text()}")
                time.sleep(0.05)

    def log_text(self) -> str:
        try:
            return self.error_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    SERIOUS_LEVELS = (" [error] ", " [crit] ", " [alert] ", " [emerg] ")

    def lines_with(self, needles, since: int = 0) -> list[str]:
        """Error-log lines (from offset `since`) that hold any of `needles`."""
        return [line for line in self.log_text()[since:].splitlines()
                if any(needle in line for needle in needles)]

    def upstream_errors(self, since: int = 0) -> list[str]:
        return self.lines_with(self.UPSTREAM_ERRORS, since)

    def serious_lines(self, since: int = 0) -> list[str]:
        """Error-log lines at level error or above (a failed or retried upstream request is one)."""
        return self.lines_with(self.SERIOUS_LEVELS, since)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)  # graceful: workers finish, then the master exits
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


