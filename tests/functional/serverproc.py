"""Start, watch and stop real `python -m fastwsgi` processes for the functional tests.

Theory of operation: a `ServerProcess` runs the CLI exactly as a user would (cwd = repository root
unless given, so `tests.functional.apps:...` imports), with `--bind 127.0.0.1:0`; two daemon threads drain stdout and
stderr into line lists so the pipes never fill, and the port is taken from the first stderr line that
matches `Listening at: (\\S+)` (the contract's startup line), or from the log file `startup_log` names
when stderr goes there (--capture-output). A `ServerPool` keeps one process per
distinct command line for the whole session, so hundreds of tests share a handful of processes; the
pool restarts a process that died (the test that killed it fails on its own, see conftest). Servers
ask the kernel to SIGTERM them if the pytest process dies, so a killed run leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"Listening at: (\S+)")
DEFAULT_APP = "tests.functional.apps:app"


class ServerStartError(AssertionError):
    pass


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when pytest dies, even if teardown never runs
    (e.g. `timeout` killed the test run), so no server outlives the suite. Linux only; best effort."""
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class ServerProcess:
    def __init__(self, args: list[str], env: dict[str, str] | None = None, cwd=REPO_ROOT, startup_log=None):
        self.args = list(args)
        self.startup_log = startup_log
        self.cwd = cwd
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        if Path(cwd) != REPO_ROOT:  # still this checkout's fastwsgi and tests, whatever is installed
            self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), self.env.get("PYTHONPATH")]))
        self.proc: subprocess.Popen | None = None
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self.url: str | None = None
        self.port: int | None = None
        self._listening = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "fastwsgi", *self.args]

    def start(self, timeout: float = 20.0) -> "ServerProcess":
        self.proc = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        for stream, lines, watch in ((self.proc.stdout, self.stdout_lines, False),
                                     (self.proc.stderr, self.stderr_lines, True)):
            t = threading.Thread(target=self._drain, args=(stream, lines, watch), daemon=True)
            t.start()
            self._threads.append(t)
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.05):
            if self.startup_log is not None and Path(self.startup_log).exists():
                self._watch_line(Path(self.startup_log).read_text(errors="replace"))
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(
                    f"server did not start ({'exited ' + str(self.proc.returncode) if self.proc.poll() is not None else 'timeout'}):"
                    f" {' '.join(self.command)}\n--- stderr ---\n{self.stderr_text()}")
        return self

    def _drain(self, stream, lines: list[str], watch: bool) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            lines.append(line)
            if watch and self.url is None:
                self._watch_line(line)
        stream.close()

    def _watch_line(self, text: str) -> None:
        m = LISTENING.search(text)
        if m:
            self.url = m.group(1)
            port = re.search(r":(\d+)/?$", self.url)
            self.port = int(port.group(1)) if port else None
            self._listening.set()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self) -> str:
        return "".join(self.stderr_lines)

    def stderr_mark(self) -> int:
        return len(self.stderr_lines)

    def wait_stderr(self, needle: str, since: int = 0, timeout: float = 5.0) -> str | None:
        """The stderr text after line `since` once it contains `needle` (None if it never does)."""
        deadline = time.monotonic() + timeout
        while True:
            text = "".join(self.stderr_lines[since:])
            if needle in text:
                return text
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout)
        for t in self._threads:
            t.join(2)
        return code

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL if it lingers. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        for t in self._threads:
            t.join(2)
        return self.proc.returncode


class ServeScript(ServerProcess):
    """`python -c SCRIPT ARGS...` watched like the command: a program that calls fastwsgi.serve()
    itself (the Python API). args = [SCRIPT, *ARGS]."""

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-c", *self.args]


def server_args(parser: str, threads: int, *extra: str, app: str | None = DEFAULT_APP) -> list[str]:
    args = ["--bind", "127.0.0.1:0", "--http-parser", parser, "--threads", str(threads), *extra]
    return args + ([app] if app else [])


class ServerPool:
    """One live server per distinct command line, shared by every test that asks for it."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.servers: dict[tuple[str, ...], ServerProcess] = {}

    def get(self, parser: str, threads: int, *extra: str, app: str = DEFAULT_APP) -> ServerProcess:
        key = tuple(server_args(parser, threads, *extra, app=app))
        server = self.servers.get(key)
        if server is None or not server.alive():
            server = ServerProcess(list(key), self.env).start()
            self.servers[key] = server
        return server

    def stop_all(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()
