"""Fixtures for the functional suite: real server processes over real sockets.

Theory of operation: `pool` (session) owns every server process; `server` is parametrized over the
full matrix (both parser backends x both concurrency models) for the core HTTP behaviour, and
`server_fixture(...)` builds module-level fixtures for the rest (both backends, or special flags such
as small timeouts). Backends are never skipped: if the C extension is not built, `--http-parser c`
fails to start and every C-parametrized test fails. Each test gets the suite's hard deadline
(tests/conftest.py) on top of the per-socket timeouts, and a test after which its server is dead fails
with the server's stderr. Fixtures shared by several test files live here (`started`, `launch`: a
process of the test's own; `listening_socket`, `passing`: a socket the server inherits); so does
`certs`, one level up, as the deploy tests use it too.
"""

from __future__ import annotations

import functools
import socket
import subprocess
import uuid

import pytest

from tests.functional import serverproc
from tests.functional.apps import EVENTS_ENV
from fastwsgi.server.connection import LOOKAHEAD
from tests.functional.client import wait_events
from tests.functional.ops import OPS_APP, wait_booted
from tests.functional.serverproc import DEFAULT_APP, REPO_ROOT, ServerPool, ServerProcess

# (parser, threads): the full matrix for the core behaviour (keep-alive, pipelining, bodies, errors)
FULL_MATRIX = [("c", 0), ("c", 4), ("python", 0), ("python", 4)]
# every other behaviour runs on both backends, one concurrency model each (both models get coverage)
BACKENDS = [("c", 0), ("python", 4)]
# a thread pool for the tests about concurrency
THREADED = [("c", 4), ("python", 4)]


def matrix_id(param) -> str:
    parser, threads = param
    return f"{parser}-t{threads}"


@pytest.fixture(scope="session")
def events_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("events")


@pytest.fixture(scope="session")
def pool(events_dir):
    servers = ServerPool({EVENTS_ENV: str(events_dir)})
    yield servers
    servers.stop_all()


def use_server(pool, param, extra, app):
    """The pool's server for (parser, threads) = `param` with `extra` flags serving `app`."""
    parser, threads = param
    server = pool.get(parser, threads, *extra, app=app)
    server.parser, server.threads = parser, threads
    return server


def check_alive(server):
    """Fail the test (with the server's stderr) if the server process died during it."""
    if not server.alive():
        pytest.fail(f"the server process died during this test (exit {server.proc.returncode}); stderr:\n"
                    + server.stderr_text()[-4000:])


def server_fixture(*extra: str, matrix=BACKENDS, app: str = DEFAULT_APP):
    """A fixture serving `app` with extra CLI flags, parametrized over `matrix`."""

    @pytest.fixture(params=matrix, ids=matrix_id)
    def fixture(request, pool):
        server = use_server(pool, request.param, extra, app)
        yield server
        check_alive(server)

    return fixture


server = server_fixture(matrix=FULL_MATRIX)
# a server that calls the application once LOOKAHEAD bytes of a body have come (the default waits for
# the whole body): a body that starts with client.FILLING reaches the application before its rest
STREAMING = ("--request-buffering", str(LOOKAHEAD))
streaming_server = server_fixture(*STREAMING, matrix=FULL_MATRIX)
# a server that calls the application as soon as a head is parsed: its reads meet the body's
# framing errors themselves (the default refuses a body found malformed before calling it)
UNBUFFERED = ("--request-buffering", "0")
unbuffered_server = server_fixture(*UNBUFFERED, matrix=FULL_MATRIX)
threaded_server = server_fixture(matrix=THREADED)


@pytest.fixture
def token():
    return uuid.uuid4().hex


@pytest.fixture
def events(events_dir):
    """events(token, count=1, timeout=5, settle=0) -> the side-channel events for token."""

    def read(token, count=1, timeout=5.0, settle=0.0):
        return wait_events(events_dir, token, count, timeout, settle)

    return read


@pytest.fixture
def started():
    """started(*args, env=None, cwd=REPO_ROOT, booted=0, bind=("--bind", "127.0.0.1:0")) -> a running
    `fastwsgi *bind *args` (pass bind=() to give your own --bind) with `booted` workers up; every
    process started is stopped after the test."""
    servers: list[ServerProcess] = []

    def start(*args: str, env=None, cwd=REPO_ROOT, booted: int = 0,
              bind=("--bind", "127.0.0.1:0")) -> ServerProcess:
        server = ServerProcess([*bind, *args], env, cwd=cwd)
        servers.append(server)
        server.start()
        if booted:
            wait_booted(server, booted)
        return server

    yield start
    for server in servers:
        server.stop(timeout=10)


@pytest.fixture
def launch(started):
    """launch(*args, env=None, app=OPS_APP) -> started(*args, app): a server of ops_app."""

    def start(*args: str, env=None, app: str = OPS_APP) -> ServerProcess:
        return started(*args, app, env=env)

    return start


@pytest.fixture
def listening_socket():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.set_inheritable(True)
    yield sock
    sock.close()


@pytest.fixture
def passing(monkeypatch, listening_socket):
    """ServerProcess.start passes the test's socket to the child (Popen pass_fds)."""
    monkeypatch.setattr(serverproc.subprocess, "Popen",
                        functools.partial(subprocess.Popen, pass_fds=(listening_socket.fileno(),)))
    return listening_socket
