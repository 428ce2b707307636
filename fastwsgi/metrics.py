"""Prometheus metrics shared by the workers through one anonymous shared memory map.

Theory of operation: the master creates a `SharedMetrics` before forking: an anonymous MAP_SHARED
mmap holding one slot of float64 counters per worker slot (MAX_SLOTS). A worker takes slot `n` and
its exchanges call `observe(status, seconds)` once per response (only when --metrics-bind is set: the
server then picks an exchange class that measures; otherwise nothing is done per request). Each slot
has a single writer process, and a lock serialises that process's threads, so no update is lost; the
master only reads. When a worker exits, the master folds its counters into `retired` (process-local)
and clears the slot for the next worker, so totals never go backwards. `render()` sums the live slots
and the retired totals into the Prometheus text exposition format (version 0.0.4). The master answers
`GET /metrics` on --metrics-bind itself (one short request at a time, each bounded by 1 s in all), so a
scrape needs no worker.

Metrics: fastwsgi_requests_total{status="2xx"} (by status class), fastwsgi_request_duration_seconds
(histogram, head parsed -> response complete), fastwsgi_active_connections (per worker, updated at each
sweep), fastwsgi_workers, fastwsgi_worker_restarts_total (workers replaced after they exited or were
killed without being asked to stop: a crash, a kill, a timeout, --max-requests; not the workers retired
by TTOU or a reload).
"""

import mmap
import socket
import threading
import time

__all__ = ["SharedMetrics", "serve_scrape", "BUCKETS"]

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
MAX_SLOTS = 256
# slot layout (float64 indexes)
_STATUS = 0
_BUCKET = _STATUS + len(STATUS_CLASSES)  # cumulative is computed at render time; these are per bucket
_INF = _BUCKET + len(BUCKETS)
_SUM = _INF + 1
_ACTIVE = _SUM + 1
SLOT = _ACTIVE + 1


class SharedMetrics:
    def __init__(self):
        self._map = mmap.mmap(-1, 8 * SLOT * MAX_SLOTS)  # anonymous and MAP_SHARED: survives fork
        self._values = memoryview(self._map).cast("d")
        self.retired = [0.0] * SLOT
        self.restarts = 0
        self.workers = 0
        self.slot = -1  # in a worker: its slot
        self._lock = threading.Lock()

    # -- worker side -----------------------------------------------------------------------------

    def observe(self, status, seconds: float) -> None:
        """One response: status ("200 OK" or 200) and its duration."""
        code = str(status)[:1]
        base = self.slot * SLOT
        bucket = _INF
        for index, bound in enumerate(BUCKETS):
            if seconds <= bound:
                bucket = _BUCKET + index
                break
        values = self._values
        with self._lock:
            if "1" <= code <= "5":
                values[base + _STATUS + int(code) - 1] += 1
            values[base + bucket] += 1
            values[base + _SUM] += seconds

    def set_active(self, count: int) -> None:
        self._values[self.slot * SLOT + _ACTIVE] = count

    # -- master side -------------------------------------------------------------------------------

    def free_slot(self, used) -> int:
        for slot in range(MAX_SLOTS):
            if slot not in used:
                return slot
        raise RuntimeError(f"more than {MAX_SLOTS} workers")

    def retire(self, slot: int, replaced: bool) -> None:
        """A worker exited: keep its counts (not its gauge) and clear the slot."""
        base = slot * SLOT
        for index in range(SLOT):
            if index != _ACTIVE:
                self.retired[index] += self._values[base + index]
            self._values[base + index] = 0.0
        if replaced:
            self.restarts += 1

    def render(self, live_slots) -> str:
        total = list(self.retired)
        active = 0.0
        for slot in live_slots:
            base = slot * SLOT
            for index in range(SLOT):
                total[index] += self._values[base + index]
            active += self._values[base + _ACTIVE]
        lines = ["# HELP fastwsgi_requests_total Responses by status class.",
                 "# TYPE fastwsgi_requests_total counter"]
        for index, name in enumerate(STATUS_CLASSES):
            lines.append(f'fastwsgi_requests_total{{status="{name}"}} {total[_STATUS + index]:.0f}')
        lines += ["# HELP fastwsgi_request_duration_seconds From request head to complete response.",
                  "# TYPE fastwsgi_request_duration_seconds histogram"]
        cumulative = 0.0
        for index, bound in enumerate(BUCKETS):
            cumulative += total[_BUCKET + index]
            lines.append(f'fastwsgi_request_duration_seconds_bucket{{le="{bound}"}} {cumulative:.0f}')
        cumulative += total[_INF]
        lines += [f'fastwsgi_request_duration_seconds_bucket{{le="+Inf"}} {cumulative:.0f}',
                  f"fastwsgi_request_duration_seconds_sum {total[_SUM]:.6f}",
                  f"fastwsgi_request_duration_seconds_count {cumulative:.0f}",
                  "# HELP fastwsgi_active_connections Open client connections (all workers).",
                  "# TYPE fastwsgi_active_connections gauge",
                  f"fastwsgi_active_connections {active:.0f}",
                  "# HELP fastwsgi_workers Worker processes.",
                  "# TYPE fastwsgi_workers gauge",
                  f"fastwsgi_workers {self.workers}",
                  "# HELP fastwsgi_worker_restarts_total Workers replaced after ending unasked.",
                  "# TYPE fastwsgi_worker_restarts_total counter",
                  f"fastwsgi_worker_restarts_total {self.restarts}"]
        return "\n".join(lines) + "\n"


SCRAPE_TIME = 1.0  # seconds the master gives one scrape, from accept to the last byte sent


def serve_scrape(listener_sock: socket.socket, render) -> None:
    """Answer one connection waiting on the metrics socket (any GET: the metrics). The whole exchange
    is bounded by SCRAPE_TIME, not each read: the master does nothing else meanwhile, so a client
    sending its request a byte at a time must not hold it."""
    try:
        client, _addr = listener_sock.accept()
    except (BlockingIOError, InterruptedError, OSError):
        return
    deadline = time.monotonic() + SCRAPE_TIME
    with client:
        try:
            request = b""
            while b"\r\n\r\n" not in request and len(request) < 8192:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                client.settimeout(remaining)
                data = client.recv(4096)
                if not data:
                    return
                request += data
            if request.startswith(b"GET "):
                body = render().encode()
                head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
            else:
                body = b"only GET\n"
                head = b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 9\r\nConnection: close\r\n\r\n"
            client.settimeout(max(0.01, deadline - time.monotonic()))
            client.sendall(head + body)
        except OSError:
            pass
