"""A deliberately small raw-socket HTTP/1.1 client for the functional tests.

Theory of operation: tests must see exactly what the server put on the wire (framing, header bytes,
whether the connection was closed), which http.client hides or "fixes". `Conn` wraps one TCP socket
with a receive buffer; `read_response` parses one response from that buffer following RFC 9112 §6.3
(HEAD, 1xx, 204 and 304 have no body; then Transfer-Encoding: chunked; then Content-Length; otherwise
the body runs to EOF). Every socket operation has a timeout, so a server that never answers fails the
test instead of hanging it. `wait_events` reads the side channel written by tests/functional/apps.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import struct
import termios
import time
from dataclasses import dataclass, field

from fastwsgi.server.connection import LOOKAHEAD

DEFAULT_TIMEOUT = 5.0
# A server started with --request-buffering LOOKAHEAD (conftest.streaming_server) receives a request's
# body before it calls the application up to LOOKAHEAD bytes of it (Connection.begin): a body that
# starts with FILLING (chunked) or FILLING_BYTES (Content-Length) reaches the application there
# before the rest of it is sent.
FILLING_BYTES = b"f" * LOOKAHEAD
FILLING = b"%x\r\n%s\r\n" % (LOOKAHEAD, FILLING_BYTES)


class ResponseIncomplete(AssertionError):
    """The connection ended (or stalled) before a whole response arrived."""


@dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    raw_head: bytes
    body: bytes = b""
    framing: str = "none"  # "none" | "length" | "chunked" | "close"
    complete: bool = True
    raw_body: bytes = b""  # as received (chunk framing included)
    interim: list["Response"] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return ", ".join(values) if values else None

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def connection_tokens(self) -> set[str]:
        value = self.header("Connection") or ""
        return {t.strip().lower() for t in value.split(",") if t.strip()}


def build_request(method: str = "GET", target: str = "/", headers=None, body: bytes = b"",
                  version: str = "HTTP/1.1", host: str | None = "localhost",
                  content_length: bool = True) -> bytes:
    """Serialize a request; Host and Content-Length are added unless given or disabled."""
    headers = list(headers or [])
    names = {n.lower() for n, _ in headers}
    if host is not None and "host" not in names:
        headers.insert(0, ("Host", host))
    if body and content_length and "content-length" not in names and "transfer-encoding" not in names:
        headers.append(("Content-Length", str(len(body))))
    head = f"{method} {target} {version}\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers) + "\r\n"
    return head.encode("latin-1") + body


def chunked(*pieces: bytes, trailers: bytes = b"") -> bytes:
    """Encode pieces as a chunked body (RFC 9112 §7.1)."""
    out = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p)
    return out + b"0\r\n" + trailers + b"\r\n"


class Conn:
    """One client connection with a receive buffer. Use as a context manager."""

    def __init__(self, port: int | None, host: str = "127.0.0.1", timeout: float = DEFAULT_TIMEOUT,
                 rcvbuf: int | None = None, source: str | None = None, unix: str | None = None):
        """TCP to (host, port), from the local address `source` when given; or, with `unix`, to
        that UNIX socket path (port is then ignored)."""
        self.sock = socket.socket(socket.AF_UNIX if unix else socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # must be set before connect to shrink the TCP window
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        if source is not None:
            self.sock.bind((source, 0))
        self.sock.connect(unix or (host, port))
        self.buf = bytearray()
        self.eof = False
        self.reset = False

    # -- plumbing --------------------------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    @property
    def local_port(self) -> int:
        return self.sock.getsockname()[1]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, *args, **kwargs) -> None:
        self.send(build_request(*args, **kwargs))

    def _fill(self, deadline: float) -> bool:
        """Receive more bytes into the buffer; False on EOF/reset. Raises socket.timeout past deadline."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("deadline passed")
        self.sock.settimeout(min(remaining, self.timeout))
        try:
            data = self.sock.recv(262144)
        except ConnectionResetError:
            self.eof = self.reset = True
            return False
        finally:
            self.sock.settimeout(self.timeout)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _take(self, n: int) -> bytes:
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_exact(self, n: int, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise ResponseIncomplete(f"EOF after {len(self.buf)} of {n} bytes")
        return self._take(n)

    def read_line(self, deadline: float) -> bytes:
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                return self._take(i + 1)
            if not self._fill(deadline):
                raise ResponseIncomplete(f"EOF inside a line: {bytes(self.buf)[:200]!r}")

    def read_available(self, wait: float = 0.2) -> bytes:
        """Whatever arrives within `wait` seconds (does not raise on timeout or EOF)."""
        deadline = time.monotonic() + wait
        try:
            while time.monotonic() < deadline and self._fill(deadline):
                pass
        except (socket.timeout, TimeoutError):
            pass
        return self._take(len(self.buf))

    def read_to_eof(self, timeout: float | None = None) -> bytes:
        """Everything until the server closes; raises socket.timeout if it does not within `timeout`."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while self._fill(deadline):
            pass
        return self._take(len(self.buf))

    def closed_by_server(self, timeout: float = 2.0) -> bool:
        """True if the server closes (EOF or RST) within `timeout`, discarding any bytes it sends."""
        try:
            self.read_to_eof(timeout)
        except (socket.timeout, TimeoutError):
            return False
        return True

    # -- responses -------------------------------------------------------------------------------
    def read_head(self, timeout: float | None = None) -> Response:
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                raise ResponseIncomplete(f"EOF before a complete response head: {bytes(self.buf)[:300]!r}")
        end = self.buf.index(b"\r\n\r\n") + 4
        raw = self._take(end)
        lines = raw[:-4].split(b"\r\n")
        version, status, *reason = lines[0].decode("latin-1").split(" ", 2)
        headers = []
        for line in lines[1:]:
            name, sep, value = line.decode("latin-1").partition(":")
            assert sep, f"malformed response header line {line!r}"
            headers.append((name, value.strip(" \t")))
        return Response(version, int(status), reason[0] if reason else "", headers, raw)

    def read_response(self, method: str = "GET", timeout: float | None = None,
                      allow_incomplete: bool = False) -> Response:
        """One final response (1xx heads are collected in .interim) with its body decoded."""
        deadline = time.monotonic() + (timeout or self.timeout)
        interim = []
        while True:
            resp = self.read_head(max(deadline - time.monotonic(), 0.001))
            if 100 <= resp.status < 200 and resp.status != 101:
                interim.append(resp)
                continue
            break
        resp.interim = interim
        return self.read_body(resp, method, deadline - time.monotonic(), allow_incomplete)

    def read_body(self, resp: Response, method: str = "GET", timeout: float | None = None,
                  allow_incomplete: bool = False) -> Response:
        """The body of the response whose head `resp` is (read_head), into resp.body/raw_body."""
        deadline = time.monotonic() + (self.timeout if timeout is None else max(timeout, 0.001))
        te = (resp.header("Transfer-Encoding") or "").lower()
        cl = resp.header("Content-Length")
        try:
            if method == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200:
                resp.framing = "none"
            elif "chunked" in te:
                resp.framing = "chunked"
                self._read_chunked(resp, deadline)
            elif cl is not None:
                resp.framing = "length"
                n = int(cl)
                while len(self.buf) < n:
                    if not self._fill(deadline):
                        raise ResponseIncomplete(f"EOF after {len(self.buf)} of {n} body bytes")
                resp.body = resp.raw_body = self._take(n)
            else:
                resp.framing = "close"
                while self._fill(deadline):
                    pass
                resp.body = resp.raw_body = self._take(len(self.buf))
        except ResponseIncomplete:
            resp.complete = False
            resp.raw_body += self._take(len(self.buf))
            if not allow_incomplete:
                raise
        return resp

    def _read_chunked(self, resp: Response, deadline: float) -> None:
        body = bytearray()
        raw = bytearray()
        try:
            while True:
                line = self.read_line(deadline)
                raw += line
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:  # trailers, then the blank line
                        line = self.read_line(deadline)
                        raw += line
                        if line in (b"\r\n", b"\n"):
                            break
                    break
                while len(self.buf) < size + 2:
                    if not self._fill(deadline):
                        raise ResponseIncomplete("EOF inside a chunk")
                data = self._take(size + 2)
                raw += data
                assert data.endswith(b"\r\n"), f"chunk not followed by CRLF: {data[-10:]!r}"
                body += data[:-2]
        finally:
            resp.body = bytes(body)
            resp.raw_body = bytes(raw)


def get(port: int, target: str, **kwargs) -> Response:
    """One request on a fresh connection."""
    method = kwargs.pop("method", "GET")
    with Conn(port) as conn:
        conn.request(method, target, **kwargs)
        return conn.read_response(method)


def wait_delivered(sock, timeout: float = 5.0) -> None:
    """Wait until the peer's kernel acknowledged every byte sent on `sock` (its send queue is
    empty, SIOCOUTQ): those bytes wait in the peer's socket, whether or not the peer read them."""
    deadline = time.monotonic() + timeout
    while struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]:
        assert time.monotonic() < deadline, "the peer did not take the bytes sent"
        time.sleep(0.002)


def tell(events_dir, token: str) -> None:
    """Let an application waiting for `token` (apps.h_answer_when_told) go on."""
    open(os.path.join(str(events_dir), f"{token}.go"), "wb").close()


def wait_events(events_dir, token: str, count: int = 1, timeout: float = 5.0,
                settle: float = 0.0) -> list[dict]:
    """The side-channel events recorded for `token`: waits until there are `count` of them.

    With `settle`, keeps watching that long after reaching `count` (to catch unexpected extras).
    Returns what is there at the end (possibly fewer than `count`; the caller asserts).
    """
    path = os.path.join(str(events_dir), f"{token}.log")
    deadline = time.monotonic() + timeout
    events: list[dict] = []
    while True:
        try:
            with open(path, "rb") as f:
                events = [json.loads(line) for line in f.read().splitlines() if line.strip()]
        except FileNotFoundError:
            events = []
        if len(events) >= count or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    if settle:
        time.sleep(settle)
        return wait_events(events_dir, token, 0, 0)
    return events
