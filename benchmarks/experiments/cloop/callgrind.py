#!/usr/bin/env python3
"""User-space instructions per request, server side, under callgrind:
`python benchmarks/experiments/cloop/callgrind.py OUT_DIR [--requests 2000] [--servers bjoern,fastwsgi-c,cloop]`.

Theory of operation: wrk timings swing by +-20 % on this shared machine; instruction counts do not.
Each server starts (the harness's own command line, from harness/servers.py plus compare.py's
`cloop` row) under `valgrind --tool=callgrind`; a client in this process sends warm-up requests,
then `callgrind_control --dump` writes the counts so far and zeroes them, then REQUESTS requests
run, and a second dump holds exactly their cost (plus the idle epoll_wait returns around them).
keep-alive: one connection, one request at a time (so every request costs one epoll_wait, for every
server alike; wrk's 16 connections amortise it); close: a new connection per request with
`Connection: close`, read to EOF. Instructions of the kernel are not counted (system time is in
compare.py's breakdown).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import compare  # noqa: E402  (adds the cloop row to the server table)
from compare import measure, scenario_table, server_table  # noqa: E402

WARMUP = 300


def request(port: int, close: bool) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    return b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%b\r\n" % (port, extra)


def read_response(sock: socket.socket, buffer: bytes) -> bytes:
    """Reads one Content-Length response; returns the bytes after it."""
    while b"\r\n\r\n" not in buffer:
        buffer += sock.recv(65536)
    head, _, rest = buffer.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
    while len(rest) < length:
        rest += sock.recv(65536)
    return rest[length:]


def drive(port: int, count: int, close: bool) -> None:
    data = request(port, close)
    if close:
        for _ in range(count):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(data)
                while sock.recv(65536):
                    pass
        return
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rest = b""
        for _ in range(count):
            sock.sendall(data)
            rest = read_response(sock, rest)


def total_instructions(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith("totals:") or line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def count(server_name: str, close: bool, requests: int, out: Path) -> float:
    server = server_table.BY_NAME[server_name]
    scenario = scenario_table.BY_NAME["close" if close else "hello"]
    port = measure.free_port()
    launch = server_table.Launch(port, scenario.app, None, scenario)
    stem = f"{scenario.name}-{server_name}"
    prefix = out / f"callgrind.{stem}"
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={prefix}.%p", *server.argv(launch)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(dict(server.env), PYTHONPATH=str(scenario_table.APPS_DIR), PYTHONHASHSEED="0")
    with open(out / f"{stem}.log", "wb") as log:
        process = subprocess.Popen(argv, env=env, cwd=scenario_table.APPS_DIR, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{server_name} did not start under valgrind (see {stem}.log)")
                time.sleep(0.2)
        drive(port, WARMUP, close)
        subprocess.run(["callgrind_control", "--dump=warmup", str(process.pid)], check=True,
                       capture_output=True, timeout=60)
        drive(port, requests, close)
        time.sleep(0.5)
        subprocess.run(["callgrind_control", "--dump=measured", str(process.pid)], check=True,
                       capture_output=True, timeout=60)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    dumps = sorted(out.glob(f"callgrind.{stem}.{process.pid}.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
    return total_instructions(dumps[-1]) / requests


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--servers", default=",".join(compare.SERVERS))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    lines = ["| server | keep-alive instructions/request | close instructions/request |", "|---|---:|---:|"]
    for name in args.servers.split(","):
        keep = count(name, False, args.requests, args.out)
        closing = count(name, True, args.requests, args.out)
        lines.append(f"| {name} | {keep:,.0f} | {closing:,.0f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    (args.out / "callgrind.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
