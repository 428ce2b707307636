"""Sockets: fd://N, systemd socket activation (LISTEN_FDS/LISTEN_PID with the socket on descriptor 3),
--umask for unix sockets, several --bind values under a master, and the one-line port-in-use error."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys

import pytest

from tests.functional import serverproc
from tests.functional.client import get
from tests.functional.serverproc import ServerProcess
from tests.functional.ops import OPS_APP, wait_booted

# exec wrapper: put the passed socket on descriptor 3 and name this very process in LISTEN_PID
# (exec keeps the pid), as systemd does before it starts the service
SYSTEMD_WRAPPER = ("import os, sys; fd = int(sys.argv[1]); os.dup2(fd, 3); os.close(fd); "
                   "os.environ['LISTEN_FDS'] = '1'; os.environ['LISTEN_PID'] = str(os.getpid()); "
                   "os.execv(sys.executable, [sys.executable, '-m', 'fastwsgi', *sys.argv[2:]])")


class WrappedServer(ServerProcess):
    def __init__(self, args, fd: int):
        super().__init__(args)
        self.fd = fd

    @property
    def command(self):
        return [sys.executable, "-c", SYSTEMD_WRAPPER, str(self.fd), *self.args]


def port_of(sock) -> int:
    return sock.getsockname()[1]


# --reuse-port opens a socket per worker only on the addresses the master bound itself: on one it
# was handed every worker failed to bind ("Address already in use") and the master stopped
WORKERS = [(), ("-w", "2"), ("-w", "2", "--reuse-port")]
WORKER_IDS = ["single", "master", "master-reuse-port"]


@pytest.mark.parametrize("workers", WORKERS, ids=WORKER_IDS)
def test_fd_bind_serves_on_the_inherited_socket(passing, workers):
    server = ServerProcess(["--bind", f"fd://{passing.fileno()}", *workers, OPS_APP])
    try:
        server.start()
        assert server.port == port_of(passing)
        assert {get(port_of(passing), "/pid").status for _ in range(4)} == {200}
        assert "Worker failed to boot" not in server.stderr_text()
    finally:
        server.stop()


@pytest.mark.parametrize("workers", WORKERS, ids=WORKER_IDS)
def test_systemd_socket_activation(passing, workers):
    # --bind is ignored when systemd passes sockets (as gunicorn does)
    server = WrappedServer(["--bind", "127.0.0.1:1", *workers, OPS_APP], passing.fileno())
    try:
        server.start()
        assert server.port == port_of(passing)
        response = get(port_of(passing), "/pid")
        assert response.status == 200
        if workers:
            assert int(response.body.split()[0]) != server.proc.pid
        else:
            assert int(response.body.split()[0]) == server.proc.pid  # LISTEN_PID named this process
    finally:
        server.stop()


def test_listen_pid_of_another_process_is_ignored(passing):
    env = {"LISTEN_FDS": "1", "LISTEN_PID": "1"}
    server = ServerProcess(["--bind", "127.0.0.1:0", OPS_APP], env)
    try:
        server.start()
        assert server.port != port_of(passing)
        assert get(server.port, "/pid").status == 200
    finally:
        server.stop()


def test_fd_that_is_not_a_listening_socket_is_a_one_line_error():
    result = subprocess.run([sys.executable, "-m", "fastwsgi", "--bind", "fd://0", OPS_APP],
                            cwd=serverproc.REPO_ROOT, capture_output=True, text=True, timeout=20,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastwsgi: error: cannot use fd://0: "), lines


def test_umask_applies_to_unix_sockets(tmp_path):
    path = tmp_path / "s.sock"
    server = ServerProcess(["--bind", f"unix:{path}", "--umask", "0o077", "-w", "1", OPS_APP])
    try:
        server.start()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(5)
            client.connect(str(path))
            client.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert client.recv(100).startswith(b"HTTP/1.1 200 ")
    finally:
        server.stop()
    assert not path.exists()  # the master removes its socket file


def test_several_binds_under_a_master(launch):
    server = launch("--bind", "[::1]:0", "-w", "2")
    wait_booted(server, 2)
    urls = [line.split()[2] for line in server.stderr_lines if line.startswith("Listening at:")]
    assert len(urls) == 2 and urls[1].startswith("http://[::1]:")
    assert get(server.port, "/pid").status == 200
    with socket.create_connection(("::1", int(urls[1].rsplit(":", 1)[1])), timeout=5) as client:
        client.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert client.recv(100).startswith(b"HTTP/1.1 200 ")


def test_port_in_use_is_one_line_under_a_master(listening_socket):
    result = subprocess.run([sys.executable, "-m", "fastwsgi", "-w", "2", "--bind",
                             f"127.0.0.1:{port_of(listening_socket)}", OPS_APP], cwd=serverproc.REPO_ROOT,
                            capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"fastwsgi: error: cannot listen on 127.0.0.1:{port_of(listening_socket)}: Address already in use"]
