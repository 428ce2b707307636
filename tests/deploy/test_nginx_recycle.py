"""Behind nginx's upstream keep-alive pool, reloads (SIGHUP) and --max-requests recycling lose no request.

Theory of operation: per parser backend, `python -m fastwsgi -w 2 --keep-alive 75` (docs/deployment.md's
advice: longer than nginx's upstream keepalive_timeout) serves tests/deploy/probe_app.py behind a real
nginx rendered from tests/deploy/nginx_pool.conf.in (README.md's configuration: `keepalive 32`, HTTP/1.1,
an empty Connection header). A `Load` of client threads, each on one keep-alive connection to nginx,
sends GET /info and POST /body (a random body whose size and hash must come back) in turn, while the
master is sent SIGHUP four times (each once the previous reload is complete), or while the workers
recycle themselves with --max-requests 50. Every request must get its 200, and nginx's error log must
hold no line at level error or above.

Why this can fail: a stopping worker holds connections that sit idle in nginx's pool. nginx sends the
next request on the connection it released last; if the worker closes that connection as nginx writes
to it, nginx logs an upstream error, retries a GET and answers a POST with 502 (it retries only
idempotent methods). Before the graceful stop left recently used connections open (loop.py's
DRAIN_GRACE), about one POST per reload came back as a 502 here.
"""

from __future__ import annotations

import collections
import hashlib
import http.client
import json
import random
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.deploy.conftest import NginxProcess
from tests.functional.ops import wait_booted
from tests.functional.serverproc import ServerProcess, server_args

POOL_TEMPLATE = Path(__file__).with_name("nginx_pool.conf.in")
PROBE_APP = "tests.deploy.probe_app:app"
CLIENTS = 8


class Load:
    """`clients` threads, each with one HTTP/1.1 connection to nginx at a time (a new one after a
    failure), sending GET /info and POST /body with a `body`-byte random body in turn until `stop()`,
    pausing `pause` s after each request (`burst`: all together every `pause` s, within 20 ms).
    `outcomes` counts (method, status or exception name, "200 wrong body" for a body that did not
    come back intact); `pids` holds the worker pids that answered."""

    def __init__(self, port: int, clients: int, pause: float = 0.0, burst: bool = False, body: int = 200,
                 seed: int = 1):
        self.port, self.pause, self.burst, self.body = port, pause, burst, body
        self.outcomes: collections.Counter = collections.Counter()
        self.pids: set[int] = set()
        self.failures: list[str] = []  # the first few, with the time they happened
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._threads = [threading.Thread(target=self._client, args=(random.Random(seed * 1000 + i),),
                                          daemon=True) for i in range(clients)]

    def start(self) -> "Load":
        self._t0 = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> collections.Counter:
        self._stop.set()
        for thread in self._threads:
            thread.join(40)
        return self.outcomes

    def lost(self) -> dict:
        return {key: count for key, count in self.outcomes.items() if key[1] != "200"}

    def _client(self, rng: random.Random) -> None:
        conn, post = None, rng.random() < 0.5
        while not self._stop.is_set():
            post = not post
            conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            outcome, pid = self._one(conn, post, rng)
            if outcome != "200":
                conn.close()
                conn = None
            with self._lock:
                self.outcomes[("POST" if post else "GET", outcome)] += 1
                if pid is not None:
                    self.pids.add(pid)
                if outcome != "200" and len(self.failures) < 5:
                    self.failures.append(f"{time.strftime('%H:%M:%S')} {'POST' if post else 'GET'} {outcome}")
            self._wait(rng)
        if conn is not None:
            conn.close()

    def _one(self, conn: http.client.HTTPConnection, post: bool, rng: random.Random):
        try:
            if post:
                body = rng.randbytes(self.body)
                conn.request("POST", "/body", body=body, headers={"Content-Type": "application/octet-stream"})
            else:
                conn.request("GET", "/info")
            resp = conn.getresponse()
            data = resp.read()
        except Exception as exc:  # noqa: BLE001 - the request's outcome
            return type(exc).__name__, None
        if resp.status != 200:
            return str(resp.status), None
        seen = json.loads(data)
        if post and (seen["size"], seen["sha256"]) != (len(body), hashlib.sha256(body).hexdigest()):
            return "200 wrong body", seen["pid"]
        return "200", seen["pid"]

    def _wait(self, rng: random.Random) -> None:
        if self.burst:
            now = time.monotonic()
            next_round = self._t0 + self.pause * (int((now - self._t0) / self.pause) + 1)
            self._stop.wait(next_round - now + rng.uniform(0, 0.02))
        elif self.pause:
            self._stop.wait(self.pause * rng.uniform(0.8, 1.2))


def start_pool_nginx(prefix: Path, port: int, upstream_extra: str = "") -> NginxProcess:
    return NginxProcess(prefix, {"PORT": port, "UPSTREAM_EXTRA": upstream_extra}, POOL_TEMPLATE).start()


@pytest.fixture(params=[("c", 0), ("python", 4)], ids=["c-t0", "python-t4"])
def backend(request):
    return request.param


@pytest.fixture
def serve(backend, tmp_path):
    """serve(*flags) -> (fastwsgi -w 2 with those flags, nginx in front of it); both stopped after."""
    started = []

    def start(*flags: str):
        parser, threads = backend
        server = ServerProcess(server_args(parser, threads, "-w", "2", "--keep-alive", "75", *flags,
                                           app=PROBE_APP)).start()
        started.append(server)
        wait_booted(server, 2)
        nginx = start_pool_nginx(tmp_path / "nginx", server.port)
        started.append(nginx)
        return server, nginx

    yield start
    for process in reversed(started):
        process.stop()


def assert_nothing_lost(load: Load, nginx: NginxProcess, server: ServerProcess) -> None:
    total = sum(load.outcomes.values())
    assert total > 200, f"the load hardly ran: {dict(load.outcomes)}"
    assert load.lost() == {}, f"lost {load.lost()} of {total} requests; first: {load.failures}\n" \
                              f"{nginx.log_text()[-2000:]}"
    assert nginx.serious_lines() == [], nginx.serious_lines()[:10]
    assert "Traceback" not in server.stderr_text(), server.stderr_text()[-3000:]


def test_reloads_lose_no_request(serve):
    server, nginx = serve()
    load = Load(nginx.port, CLIENTS).start()
    for number in range(4):
        time.sleep(0.4)  # the new workers serve for a while; the old ones have drained
        mark = server.stderr_mark()
        server.signal(signal.SIGHUP)
        assert server.wait_stderr("Reload complete", mark, timeout=20), f"reload {number + 1} did not complete"
    time.sleep(1.5)  # the last old generation drains under the load
    load.stop()
    assert_nothing_lost(load, nginx, server)
    assert len(load.pids) >= 6, f"too few generations served: workers {sorted(load.pids)}"


def test_max_requests_recycling_loses_no_request(serve):
    server, nginx = serve("--max-requests", "50", "--max-requests-jitter", "10")
    load = Load(nginx.port, CLIENTS).start()
    time.sleep(5)
    load.stop()
    assert_nothing_lost(load, nginx, server)
    recycled = server.stderr_text().count("reached max requests")
    assert recycled >= 4, f"only {recycled} workers recycled"
