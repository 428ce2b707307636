"""The servers compared, in a table: how to install each one and the command that serves an app.

Theory of operation: a ServerSpec names its venv (benchmarks/harness/envs.py) and builds the argv that
serves `module:app` on 127.0.0.1:PORT as ONE worker process (the comparison is per core: the harness pins
it to one CPU). `threads` is None for the scenarios that measure raw per-request cost (each server then
runs its usual single-worker setup: the event loop alone for the async servers, 4 threads for the
thread-pool servers, as their defaults suggest) and an int for the concurrency scenario, where only
servers with an application thread pool run. Everything that is a deliberate choice is in `note`, and
the report prints it next to the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import envs
from .scenarios import APPS_DIR, DJANGO_DIR, Scenario

RUNNER = Path(__file__).resolve().parent / "serve_runner.py"
HOST = "127.0.0.1"
DEFAULT_POOL = 4  # threads for the thread-pool servers in the per-request-cost scenarios


@dataclass(frozen=True)
class Launch:
    port: int
    app: str
    threads: int | None
    scenario: Scenario

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"


@dataclass(frozen=True)
class ServerSpec:
    name: str
    venv: str  # "" when the server is a system program (nginx)
    threaded: bool  # has an application thread pool (runs the concurrency scenario)
    argv: Callable[[Launch], list[str]]
    note: str
    env: tuple[tuple[str, str], ...] = ()
    expect_backend: str | None = None  # fastwsgi: the parser backend this config must report
    only: tuple[str, ...] | None = None  # scenarios it can serve (None: all)

    def serves(self, scenario: Scenario) -> bool:
        if self.only is not None and scenario.name not in self.only:
            return False
        return self.threaded or not scenario.threads


def _bin(venv: str, program: str) -> str:
    return str(envs.bin_of(venv, program))


def _py(venv: str) -> str:
    return str(envs.python_of(venv))


def _runner(server: str):
    return lambda launch: [_py(server), str(RUNNER), server, launch.app, str(launch.port)]


def _gunicorn(worker: str):
    def argv(launch: Launch) -> list[str]:
        threads = ["--threads", str(launch.threads or DEFAULT_POOL)] if worker == "gthread" else []
        return [_bin("gunicorn", "gunicorn"), "--workers", "1", "--worker-class", worker, *threads,
                "--bind", launch.address, "--log-level", "warning", launch.app]
    return argv


def _waitress(launch: Launch) -> list[str]:
    return [_bin("waitress", "waitress-serve"), f"--listen={launch.address}",
            f"--threads={launch.threads or DEFAULT_POOL}", launch.app]


def _uwsgi(launch: Launch) -> list[str]:
    # --http11-socket keeps connections alive but ignores a client's Connection: close, so the
    # close scenario uses --http-socket (one request per connection), which is what it measures.
    socket_flag = "--http-socket" if launch.scenario.close else "--http11-socket"
    threads = ["--threads", str(launch.threads)] if launch.threads else []
    return [_bin("uwsgi", "uwsgi"), socket_flag, launch.address, "--module", launch.app,
            "--processes", "1", *threads, "--disable-logging", "--die-on-term",
            "--pythonpath", str(APPS_DIR), "--pythonpath", str(DJANGO_DIR)]


def _granian(launch: Launch) -> list[str]:
    threads = ["--blocking-threads", str(launch.threads)] if launch.threads else []
    return [_bin("granian", "granian"), "--interface", "wsgi", "--host", HOST, "--port", str(launch.port),
            "--workers", "1", "--runtime-threads", "1", *threads, "--no-ws", "--log-level", "warning",
            launch.app]


NGINX_DIR = envs.VENVS_DIR / "nginx"
NGINX_CONF = """worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen {address};
        location / {{ default_type text/plain; return 200 "Hello, World!"; }}
    }}
}}
"""


def _nginx(launch: Launch) -> list[str]:
    """nginx answering from its config (no application): the floor a C server can reach here."""
    NGINX_DIR.mkdir(parents=True, exist_ok=True)
    conf = NGINX_DIR / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=NGINX_DIR, address=launch.address))
    return ["nginx", "-c", str(conf), "-p", str(NGINX_DIR)]


def _fastwsgi(parser: str):
    def argv(launch: Launch) -> list[str]:
        threads = ["--threads", str(launch.threads)] if launch.threads else []
        return [_py("fastwsgi"), "-m", "fastwsgi", "--bind", launch.address, "--http-parser", parser,
                *threads, "--log-level", "warning", launch.app]
    return argv


SERVERS = [
    ServerSpec("nginx", "", False, _nginx,
               "baseline, not WSGI: Debian's nginx, 1 worker, `return 200` from the config",
               only=("hello", "close", "pipeline16")),
    ServerSpec("wsgiref", "wsgiref", False, _runner("wsgiref"),
               "stdlib wsgiref.simple_server, request log silenced; HTTP/1.0, closes every connection"),
    ServerSpec("gunicorn-sync", "gunicorn", False, _gunicorn("sync"),
               "1 sync worker (+ master); no keep-alive by design"),
    ServerSpec("gunicorn-gthread", "gunicorn", True, _gunicorn("gthread"),
               f"1 gthread worker (+ master), {DEFAULT_POOL} threads"),
    ServerSpec("waitress", "waitress", True, _waitress, f"{DEFAULT_POOL} threads (its default)"),
    ServerSpec("bjoern", "bjoern", False, _runner("bjoern"), "bjoern.run, libev, single thread"),
    ServerSpec("uwsgi", "uwsgi", True, _uwsgi,
               "1 process, no master, --http11-socket (--http-socket for Connection: close)"),
    ServerSpec("granian", "granian", True, _granian, "WSGI interface, 1 worker, 1 runtime thread"),
    ServerSpec("meinheld", "meinheld", False, _runner("meinheld"),
               "installed --no-deps with a current greenlet; keep-alive on, access log off"),
    ServerSpec("fastwsgi-c", "fastwsgi", True, _fastwsgi("c"), "this repository, C parser",
               expect_backend="c"),
    ServerSpec("fastwsgi-py", "fastwsgi", True, _fastwsgi("python"),
               "this repository, pure-Python parser (FASTWSGI_PUREPYTHON=1)",
               env=(("FASTWSGI_PUREPYTHON", "1"),), expect_backend="python"),
]

BY_NAME = {server.name: server for server in SERVERS}
QUICK = ["wsgiref", "fastwsgi-c", "fastwsgi-py"]
