"""Counting a running server's system calls with `strace -c`, to see where its per-request time goes.

Theory of operation: `SyscallCount` attaches `strace -c -f` to every live process of a server's session
(-f also takes in all their threads), lets the caller run the load, then stops strace with SIGINT: strace
detaches and writes its summary table (calls and errors per system call) to a file, which `parse()`
reads. Divided by the requests served while strace was attached, the counts say how many accept4, read,
write, close, epoll_ctl... one request costs. strace slows every system call down a lot, so its timings
are ignored and the run is kept short and separate from the timed runs: only the counts are used.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

from . import procstat

ATTACH_WAIT = 0.5  # seconds for strace to attach to every thread before the load starts
STOP_TIMEOUT = 15.0


class StraceUnavailable(Exception):
    pass


def parse(text: str) -> dict[str, tuple[int, int]]:
    """{syscall: (calls, errors)} from strace -c's table (the `total` row included)."""
    counts = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4 or not parts[0].replace(".", "", 1).isdigit():
            continue
        numbers, name = parts[:-1], parts[-1]
        if not all(part.replace(".", "", 1).isdigit() for part in numbers):
            continue
        # % time, seconds, usecs/call, calls[, errors]
        calls = int(numbers[3]) if len(numbers) >= 4 else int(numbers[-1])
        errors = int(numbers[4]) if len(numbers) >= 5 else 0
        counts[name] = (calls, errors)
    return counts


class SyscallCount:
    """`with SyscallCount(session_id, out_path) as count: <load>` then `count.result`."""

    def __init__(self, session_id: int, output_path: Path):
        if shutil.which("strace") is None:
            raise StraceUnavailable("strace is not installed (Debian: apt-get install strace)")
        self.session_id = session_id
        self.output_path = output_path
        self.process: subprocess.Popen | None = None
        self.result: dict[str, tuple[int, int]] = {}

    def __enter__(self):
        pids = procstat.session_pids(self.session_id)
        argv = ["strace", "-c", "-f", "-o", str(self.output_path)]
        for pid in pids:
            argv += ["-p", str(pid)]
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        time.sleep(ATTACH_WAIT)
        if self.process.poll() is not None:
            raise StraceUnavailable(f"strace exited: {self.process.stderr.read().strip()[-300:]}")
        return self

    def __exit__(self, *exc_info):
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        try:
            self.result = parse(self.output_path.read_text())
        except OSError:
            self.result = {}
