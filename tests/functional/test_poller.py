"""The poll(2) fallback (macOS, the BSDs), run on Linux: servers started with FASTWSGI_POLLER=poll,
and servers in an interpreter whose select module lost epoll (as on macOS) or both epoll and poll (as
on Windows). The whole functional suite also runs with FASTWSGI_POLLER=poll in CI (ci/all.sh); these
tests check what that run cannot see: that the fallback is really in use, that a worker's re-arm
wakes the loop (without it every keep-alive request under --threads waits for the loop's timeout),
and that closed connections leave the poll set."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.functional.client import Conn, build_request
from tests.functional.conftest import BACKENDS, FULL_MATRIX, matrix_id
from tests.functional.serverproc import DEFAULT_APP, REPO_ROOT, ServerProcess, server_args

POLL = {"FASTWSGI_POLLER": "poll"}
# deletes from the select module every name that starts with one of the comma-separated prefixes in
# argv[1]: "epoll,EPOLL" leaves what macOS has, "epoll,EPOLL,poll,POLL" what Windows has
STRIP = """
import select, sys
prefixes = tuple(sys.argv[1].split(","))
for name in [name for name in dir(select) if name.startswith(prefixes)]:
    delattr(select, name)
"""
# then runs `python -m fastwsgi ARGS...`
STRIPPED = STRIP + """
import runpy
sys.argv = ["fastwsgi", *sys.argv[2:]]
runpy.run_module("fastwsgi", run_name="__main__", alter_sys=True)
"""
CRLF = b"\r\n"
NO_EPOLL = "epoll,EPOLL"
NO_POLLER = "epoll,EPOLL,poll,POLL"


class StrippedServer(ServerProcess):
    def __init__(self, args, prefixes: str):
        super().__init__(args, {"FASTWSGI_POLLER": ""})
        self.prefixes = prefixes

    @property
    def command(self):
        return [sys.executable, "-c", STRIPPED, self.prefixes, *self.args]


def run_stripped(prefixes: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", STRIPPED, prefixes, *args], cwd=REPO_ROOT,
                          env={**os.environ, "FASTWSGI_POLLER": ""}, capture_output=True, text=True,
                          timeout=30)


def announced_poller(server: ServerProcess) -> str:
    line = next(line for line in server.stderr_lines if line.startswith("Listening at:"))
    return line.partition("poller: ")[2].partition(",")[0]


def keep_alive_and_pipelining(port: int) -> None:
    with Conn(port) as conn:
        for i in range(5):
            conn.request("GET", f"/p/{i}")
            resp = conn.read_response()
            assert resp.status == 200 and resp.body == f"GET /p/{i}?".encode()
        conn.send(b"".join(build_request("GET", f"/p/pipelined{i}") for i in range(3)))
        for i in range(3):
            assert conn.read_response().body == f"GET /p/pipelined{i}?".encode()
        assert not conn.closed_by_server(0.3)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc; the suite uses it elsewhere too)."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("param", FULL_MATRIX, ids=matrix_id)
def test_keep_alive_and_pipelining_on_poll(launch, param):
    server = launch("--http-parser", param[0], "--threads", str(param[1]), env=POLL, app=DEFAULT_APP)
    assert announced_poller(server) == "poll", server.stderr_text()
    keep_alive_and_pipelining(server.port)


@pytest.mark.parametrize("param", BACKENDS, ids=matrix_id)
def test_the_default_poller_is_epoll_on_linux(launch, param):
    server = launch("--http-parser", param[0], "--threads", str(param[1]), env={"FASTWSGI_POLLER": ""},
                    app=DEFAULT_APP)
    assert announced_poller(server) == ("epoll" if sys.platform.startswith("linux") else "poll")


@pytest.mark.parametrize("parser", ["c", "python"])
def test_a_worker_rearm_wakes_the_loop(launch, parser):
    """--threads: a worker re-arms an idle keep-alive connection while the loop waits in poll(2),
    which reads its set only when a call begins; the re-arm must wake the loop, else each next
    request on the connection waits for the loop's timeout (0.5 s with the default options)."""
    server = launch("--http-parser", parser, "--threads", "2", env=POLL, app=DEFAULT_APP)
    assert announced_poller(server) == "poll"
    with Conn(server.port) as conn:
        conn.request("GET", "/p/warm")
        assert conn.read_response().status == 200
        started = time.monotonic()
        for i in range(10):
            conn.request("GET", f"/p/{i}")
            assert conn.read_response().body == f"GET /p/{i}?".encode()
        elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"10 keep-alive requests took {elapsed:.2f} s: the re-arm did not wake the loop"


@pytest.mark.parametrize("param", FULL_MATRIX, ids=matrix_id)
def test_closed_connections_leave_the_poll_set(launch, param):
    """poll(2) keeps a closed descriptor (POLLNVAL at every call, a busy loop) and would hand its
    registration to the next socket given that number: the server must remove it. Registered
    keep-alive connections are closed by the client (and by the server after `Connection: close`);
    new connections, which get the freed numbers, are served; the idle server uses no CPU."""
    server = launch("--http-parser", param[0], "--threads", str(param[1]), env=POLL, app=DEFAULT_APP)
    assert announced_poller(server) == "poll"
    for _ in range(3):
        conns = [Conn(server.port) for _ in range(4)]
        for i, conn in enumerate(conns):
            conn.request("GET", f"/p/{i}", headers=[("Connection", "close")] if i % 2 else [])
            assert conn.read_response().status == 200
        for conn in conns:
            conn.close()
    keep_alive_and_pipelining(server.port)
    time.sleep(0.3)  # the server sees the last closes
    before = cpu_seconds(server.proc.pid)
    time.sleep(1.0)
    used = cpu_seconds(server.proc.pid) - before
    assert used < 0.3, f"the idle server used {used:.2f} s of CPU in 1 s: closed descriptors left in the set"
    keep_alive_and_pipelining(server.port)


@pytest.mark.parametrize("param", BACKENDS, ids=matrix_id)
def test_without_epoll_the_server_uses_poll(param):
    """As on macOS: select has no epoll and no EPOLL* constant; the CLI imports, starts on poll(2)
    and serves, with and without threads, and under a pre-fork master."""
    for extra in ([], ["-w", "1"]):
        server = StrippedServer(server_args(*param, *extra), NO_EPOLL).start()
        try:
            assert announced_poller(server) == "poll", server.stderr_text()
            keep_alive_and_pipelining(server.port)
        finally:
            assert server.stop() == 0, server.stderr_text()


@pytest.mark.parametrize("param", BACKENDS, ids=matrix_id)
@pytest.mark.parametrize("workers", [[], ["-w", "2"]], ids=["single", "master"])
def test_without_a_poller_the_cli_says_the_platform_is_not_supported(param, workers):
    """As on Windows: one `fastwsgi: error:` line, exit 1, no traceback, no worker forked."""
    result = run_stripped(NO_POLLER, *server_args(*param, *workers))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "fastwsgi: error: this platform is not supported: it has neither epoll nor poll(2) "
        "(fastwsgi serves on Linux, macOS and the BSDs; on Windows use waitress)"], result.stderr
    assert "Booting worker" not in result.stderr


API_WITHOUT_POLLER = STRIP + r"""
import fastwsgi, fastwsgi.parser
from fastwsgi.server.poller import UnsupportedPlatform
parser = fastwsgi.parser.get_backend(sys.argv[2]).RequestParser(fastwsgi.parser.Limits())
print("parsed", parser.parse(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n").consumed)
for call in (lambda: fastwsgi.make_server("127.0.0.1", 0, None), lambda: fastwsgi.serve(None, port=0)):
    try:
        call()
    except UnsupportedPlatform as exc:
        print("refused:", exc)
"""


@pytest.mark.parametrize("parser", ["c", "python"])
def test_without_a_poller_the_package_imports_and_the_api_raises(parser):
    """`import fastwsgi` and the parser work; make_server() and serve() raise UnsupportedPlatform."""
    result = subprocess.run([sys.executable, "-c", API_WITHOUT_POLLER, NO_POLLER, parser], cwd=REPO_ROOT,
                            env={**os.environ, "FASTWSGI_POLLER": ""}, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"parsed {len(b'GET /x HTTP/1.1' + CRLF + b'Host: a' + CRLF + CRLF)}",
        *["refused: this platform is not supported: it has neither epoll nor poll(2) "
          "(fastwsgi serves on Linux, macOS and the BSDs; on Windows use waitress)"] * 2], result.stderr


@pytest.mark.parametrize("param", BACKENDS, ids=matrix_id)
def test_an_unknown_fastwsgi_poller_is_a_one_line_error(param):
    result = subprocess.run([sys.executable, "-m", "fastwsgi", *server_args(*param)], cwd=REPO_ROOT,
                            env={**os.environ, "FASTWSGI_POLLER": "kqueue"}, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 1
    assert result.stderr == "fastwsgi: error: FASTWSGI_POLLER='kqueue': choose epoll, poll or auto\n"
