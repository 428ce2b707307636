"""Soak one fastwsgi server under a long mixed load and watch its memory (RSS) and file descriptors.

Theory of operation: start `python -m fastwsgi` (tests/functional/serverproc.ServerProcess) serving
tests.functional.apps:app with short timeouts (header 1 s, keep-alive 1 s, body read 2 s) so that slow
and idle clients are cut quickly, an access log, trusted proxy headers, a uwsgi bind beside the HTTP
one, and optionally TLS. A few client threads (one process, raw sockets through
tests/functional/client.Conn) pick scenarios at random from a fixed weighted mix: keep-alive GETs,
`Connection: close`, pipelining, chunked and Content-Length uploads, uploads the application never
reads (under and over the drain limit), large downloads, a wsgi.file_wrapper file (sendfile), HEAD,
malformed requests (400/414/431/501/505...), an application that raises (500, and after the headers),
clients that leave mid-response and mid-request, slow clients the header timeout cuts, and uwsgi
packets. Each scenario checks what it gets (status, body bytes, framing, close without reset) and
raises `Unexpected` otherwise; every failure is counted by (scenario, kind) with its first messages.

Phases: a warm-up with load, then the load pauses until every connection has timed out (the *warm
idle* sample), then the measured run with a sample every `--fine` seconds (RSS from /proc/PID/status
VmRSS and the number of entries in /proc/PID/fd, for the process and, with -w, each worker), then the
load stops and, once idle again, the *end idle* sample. The verdict, per process: RSS growth from the
sample nearest 25 % of the measured run to its last one; the RSS floor (lowest sample) of each quarter
of the run, since transient multi-MiB buffers make single samples jump and a leak raises the floor; fds
under load; and the idle fd count at the end vs warm idle (equal when nothing leaks).
Output: markdown on stdout (the command, the samples, totals by scenario, errors, the server's log
lines grouped). Usage:

    python benchmarks/soak.py --http-parser c --duration 240 [--threads 4] [--workers 2] [--tls]
"""

from __future__ import annotations

import argparse
import collections
import faulthandler
import hashlib
import os
import random
import re
import shlex
import socket
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from idle_connections import rss_kib  # noqa: E402  (benchmarks/ is the script's directory)

from tests.functional.apps import EVENTS_ENV, pattern_bytes  # noqa: E402
from tests.functional.client import Conn, ResponseIncomplete, build_request, chunked  # noqa: E402
from tests.functional.ops import children  # noqa: E402
from tests.functional.serverproc import ServerProcess  # noqa: E402
from tests.functional.test_malformed import BAD_REQUESTS  # noqa: E402
from tests.functional.test_uwsgi import listening_urls, packet, request_vars  # noqa: E402
from tests.functional.tlscerts import client_context, make_certs, tls_args  # noqa: E402

HEADER_TIMEOUT, KEEP_ALIVE, READ_TIMEOUT = 1, 1, 2
IDLE_WAIT = HEADER_TIMEOUT + KEEP_ALIVE + READ_TIMEOUT + 3  # every connection has timed out by then
UPLOAD = pattern_bytes(2 << 20)
UPLOAD_DIGEST = f"{len(UPLOAD)} {hashlib.sha256(UPLOAD).hexdigest()}".encode()
CHUNKED = pattern_bytes(256 << 10)
CHUNKED_DIGEST = f"{len(CHUNKED)} {hashlib.sha256(CHUNKED).hexdigest()}".encode()
DOWNLOAD = pattern_bytes(4 << 20)
FILE_SIZE = 1000000
FILE_BODY = pattern_bytes(FILE_SIZE)
FORWARDED = [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", "https")]


class Unexpected(Exception):
    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind


def expect(condition: bool, kind: str, detail: str) -> None:
    if not condition:
        raise Unexpected(kind, detail)


def expect_status(resp, status: int, what: str) -> None:
    expect(resp.status == status, "status", f"{what}: {resp.status} (wanted {status}) {resp.body[:100]!r}")


def expect_closed(conn: Conn, what: str, timeout: float = 5.0) -> None:
    rest = conn.read_to_eof(timeout)
    expect(rest == b"", "extra-bytes", f"{what}: {rest[:100]!r} after the response")
    expect(not conn.reset, "reset", f"{what}: reset instead of a close")


class Client:
    """Opens connections to the server under test (HTTP, over TLS when `tls` is a context; uwsgi)."""

    def __init__(self, port: int, uwsgi_port: int | None, tls: ssl.SSLContext | None):
        self.port, self.uwsgi_port, self.tls = port, uwsgi_port, tls

    def connect(self, timeout: float = 10.0) -> Conn:
        conn = Conn(self.port, timeout=timeout)
        if self.tls is not None:
            conn.sock = self.tls.wrap_socket(conn.sock, server_hostname="localhost")
        return conn


# -- scenarios: each takes (client, rng), returns the number of requests sent --------------------------

def s_keepalive(c: Client, rng) -> int:
    with c.connect() as conn:
        for i in range(20):
            conn.request("GET", "/hello", headers=FORWARDED if i % 2 else ())
            resp = conn.read_response()
            expect_status(resp, 200, "keep-alive GET")
            expect(resp.body == b"hello", "body", f"keep-alive GET: {resp.body[:100]!r}")
    return 20


def s_close(c: Client, rng) -> int:
    with c.connect() as conn:
        conn.request("GET", "/hello", headers=[("Connection", "close")])
        resp = conn.read_response()
        expect_status(resp, 200, "Connection: close")
        expect("close" in resp.connection_tokens(), "framing", "no Connection: close in the response")
        expect_closed(conn, "Connection: close")
    return 1


def s_pipeline(c: Client, rng) -> int:
    with c.connect() as conn:
        conn.send(b"".join(build_request("GET", f"/p/{i}") for i in range(16)))
        for i in range(16):
            resp = conn.read_response()
            expect_status(resp, 200, "pipelined")
            expect(resp.body == f"GET /p/{i}?".encode(), "body", f"pipelined #{i}: {resp.body[:100]!r}")
    return 16


def s_chunked_upload(c: Client, rng) -> int:
    pieces = [CHUNKED[i:i + 16384] for i in range(0, len(CHUNKED), 16384)]
    with c.connect() as conn:
        conn.send(build_request("POST", "/hash", headers=[("Transfer-Encoding", "chunked")])
                  + chunked(*pieces))
        resp = conn.read_response(timeout=20)
        expect_status(resp, 200, "chunked upload")
        expect(resp.body == CHUNKED_DIGEST, "body", f"chunked upload: {resp.body[:100]!r}")
    return 1


def s_length_upload(c: Client, rng) -> int:
    with c.connect() as conn:
        conn.send(build_request("POST", "/hash", body=UPLOAD))
        resp = conn.read_response(timeout=20)
        expect_status(resp, 200, "Content-Length upload")
        expect(resp.body == UPLOAD_DIGEST, "body", f"Content-Length upload: {resp.body[:100]!r}")
    return 1


def s_unread_upload(c: Client, rng) -> int:
    """512 KiB the app never reads (the server drains it and keeps the connection), or 2.5 MiB (over
    the drain limit: the response closes; the rest of the body may then meet a reset, which is fine
    for the sender but must not destroy the response). The large one needs a sender thread beside
    the reader, which an ssl.SSLSocket does not allow (one SSL object used from two threads at once
    crashed this client with a segmentation fault): over TLS only the small one, sent first."""
    size = 512 << 10 if c.tls else rng.choice((512 << 10, (5 << 20) // 2))
    with c.connect() as conn:
        request = build_request("POST", "/ignore-body", body=UPLOAD[:size] if size <= len(UPLOAD)
                                else pattern_bytes(size))

        def send():
            try:
                conn.send(request)
            except OSError:
                pass

        sender = threading.Thread(target=send, daemon=True)
        if c.tls:
            send()
        else:
            sender.start()
        resp = conn.read_response(timeout=20)
        expect_status(resp, 200, f"unread {size}-byte upload")
        expect(resp.body == b"ignored", "body", f"unread upload: {resp.body[:100]!r}")
        if sender.is_alive():
            sender.join(20)
        if "close" in resp.connection_tokens():
            conn.read_available(0.5)  # the close may be a reset once we sent past its linger: not counted
            return 1
        conn.request("GET", "/hello")
        resp = conn.read_response()
        expect_status(resp, 200, "GET after an unread upload")
    return 2


def fetch(c: Client, target: str, want: bytes, what: str) -> int:
    with c.connect(timeout=20) as conn:
        conn.request("GET", target)
        resp = conn.read_response(timeout=30)
        expect_status(resp, 200, what)
        expect(resp.body == want, "body", f"{what}: {len(resp.body)} bytes, wanted {len(want)}")
    return 1


def s_download(c: Client, rng) -> int:
    return fetch(c, f"/download?n={len(DOWNLOAD)}", DOWNLOAD, "download")


def s_sendfile(c: Client, rng) -> int:
    return fetch(c, f"/file?n={FILE_SIZE}&kind=real", FILE_BODY, "file_wrapper")


def s_head(c: Client, rng) -> int:
    with c.connect() as conn:
        conn.request("HEAD", "/head")
        resp = conn.read_response("HEAD")
        expect_status(resp, 200, "HEAD")
        expect(resp.header("Content-Length") == "100", "framing", f"HEAD: {resp.raw_head!r}")
        conn.request("GET", "/hello")
        resp = conn.read_response()
        expect(resp.body == b"hello", "body", f"GET after HEAD: {resp.body[:100]!r}")
    return 2


MALFORMED = list(BAD_REQUESTS.items())


def s_malformed(c: Client, rng) -> int:
    name, (data, status) = rng.choice(MALFORMED)
    with c.connect() as conn:
        conn.send(data)
        resp = conn.read_response()
        expect_status(resp, status, f"malformed {name}")
        expect("close" in resp.connection_tokens(), "framing", f"malformed {name}: no Connection: close")
        expect_closed(conn, f"malformed {name}")
    return 1


def s_raise(c: Client, rng) -> int:
    with c.connect() as conn:
        conn.request("GET", "/raise?msg=soak")
        resp = conn.read_response()
        expect_status(resp, 500, "app raises")
        if "close" not in resp.connection_tokens():
            conn.request("GET", "/hello")
            expect_status(conn.read_response(), 200, "GET after a 500")
        conn.close()
    with c.connect() as conn:
        conn.request("GET", "/raise-after-headers?msg=soak")
        resp = conn.read_response(allow_incomplete=True)
        expect_status(resp, 200, "app raises after the headers")
        expect(not resp.complete, "framing", "a response cut by an exception came back complete")
    return 2


def s_leave_mid_response(c: Client, rng) -> int:
    with c.connect() as conn:
        conn.request("GET", f"/download?n={8 << 20}")
        conn.read_exact(rng.randrange(1, 200000))
    return 1


def s_leave_mid_request(c: Client, rng) -> int:
    with c.connect() as conn:
        if rng.random() < 0.5:  # inside the body
            conn.send(build_request("POST", "/hash", headers=[("Content-Length", str(1 << 20))])
                      + UPLOAD[:rng.randrange(1, 200000)])
        else:  # inside the head
            conn.send(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Partial: ab")
        time.sleep(0.01)
    return 1


def s_slow_header(c: Client, rng) -> int:
    """A head that stops half way (or never starts): the header timeout must close it, no response."""
    with c.connect() as conn:
        if rng.random() < 0.5:
            conn.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
        start = time.monotonic()
        rest = conn.read_to_eof(HEADER_TIMEOUT + 5)
        expect(time.monotonic() - start >= HEADER_TIMEOUT * 0.5, "early-close", "closed before the timeout")
        expect(rest == b"" or rest.startswith(b"HTTP/1.1 408"), "extra-bytes", f"slow header: {rest[:100]!r}")
        expect(not conn.reset, "reset", "slow header: reset instead of a close")
    return 1


def s_uwsgi(c: Client, rng) -> int:
    with Conn(c.uwsgi_port, timeout=10) as conn:
        if rng.random() < 0.7:
            conn.send(packet(request_vars(path="/hello")))
            resp = conn.read_response()
            expect(resp.body == b"hello", "body", f"uwsgi GET: {resp.body[:100]!r}")
        else:
            body = UPLOAD[:300000]
            conn.send(packet(request_vars("POST", "/hash", body=body), body))
            resp = conn.read_response(timeout=20)
            digest = f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
            expect(resp.body == digest, "body", f"uwsgi POST: {resp.body[:100]!r}")
        expect_status(resp, 200, "uwsgi")
        expect_closed(conn, "uwsgi")
    return 1


SCENARIOS = {  # name: (function, weight)
    "keepalive": (s_keepalive, 6), "close": (s_close, 4), "pipeline": (s_pipeline, 3),
    "chunked_up": (s_chunked_upload, 2), "cl_up": (s_length_upload, 2), "unread_up": (s_unread_upload, 2),
    "download": (s_download, 2), "sendfile": (s_sendfile, 2), "head": (s_head, 2),
    "malformed": (s_malformed, 4), "raise": (s_raise, 2), "leave_resp": (s_leave_mid_response, 2),
    "leave_req": (s_leave_mid_request, 2), "slow_head": (s_slow_header, 1), "uwsgi": (s_uwsgi, 3),
}


class Load:
    """`threads` client threads running the mix while `running` is set, until `stopped`."""

    def __init__(self, client: Client, threads: int, seed: int):
        self.client = client
        self.running = threading.Event()
        self.stopped = False
        self.lock = threading.Lock()
        self.busy = 0
        self.requests: collections.Counter = collections.Counter()
        self.errors: collections.Counter = collections.Counter()
        self.examples: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
        names = [n for n in SCENARIOS if n != "uwsgi" or client.uwsgi_port]
        self.names, self.weights = names, [SCENARIOS[n][1] for n in names]
        self.threads = [threading.Thread(target=self.run, args=(random.Random(seed + i),), daemon=True)
                        for i in range(threads)]

    def run(self, rng) -> None:
        while not self.stopped:
            if not self.running.wait(0.2):
                continue
            name = rng.choices(self.names, self.weights)[0]
            with self.lock:
                self.busy += 1
            try:
                done = SCENARIOS[name][0](self.client, rng)
                with self.lock:
                    self.requests[name] += done
            except Unexpected as exc:
                self.error(name, exc.kind, str(exc))
            except ResponseIncomplete as exc:
                self.error(name, "incomplete", str(exc))
            except (ConnectionResetError, BrokenPipeError) as exc:
                self.error(name, "reset", repr(exc))
            except (socket.timeout, TimeoutError) as exc:
                self.error(name, "timeout", repr(exc))
            except ssl.SSLError as exc:
                self.error(name, f"ssl-{exc.reason}", repr(exc))
            except Exception as exc:  # noqa: BLE001 - every failure is a finding, counted by kind
                self.error(name, type(exc).__name__, repr(exc))
            finally:
                with self.lock:
                    self.busy -= 1

    def error(self, name: str, kind: str, detail: str) -> None:
        with self.lock:
            self.errors[(name, kind)] += 1
            if len(self.examples[(name, kind)]) < 3:
                self.examples[(name, kind)].append(f"{time.strftime('%H:%M:%S')} {detail[:300]}")

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def pause(self, timeout: float = 60.0) -> None:
        self.running.clear()
        deadline = time.monotonic() + timeout
        while self.busy and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        self.pause()
        self.stopped = True
        for t in self.threads:
            t.join(10)


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def sample(server: ServerProcess, workers: bool) -> dict[int, tuple[int, int]]:
    """{pid: (RSS KiB, open fds)} of the server process and, with workers, each of its children."""
    pids = [server.proc.pid] + (sorted(children(server.proc.pid)) if workers else [])
    out = {}
    for pid in pids:
        try:
            out[pid] = (rss_kib(pid), fd_count(pid))
        except (OSError, AttributeError):  # a worker ended between the listing and the read
            pass
    return out


def log_summary(lines: list[str], top: int = 20) -> list[tuple[int, str]]:
    """The server's stderr lines grouped by their shape (timestamps, pids and numbers blanked)."""
    shapes = collections.Counter()
    for line in lines:
        if line[:1].isspace() or line.startswith("Traceback"):
            continue  # the body of a traceback: its first and last lines are counted
        line = re.sub(r"^\[[^]]*\] \[\d+\] ", "", line.rstrip())
        shapes[re.sub(r"\d+", "N", line)[:140]] += 1
    return [(n, shape) for shape, n in shapes.most_common(top)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--http-parser", default="c", choices=("c", "python"))
    ap.add_argument("--threads", type=int, default=0, help="the server's --threads")
    ap.add_argument("-w", "--workers", type=int, default=0, help="the server's -w (0: no master)")
    ap.add_argument("--tls", action="store_true", help="serve HTTP over TLS (--certfile/--keyfile)")
    ap.add_argument("--no-uwsgi", action="store_true", help="no uwsgi bind and no uwsgi scenario")
    ap.add_argument("--duration", type=float, default=240, help="measured seconds (after the warm-up)")
    ap.add_argument("--warmup", type=float, default=20)
    ap.add_argument("--every", type=float, default=15, help="seconds between the table's rows")
    ap.add_argument("--fine", type=float, default=3, help="seconds between samples for the RSS floor")
    ap.add_argument("--clients", type=int, default=3, help="client threads")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--app", default="tests.functional.apps:app",
                    help="the application (it must answer like tests.functional.apps:app, e.g. a wrapper of it)")
    ap.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                    help="one more argument for the server (repeatable), e.g. --server-arg=--max-requests=500")
    args = ap.parse_args()
    faulthandler.enable()  # a crash of this client shows its threads' stacks

    scratch = Path(tempfile.mkdtemp(prefix="fastwsgi-soak-"))
    server_args = ["--bind", "127.0.0.1:0", "--http-parser", args.http_parser, "--threads", str(args.threads),
                   "--header-timeout", str(HEADER_TIMEOUT), "--keep-alive", str(KEEP_ALIVE),
                   "--read-timeout", str(READ_TIMEOUT), "--send-timeout", "10", "--defer-accept", "0",
                   "--access-logfile", str(scratch / "access.log"), "--forwarded-allow-ips", "127.0.0.1"]
    if not args.no_uwsgi:
        server_args += ["--bind", "uwsgi://127.0.0.1:0"]
    if args.workers:
        server_args += ["--workers", str(args.workers)]
    tls = None
    if args.tls:
        certs_dir = scratch / "certs"
        certs_dir.mkdir()
        certs = make_certs(certs_dir)
        server_args += list(tls_args(certs))
        tls = client_context(certs)
    server_args += [*args.server_arg, args.app]
    server = ServerProcess(server_args, env={EVENTS_ENV: str(scratch)}).start()
    urls = listening_urls(server, 1 if args.no_uwsgi else 2)
    uwsgi_port = None if args.no_uwsgi else int(next(u for u in urls if u.startswith("uwsgi:")).rsplit(":", 1)[1])
    if args.workers:
        deadline = time.monotonic() + 20
        while len(children(server.proc.pid)) < args.workers and time.monotonic() < deadline:
            time.sleep(0.1)

    load = Load(Client(server.port, uwsgi_port, tls), args.clients, args.seed)
    rows = []  # (label, t, requests Counter copy, errors total, {pid: (rss, fds)})
    fine = []  # (t, {pid: (rss, fds)}) every --fine seconds of the measured run

    def record(label: str, t: float) -> None:
        with load.lock:
            requests, errors = collections.Counter(load.requests), sum(load.errors.values())
        rows.append((label, t, requests, errors, sample(server, bool(args.workers))))

    try:
        record("start", 0.0)
        load.start()
        load.running.set()
        time.sleep(args.warmup)
        load.pause()
        time.sleep(IDLE_WAIT)
        record("warm idle", 0.0)
        load.running.set()
        begin = time.monotonic()
        next_row = args.every
        while (elapsed := time.monotonic() - begin) < args.duration and server.alive():
            time.sleep(min(args.fine, args.duration - elapsed))
            t = time.monotonic() - begin
            fine.append((t, sample(server, bool(args.workers))))
            if t >= next_row - args.fine / 2 or t >= args.duration:
                record("load", t)
                next_row += args.every
        load.stop()
        time.sleep(IDLE_WAIT)
        record("end idle", time.monotonic() - begin)
    finally:
        load.stop()
        alive = server.alive()
        code = server.stop(30)

    print_report(args, server, rows, fine, load, alive, code)


def quarter_floors(fine, pid: int, duration: float) -> list[int | None]:
    """The lowest RSS of `pid` in each quarter of the measured run. Large transient buffers (the 4 and
    8 MiB downloads) make single samples jump by tens of MiB; what is left between them, the floor,
    is what a leak raises."""
    floors = []
    for q in range(4):
        values = [procs[pid][0] for t, procs in fine
                  if pid in procs and q * duration / 4 < t <= (q + 1) * duration / 4]
        floors.append(min(values) if values else None)
    return floors


def print_report(args, server, rows, fine, load, alive, code) -> None:
    names = load.names
    print(f"## {args.http_parser}, threads {args.threads}, workers {args.workers or '-'}"
          f"{', TLS' if args.tls else ''}\n")
    print("```\n" + shlex.join(server.command) + "\n```\n")
    print(f"client: {args.clients} threads, seed {args.seed}, warm-up {args.warmup:g} s, measured "
          f"{args.duration:g} s, sample every {args.every:g} s; server alive at the end: {alive}, exit {code}\n")
    pids = sorted({pid for row in rows for pid in row[4]})
    role = {server.proc.pid: "server" if not args.workers else "master"}
    print("| phase | t (s) | " + " | ".join(names) + " | all | errors | "
          + " | ".join(f"{role.get(p, 'worker')} {p} RSS KiB / fds" for p in pids) + " |")
    print("|" + "---|" * (len(names) + 5 + len(pids)))
    for label, t, requests, errors, procs in rows:
        cells = [str(requests[n]) for n in names]
        mem = [f"{procs[p][0]} / {procs[p][1]}" if p in procs else "-" for p in pids]
        print(f"| {label} | {t:.0f} | " + " | ".join(cells) + f" | {sum(requests.values())} | {errors} | "
              + " | ".join(mem) + " |")
    load_rows = [r for r in rows if r[0] == "load"]
    warm = next(r for r in rows if r[0] == "warm idle")
    end = rows[-1]
    print("\n**Verdict**\n")
    if load_rows:
        quarter = min(load_rows, key=lambda r: abs(r[1] - args.duration / 4))
        last = load_rows[-1]
        for p in pids:
            if p in quarter[4] and p in last[4]:
                growth = last[4][p][0] - quarter[4][p][0]
                print(f"- {role.get(p, 'worker')} {p}: RSS {quarter[4][p][0]} KiB at t={quarter[1]:.0f} s -> "
                      f"{last[4][p][0]} KiB at t={last[1]:.0f} s: {growth:+d} KiB "
                      f"({100 * growth / quarter[4][p][0]:+.1f} %)")
            floors = quarter_floors(fine, p, args.duration)
            if None not in floors:
                fds = [procs[p][1] for _, procs in fine if p in procs]
                print(f"  - RSS floor (lowest of the {args.fine:g} s samples) per quarter: "
                      + ", ".join(f"{f}" for f in floors) + f" KiB; last - second quarter: "
                      f"{floors[3] - floors[1]:+d} KiB; fds under load {min(fds)}..{max(fds)}")
            if p in warm[4] and end[0] == "end idle" and p in end[4]:
                print(f"- {role.get(p, 'worker')} {p}: fds warm idle {warm[4][p][1]}, end idle {end[4][p][1]}"
                      f" ({end[4][p][1] - warm[4][p][1]:+d}); RSS warm idle {warm[4][p][0]} KiB, end idle "
                      f"{end[4][p][0]} KiB")
    if set(warm[4]) != set(end[4]):
        print(f"- processes changed: warm idle {sorted(warm[4])}, end {sorted(end[4])}")
    total = sum(rows[-1][2].values())
    print(f"- requests {total}, client-side errors {sum(load.errors.values())}")
    print("\n**Client-side errors by (scenario, kind)**\n")
    if not load.errors:
        print("none\n")
    for (name, kind), n in sorted(load.errors.items()):
        print(f"- {name} / {kind}: {n}")
        for example in load.examples[(name, kind)]:
            print(f"  - `{example}`")
    print("\n**Server log lines by shape** (stderr; /raise tracebacks are expected)\n")
    print("| count | line |\n|---|---|")
    for n, shape in log_summary(server.stderr_lines):
        print(f"| {n} | `{shape.replace('|', '/')}` |")
    print()


if __name__ == "__main__":
    main()
