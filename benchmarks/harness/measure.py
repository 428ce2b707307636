"""Running one server and one load test, and measuring what both cost.

Theory of operation:
- ServerProcess starts the server under `taskset -c SERVER_CPU` in a new session (so all its processes,
  master and workers alike, share a session id and one signal stops them all), waits until its port
  accepts connections, and stops it with SIGTERM then, after a grace period, SIGKILL to the group.
- Server CPU: before and after the timed wrk run, the harness sums utime+stime+cutime+cstime from
  /proc/<pid>/stat of every live process in the server's session. A process's stat already totals all its
  threads, dead ones included (task/<tid>/stat is the per-thread split), and a child that exits during
  the run moves its time into its parent's cutime/cstime, so the delta counts every thread and process.
  Divided by the requests wrk completed, it gives CPU microseconds per request.
- wrk runs under `taskset -c CLIENT_CPU`, one thread, with the scenario's Lua script; its done() prints a
  BENCH_JSON line (benchmarks/lua/report.lua). The harness reaps wrk with os.wait4 to get wrk's own CPU
  time: when wrk used >= 90 % of a core, the client, not the server, set the pace (`client_bound`).
Every step is bounded in time: the server must start within START_TIMEOUT, wrk is killed after its
duration plus WRK_GRACE seconds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path



def _pick_cpus() -> tuple[str, str]:
    """The first two CPUs this process may use: one for the server, one for wrk (one CPU: shared)."""
    cpus = sorted(os.sched_getaffinity(0))
    return str(cpus[0]), str(cpus[1] if len(cpus) > 1 else cpus[0])


SERVER_CPU, CLIENT_CPU = _pick_cpus()
START_TIMEOUT = 30.0
STOP_GRACE = 3.0
WRK_GRACE = 20.0
WRK_TIMEOUT = "5s"  # a request without an answer for this long counts as a wrk timeout error
CLIENT_BOUND_SHARE = 0.90
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


class StartError(Exception):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stat_fields(pid: str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode("latin-1")
    except OSError:  # the process ended between listing and reading
        return None
    return text[text.rindex(")") + 2:].split()  # fields from #3 (state) on; comm may hold spaces


def session_cpu_ticks(session_id: int) -> tuple[int, int]:
    """(CPU clock ticks, number of processes) over all live processes in a session."""
    total, count = 0, 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(entry)
        if fields is None or int(fields[3]) != session_id:  # field 6: session
            continue
        total += sum(int(value) for value in fields[11:15])  # fields 14-17: utime stime cutime cstime
        count += 1
    return total, count


def thread_count(session_id: int) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(entry)
            if fields is not None and int(fields[3]) == session_id:
                count += int(fields[17])  # field 20: num_threads
    return count


class ServerProcess:
    def __init__(self, argv: list[str], env: dict, cwd: Path, log_path: Path, port: int):
        self.argv = ["taskset", "-c", SERVER_CPU, *argv]
        self.env = env
        self.cwd = cwd
        self.log_path = log_path
        self.port = port
        self.process: subprocess.Popen | None = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"$ {' '.join(self.argv)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StartError(f"exited with {self.process.returncode} before listening: "
                                 f"{self.log_tail()}")
            try:
                self.probe()
                return
            except OSError:
                time.sleep(0.05)
        raise StartError(f"not listening after {START_TIMEOUT:.0f} s: {self.log_tail()}")

    def probe(self) -> None:
        """Raises OSError until the server accepts connections (a subclass may listen elsewhere)."""
        socket.create_connection(("127.0.0.1", self.port), timeout=1.0).close()

    @property
    def session_id(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return session_cpu_ticks(self.session_id)[0] / CLOCK_TICK

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, STOP_GRACE)):
            try:
                os.killpg(self.session_id, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # reap the rest of the group too (gunicorn/uWSGI workers) before the next server starts
        deadline = time.monotonic() + STOP_GRACE
        while session_cpu_ticks(self.session_id)[1] and time.monotonic() < deadline:
            try:
                os.killpg(self.session_id, signal.SIGKILL)
            except ProcessLookupError:
                break
            time.sleep(0.05)

    def log_tail(self, lines: int = 6) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])


@dataclass
class WrkResult:
    summary: dict  # the BENCH_JSON document
    wall_seconds: float
    wrk_cpu_seconds: float
    output: str


def run_wrk(port: int, path: str, script: Path, connections: int, duration: int,
            output_path: Path | None = None, scheme: str = "http") -> WrkResult:
    argv = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{connections}", f"-d{duration}s",
            "--timeout", WRK_TIMEOUT, "-s", str(script), f"{scheme}://127.0.0.1:{port}{path}"]
    started = time.monotonic()
    with (open(output_path, "w+b") if output_path else tempfile.TemporaryFile()) as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = started + duration + WRK_GRACE
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        out.seek(0)
        text = out.read().decode(errors="replace")
    summary = None
    for line in text.splitlines():
        if line.startswith("BENCH_JSON "):
            summary = json.loads(line[len("BENCH_JSON "):])
    if summary is None:
        raise RuntimeError(f"wrk produced no summary (exit {process.returncode}): {text[-400:]}")
    return WrkResult(summary, wall, usage.ru_utime + usage.ru_stime, text)
