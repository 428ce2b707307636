"""Hold N idle keep-alive connections against one fastwsgi process and report memory per connection.

Theory of operation: start `python -m fastwsgi` (one process, given parser backend) with
--worker-connections above N and a long --keep-alive; open N client sockets in this process, send one
request on each and read its response (so every connection is a real, served keep-alive connection),
then sample the server's RSS (from /proc/PID/status) before and after, check that every connection is
still open and still served (a second request on a sample of them), and print the numbers. Loopback only,
bounded in time. Usage:

    python benchmarks/idle_connections.py [--connections 10000] [--http-parser c]
"""

import argparse
import os
import re
import resource
import selectors
import socket
import subprocess
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+) kB", status.read()).group(1))


def start_server(parser: str, connections: int):
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastwsgi", "--bind", "127.0.0.1:0", "--http-parser", parser,
         "--worker-connections", str(connections + 100), "--keep-alive", "600", "--backlog", "4096"],
        stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        match = re.search(r"Listening at: http://([\d.]+):(\d+)", line)
        if match:
            return proc, (match.group(1), int(match.group(2)))
    proc.kill()
    raise SystemExit("server did not start")


def exchange_all(socks, timeout: float = 60.0) -> int:
    """Send one request on every socket and read until each has a complete small response."""
    selector = selectors.DefaultSelector()
    pending = {}
    for sock in socks:
        sock.sendall(REQUEST)
        selector.register(sock, selectors.EVENT_READ)
        pending[sock] = b""
    done = 0
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for key, _ in selector.select(1.0):
            sock = key.fileobj
            data = sock.recv(65536)
            if not data:
                raise SystemExit("a connection was closed by the server")
            pending[sock] += data
            head, sep, body = pending[sock].partition(b"\r\n\r\n")
            if sep:
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
                if len(body) >= length:
                    selector.unregister(sock)
                    del pending[sock]
                    done += 1
    selector.close()
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--http-parser", default="c", choices=("c", "python"))
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.connections + 1000)), hard))
    proc, address = start_server(args.http_parser, args.connections)
    try:
        time.sleep(0.5)
        base = rss_kib(proc.pid)
        socks = []
        for _ in range(args.connections):
            sock = socket.create_connection(address, timeout=10)
            sock.setblocking(True)
            socks.append(sock)
        served = exchange_all(socks)
        time.sleep(1.0)
        held = rss_kib(proc.pid)
        again = exchange_all(socks[:: max(1, len(socks) // 200)])
        print(f"parser={args.http_parser} connections={len(socks)} served={served} "
              f"served_again(sample)={again} rss_before={base} KiB rss_after={held} KiB "
              f"per_connection={(held - base) * 1024 / len(socks):.0f} bytes")
        ok = served == len(socks) and proc.poll() is None
        for sock in socks:
            sock.close()
    finally:
        proc.terminate()
        proc.wait(10)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
