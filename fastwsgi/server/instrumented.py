"""Exchange subclasses chosen once at startup: proxy headers on every request, measuring on demand.

Theory of operation: the connection creates `server.exchange_class(...)` for each request, and the
server picks that class once from its options, so a feature that is off costs nothing per request:

* `wsgi.Exchange` itself when nothing below is on (it applies the proxy headers: fastwsgi.proxy).
* `ObservedExchange` (--access-logfile or --metrics-bind): also notes when the head was parsed, when
  the application was called and the body bytes it produced; when the response is complete (or
  failed) it writes one access-log line with `RequestTimings` (queue wait, application time, total)
  and/or records the status and duration in the shared metrics.
* `HookedExchange` (a post_request hook is set): an ObservedExchange that also puts its body-byte
  count in the environ, as the callable `environ["fastwsgi.body_sent"]`, for the hook wrapper
  (fastwsgi.hooks.wrap_app) to read when the response is over: the hook's `resp.sent` is the number
  the access log writes as %(b)s, counted once, by the code that sends the bytes.

The body bytes counted are the ones the response carried: 0 for HEAD, 204 and 304 (the server sends
no body), at most the Content-Length the application set (the rest is cut), and for a file_wrapper
sent with sendfile the bytes of the file that left.
"""

import time

from ..accesslog import RequestTimings
from .body import BodyError
from .wsgi import Exchange, error_parts

__all__ = ["ObservedExchange", "HookedExchange", "exchange_class"]

_clock = time.perf_counter


class ObservedExchange(Exchange):
    __slots__ = ("wall_start", "parsed", "called", "sent", "file_start")

    def __init__(self, conn, head, body, keep_alive: bool):
        self.wall_start = time.time()
        self.parsed = self.called = _clock()
        self.sent = 0
        self.file_start = 0
        Exchange.__init__(self, conn, head, body, keep_alive)

    def run(self) -> bool:
        self.called = _clock()
        return Exchange.run(self)

    def _send_whole(self, body: bytes) -> None:
        self.sent = len(body)
        Exchange._send_whole(self, body)

    def _send_chunk(self, chunk) -> None:
        Exchange._send_chunk(self, chunk)  # (a chunk that is not bytes-like raises here, uncounted)
        self.sent += len(chunk) if type(chunk) is bytes else memoryview(chunk).nbytes

    def _pump_file(self) -> bool:
        if not self.headers_sent:
            self.file_start = self.file[1]  # the offset the file is sent from
        return Exchange._pump_file(self)

    def _complete(self) -> None:
        Exchange._complete(self)
        self._log(self.status, self._body_sent())

    def _fail(self, exc: BaseException) -> None:
        answered = self.headers_sent  # the application's head went out (so `bodiless` is decided)
        Exchange._fail(self, exc)
        if answered:
            self._log(self.status, self._body_sent())
        else:  # Exchange._fail answered with an error response of its own, unless the peer was gone
            status = getattr(exc, "status", None) if isinstance(exc, BodyError) else None
            status = status or 500
            if self.conn.broken:
                self.headers = None
                self._log(status, 0)
            else:  # log the response sent, not the headers the application had given
                _status_line, self.headers, body = error_parts(status)
                self._log(status, 0 if self.method == "HEAD" else len(body))

    def abort(self) -> None:
        """The connection died while the response was suspended (threads = 0: a client that left
        or stalled past --send-timeout, a stop): logged with the bytes sent so far, as a worker
        thread's exchange is when its write fails."""
        logged = self.over
        Exchange.abort(self)
        if logged:
            return
        if self.headers_sent:
            self._log(self.status, self._body_sent())
        else:  # as _fail logs a client gone before the head
            self.headers = None
            self._log(500, 0)

    def _body_sent(self) -> int:
        """Body bytes of the application's response (its head was sent)."""
        if self.bodiless:
            return 0
        if self.file is not None:  # sendfile: the offset reached (Exchange._pump_file keeps it)
            return self.file[1] - self.file_start
        if not self.keep_alive and not self.chunked and self.remaining == 0:
            # maybe more than the Content-Length was given: only that much was sent (_frame)
            return min(self.sent, next((int(value) for name, value in self.headers
                                        if name.lower() == "content-length"), self.sent))
        return self.sent

    def _log(self, status, sent: int) -> None:
        end = _clock()
        server = self.conn.server
        if server.access_log is not None:
            timings = RequestTimings(self.wall_start, self.called - self.parsed, end - self.called,
                                     end - self.parsed)
            server.access_log.log(self.environ, status or "500", self.headers or (), sent, timings)
        if server.metrics is not None:
            server.metrics.observe(status or "500", end - self.parsed)


class HookedExchange(ObservedExchange):
    __slots__ = ()

    def __init__(self, conn, head, body, keep_alive: bool):
        ObservedExchange.__init__(self, conn, head, body, keep_alive)
        self.environ["fastwsgi.body_sent"] = self.body_sent

    def _fail(self, exc: BaseException) -> None:
        if not self.headers_sent:
            self.bodiless = True  # the error response is the server's: none of the application's body
        ObservedExchange._fail(self, exc)

    def body_sent(self) -> int:
        """The body bytes sent so far (0 before the head): post_request's resp.sent."""
        return self._body_sent() if self.headers_sent and self.status is not None else 0


def exchange_class(access_log, metrics=None, post_request: bool = False) -> type:
    if post_request:
        return HookedExchange
    return ObservedExchange if access_log is not None or metrics is not None else Exchange
