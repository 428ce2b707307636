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
VmRSS, the number of entries in /proc/PID/fd and the thread count, for the process and, with -w, each
worker; and, with `ss`, the server-side connections of its TCP ports in CLOSE_WAIT and FIN_WAIT), then the
load stops and, once idle again, the *end idle* sample. The verdict, per process: RSS growth from the
sample nearest 25 % of the measured run to its last one; the RSS floor (lowest sample) of each quarter
of the run, since transient multi-MiB buffers make single samples jump and a leak raises the floor; fds
under load; and the idle fd count at the end vs warm idle (equal when nothing leaks).
Output: markdown on stdout (the command, the samples, totals by scenario, errors, the server's log
lines grouped).

Opt-in parts (each off by default, so a run without them is the run this script made before they
existed; `--all-new` turns on the first four):
- `--hooks`: `-c benchmarks/soak_hooks.py`, whose pre_request/post_request/post_fork/worker_exit/
  child_exit hooks count and log every request and worker; the `hooks` scenario checks pre_request's
  mark in each response's environ, and after the stop `check_hooks` matches post_request's log
  lines with the responses the client got and each process's pre/post counts.
- `--proxy-protocol`: the server trusts PROXY headers from 127.0.0.1 (the load balancer); the `proxy`
  scenario sends v1 and v2 headers from there and checks REMOTE_ADDR/REMOTE_PORT on every keep-alive
  request, `proxy_refused` checks the two refusals; every other HTTP scenario then connects from
  127.0.0.2 (a direct client, plain HTTP), which --forwarded-allow-ips also trusts, so they send and
  check what they did before.
- `--unix`: a unix: bind and the `unix` scenario (keep-alive, close; behind a PROXY header under
  --proxy-protocol, since UNIX-socket peers must send one).
- `--http10`: the `http10` scenario (HTTP/1.0 without keep-alive, with it, and close-delimited).
- `--stalls`: --send-timeout 2 and --limit-request-body 3 MiB, and the scenarios stall_read (a client
  that never reads an endless response: `ss` must see the server's side leave ESTABLISHED), stall_body
  (a body that stops: 408 or a close), partial_read (the application reads part of a body, the
  connection goes on), many_chunks, too_large (413), post_pipeline (pipelined POSTs, read or not) and
  leave_flood (leaving an endless response or a chunked upload half way). Not with --tls.
- `--poller poll`: FASTWSGI_POLLER for the server.
- `--max-requests N [--max-requests-jitter J]` (with -w): workers recycle; `check_recycling` wants
  more worker pids than -w and none that logged reaching its limit left at the end, and the report
  groups the workers (mean RSS, max fds). A draining worker may close keep-alive connections (after a
  `Connection: close`, or idle between requests); a scenario meeting such a close without a next
  response raises ServerClosed, reported apart from errors (a real client retries on a new
  connection); a fresh connection closed without a response, a cut response or a bad one stays an error.

Usage:

    python benchmarks/soak.py --http-parser c --duration 240 [--threads 4] [--workers 2] [--tls]
    python benchmarks/soak.py --http-parser python -w 2 --max-requests 2000 --max-requests-jitter 500 --all-new
"""

from __future__ import annotations

import argparse
import collections
import faulthandler
import hashlib
import ipaddress
import itertools
import json
import os
import random
import re
import shlex
import socket
import ssl
import subprocess
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
from tests.functional.test_proxy_protocol import v1, v2  # noqa: E402
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


def expect_last_response(conn: Conn, resp, status: int, what: str) -> None:
    """`resp` has `status` and says `Connection: close`, and then the server closes cleanly."""
    expect_status(resp, status, what)
    expect("close" in resp.connection_tokens(), "framing", f"{what}: no Connection: close in the response")
    expect_closed(conn, what)


class ServerClosed(ResponseIncomplete):
    """The server closed a connection before a byte of the next response, on which it had answered
    before: after a response with `Connection: close` ("after-close", the client should have stopped),
    or while the connection sat idle between keep-alive requests ("keepalive-race", RFC 9112 §9.3.1:
    a client retries). A draining worker (--max-requests) does both; a real client opens a new
    connection. Raised only with --max-requests; anything else stays a ResponseIncomplete."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind


class SoakConn(Conn):
    """A Conn that remembers whether the server answered on it and said `Connection: close`, so a
    close without a response can be told apart (ServerClosed) when `recycling`."""

    recycling = False
    responses = 0
    said_close = False

    def closed_kind(self) -> str:
        return "after-close" if self.said_close else "keepalive-race"

    def send(self, data: bytes) -> None:
        """A UNIX socket the server closed fails the next send at once (EPIPE), where TCP fails the read."""
        try:
            super().send(data)
        except (BrokenPipeError, ConnectionResetError) as exc:
            if self.recycling and self.responses:
                raise ServerClosed(self.closed_kind() + "-send", f"{exc!r} after {self.responses} responses") from None
            raise

    def read_response(self, *args, **kwargs):
        try:
            resp = super().read_response(*args, **kwargs)
        except ResponseIncomplete as exc:
            if self.recycling and not self.buf and self.responses and "response head" in str(exc):
                kind = self.closed_kind() + ("-reset" if self.reset else "")
                raise ServerClosed(kind,
                                   f"{exc} (reset {self.reset}, after {self.responses} responses)") from None
            raise
        self.responses += 1
        self.said_close = self.said_close or "close" in resp.connection_tokens()
        return resp


class Client:
    """Opens connections to the server under test (HTTP, over TLS when `tls` is a context; uwsgi).

    HTTP connections (SoakConn) come from `source` (None: the kernel's choice, 127.0.0.1), or from the address
    given to connect(), or go to the `unix_path` bind with connect(unix=True); `preamble` (a PROXY
    header) is sent before TLS starts. `proxy` says whether the server runs --proxy-protocol (the
    UNIX-socket peers must then send the header). `hooked` collects, for the end check of --hooks,
    {X-Soak-Id: (pid, body length)} of every hooked request that got its response; `pids` every
    process that answered one."""

    def __init__(self, port: int, uwsgi_port: int | None, tls: ssl.SSLContext | None,
                 source: str | None = None, unix_path: str | None = None, proxy: bool = False,
                 recycling: bool = False):
        self.port, self.uwsgi_port, self.tls = port, uwsgi_port, tls
        self.source, self.unix_path, self.proxy, self.recycling = source, unix_path, proxy, recycling
        self.soak_ids = itertools.count(1)
        self.hooked: dict[str, tuple[int, int]] = {}
        self.pids: set[int] = set()

    def connect(self, timeout: float = 10.0, source: str | None = None, unix: bool = False,
                preamble: bytes = b"") -> Conn:
        conn = SoakConn(self.port, timeout=timeout, source=None if unix else source or self.source,
                        unix=self.unix_path if unix else None)
        conn.recycling = self.recycling
        if preamble:
            conn.send(preamble)
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
        expect_last_response(conn, conn.read_response(), 200, "Connection: close")
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
        expect_last_response(conn, conn.read_response(), status, f"malformed {name}")
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


# -- opt-in scenarios (EXTRA_SCENARIOS), each run only with its option ---------------------------------

PROXY_SOURCE = "127.0.0.1"  # the L4 load balancer: in --proxy-allow-from, must send a PROXY header
DIRECT_SOURCE = "127.0.0.2"  # under --proxy-protocol, every other HTTP client: plain HTTP from the first byte


def proxy_header(rng) -> tuple[bytes, str, int]:
    """A PROXY header, v1 or v2, for a random IPv4 or IPv6 client; and that client's address and port."""
    port = rng.randrange(1024, 65536)
    if rng.random() < 0.7:
        addr, dst = f"203.0.113.{rng.randrange(1, 255)}", "192.0.2.80"
    else:
        addr, dst = ipaddress.ip_address(f"2001:db8::{rng.randrange(1, 0xffff):x}").compressed, "2001:db8::1"
    if rng.random() < 0.5:
        return v1(addr, dst, port, 443, family="TCP6" if ":" in addr else "TCP4"), addr, port
    return v2(addr, dst, port, 443), addr, port


def environ_of(resp, what: str) -> dict:
    """The environ tests.functional.apps /environ reported in `resp`."""
    expect_status(resp, 200, what)
    try:
        return json.loads(resp.body)
    except ValueError:
        raise Unexpected("body", f"{what}: not JSON: {resp.body[:100]!r}") from None


def expect_peer(environ: dict, addr: str, port: int, what: str) -> None:
    seen = (environ.get("REMOTE_ADDR"), environ.get("REMOTE_PORT"))
    expect(seen == (addr, str(port)), "remote-addr", f"{what}: the app saw {seen}, the header said {(addr, port)}")


def server_ended(conn: SoakConn, resp, what: str, http10: bool = False) -> bool:
    """Whether the server ended a keep-alive the client asked for (`Connection: close`; for HTTP/1.0,
    no `keep-alive`). Allowed only while workers recycle (a draining worker does it), and then the
    close must be clean; otherwise a `framing` error."""
    tokens = resp.connection_tokens()
    if ("keep-alive" in tokens) if http10 else ("close" not in tokens):
        return False
    expect(conn.recycling, "framing", f"{what}: the server ended the keep-alive: {resp.raw_head!r}")
    expect_closed(conn, what)
    return True


def keepalive_run(conn: SoakConn, rng, what: str, peer: tuple[str, int] | None) -> int:
    """2-9 GETs on `conn` (the first and the last /environ, checked against `peer` when given, the
    others /p/N), the last one sometimes with `Connection: close` (then the close is checked)."""
    count = rng.randrange(2, 10)
    close = rng.random() < 0.3
    for i in range(count):
        last = i == count - 1
        target = "/environ" if i == 0 or last else f"/p/{i}"
        conn.request("GET", target, headers=[("Connection", "close")] if last and close else ())
        resp = conn.read_response()
        if target == "/environ":
            environ = environ_of(resp, what)
            if peer is not None:
                expect_peer(environ, *peer, what)
        else:
            expect_status(resp, 200, what)
            expect(resp.body == f"GET {target}?".encode(), "body", f"{what} #{i}: {resp.body[:100]!r}")
        if not (last and close) and server_ended(conn, resp, what):
            return i + 1
    if close:
        expect_last_response(conn, resp, resp.status, what)
    return count


def s_proxy(c: Client, rng) -> int:
    """--proxy-protocol: from the load balancer's address, a PROXY header (in the first request's
    write or alone), then keep-alive requests: every one on the connection has the header's peer."""
    header, addr, port = proxy_header(rng)
    together = c.tls is None and rng.random() < 0.5
    with c.connect(source=PROXY_SOURCE, preamble=b"" if together else header) as conn:
        if together:
            conn.send(header + build_request("GET", "/environ"))
            expect_peer(environ_of(conn.read_response(), "PROXY + request in one write"), addr, port,
                        "PROXY + request in one write")
        return keepalive_run(conn, rng, "behind a PROXY header", (addr, port)) + together


def s_proxy_refused(c: Client, rng) -> int:
    """--proxy-protocol refusals (plain HTTP only): the load balancer's address without a header is
    closed without a byte of response; a PROXY line from a direct client is a bad request (400)."""
    if rng.random() < 0.5:
        with c.connect(source=PROXY_SOURCE) as conn:
            conn.request("GET", "/hello")
            rest = conn.read_to_eof(10)
            expect(rest == b"", "extra-bytes", f"no PROXY header: {rest[:100]!r} instead of a close")
        return 1
    header, _, _ = proxy_header(rng)
    with c.connect(source=DIRECT_SOURCE) as conn:
        conn.send(header + build_request("GET", "/hello"))
        expect_last_response(conn, conn.read_response(), 400, "a PROXY line from a direct client")
    return 1


def s_unix(c: Client, rng) -> int:
    """The unix: bind: keep-alive GETs, the last one sometimes with `Connection: close`; under
    --proxy-protocol behind a PROXY header (UNIX-socket peers must send one)."""
    header, addr, port = proxy_header(rng) if c.proxy else (b"", "", 0)
    with c.connect(unix=True, preamble=header) as conn:
        return keepalive_run(conn, rng, "unix socket", (addr, port) if c.proxy else None)


def s_http10(c: Client, rng) -> int:
    """HTTP/1.0 clients: without keep-alive one request and the server closes; with `Connection:
    keep-alive` GETs and Content-Length POSTs stay on the connection (echoed keep-alive, a length),
    and a response without a length (/chunks) is close-delimited, never chunked."""
    with c.connect() as conn:
        if rng.random() < 0.4:
            conn.request("GET", "/p/one", version="HTTP/1.0", host=rng.choice((None, "localhost")))
            resp = conn.read_response()
            expect_status(resp, 200, "HTTP/1.0")
            expect(resp.body == b"GET /p/one?", "body", f"HTTP/1.0: {resp.body[:100]!r}")
            expect("keep-alive" not in resp.connection_tokens(), "framing", f"HTTP/1.0: {resp.raw_head!r}")
            expect_closed(conn, "HTTP/1.0 without keep-alive")
            return 1
        count = rng.randrange(2, 6)
        keep = [("Connection", "keep-alive")]
        for i in range(count):
            if i % 2:
                body = UPLOAD[:rng.randrange(1, 65536)]
                conn.request("POST", "/hash", version="HTTP/1.0", headers=keep, body=body)
                want = f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
            else:
                conn.request("GET", f"/p/{i}", version="HTTP/1.0", headers=keep)
                want = f"GET /p/{i}?".encode()
            resp = conn.read_response()
            expect_status(resp, 200, "HTTP/1.0 keep-alive")
            expect(resp.body == want, "body", f"HTTP/1.0 keep-alive #{i}: {resp.body[:100]!r}")
            expect(resp.header("Content-Length") == str(len(want)), "framing",
                   f"HTTP/1.0 keep-alive #{i}: {resp.raw_head!r}")
            if server_ended(conn, resp, "HTTP/1.0 keep-alive", http10=True):
                return i + 1
        conn.request("GET", "/chunks?n=3", version="HTTP/1.0", headers=keep)
        resp = conn.read_response()
        expect_status(resp, 200, "HTTP/1.0 without a length")
        expect(resp.framing == "close" and "keep-alive" not in resp.connection_tokens(), "framing",
               f"HTTP/1.0 without a length: {resp.framing}, {resp.raw_head!r}")
        expect(resp.body == b"piece0;piece1;piece2;", "body", f"HTTP/1.0 without a length: {resp.body[:100]!r}")
        expect(not conn.reset, "reset", "HTTP/1.0 without a length: reset instead of a close")
    return count + 1


def s_hooks(c: Client, rng) -> int:
    """--hooks (benchmarks/soak_hooks.py): keep-alive GETs /environ with a fresh `X-Soak-Id`; each must
    show pre_request's SOAK_HOOK_PRE ("PID SEQ"), one process per connection, SEQ rising. The id,
    the pid and the body length are kept for the end check of post_request's lines (check_hooks)."""
    pid = seq = None
    count = rng.randrange(2, 6)
    with c.connect() as conn:
        for i in range(count):
            soak_id = f"s{next(c.soak_ids)}"
            conn.request("GET", f"/environ?i={i}", headers=[("X-Soak-Id", soak_id)])
            resp = conn.read_response()
            environ = environ_of(resp, "hooked request")
            mark = environ.get("SOAK_HOOK_PRE", "")
            expect(environ.get("HTTP_X_SOAK_ID") == soak_id and re.fullmatch(r"\d+ \d+", mark) is not None,
                   "pre_request", f"hooked request: SOAK_HOOK_PRE {mark!r}, X-Soak-Id {environ.get('HTTP_X_SOAK_ID')!r}")
            this_pid, this_seq = map(int, mark.split())
            expect(pid is None or (this_pid == pid and this_seq > seq), "pre_request",
                   f"hooked request #{i}: {mark!r} after {pid} {seq} on the same connection")
            pid, seq = this_pid, this_seq
            c.hooked[soak_id] = (pid, len(resp.body))
            c.pids.add(pid)
            if server_ended(conn, resp, "hooked request"):
                return i + 1
    return count


# -- --stalls: stalled clients, partial body reads, limits, many chunks (opt-in) -----------------------

SEND_TIMEOUT_STALLS = 2  # the server's --send-timeout under --stalls (10 otherwise)
BODY_LIMIT_STALLS = 3 << 20  # its --limit-request-body under --stalls: over every upload of the mix


def s_stall_reader(c: Client, rng) -> int:
    """A client that asks for an endless fast response (/close?mode=flood, or /download of 8 MiB) with
    a small receive buffer and never reads: --send-timeout must cut it. Watched with `ss` (reading
    would let the response flow again): the server's side of the connection must leave ESTABLISHED
    within a few seconds of the timeout."""
    target = "/close?mode=flood" if rng.random() < 0.5 else f"/download?n={8 << 20}"
    with SoakConn(c.port, timeout=10, rcvbuf=4096, source=c.source) as conn:
        conn.request("GET", target)
        start = time.monotonic()
        query = ["ss", "-tanH", f"( sport = :{c.port} and dport = :{conn.local_port} )"]
        while time.monotonic() - start < SEND_TIMEOUT_STALLS + 8:
            time.sleep(0.25)
            state = subprocess.run(query, capture_output=True, text=True).stdout.split()[:1] or ["gone"]
            if state[0] != "ESTAB":
                return 1
        raise Unexpected("not-cut", f"{target}: the server's side still ESTABLISHED "
                                    f"{time.monotonic() - start:.1f} s after a client stopped reading")


def s_stall_body(c: Client, rng) -> int:
    """A body that stops half way (Content-Length or chunked): --read-timeout must end it with a 408
    (or a close if the application already answered) and close the connection, no reset."""
    with c.connect() as conn:
        if rng.random() < 0.5:
            conn.send(build_request("POST", "/hash", headers=[("Content-Length", "100000")]) + UPLOAD[:5000])
        else:
            conn.send(build_request("POST", "/hash", headers=[("Transfer-Encoding", "chunked")])
                      + b"1000\r\n" + UPLOAD[:4096] + b"\r\n800\r\n" + UPLOAD[:100])
        rest = conn.read_to_eof(READ_TIMEOUT + 10)
        expect(rest == b"" or rest.startswith(b"HTTP/1.1 408") or rest.startswith(b"HTTP/1.1 400"),
               "status", f"stalled body: {rest[:100]!r}")
        expect(not conn.reset, "reset", "stalled body: reset instead of a close")
    return 1


def s_partial_read(c: Client, rng) -> int:
    """The application reads part of the body (a few read(n)/readline calls) and answers; the server
    drains the rest (Content-Length or chunked) and the connection serves the next request."""
    size = rng.choice((3000, 100000, 700000))
    body = UPLOAD[:size]
    ops = ",".join(rng.choice(("r5", "r100", "l-1", "r4096")) for _ in range(3))
    with c.connect() as conn:
        if rng.random() < 0.5:
            conn.send(build_request("POST", f"/input?mode=ops&ops={ops}", body=body))
        else:
            pieces = [body[i:i + 8192] for i in range(0, size, 8192)]
            conn.send(build_request("POST", f"/input?mode=ops&ops={ops}",
                                    headers=[("Transfer-Encoding", "chunked")]) + chunked(*pieces))
        resp = conn.read_response(timeout=20)
        expect_status(resp, 200, f"partial read {ops} of {size}")
        if "close" in resp.connection_tokens():
            conn.read_available(0.5)
            return 1
        conn.request("GET", "/hello")
        resp = conn.read_response()
        expect_status(resp, 200, "GET after a partial read")
        expect(resp.body == b"hello", "body", f"GET after a partial read: {resp.body[:100]!r}")
    return 2


def s_many_chunks(c: Client, rng) -> int:
    """An application yielding thousands of small pieces (chunked out), twice on one connection."""
    n = rng.choice((1000, 5000, 20000))
    want = b"".join(f"piece{i};".encode() for i in range(n))
    with c.connect(timeout=20) as conn:
        for _ in range(2):
            conn.request("GET", f"/chunks?n={n}")
            resp = conn.read_response(timeout=30)
            expect_status(resp, 200, "many chunks")
            expect(resp.body == want, "body", f"many chunks: {len(resp.body)} bytes, wanted {len(want)}")
    return 2


def s_too_large(c: Client, rng) -> int:
    """A body over --limit-request-body: a declared Content-Length gets 413 before the body (the client
    then sends it anyway, or leaves), a chunked one 413 once it passes the limit."""
    with c.connect(timeout=20) as conn:
        if rng.random() < 0.5:
            conn.send(build_request("POST", "/hash", headers=[("Content-Length", str(BODY_LIMIT_STALLS + 1))]))
            resp = conn.read_response(timeout=20)
            if rng.random() < 0.5:
                try:
                    conn.send(UPLOAD[:rng.randrange(1, 500000)])
                except OSError:
                    pass
        else:
            piece = pattern_bytes(1 << 20)

            def send():
                try:
                    conn.send(build_request("POST", "/hash", headers=[("Transfer-Encoding", "chunked")])
                              + chunked(*([piece] * 4)))
                except OSError:
                    pass

            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            resp = conn.read_response(timeout=20)
            sender.join(20)
        expect_last_response(conn, resp, 413, "over --limit-request-body")
    return 1


def s_post_pipeline(c: Client, rng) -> int:
    """Pipelined POSTs with Content-Length and chunked bodies, read or not by the application, in one write."""
    reqs, want = [], []
    for i in range(8):
        body = UPLOAD[i * 1000:i * 1000 + rng.randrange(0, 20000)]
        kind = rng.choice(("cl", "chunked", "ignored"))
        if kind == "ignored":
            reqs.append(build_request("POST", "/ignore-body", body=body))
            want.append(b"ignored")
            continue
        headers = [("Transfer-Encoding", "chunked")] if kind == "chunked" else None
        data = chunked(body[:7000], body[7000:]) if kind == "chunked" else body
        reqs.append(build_request("POST", "/hash", headers=headers, body=data if kind == "cl" else b"")
                    + (data if kind == "chunked" else b""))
        want.append(f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode())
    with c.connect(timeout=20) as conn:
        conn.send(b"".join(reqs))
        for i, w in enumerate(want):
            resp = conn.read_response(timeout=20)
            expect_status(resp, 200, f"pipelined POST #{i}")
            expect(resp.body == w, "body", f"pipelined POST #{i}: {resp.body[:100]!r}, wanted {w[:40]!r}")
    return len(want)


def s_leave_flood(c: Client, rng) -> int:
    """Leave an endless streaming response (a generator that never ends) after a few bytes, or leave
    in the middle of a chunked upload: close() must still run and nothing must stay open."""
    with c.connect() as conn:
        if rng.random() < 0.5:
            conn.request("GET", "/close?mode=flood" if rng.random() < 0.5 else "/close?mode=stream")
            conn.read_exact(rng.randrange(1, 100000))
        else:
            conn.send(build_request("POST", "/hash", headers=[("Transfer-Encoding", "chunked")])
                      + b"4000\r\n" + UPLOAD[:rng.randrange(1, 0x4000)])
            time.sleep(0.01)
    return 1


EXTRA_SCENARIOS = {  # name: (function, weight, the soak.py option that adds it)
    "proxy": (s_proxy, 3, "proxy_protocol"), "proxy_refused": (s_proxy_refused, 1, "proxy_protocol"),
    "unix": (s_unix, 3, "unix"), "http10": (s_http10, 3, "http10"), "hooks": (s_hooks, 2, "hooks"),
    "stall_read": (s_stall_reader, 1, "stalls"), "stall_body": (s_stall_body, 1, "stalls"),
    "partial_read": (s_partial_read, 3, "stalls"), "many_chunks": (s_many_chunks, 2, "stalls"),
    "too_large": (s_too_large, 2, "stalls"), "post_pipeline": (s_post_pipeline, 2, "stalls"),
    "leave_flood": (s_leave_flood, 2, "stalls"),
}
ALL_SCENARIOS = {**SCENARIOS, **EXTRA_SCENARIOS}


class Load:
    """`threads` client threads running the mix (SCENARIOS, then the `extras` of EXTRA_SCENARIOS)
    while `running` is set, until `stopped`."""

    def __init__(self, client: Client, threads: int, seed: int, extras: list[str]):
        self.client = client
        self.running = threading.Event()
        self.stopped = False
        self.lock = threading.Lock()
        self.busy = 0
        self.requests: collections.Counter = collections.Counter()
        self.errors: collections.Counter = collections.Counter()
        self.server_closes: collections.Counter = collections.Counter()  # (name, ServerClosed.kind)
        self.examples: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
        names = [n for n in SCENARIOS if n != "uwsgi" or client.uwsgi_port] + extras
        self.names, self.weights = names, [ALL_SCENARIOS[n][1] for n in names]
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
                done = ALL_SCENARIOS[name][0](self.client, rng)
                with self.lock:
                    self.requests[name] += done
            except Unexpected as exc:
                self.error(name, exc.kind, str(exc))
            except ServerClosed as exc:
                with self.lock:
                    self.server_closes[(name, exc.kind)] += 1
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


def thread_count(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("Threads:")).split()[1])


SERVER_PORTS: list[int] = []  # the server's TCP ports, for socket_states (main sets them)


def socket_states() -> tuple[int, int]:
    """(CLOSE_WAIT, FIN_WAIT_1 + FIN_WAIT_2) connections on the server's side of its TCP ports, from
    `ss`: a CLOSE_WAIT the server never closes is a leaked connection; FIN_WAIT piling up is a close
    the peer never completes."""
    ports = " or ".join(f"sport = :{p}" for p in SERVER_PORTS)

    def count(*states: str) -> int:
        cmd = ["ss", "-tanH"] + [w for st in states for w in ("state", st)] + [f"( {ports} )"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        return sum(1 for line in out.splitlines() if line.strip())

    return count("close-wait"), count("fin-wait-1", "fin-wait-2")


def sample(server: ServerProcess, workers: bool) -> dict:
    """{pid: (RSS KiB, open fds, threads)} of the server process and, with workers, each of its
    children; with SERVER_PORTS also "sockets": socket_states()."""
    pids = [server.proc.pid] + (sorted(children(server.proc.pid)) if workers else [])
    out = {}
    for pid in pids:
        try:
            out[pid] = (rss_kib(pid), fd_count(pid), thread_count(pid))
        except (OSError, AttributeError, StopIteration):  # a worker ended between the listing and the read
            pass
    if SERVER_PORTS:
        out["sockets"] = socket_states()
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


def run_phases(args, server: ServerProcess, load: Load, workers: bool, idle_wait: float = IDLE_WAIT,
               on_phase=lambda phase: None) -> tuple[list, list]:
    """The phases of the docstring: warm-up (`args.warmup` s), the *warm idle* sample `idle_wait` s after
    the load paused, the measured run (a sample every `args.fine` s, a table row every `args.every` s),
    the *end idle* sample. `on_phase` is called with "warmup", "pause", "measured" and "stop" as each
    begins (benchmarks/soak_nginx.py runs wrk beside the load there). Returns (rows, fine): rows are
    (label, t, requests Counter copy, errors total, {pid: (rss, fds)}), fine (t, {pid: (rss, fds)})
    every `args.fine` s of the measured run. The load is stopped whatever happens."""
    rows, fine = [], []

    def record(label: str, t: float) -> None:
        with load.lock:
            requests, errors = collections.Counter(load.requests), sum(load.errors.values())
        rows.append((label, t, requests, errors, sample(server, workers)))

    try:
        record("start", 0.0)
        load.start()
        on_phase("warmup")
        load.running.set()
        time.sleep(args.warmup)
        load.pause()
        on_phase("pause")
        time.sleep(idle_wait)
        record("warm idle", 0.0)
        on_phase("measured")
        load.running.set()
        begin = time.monotonic()
        next_row = args.every
        while (elapsed := time.monotonic() - begin) < args.duration and server.alive():
            time.sleep(min(args.fine, args.duration - elapsed))
            t = time.monotonic() - begin
            fine.append((t, sample(server, workers)))
            if t >= next_row - args.fine / 2 or t >= args.duration:
                record("load", t)
                next_row += args.every
        load.stop()
        on_phase("stop")
        time.sleep(idle_wait)
        record("end idle", time.monotonic() - begin)
    finally:
        load.stop()
    return rows, fine


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
    new = ap.add_argument_group(
        "opt-in parts (off by default: without them a run is the same as before they existed)")
    new.add_argument("--hooks", action="store_true",
                     help="-c benchmarks/soak_hooks.py (pre_request/post_request/post_fork/worker_exit/"
                          "child_exit) and the `hooks` scenario; checked per response and, after the stop, "
                          "from the hooks' log")
    new.add_argument("--proxy-protocol", action="store_true",
                     help=f"--proxy-protocol --proxy-allow-from {PROXY_SOURCE}: the `proxy` (v1/v2 headers, "
                          f"REMOTE_ADDR checked) and `proxy_refused` scenarios; every other HTTP client then "
                          f"connects from {DIRECT_SOURCE}, added to --forwarded-allow-ips")
    new.add_argument("--unix", action="store_true", help="a unix: bind and the `unix` scenario (keep-alive, close)")
    new.add_argument("--http10", action="store_true",
                     help="the `http10` scenario (HTTP/1.0 with and without keep-alive)")
    new.add_argument("--max-requests", type=int, default=0, metavar="N",
                     help="the server's --max-requests (needs -w): workers recycle; checks that they were "
                          "replaced, and the report groups the workers (mean RSS, max fds)")
    new.add_argument("--max-requests-jitter", type=int, default=0, metavar="N",
                     help="the server's --max-requests-jitter")
    new.add_argument("--all-new", action="store_true", help="--hooks --proxy-protocol --unix --http10")
    new.add_argument("--stalls", action="store_true",
                     help=f"the server's --send-timeout {SEND_TIMEOUT_STALLS} and --limit-request-body "
                          f"{BODY_LIMIT_STALLS}, and the scenarios stall_read (never reads an endless response), "
                          "stall_body (a body that stops), partial_read, many_chunks, too_large (413), "
                          "post_pipeline and leave_flood (not with --tls)")
    new.add_argument("--poller", choices=("epoll", "poll"), help="$FASTWSGI_POLLER for the server")
    args = ap.parse_args()
    if args.all_new:
        args.hooks = args.proxy_protocol = args.unix = args.http10 = True
    if args.stalls and args.tls:
        ap.error("--stalls sends raw bytes over plain TCP: not with --tls")
    if args.max_requests and not args.workers:
        ap.error("--max-requests recycles pre-fork workers: give -w")
    faulthandler.enable()  # a crash of this client shows its threads' stacks

    scratch = Path(tempfile.mkdtemp(prefix="fastwsgi-soak-"))
    forwarded = "127.0.0.1" + (f",{DIRECT_SOURCE}" if args.proxy_protocol else "")
    server_args = ["--bind", "127.0.0.1:0", "--http-parser", args.http_parser, "--threads", str(args.threads),
                   "--header-timeout", str(HEADER_TIMEOUT), "--keep-alive", str(KEEP_ALIVE),
                   "--read-timeout", str(READ_TIMEOUT),
                   "--send-timeout", str(SEND_TIMEOUT_STALLS if args.stalls else 10), "--defer-accept", "0",
                   "--access-logfile", str(scratch / "access.log"), "--forwarded-allow-ips", forwarded]
    if not args.no_uwsgi:
        server_args += ["--bind", "uwsgi://127.0.0.1:0"]
    unix_path = str(scratch / "soak.sock") if args.unix else None
    if unix_path:
        server_args += ["--bind", f"unix:{unix_path}"]
    if args.workers:
        server_args += ["--workers", str(args.workers)]
    if args.max_requests:
        server_args += ["--max-requests", str(args.max_requests),
                        "--max-requests-jitter", str(args.max_requests_jitter)]
    if args.hooks:
        server_args += ["-c", str(REPO / "benchmarks" / "soak_hooks.py")]
    if args.proxy_protocol:
        server_args += ["--proxy-protocol", "--proxy-allow-from", PROXY_SOURCE]
    tls = None
    if args.tls:
        certs_dir = scratch / "certs"
        certs_dir.mkdir()
        certs = make_certs(certs_dir)
        server_args += list(tls_args(certs))
        tls = client_context(certs)
    if args.stalls:
        server_args += ["--limit-request-body", str(BODY_LIMIT_STALLS)]
    server_args += [*args.server_arg, args.app]
    env = {EVENTS_ENV: str(scratch), **({"SOAK_HOOKS_DIR": str(scratch)} if args.hooks else {})}
    if args.poller:
        env["FASTWSGI_POLLER"] = args.poller
    server = ServerProcess(server_args, env=env).start()
    urls = listening_urls(server, 1 + (not args.no_uwsgi) + bool(unix_path))
    uwsgi_port = None if args.no_uwsgi else int(next(u for u in urls if u.startswith("uwsgi:")).rsplit(":", 1)[1])
    SERVER_PORTS[:] = [server.port] + ([uwsgi_port] if uwsgi_port else [])
    if args.workers:
        deadline = time.monotonic() + 20
        while len(children(server.proc.pid)) < args.workers and time.monotonic() < deadline:
            time.sleep(0.1)

    # refusals over TLS would be TLS handshake failures, not the HTTP behaviour s_proxy_refused checks
    extras = [name for name, (_, _, option) in EXTRA_SCENARIOS.items()
              if getattr(args, option) and not (name == "proxy_refused" and args.tls)]
    client = Client(server.port, uwsgi_port, tls, source=DIRECT_SOURCE if args.proxy_protocol else None,
                    unix_path=unix_path, proxy=args.proxy_protocol, recycling=bool(args.max_requests))
    load = Load(client, args.clients, args.seed, extras)
    try:
        rows, fine = run_phases(args, server, load, bool(args.workers))
    finally:
        alive = server.alive()
        code = server.stop(30)

    hooks_log = parse_hooks_log(scratch / "hooks.log") if args.hooks else None
    checks = []  # lines for the report: what the end checks found
    if args.hooks:
        checks += check_hooks(client, load, hooks_log, server.proc.pid, bool(args.workers))
    if args.max_requests:
        checks += check_recycling(args, server, rows, fine, client, load, hooks_log)
        rows = [(*row[:4], group_workers(row[4], server.proc.pid)) for row in rows]
        fine = [(t, group_workers(procs, server.proc.pid)) for t, procs in fine]
    print_report(args, server, rows, fine, load, alive, code, checks)


def parse_hooks_log(path: Path) -> dict[str, list[list[str]]]:
    """benchmarks/soak_hooks.py's lines by their first word ("post", "counts", "fork", ...)."""
    lines = collections.defaultdict(list)
    for line in path.read_text().splitlines() if path.exists() else ():
        kind, *rest = line.split()
        lines[kind].append(rest)
    return lines


def check_hooks(client: Client, load: Load, hooks_log, server_pid: int, workers: bool) -> list[str]:
    """After the stop: post_request ran once for every hooked request the client got, in the process
    that answered it, with status 200 and the body length the client read; every process that served
    counted as many post_request as pre_request calls (its worker_exit line); with workers, child_exit
    reaped every forked worker."""
    posted = collections.defaultdict(list)
    for pid, soak_id, status, sent in hooks_log["post"]:
        posted[soak_id].append((int(pid), status, sent))
    for soak_id, (pid, length) in sorted(client.hooked.items()):
        if posted.get(soak_id) != [(pid, "200", str(length))]:
            load.error("hooks", "post_request", f"{soak_id}: post lines {posted.get(soak_id)}, "
                                                f"wanted [({pid}, '200', '{length}')]")
    counts = {int(pid): (int(pre), int(post)) for pid, pre, post in hooks_log["counts"]}
    for pid, (pre, post) in sorted(counts.items()):
        if pre != post:
            load.error("hooks", "pre-post", f"process {pid}: pre_request {pre}, post_request {post}")
    for pid in sorted(client.pids - set(counts)):
        load.error("hooks", "worker_exit", f"process {pid} served hooked requests but wrote no counts")
    forked = {int(pid) for pid, in hooks_log["fork"]}
    reaped = {int(pid) for pid, in hooks_log["reaped"]}
    if workers and forked != reaped:
        load.error("hooks", "child_exit", f"forked {len(forked)}, reaped {len(reaped)}: "
                                          f"not reaped {sorted(forked - reaped)[:10]}")
    served = sum(pre for pre, _ in counts.values())
    return [f"hooks: {len(client.hooked)} hooked requests, each with its post_request line checked; "
            f"{len(counts)} processes wrote counts (pre_request = post_request in each: "
            f"{all(pre == post for pre, post in counts.values())}), {served} requests through the hooks in all"
            + (f"; post_fork {len(forked)} workers, child_exit {len(reaped)}" if workers else "")]


RECYCLED = re.compile(r"Worker (\d+) reached max requests")


def check_recycling(args, server, rows, fine, client: Client, load: Load, hooks_log) -> list[str]:
    """--max-requests: workers were replaced (more worker pids seen than -w, by the samples, the hooks'
    pids and post_fork lines), and no worker that logged reaching its limit was still there at the end."""
    master = server.proc.pid
    seen = {pid for _, procs in fine for pid in procs} | {pid for row in rows for pid in row[4]}
    seen |= client.pids
    if hooks_log is not None:
        seen |= {int(pid) for pid, in hooks_log["fork"]}
    seen = {pid for pid in seen if isinstance(pid, int) and pid != master}  # (not "sockets")
    recycled = {int(m.group(1)) for line in server.stderr_lines for m in [RECYCLED.search(line)] if m}
    at_end = {pid for pid in rows[-1][4] if isinstance(pid, int)} - {master}
    if len(seen) <= args.workers or not recycled:
        load.error("recycling", "no-recycle", f"{len(seen)} worker pids seen, {len(recycled)} logged reaching "
                                              f"--max-requests: no worker was replaced")
    if recycled & at_end:
        load.error("recycling", "not-replaced", f"still running at the end: {sorted(recycled & at_end)}")
    return [f"recycling: {len(seen)} worker pids seen in all (-w {args.workers}), {len(recycled)} logged "
            f"`reached max requests`; workers at the end {sorted(at_end)}"]


def group_workers(procs: dict, master: int) -> dict:
    """{master: (RSS, fds, threads), "workers": (mean RSS, max fds, max threads)}: with --max-requests
    the workers come and go ("sockets" is kept)."""
    workers = [value for pid, value in procs.items() if isinstance(pid, int) and pid != master]
    grouped = {pid: value for pid, value in procs.items() if pid == master or not isinstance(pid, int)}
    if workers:
        grouped["workers"] = (sum(v[0] for v in workers) // len(workers), max(v[1] for v in workers),
                              max(v[2] for v in workers))
    return grouped


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


def print_report(args, server, rows, fine, load, alive, code, checks=()) -> None:
    names = load.names
    new = [flag for flag in ("hooks", "proxy_protocol", "unix", "http10", "stalls") if getattr(args, flag)]
    if args.poller:
        new.append(f"FASTWSGI_POLLER={args.poller}")
    if args.max_requests:
        new.append(f"max-requests {args.max_requests}+{args.max_requests_jitter}")
    print(f"## {args.http_parser}, threads {args.threads}, workers {args.workers or '-'}"
          f"{', TLS' if args.tls else ''}{', ' + ', '.join(new) if new else ''}\n")
    print("```\n" + shlex.join(server.command) + "\n```\n")
    print(f"client: {args.clients} threads, seed {args.seed}, warm-up {args.warmup:g} s, measured "
          f"{args.duration:g} s, sample every {args.every:g} s; server alive at the end: {alive}, exit {code}\n")
    pids = sorted({pid for row in rows for pid in row[4] if pid != "sockets"},
                  key=lambda p: (isinstance(p, str), str(p).zfill(12)))
    sockets = any("sockets" in row[4] for row in rows)
    role = {server.proc.pid: "server" if not args.workers else "master",
            "workers": "workers (mean RSS, max fds)"}  # group_workers' key, with --max-requests

    def who(p) -> str:
        return role[p] if p == "workers" else f"{role.get(p, 'worker')} {p}"

    print("| phase | t (s) | " + " | ".join(names) + " | all | errors | "
          + " | ".join(f"{who(p)} RSS KiB / fds / threads" for p in pids)
          + (" | CLOSE_WAIT / FIN_WAIT" if sockets else "") + " |")
    print("|" + "---|" * (len(names) + 5 + len(pids) + sockets))
    for label, t, requests, errors, procs in rows:
        cells = [str(requests[n]) for n in names]
        mem = [" / ".join(map(str, procs[p])) if p in procs else "-" for p in pids]
        if sockets:
            mem.append(" / ".join(map(str, procs.get("sockets", ("-", "-")))))
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
                print(f"- {who(p)}: RSS {quarter[4][p][0]} KiB at t={quarter[1]:.0f} s -> "
                      f"{last[4][p][0]} KiB at t={last[1]:.0f} s: {growth:+d} KiB "
                      f"({100 * growth / quarter[4][p][0]:+.1f} %)")
            floors = quarter_floors(fine, p, args.duration)
            if None not in floors:
                fds = [procs[p][1] for _, procs in fine if p in procs]
                print(f"  - RSS floor (lowest of the {args.fine:g} s samples) per quarter: "
                      + ", ".join(f"{f}" for f in floors) + f" KiB; last - second quarter: "
                      f"{floors[3] - floors[1]:+d} KiB; fds under load {min(fds)}..{max(fds)}")
            if p in warm[4] and end[0] == "end idle" and p in end[4]:
                print(f"- {who(p)}: fds warm idle {warm[4][p][1]}, end idle {end[4][p][1]}"
                      f" ({end[4][p][1] - warm[4][p][1]:+d}); RSS warm idle {warm[4][p][0]} KiB, end idle "
                      f"{end[4][p][0]} KiB")
    if sockets:
        states = [procs["sockets"] for _, procs in fine if "sockets" in procs]
        print(f"- server-side sockets under load (every {args.fine:g} s): CLOSE_WAIT max "
              f"{max(s[0] for s in states)}, FIN_WAIT max {max(s[1] for s in states)}; warm idle "
              f"{warm[4].get('sockets')}, end idle {end[4].get('sockets')}")
        threads = {p: [procs[p][2] for _, procs in fine if p in procs] for p in pids}
        print("- threads under load: "
              + ", ".join(f"{who(p)} {min(v)}..{max(v)}" for p, v in threads.items() if v))
    if set(warm[4]) != set(end[4]):
        print(f"- processes changed: warm idle {sorted(warm[4])}, end {sorted(end[4])}")
    total = sum(rows[-1][2].values())
    for line in checks:
        print(f"- {line}")
    print(f"- requests {total}, client-side errors {sum(load.errors.values())}")
    print("\n**Client-side errors by (scenario, kind)**\n")
    if not load.errors:
        print("none\n")
    for (name, kind), n in sorted(load.errors.items()):
        print(f"- {name} / {kind}: {n}")
        for example in load.examples[(name, kind)]:
            print(f"  - `{example}`")
    if args.max_requests:
        print("\n**Connections the server closed without a next response** (ServerClosed: a draining worker; "
              "not errors, a real client retries on a new connection)\n")
        print("none\n" if not load.server_closes else "\n".join(
            f"- {name} / {kind}: {n}" for (name, kind), n in sorted(load.server_closes.items())) + "\n")
    print("\n**Server log lines by shape** (stderr; /raise tracebacks are expected)\n")
    print("| count | line |\n|---|---|")
    for n, shape in log_summary(server.stderr_lines):
        print(f"| {n} | `{shape.replace('|', '/')}` |")
    print()


if __name__ == "__main__":
    main()
