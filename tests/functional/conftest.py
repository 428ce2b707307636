"""Fixtures for the functional suite: real server processes over real sockets.

Theory of operation: `pool` (session) owns every server process; `server` is parametrized over the
full matrix (both parser backends x both concurrency models) for the core HTTP behaviour, and
`server_fixture(...)` builds module-level fixtures for the rest (both backends, or special flags such
as small timeouts). Backends are never skipped: if the C extension is not built, `--http-parser c`
fails to start and every C-parametrized test fails. Each test gets the suite's hard deadline
(tests/conftest.py) on top of the per-socket timeouts, and a test after which its server is dead fails with the server's stderr.
"""

from __future__ import annotations

import uuid

import pytest

from tests.functional.apps import EVENTS_ENV
from tests.functional.client import wait_events
from tests.functional.ops import OPS_APP
from tests.functional.serverproc import DEFAULT_APP, ServerPool, ServerProcess

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


def _use_server(pool, param, extra, app):
    parser, threads = param
    server = pool.get(parser, threads, *extra, app=app)
    server.parser, server.threads = parser, threads
    return server


def _check_alive(server):
    if not server.alive():
        pytest.fail(f"the server process died during this test (exit {server.proc.returncode}); stderr:\n"
                    + server.stderr_text()[-4000:])


def server_fixture(*extra: str, matrix=BACKENDS, app: str = DEFAULT_APP):
    """A fixture serving `app` with extra CLI flags, parametrized over `matrix`."""

    @pytest.fixture(params=matrix, ids=matrix_id)
    def fixture(request, pool):
        server = _use_server(pool, request.param, extra, app)
        yield server
        _check_alive(server)

    return fixture


server = server_fixture(matrix=FULL_MATRIX)
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
def launch():
    """launch(*args, env=None) -> a started ServerProcess serving ops_app; all are stopped at the end."""
    started: list[ServerProcess] = []

    def start(*args: str, env=None, app: str = OPS_APP) -> ServerProcess:
        server = ServerProcess(["--bind", "127.0.0.1:0", *args, app], env)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop(timeout=10)
