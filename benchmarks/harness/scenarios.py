"""The traffic the servers are compared on: one Scenario per kind of request, in a table.

Theory of operation: a Scenario names the application every server serves (`module:attr` under
benchmarks/apps), the request wrk sends (path, method, body, `Connection: close`, pipeline depth), the
number of concurrent connections, and how to recognise a correct response body. `wrk_script()` turns it
into the Lua script wrk runs: the request setup followed by benchmarks/lua/report.lua, whose done() prints
the machine-readable summary. Scenarios with `threads` set are about concurrency models: each server runs
with a pool of that many application threads, and servers without one are not run.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
APPS_DIR = BENCH_DIR / "apps"
DJANGO_DIR = APPS_DIR / "djangosite"
LUA_REPORT = BENCH_DIR / "lua" / "report.lua"

sys.path.insert(0, str(APPS_DIR))
import wsgi_apps  # noqa: E402  (constants only; the servers import the apps themselves)

UPLOAD_SIZE = 1 << 20
JSON_DOCUMENT = {"message": "Hello, World!"}


def _equals(expected: bytes):
    def body_ok(body: bytes):
        if body == expected:
            return None
        return f"body of {len(body)} bytes differs from the expected {len(expected)} ({body[:60]!r})"
    return body_ok


def _json_equals(expected: dict):
    def body_ok(body: bytes):
        try:
            if json.loads(body) == expected:
                return None
        except ValueError:
            pass
        return f"expected JSON {expected}, got {body[:80]!r}"
    return body_ok


def _file_body() -> bytes:
    """The bytes of the file `wsgi_apps.file_app` serves (built by the same function)."""
    path = _bench_file_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        wsgi_apps.make_bench_file(str(path))
    return path.read_bytes()


def _bench_file_path() -> Path:
    return BENCH_DIR / ".venvs" / "bench-file-1mib.bin"


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    app: str  # module:attr, importable from APPS_DIR or DJANGO_DIR
    path: str = "/"
    method: str = "GET"
    body_size: int = 0  # request body bytes (b"x" * body_size)
    close: bool = False  # send Connection: close on every request
    pipeline: int = 1  # requests per write
    connections: int = 16
    threads: int | None = None  # run servers with this many app threads; single-threaded ones skip it
    packages: tuple[str, ...] = ()  # extra packages each server venv needs (django, flask)
    expected: str = "hello"  # key into EXPECTED_BODIES
    env: dict = field(default_factory=dict)

    @property
    def request_body(self) -> bytes:
        return b"x" * self.body_size

    def body_ok(self):
        return EXPECTED_BODIES[self.expected]()

    def wrk_script(self) -> str:
        """The Lua script for wrk: request setup, then the shared done() reporter."""
        lines = [f"-- scenario {self.name}: {self.title}", f'wrk.method = "{self.method}"',
                 f'wrk.path = "{self.path}"']
        if self.body_size:
            lines += [f"wrk.body = string.rep(\"x\", {self.body_size})",
                      'wrk.headers["Content-Type"] = "application/octet-stream"']
        if self.close:
            lines.append('wrk.headers["Connection"] = "close"')
        if self.pipeline > 1:
            # wrk counts the requests in the string request() returns and expects that many responses
            lines += ["local pipelined = nil",
                      "init = function(args)",
                      "   local batch = {}",
                      f"   for i = 1, {self.pipeline} do batch[i] = wrk.format() end",
                      "   pipelined = table.concat(batch)",
                      "end",
                      "request = function() return pipelined end"]
        return "\n".join(lines) + "\n\n" + LUA_REPORT.read_text()


EXPECTED_BODIES = {
    "hello": lambda: _equals(wsgi_apps.HELLO),
    "big": lambda: _equals(wsgi_apps.BIG_BODY),
    "file": lambda: _equals(_file_body()),
    "upload": lambda: _equals(str(UPLOAD_SIZE).encode()),
    "json": lambda: _json_equals(JSON_DOCUMENT),
}

SCENARIOS = [
    Scenario("hello", "hello world, keep-alive", "wsgi_apps:hello"),
    Scenario("close", "hello world, Connection: close", "wsgi_apps:hello", close=True),
    Scenario("pipeline16", "hello world, 16 pipelined requests per write", "wsgi_apps:hello",
             pipeline=16),
    Scenario("big64k", "64 KiB response", "wsgi_apps:big", expected="big"),
    Scenario("file1m", "1 MiB file via wsgi.file_wrapper", "wsgi_apps:file_app", expected="file",
             env={"BENCH_FILE": str(_bench_file_path())}),
    Scenario("upload1m", "1 MiB POST read fully", "wsgi_apps:upload", method="POST",
             body_size=UPLOAD_SIZE, expected="upload", connections=8),
    Scenario("django", "Django JSON view", "djangoproj.wsgi:application", path="/json",
             packages=("django",), expected="json"),
    Scenario("flask", "Flask JSON view", "flask_app:app", path="/json", packages=("flask",),
             expected="json"),
    Scenario("sleep20", "app sleeps 20 ms, 32 app threads, 64 connections", "wsgi_apps:sleepy",
             threads=32, connections=64),
]

BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
QUICK = ["hello", "pipeline16"]


def ensure_bench_file() -> Path:
    _file_body()
    return _bench_file_path()


def server_environment(*overrides: dict) -> dict:
    """The environment every benchmarked server gets: this one without the outer venv's variables,
    then `overrides` (a server's or a scenario's own variables) in order, then the apps importable
    (APPS_DIR, DJANGO_DIR) and unbuffered output."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    for extra in overrides:
        env.update(extra)
    env.update(PYTHONPATH=f"{APPS_DIR}:{DJANGO_DIR}", PYTHONUNBUFFERED="1")
    return env
