"""Protocol checks run against each server before it is timed.

Theory of operation: a benchmark number only means something if the server answered the requests the
load generator sent, correctly. So before timing a (server, scenario) pair the harness talks to the server
over a raw socket and reads the responses with a small, strict HTTP/1.1 response reader (status line,
headers, then a body delimited by Content-Length, chunked coding (RFC 9112 §7.1) or connection close
(RFC 9112 §6.3)). It checks, in order:

1. the body of one response is the one the scenario's application produces;
2. keep-alive: a second request on the same connection is answered, unless the server said
   `Connection: close` (then the server does not offer keep-alive: legal, noted, still timed);
3. concurrency: while that kept-alive connection sits idle, a request on a second connection is answered
   within SERIAL_WAIT. A server that serves one connection at a time (uWSGI with one process and no
   threads does) is timed but flagged "serial": wrk then measures the one connection being served, so
   its latency is that one client's, and the other clients are starved;
4. pipelining (scenarios that pipeline): 16 requests sent in one write come back as 16 complete, correct
   responses in order.

The verdict is one of "ok"; "serial" (see 3); "no-keepalive" (the server closes after each response: legal, so it is
timed, and flagged in the table); "unsupported: <why>" (the scenario needs something the server does not
offer, e.g. pipelining without keep-alive: not timed); or "broken: <why>" (wrong body, bad framing, hang,
lost responses): broken configurations get no numbers.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

TIMEOUT = 5.0
SERIAL_WAIT = 1.0  # a second connection unanswered this long while the first idles: one at a time


class ProtocolError(Exception):
    """The server sent something that is not a valid, complete HTTP/1.1 response."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-cased names; repeated fields joined with ", "
    body: bytes
    closes: bool  # the server will close the connection after this response


class ResponseReader:
    """Reads consecutive responses from one socket, keeping any read-ahead between them."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = bytearray()
        self.eof = False

    def _fill(self) -> bool:
        if self.eof:
            return False
        data = self.sock.recv(262144)
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def _line(self) -> bytes:
        while True:
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[:end + 2]
                return line
            if len(self.buffer) > 65536:
                raise ProtocolError("header line longer than 64 KiB")
            if not self._fill():
                raise ProtocolError("connection closed inside the response head")

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise ProtocolError(f"connection closed after {len(self.buffer)} of {size} body bytes")
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def _chunked(self) -> bytes:
        body = bytearray()
        while True:
            size_text = self._line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size line {size_text!r}") from None
            if size == 0:
                while self._line():  # trailer section ends with an empty line
                    pass
                return bytes(body)
            body += self._exactly(size)
            if self._exactly(2) != b"\r\n":
                raise ProtocolError("chunk data not followed by CRLF")

    def _until_close(self) -> bytes:
        while self._fill():
            pass
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def read(self, request_method: str = "GET") -> Response:
        status_line = self._line()
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {status_line!r}")
        version, status = parts[0], int(parts[1])
        headers: dict[str, str] = {}
        while True:
            line = self._line()
            if not line:
                break
            name, sep, value = line.partition(b":")
            if not sep:
                raise ProtocolError(f"header line without colon {line!r}")
            key = name.decode("latin-1").lower()
            text = value.strip().decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        closes = "close" in tokens or (version == b"HTTP/1.0" and "keep-alive" not in tokens)
        if request_method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._chunked()
        elif "content-length" in headers:
            body = self._exactly(int(headers["content-length"]))
        else:
            body = self._until_close()
            closes = True
        return Response(status, headers, body, closes)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def build_request(method: str, path: str, body: bytes = b"", close: bool = False) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "User-Agent: fastwsgi-bench-check"]
    if body or method == "POST":
        lines += ["Content-Type: application/octet-stream", f"Content-Length: {len(body)}"]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _server_closed(sock: socket.socket) -> bool:
    """True when the peer has closed (EOF or reset) after its last response."""
    sock.settimeout(2.0)
    try:
        return sock.recv(1) == b""
    except ConnectionError:
        return True
    except socket.timeout:
        return False


def check(port: int, method: str, path: str, body: bytes, body_ok, pipeline: int, close: bool) -> str:
    """Runs the checks above; `body_ok(bytes) -> str | None` returns why a body is wrong, or None."""
    request = build_request(method, path, body, close)
    stage = "the first response"
    try:
        with connect(port) as sock:
            reader = ResponseReader(sock)
            sock.sendall(request)
            first = reader.read(method)
            problem = _response_problem(first, body_ok)
            if problem:
                return f"broken: {problem}"
            if close:
                if not first.closes and not _server_closed(sock):
                    return "broken: Connection: close requested but the connection stayed open"
                return "ok"
            if first.closes:
                return "unsupported: no keep-alive, so no pipelining" if pipeline > 1 else "no-keepalive"
            stage = "the second response on a kept-alive connection"
            try:
                sock.sendall(request)
                second = reader.read(method)
            except (ProtocolError, ConnectionError) as exc:
                if isinstance(exc, ConnectionError) or (reader.eof and not reader.buffer):
                    # closed cleanly after a complete response without announcing it: allowed
                    # (RFC 9112 §9.3), so it is a server without keep-alive, not a broken one
                    return "unsupported: no keep-alive, so no pipelining" if pipeline > 1 else "no-keepalive"
                raise
            problem = _response_problem(second, body_ok)
            if problem:
                return f"broken: second request on a kept-alive connection: {problem}"
            stage = "a second connection's response"
            other = connect(port)
            other_reader = ResponseReader(other)
            other.sendall(request)
            other.settimeout(SERIAL_WAIT)
            try:
                response = other_reader.read(method)
                serial = False
            except socket.timeout:
                serial = True
        if serial:  # the first connection is closed now: the waiting one must be answered
            other.settimeout(TIMEOUT)
            with other:
                response = other_reader.read(method)
        else:
            other.close()
        problem = _response_problem(response, body_ok)
        if problem:
            return f"broken: {stage}: {problem}"
        if pipeline > 1:
            with connect(port) as sock:
                reader = ResponseReader(sock)
                sock.sendall(request * pipeline)
                for index in range(pipeline):
                    stage = f"pipelined response {index + 1}/{pipeline}"
                    response = reader.read(method)
                    problem = _response_problem(response, body_ok)
                    if problem:
                        return f"broken: pipelined response {index + 1}/{pipeline}: {problem}"
                    if response.closes and index + 1 < pipeline:
                        return f"broken: closed after pipelined response {index + 1}/{pipeline}"
    except ProtocolError as exc:
        return f"broken: {stage}: {exc}"
    except socket.timeout:
        return f"broken: timed out ({TIMEOUT:.0f} s) waiting for {stage}"
    except OSError as exc:
        return f"broken: {stage}: {type(exc).__name__}: {exc}"
    return "serial" if serial else "ok"


def _response_problem(response: Response, body_ok) -> str | None:
    if response.status != 200:
        return f"status {response.status} (body {response.body[:120]!r})"
    return body_ok(response.body)
