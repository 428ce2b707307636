"""Exchange subclasses chosen once at startup: proxy headers on every request, measuring on demand.

Theory of operation: the connection creates `server.exchange_class(...)` for each request, and the
server picks that class once from its options, so a feature that is off costs nothing per request:

* `ProxiedExchange` (always): after the environ is built, `fastwsgi.proxy.apply_forwarded` applies
  X-Forwarded-*/Forwarded from trusted peers (--forwarded-allow-ips) and removes them from anyone
  else. Without any forwarding header that is four dict look-ups.
* `ObservedExchange` (--access-logfile or --metrics-bind): also notes when the head was parsed, when
  the application was called and the body bytes it produced; when the response is complete (or
  failed) it writes one access-log line with `RequestTimings` (queue wait, application time, total)
  and/or records the status and duration in the shared metrics.
"""

import time

from ..accesslog import RequestTimings
from ..proxy import apply_forwarded
from .body import BodyError
from .wsgi import Exchange, error_parts

__all__ = ["ProxiedExchange", "ObservedExchange", "exchange_class"]

_clock = time.perf_counter


class ProxiedExchange(Exchange):
    __slots__ = ()

    def __init__(self, conn, head, body, keep_alive: bool):
        Exchange.__init__(self, conn, head, body, keep_alive)
        apply_forwarded(self.environ, conn.server.trusted_proxies)


class ObservedExchange(ProxiedExchange):
    __slots__ = ("wall_start", "parsed", "called", "sent")

    def __init__(self, conn, head, body, keep_alive: bool):
        self.wall_start = time.time()
        self.parsed = self.called = _clock()
        self.sent = 0
        ProxiedExchange.__init__(self, conn, head, body, keep_alive)

    def run(self) -> bool:
        self.called = _clock()
        return Exchange.run(self)

    def _send_whole(self, body: bytes) -> None:
        self.sent = len(body)
        Exchange._send_whole(self, body)

    def _send_chunk(self, chunk) -> None:
        self.sent += len(chunk)
        Exchange._send_chunk(self, chunk)

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
                self._log(status, len(body))

    def _body_sent(self) -> int:
        """Body bytes of the application's response (its head was sent)."""
        if self.bodiless:
            return 0
        if self.file is not None:  # sendfile: the length the head announced
            return next((int(value) for name, value in self.headers or ()
                         if name.lower() == "content-length" and value.isdigit()), 0)
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


def exchange_class(access_log, metrics=None) -> type:
    return ObservedExchange if access_log is not None or metrics is not None else ProxiedExchange
