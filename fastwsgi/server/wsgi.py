"""One WSGI exchange (PEP 3333): build the environ, call the application, frame and send its response.

Theory of operation: the connection parses a head and creates an `Exchange`. `run()` calls the
application with a fresh environ (a per-connection base dict copied, then updated with the parsed head,
then with the proxy headers of a trusted peer applied or an untrusted one's removed: fastwsgi.proxy;
neither on a uwsgi connection, whose `trusted_proxies` is None) and `start_response` (a bound method). A
head the parser returns again (the same object: it kept a head repeated byte for byte) gets a copy of
the environ its previous request had before the application saw it, kept by the connection from that
head's second request on: a head and its base never change, so neither does that environ, nor whether it
holds a proxy header (kept with it: four dict lookups less per request). What happens next depends on
what the application returned:

* a list (the common case): the whole body is known, so head and body leave in one `conn.write`.
* a FileWrapper over a regular file: the head is written, then `os.sendfile` moves the bytes.
* any other iterable: `pump()` pulls a chunk, sends it, and asks for the next one only once the
  socket took the whole of it: the application may take its time to produce the next block, and a
  block must not wait for it (PEP 3333). On the event loop a chunk the socket could not take whole
  suspends the exchange (pump returns False) and the connection calls pump() again when the socket
  drains; on a worker thread writes block (with send_timeout), so pump() runs to the end.

Framing (RFC 9112 §6): the application's Content-Length is honoured (extra bytes are dropped and the
connection closed; too few also closes it; two different values are a 500, the same one twice goes
out once; a value that is not digits or is over 2**63 - 1, which recipients refuse, is a 500);
without one, HTTP/1.1 responses are chunked and HTTP/1.0 responses are close-delimited.
HEAD, 204 and 304 responses never carry a body (RFC 9110 §6.4.1); a 1xx status from the application
is an error (an interim response cannot be the final one). Once nothing more can be sent (a bodiless
response's head is out, or the Content-Length is reached) pump() stops iterating (PEP 3333), so an
endless stream answered to a HEAD holds neither the loop nor a thread. write() returns once the
socket took its bytes, on the loop too (waiting up to send_timeout per stall): the application goes
on working after it, and the bytes must not wait for that (PEP 3333); after the response, write()
raises (its bytes would precede the next response).
The head itself always comes from the parser backend's `serialize_head`, which rejects hop-by-hop and
malformed headers (-> 500); the bytes are cached per (status, headers, framing) until the Date header
changes, so an application that answers the same headers every time pays for serializing once a
second; and the server remembers the last decision it took from that cache or made, so a response
whose status, headers and framing equal the previous one's is found by one comparison, not by hashing
(one tuple, replaced whole: threads may read it while another stores it). Headers are sent with the
first non-empty body chunk (or at the end).

Errors: a body piece that is not a bytestring (None, a str, even an empty one: PEP 3333; b"" sends
nothing) is the application's TypeError, whichever way it came (list, iterable, write()). An
exception before the head is sent becomes a 500 (logged on "fastwsgi.error" with its
traceback); after it, the connection is closed: with a reset once the output is out if the body is
close-delimited (Connection.close: a FIN would make it, as nginx's uwsgi response without a
Content-Length, look complete; so is any close before such a body's end, a send timeout's too),
else with a FIN (a short or unterminated body shows the cut). A failure of the client's side (the connection marks
itself `broken`) is quiet. The result's close() is always called, exactly once.
"""

import logging
from http import HTTPStatus

from ..errors import ResponseError
from ..proxy import FORWARDED, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, apply_forwarded
from .body import EMPTY_BODY, BodyError
from .filewrapper import FileWrapper

__all__ = ["Exchange", "StopNow", "error_response", "exchange_on_stack", "interrupt_application", "SERVER_NAME"]

SERVER_NAME = "fastwsgi"
OUTPUT_HIGH_WATER = 256 * 1024  # bytes of unsent output that suspend an iterating response
FILE_CHUNK = 1 << 20  # bytes per os.sendfile call
HEAD_CACHE_SIZE = 64  # serialized heads kept per second (same status + headers -> same bytes)
NO_HEAD_YET = (None, None)  # Server.last_head before the first cached head

error_log = logging.getLogger("fastwsgi.error")

_BODILESS_STATUS = ("204", "304")  # RFC 9110 §15.3.5, §15.4.5 (a 1xx is refused: _decide)
_MAX_CONTENT_LENGTH = (1 << 63) - 1  # recipients (nginx, our parser) refuse a larger Content-Length


def error_parts(status: int):
    """(status line, headers, body) of the server's own `status` response."""
    reason = HTTPStatus(status).phrase
    body = f"{status} {reason}\n".encode("ascii")
    return (f"{status} {reason}",
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))], body)


def error_response(conn, status: int, head_request: bool = False) -> bytes:
    """A complete `status` response that closes the connection (to a HEAD request: its head only,
    RFC 9110 §9.3.2)."""
    status_line, headers, body = error_parts(status)
    head = conn.server.backend.serialize_head(status_line, headers, date=conn.server.date,
                                              server=SERVER_NAME, connection="close")
    return head if head_request else head + body


class StopNow(BaseException):
    """Raised by an INT/QUIT handler (or TERM's, once --graceful-timeout has passed) into an
    application running on the event-loop thread: such a stop does not wait for it (gunicorn's
    workers exit from the handler too). A BaseException, as
    KeyboardInterrupt is: the application's `except Exception` does not swallow it, and the
    exchange still closes the iterable on the way out (PEP 3333)."""


def exchange_on_stack(frame):
    """The Exchange that `frame` (a signal handler's, or a thread's top frame) runs under, or None:
    an application called by it, its response iterable, or the exchange's own code."""
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, Exchange):
            return candidate
        frame = frame.f_back
    return None


def interrupt_application(frame) -> None:
    """In a stop's signal handler: raise StopNow if `frame` (the handler's) runs under an Exchange,
    i.e. the signal interrupted an application running on the loop thread, which the stop cannot
    wait for."""
    exchange = exchange_on_stack(frame)
    if exchange is not None:
        raise StopNow(exchange)


class Exchange:
    __slots__ = ("conn", "environ", "method", "minor", "body", "keep_alive", "status", "headers",
                 "headers_sent", "bodiless", "chunked", "remaining", "result", "iterator", "file", "over")

    def __init__(self, conn, head, body, keep_alive: bool):
        self.conn = conn
        self.body = body
        self.method = head.method
        self.minor = head.minor
        self.keep_alive = keep_alive
        self.status = None
        self.headers = None
        self.headers_sent = False
        self.result = None
        self.iterator = None
        self.file = None
        self.over = False  # the response is complete (or failed): write() may add nothing more
        kept = conn.environ_whole if head is conn.environ_head else None
        if kept is not None:  # the parser's kept head, from its third request on: its environ, copied
            environ = kept[0].copy()
            proxied = kept[1]
        else:
            environ = head.environ(conn.environ_base)
            proxied = conn.trusted_proxies is not None and (  # None: a uwsgi front end's vars rule
                FORWARDED in environ or X_FORWARDED_FOR in environ or X_FORWARDED_PROTO in environ
                or X_FORWARDED_HOST in environ)
            if head is conn.environ_head:  # its second request: keep the environ untouched, and that
                conn.environ_whole = (environ.copy(), proxied)  # finding, for the next ones
            else:
                conn.environ_head = head
                conn.environ_whole = None  # made on the head's second request: most never repeat
        environ["wsgi.input"] = body
        self.environ = environ
        if proxied:  # applied for trusted peers, removed for others
            apply_forwarded(environ, conn.trusted_proxies)

    # -- the application's side ------------------------------------------------------------

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called a second time without exc_info")
        if type(status) is not str:
            raise TypeError(f"status must be a str, not {type(status).__name__}")
        if type(headers) is not list and type(headers) is not tuple:
            raise TypeError(f"headers must be a list, not {type(headers).__name__}")
        self.status = status
        self.headers = headers
        return self.write

    def write(self, data):
        """The legacy write() callable: send `data` now (after the head if not yet sent)."""
        if self.status is None:
            raise AssertionError("write() called before start_response()")
        if self.over:  # e.g. from the iterable's close(): the bytes would precede the next response
            raise RuntimeError("write() called after the response was complete")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"write() takes bytes, not {type(data).__name__}")
        if data:
            self._send_chunk(bytes(data))
            # sent before write() returns, on the loop too: write() cannot suspend, and the
            # application may work a long time before its next write (PEP 3333); a worker's
            # conn.write already waited
            if self.conn.out:
                self.conn.flush_wait()

    # -- driving the response -----------------------------------------------------------------

    def run(self) -> bool:
        """Call the application. True when the exchange is over, False to pump() again later."""
        try:
            # loaded, then called: CPython 3.11 cannot specialize `obj.attr(...)` when attr is an
            # instance attribute, not a method, and looks it up the slow way every time (~120
            # instructions per request each, here, for the exchange class and the poller's poll)
            app = self.conn.server.app
            result = app(self.environ, self.start_response)
        except Exception as exc:
            self._fail(exc)
            return True
        if type(result) is list:
            try:
                if self.status is None:
                    raise RuntimeError("the application returned without calling start_response()")
                if self.headers_sent:
                    for chunk in result:
                        self._send_chunk(chunk)
                    self._finish()
                else:
                    self._send_whole(b"".join(result))
            except Exception as exc:
                self._fail(exc)
            return True
        self.result = result
        if type(result) is FileWrapper and self.status is not None and not self.headers_sent:
            source = result.sendfile_source()
            if source is not None:
                self.file = list(source)
                return self.pump()
        try:
            self.iterator = iter(result)
        except Exception as exc:
            self._fail(exc)
            self._close_result()
            return True
        return self.pump()

    def pump(self) -> bool:
        """Move the response forward while the output can take it; True once it is complete."""
        conn = self.conn
        try:
            if self.file is not None:
                if not self._pump_file():
                    return False
            else:
                iterator = self.iterator
                while conn.out_size < OUTPUT_HIGH_WATER:  # (pipelined responses before this one)
                    for chunk in iterator:
                        if chunk:
                            self._send_chunk(chunk)
                            break
                        if type(chunk) is not bytes:  # None, "", ...: a TypeError (b"" sends nothing)
                            self._send_chunk(chunk)
                    else:
                        break
                    if self.headers_sent and (self.bodiless or self.remaining == 0):
                        # HEAD, 204, 304, or the Content-Length reached: nothing more can be sent,
                        # so stop iterating (PEP 3333), also over an endless stream
                        break
                    # PEP 3333: a block must not wait for the next one, which the application may
                    # take its time to produce: the next is asked for once the socket took this
                    # one whole (a worker's write waited for that already)
                    if conn.out and not conn.flush():
                        if conn.broken:
                            raise ConnectionResetError("the client closed the connection")
                        return False
                else:
                    return False
                self._finish()
        except Exception as exc:
            self._fail(exc)
        except BaseException:  # SystemExit & co: the iterable is still closed (PEP 3333)
            self._close_result()
            raise
        self._close_result()
        return True

    def describe(self) -> str:
        """The request in a log line: 'GET /path?q HTTP/1.1 from 192.0.2.1'."""
        environ = self.environ
        return (f"{environ.get('REQUEST_METHOD')} {environ.get('RAW_URI')} "
                f"{environ.get('SERVER_PROTOCOL')} from {environ.get('REMOTE_ADDR') or 'unix'}")

    def abort(self) -> None:
        """The connection died while this exchange was suspended."""
        self.over = True
        self._close_result()

    def refuse(self, status: int) -> None:
        """Answer `status` for the server without calling the application (a body over
        --limit-request-body, a 408 for one that stopped coming before it was called); the
        connection then closes."""
        self._fail(BodyError(HTTPStatus(status).phrase, status))

    # -- framing ----------------------------------------------------------------------------------

    def _head(self, known_length: int = -1, extra_headers=()) -> bytes:
        """Decide the framing and serialize the head, through the per-second head cache."""
        status, headers = self.status, self.headers
        conn = self.conn
        server = conn.server
        # keep_alive_enabled turns False when a graceful stop begins: a request already in progress
        # then answers with Connection: close
        keep = self.keep_alive and server.keep_alive_enabled
        body = self.body
        if body is not EMPTY_BODY:
            body.head_sent = True  # a 100 Continue may no longer be sent (RFC 9110 §15.2)
            # a body that failed (cut short, timed out, malformed, over the limit) closes the
            # connection even when the application caught the error and answered
            keep = keep and not (conn.must_close or conn.broken) and (body.complete or conn.can_drain(body))
        key = decision = None
        if not extra_headers:
            method, minor, date = self.method, self.minor, server.date
            last_probe, decision = server.last_head
            if (status, headers, method, minor, keep, date) != last_probe:  # not the last head:
                decision = None  # the cache, emptied when the Date changes
                try:
                    key = (status, tuple(headers), method, minor, keep, date)
                    decision = server.head_cache.get(key)
                except TypeError:  # unhashable header items: serialize_head will say what is wrong
                    key = None
        if decision is None:
            decision = self._decide(status, headers, keep, known_length, extra_headers)
            if key is not None and len(server.head_cache) < HEAD_CACHE_SIZE:
                server.head_cache[key] = decision
        if key is not None:  # hashable: immutable header items, so a shallow copy records them
            server.last_head = ((status, list(headers), method, minor, keep, date), decision)
        self.bodiless, self.chunked, self.remaining, self.keep_alive, head = decision
        self.headers_sent = True
        if self.remaining < 0 and not (self.chunked or self.bodiless):
            conn.close_delimited = True  # a close before its end is a reset (Connection.close)
        return head

    def _decide(self, status, headers, keep, known_length, extra_headers):
        """-> (bodiless, chunked, content length or -1, keep-alive, head bytes).

        RFC 9112 §6.1-6.3 (framing), RFC 9110 §6.4.1 (bodiless responses), §8.6 (Content-Length).
        Depends only on the cache key's parts (status, headers, method, minor, keep, date).
        """
        code = status[:3]
        if code[:1] == "1":
            # a 1xx is interim (RFC 9110 §15.2): as the only response, the client would wait on for
            # the final one; WSGI has no way to send one after it
            raise ResponseError("BAD_STATUS", f"{status!r} cannot be the final response")
        bodiless = self.method == "HEAD" or code in _BODILESS_STATUS
        length = -1
        first = None  # the first Content-Length field
        repeated = False
        for index, (name, value) in enumerate(headers):
            if len(name) == 14 and name.lower() == "content-length":
                if (not value.isdigit() or not value.isascii() or len(value.lstrip("0")) > 19
                        or int(value) > _MAX_CONTENT_LENGTH):  # (19 first: int() refuses 4,300 digits)
                    raise ResponseError("BAD_RESPONSE_HEADER_VALUE", f"Content-Length: {value!r}")
                if first is None:
                    first = index
                elif int(value) != length:  # which one frames the body? (RFC 9112 §6.3)
                    raise ResponseError("BAD_RESPONSE_HEADER_VALUE", f"Content-Length: {length} and {value!r}")
                else:
                    repeated = True
                length = int(value)
        if repeated and code != "204":
            # the same value again: sent once (RFC 9110 §8.6; strict clients reject a repeated field)
            headers = [item for index, item in enumerate(headers)
                       if index == first or len(item[0]) != 14 or item[0].lower() != "content-length"]
        if extra_headers:
            headers = list(headers) + list(extra_headers)
            length = known_length
        if length >= 0 and code == "204":
            # RFC 9110 §8.6: no Content-Length in a 204 response
            headers = [(name, value) for name, value in headers if name.lower() != "content-length"]
        chunked = False
        if not bodiless and length < 0:
            if self.minor >= 1:
                chunked = True
            else:
                keep = False  # HTTP/1.0 without a length: the close delimits the body
        if keep:
            connection = None if self.minor >= 1 else "keep-alive"
        else:
            connection = "close"
        server = self.conn.server
        head = server.backend.serialize_head(status, headers, date=server.date, server=SERVER_NAME,
                                             chunked=chunked, connection=connection)
        return bodiless, chunked, length, keep, head

    def _frame(self, chunk) -> bytes:
        """Frame one body chunk according to the head already decided."""
        if self.bodiless:
            return b""
        if self.chunked:
            return b"%x\r\n%b\r\n" % (len(chunk), chunk)
        remaining = self.remaining
        if remaining >= 0:
            if len(chunk) > remaining:  # more than the application's Content-Length
                chunk = chunk[:remaining]
                self.keep_alive = False
            self.remaining = remaining - len(chunk)
        return chunk

    def _send_whole(self, body: bytes) -> None:
        """Head and the whole body in one write (the list fast path)."""
        head = self._head()
        if self.bodiless:
            data = head
        elif self.chunked:
            data = b"%b%x\r\n%b\r\n0\r\n\r\n" % (head, len(body), body) if body else head + b"0\r\n\r\n"
        elif self.remaining == len(body):
            data = head + body
            self.remaining = 0
        else:
            data = head + self._frame(body)
        conn = self.conn
        conn.out.append(data)
        conn.out_size += len(data)
        if conn.in_worker:
            conn.flush_wait()
        self._complete()

    def _send_chunk(self, chunk) -> None:
        if type(chunk) is not bytes:
            if not isinstance(chunk, (bytes, bytearray, memoryview)):  # (a subclass of bytes too)
                raise TypeError(f"the application produced {type(chunk).__name__}, not bytes")
            chunk = bytes(chunk)
        if not chunk:
            return
        if self.headers_sent:
            data = self._frame(chunk)
            if data:
                self.conn.write(data)
        else:
            if self.status is None:
                raise RuntimeError("the application produced body data before calling start_response()")
            head = self._head()
            self.conn.write(head + self._frame(chunk))

    def _finish(self) -> None:
        if self.status is None:
            raise RuntimeError("the application returned without calling start_response()")
        if not self.headers_sent:
            self.conn.write(self._head())
        if self.chunked:
            self.conn.write(b"0\r\n\r\n")
        self._complete()

    def _complete(self) -> None:
        if self.remaining > 0 and not self.bodiless:
            self.keep_alive = False  # fewer bytes than the Content-Length promised: close
        self.over = True
        self.conn.response_complete(self.keep_alive)

    def _pump_file(self) -> bool:
        """sendfile the wrapped file; False while waiting for the socket to drain."""
        conn = self.conn
        if not self.headers_sent:
            fd, offset, left = self.file
            if self.status is None:
                raise RuntimeError("the application returned without calling start_response()")
            head = self._head(left, [("Content-Length", str(left))]
                              if not any(name.lower() == "content-length" for name, _ in self.headers)
                              else ())
            conn.write(head)
            if self.bodiless:
                self.file[2] = 0
            elif self.remaining >= 0:
                self.file[2] = min(left, self.remaining)
        fd, offset, left = self.file
        while left > 0:
            sent = conn.sendfile(fd, offset, min(left, FILE_CHUNK))
            if sent is None:
                self.file[1], self.file[2] = offset, left
                return False
            if sent == 0:  # the file shrank under us
                break
            offset += sent
            left -= sent
            self.remaining -= sent
        self.file[1], self.file[2] = offset, 0  # the offset reached: the bytes sent (access log)
        self._complete()
        return True

    # -- errors and cleanup ---------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        conn = self.conn
        self.over = True
        if conn.broken:
            conn.response_complete(False)  # the client went away or stalled: nothing to say
            return
        status = exc.status if isinstance(exc, BodyError) else None
        if status is None:
            error_log.error("Error handling request %s %s", self.method, self.environ.get("RAW_URI"),
                            exc_info=exc)
            status = 500
        if not self.headers_sent:
            self.headers_sent = True
            try:
                conn.write(error_response(conn, status, self.method == "HEAD"))
            except OSError:
                pass
        elif conn.close_delimited:  # (set by _head: no Content-Length, not chunked, a body)
            # the end of the stream is the body's only frame, so the close must not look like one.
            # Elsewhere a FIN shows the cut (or the response was whole) and a reset could destroy
            # what the kernel still holds
            conn.cut_short = True
        conn.response_complete(False)

    def _close_result(self) -> None:
        result, self.result = self.result, None
        if result is not None and hasattr(result, "close"):
            try:
                result.close()
            except Exception as exc:
                if not self.conn.broken:
                    error_log.error("Error closing the response of %s %s", self.method,
                                    self.environ.get("RAW_URI"), exc_info=exc)
