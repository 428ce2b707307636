"""The uwsgi protocol on a listening socket: what nginx `uwsgi_pass` speaks (docs/uwsgi-spec.md).

Theory of operation. A listener bound as `uwsgi://...` (or any bind without a scheme under
`--protocol uwsgi`) creates a `UwsgiConnection` per accepted socket instead of the HTTP `Connection`
(`Listener.use_protocol` sets `connection_class`; the event loop does the rest). Everything after the
parser is the HTTP path, reused as is:

* parsing: the backend's `UwsgiParser` reads the packet (vars block, no body) and returns the same
  `Head` the HTTP parser does, whose `headers` are the packet's vars, CGI-named already; its
  `content_length` frames the body, which is received and read exactly as for HTTP (limit_request_body
  -> 413 before reading; received by the loop before the application is called, up to
  --request-buffering bytes (past 256 KiB in a temporary file), a 408 after read_timeout without a
  byte meanwhile; read_timeout, truncation errors). A malformed packet gets its status as a
  plain HTTP response and the connection closes, as for a malformed HTTP head; unlike an HTTP
  client's, it is logged (`parse_failed`): the peer is a front end we trust, so a bad packet is a
  misconfiguration (an HTTP client on the uwsgi socket, nginx's `uwsgi_modifier1`, a packet over
  --limit-request-head) that its clients only see as 400s. The warning on `fastwsgi.error` names
  the error, the peer and the first bytes received, rate-limited per server like the refusals
  below (`Server.uwsgi_errors`, one line per REFUSAL_LOG_INTERVAL with a count of those held back).
* environ: the listener's base, then the vars (the front end's REMOTE_ADDR, SERVER_NAME, SCRIPT_NAME,
  ... win), then the Head's request keys. `wsgi.url_scheme` becomes "https" when the vars say so
  (HTTPS on/1, or UWSGI_SCHEME https); it is put among the vars, so the environ build is untouched.
  Proxy headers (--forwarded-allow-ips) never apply: the connection's `trusted_proxies` is None, so
  HTTP_X_FORWARDED_* and HTTP_FORWARDED stay as the front end sent them and change nothing. nginx
  passes a client's own X-Forwarded-For through verbatim, and judging trust by REMOTE_ADDR (the
  client's address as the front end saw it, not the peer's) let any client choose its address and
  scheme; the front end states both in REMOTE_ADDR and HTTPS / UWSGI_SCHEME, as uWSGI takes them.
* response: nginx reads a uwsgi response until EOF and never reuses the connection, so the head is
  treated as HTTP/1.0 without keep-alive (`minor = 0`, `keep_alive` False from the parser): the
  exchange then answers `Connection: close` and frames a body without Content-Length by the close,
  never chunked. The status line, header validation, head cache and serializer are HTTP's.
* closing: after the response the connection closes. It closes at once when everything the peer
  will send has been read (the packet and the whole body), which sends a plain FIN; otherwise it takes
  the HTTP lingering close (shut down writing, discard input), so the front end reads the response
  instead of a reset. Input is discarded until the front end closes, goes quiet or LINGER_TOTAL
  (30 s) has passed (connection.py); the quiet gap allowed is LINGER_TIME (2 s) after a rejected
  packet or a 413, and read_timeout while a body the application left unread is still arriving, since
  nginx writes all of it before it reads the answer.

Admission: a TCP peer outside --uwsgi-allow-from (default 127.0.0.1,::1; "*" any) is closed at
accept, with a warning on `fastwsgi.error`, before a byte is read (`peer_filter`, on
`Listener.admits`). The warning is rate-limited per listener (fastwsgi.logs.Throttled): the first
refusal is logged at once, then at most one line per REFUSAL_LOG_INTERVAL seconds, which counts the
refusals held back since the previous line (a count left when a burst stops is logged by the event
loop's sweep once the interval has passed), so a client reconnecting in a loop cannot flood the log.
The address matching is fastwsgi.proxy.TrustedProxies, the --forwarded-allow-ips
matcher. UNIX-socket listeners admit every peer (the socket file's permissions decide who connects).
"""

import logging

from ..logs import Throttled
from ..proxy import TrustedProxies
from .connection import Connection

__all__ = ["UwsgiConnection", "peer_filter", "packet_warnings", "DEFAULT_ALLOW_FROM",
           "REFUSAL_LOG_INTERVAL"]

DEFAULT_ALLOW_FROM = "127.0.0.1,::1"  # the uwsgi_allow_from option's default
REFUSAL_LOG_INTERVAL = 10.0  # seconds between two refusal warnings of one listener

log = logging.getLogger("fastwsgi.error")


def peer_filter(spec=None):
    """The Listener.admits callable for a --uwsgi-allow-from list (None: the default), or None when
    every peer is allowed ("*"); each call makes one filter with its own refusal-warning throttle.
    Raises ValueError naming a bad entry."""
    allowed = TrustedProxies.parse(DEFAULT_ALLOW_FROM if spec is None else spec)
    if allowed.trust_all:
        return None
    is_allowed = allowed.is_trusted
    refusals = Throttled(log, "refused connections", REFUSAL_LOG_INTERVAL)

    def admits(addr) -> bool:
        if is_allowed(addr[0]):
            return True
        refusals.warn("uwsgi: refused a connection from %s (not in --uwsgi-allow-from %s)", addr[0],
                      allowed.spec)
        return False

    admits.flush_warnings = refusals.flush  # the event loop's sweep reports a burst that stopped
    return admits


def packet_warnings() -> Throttled:
    """The rate-limited warning of a server's malformed packets (Server.uwsgi_errors)."""
    return Throttled(log, "malformed uwsgi packets", REFUSAL_LOG_INTERVAL)


class UwsgiConnection(Connection):
    """A Connection whose requests arrive as uwsgi packets; one request per connection."""

    __slots__ = ()
    parser_name = "UwsgiParser"

    def __init__(self, server, sock, environ_base: dict):
        Connection.__init__(self, server, sock, environ_base)
        self.trusted_proxies = None  # the vars state the client's address and scheme (see above)

    def begin(self, head):
        head.minor = 0  # frame the response as for HTTP/1.0 without keep-alive: close-delimited
        headers = head.headers
        if ("HTTPS" in headers or "UWSGI_SCHEME" in headers) and (  # neither: plain http, the common case
                headers.get("HTTPS", "").lower() in ("on", "1")
                or headers.get("UWSGI_SCHEME", "").lower() == "https"):
            headers["wsgi.url_scheme"] = "https"
        return Connection.begin(self, head)

    def parse_failed(self, exc, data: bytes) -> None:
        peer = self.environ_base["REMOTE_ADDR"] or "a UNIX socket"
        self.server.uwsgi_errors.warn("uwsgi: malformed packet from %s: %s, answered %d and closed "
                                      "(received %r)", peer, exc.code, exc.status, data[:40])
        Connection.parse_failed(self, exc, data)

    def linger(self) -> None:
        body = self.body
        Connection.linger(self)  # closes at once when the packet and its body were read (keep_alive
        # is False, so the peer sends nothing more); else shuts down writing and discards input
        if self.lingering and body is not None and not body.complete:
            # the front end sends the whole body whatever the answer (nginx writes all of it before it
            # reads the response): wait for it as a body read waits (read_timeout between two reads),
            # or the close would reset nginx's write and turn the response into a 502
            self.linger_idle = self.server.read_timeout
            self.push_linger_deadline()
