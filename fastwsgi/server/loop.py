"""The event loop: one poller set over the listeners, the connections and a wakeup socket.

Theory of operation: `serve_forever` repeats one step: poll, refresh the coarse clock (`now`,
monotonic; a connection refreshes it too, after an application ran on this thread) and the
cached Date header (once per second), call the handler registered for each ready
descriptor, every `sweep_interval` close connections whose deadline passed, and (threads = 0) write the
turn's access-log lines in one go (accesslog.AccessLogger.hold). The poller is epoll on
Linux and poll(2) elsewhere (poller.py, which emulates what is said of epoll below: one-shot
registrations, and with `keeps_closed` the loop removes a closing connection's descriptor itself).
Level-triggered polling keeps the handlers simple: a connection reads once per wakeup and is called
again if more is waiting.

Listeners accept in batches while there is room under worker_connections; at the limit they leave the
poller set (new clients wait in the kernel backlog) and come back when a connection closes. With
threads = 0 each accepted socket is read at once (its request has usually arrived with the handshake)
and joins the poller set only if it outlives that read; TCP_NODELAY is set once on the listener, which
accepted sockets inherit (Linux; the BSD and XNU kernels copy TF_NODELAY from the listener too).

With --certfile the HTTP listeners' connections are tls.TLSConnection (the class is picked once per
listener, so plain connections pay nothing), and their environ says wsgi.url_scheme "https" and
HTTPS "on"; uwsgi listeners stay plain. With --proxy-protocol the HTTP listeners' class is the
proxyproto.reading_proxy_header subclass of that class, which reads the PROXY header and then becomes
the plain (or TLS) class.

With threads > 0 client sockets are EPOLLONESHOT: the event that delivered a head (or the end of a
body the loop received before the application runs: Connection.begin) disarms the socket, and the
parsed request is handed to the WorkerPool. The worker runs the application and writes the
response itself (blocking writes bounded by send_timeout). An idle connection is then re-armed by the
worker (one epoll_ctl; with poll(2), which reads its set only when a poll call begins, plus a byte to
the wakeup socket); one with pipelined input, a body to drain or a close pending goes on `returned`
with a byte to the wakeup socket, and the loop continues it. So a slow application never blocks the
loop, and a response never crosses threads as data.

`stop()` is safe from signal handlers and other threads: it sets a flag and wakes the loop (a stop
that comes before serve_forever makes it return at once; the flag is cleared when it returns).
`drain()` (SIGTERM, gunicorn's graceful stop) is too: the loop then stops accepting (the listeners
leave the poller set; a shared socket's queue is served by the other processes, and a --reuse-port
socket, whose queue is this process's alone, is closed so the kernel sends the address's new
connections to the other processes' sockets), turns keep-alive
off (every response from then on says `Connection: close`), closes each connection once it has been
idle for DRAIN_GRACE seconds (since its last response, or its accept if it has sent nothing yet;
checked every DRAIN_SWEEP seconds), never one whose next request already waits in the socket, and
returns from serve_forever when no connection is left or `graceful_timeout` passed since drain() (it then
logs how many connections it cuts, and a timer thread started by drain() stops the loop even while,
with threads = 0, the loop thread is in the application waiting for a stalled client). Not at once: a
proxy's keep-alive pool (nginx `keepalive`) sends its next request on the connection it used last, and
closing that connection as nginx writes to it fails the request, which nginx retries only for an
idempotent method (a POST becomes a 502). Left open a moment, the connections nginx is using get
their next request answered with `Connection: close`, and nginx closes them; only connections it has
not used for DRAIN_GRACE are closed under it. Closing an idle connection still races a request
crossing the FIN on the wire: HTTP/1.1 has no way around that (the keep-alive timeout has the same
race; measured in benchmarks/results/hup-nginx-2026-11-24.md). The sweep,
not the per-request path, also runs `on_sweep` (a pre-fork worker's heartbeat); a worker's
--max-requests is counted per response instead (`requests_limit`, checked in response_complete).

`server_close()` gives application threads up to 5 s to finish after a stop (after a graceful one,
what is left of its timeout), but `stop()` and `server_close()` at once wake application code waiting
for its client (`abandon_waits`, Connection.abandon_wait): a client that stopped reading or sending
would otherwise hold it for --send-timeout or --read-timeout, past a pre-fork master's fast-stop
SIGKILL (with threads = 0 the wait is on the loop thread itself, which a stop cannot otherwise reach).
"""

import _thread
import collections
import functools
import logging
import signal
import socket
import sys
import threading
import time
from email.utils import formatdate

from ..parser import Limits, get_backend
from .connection import Connection
from .filewrapper import FileWrapper, ReadingFileWrapper
from .instrumented import exchange_class
from .mount import mounted
from .poller import IN, poller_class
from .pool import WorkerPool
from .proxyproto import ProxyProtocol, reading_proxy_header
from .tls import TLSConnection
from .uwsgi import packet_warnings
from .wsgi import NO_HEAD_YET, exchange_on_stack

__all__ = ["Server"]

log = logging.getLogger("fastwsgi.error")
# graceful stop: an idle connection is closed once it has been idle this long (see the module docstring)
DRAIN_GRACE = 1.0
DRAIN_SWEEP = 0.25  # seconds between the sweeps of a draining server (they close the idle connections)


class Server:
    """Listeners + poller + connections (+ worker pool), configured by validated options."""

    timeout = None  # socketserver compatibility: handle_request() waits forever

    def __init__(self, app, listeners, options: dict, access_log=None, multiprocess: bool = False,
                 metrics=None, ssl_context=None):
        poller_cls = poller_class()  # first: raises UnsupportedPlatform before any thread starts
        self.url_prefix = options.get("url_prefix")
        self.set_app(app)
        self.listeners = list(listeners)
        self.backend = get_backend(options["http_parser"])
        self.limits = Limits(
            max_request_line=options["limit_request_line"],
            max_header_line=options["limit_request_field_size"],
            max_header_count=options["limit_request_fields"],
            max_head_size=options["limit_request_head"],
            allow_bare_lf=options["allow_bare_lf"],
            allow_missing_host=options["allow_missing_host"],
        )
        self.header_timeout = options["header_timeout"]
        self.defer_accept = options["defer_accept"]
        self.read_timeout = options["read_timeout"]
        self.keep_alive = options["keep_alive"]
        self.keep_alive_enabled = self.keep_alive > 0
        self.send_timeout = options["send_timeout"]
        self.limit_request_body = options["limit_request_body"]
        # --request-buffering: bytes of a body received before its application is called (unset: the
        # whole body, 0: none, the application streams every body). Unset is no bound at all, not
        # limit_request_body: a chunked body that has reached the limit is not whole yet, and its
        # application would meet the 413 in its read (the body does the limit's checks)
        buffering = options.get("request_buffering")
        self.request_buffering = buffering if buffering is not None else sys.maxsize
        self.tmp_upload_dir = options.get("tmp_upload_dir")  # (None: tempfile's, $TMPDIR)
        self.max_connections = options["worker_connections"]
        self.graceful_timeout = options.get("graceful_timeout", 30.0)
        self.trusted_proxies = _trusted_proxies(options.get("forwarded_allow_ips", "127.0.0.1,::1"),
                                                options.get("forwarded_headers", "x-forwarded"))
        self.access_log = access_log
        self.metrics = metrics
        self.exchange_class = exchange_class(access_log, metrics, options.get("post_request") is not None)
        # TLS on the HTTP listeners: the caller's tls.make_context(options) (a pre-fork master's,
        # inherited); None: plain HTTP
        self.ssl_context = ssl_context
        # --proxy-protocol: HTTP connections from --proxy-allow-from peers begin with a PROXY header
        self.proxy_protocol = (ProxyProtocol(options.get("proxy_allow_from", "127.0.0.1,::1"))
                               if options.get("proxy_protocol") else None)
        self.on_sweep = None  # called at each sweep (pre-fork worker: heartbeat, max requests)
        # called by the drain timer's thread when --graceful-timeout passed while an application runs
        # on the loop thread (threads = 0): the command signals its main thread, whose TERM handler
        # interrupts that application (wsgi.interrupt_application). Called under _overdue_lock, which
        # serve_forever takes on its way out: no signal comes once it has returned, when the caller
        # puts its own handlers back (SIGTERM's default would kill the process)
        self.on_overdue = None
        self._overdue_lock = _thread.allocate_lock()
        self._loop_thread = None
        self.multiprocess = multiprocess
        timeouts = [t for t in (self.header_timeout, self.read_timeout, self.keep_alive,
                                self.send_timeout) if t > 0]
        self.sweep_interval = min(1.0, max(0.01, min(timeouts) / 4))

        threads = options["threads"]
        self.pool = WorkerPool(threads) if threads > 0 else None
        # threads = 0: every line is logged on this thread, so a loop turn's lines leave in one write
        self.access_log_held = access_log is not None and self.pool is None and access_log.hold()
        # threads > 0: client sockets are one-shot, so a socket owned by a worker stays registered
        # but silent, and the worker re-arms it when done
        self.oneshot = poller_cls.ONESHOT if threads > 0 else 0
        self.returned = collections.deque()
        self._wake_pending = False
        self.requests_done = 0
        # a pre-fork worker's --max-requests: once requests_done reaches requests_limit,
        # on_requests_limit() is called by whichever thread completed that request
        self.requests_limit = sys.maxsize
        self.on_requests_limit = None

        # parsers of closed connections, reset, for new ones: Connection.parser_name -> list
        self.spare_parsers = collections.defaultdict(list)
        self.now = time.monotonic()
        self.head_cache = {}
        # ((status, headers as a list, method, minor, keep, date), decision) of the last cached
        # head: Exchange._head tries it before head_cache
        self.last_head = NO_HEAD_YET
        self._refresh_date(self.now)
        self._next_sweep = self.now + self.sweep_interval

        self.poller = poller = poller_cls(oneshot=threads > 0)
        # a worker's re-arm: epoll's own modify; poll(2) sees it at its next call, so that wakes the loop
        self.rearm = self._rearm_and_wake if poller.changes_need_wake else poller.modify
        if poller.keeps_closed:  # poll(2): a closed descriptor stays in the set unless removed
            self.forget = self._discard_and_forget
        self.handlers = {}
        self.connections = {}
        self._accepting = True
        self._retry_accept = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._register(self._wake_r.fileno(), self._on_wake)

        self._environ_bases = {}
        # PEP 3333: SERVER_PORT is never empty; a unix socket has no port, so the scheme's default
        default_port = "443" if options["url_scheme"] == "https" else "80"
        for listener in self.listeners:
            tls = self.speaks_tls(listener)
            self._environ_bases[listener] = base = {
                "SCRIPT_NAME": "",
                "SERVER_NAME": listener.server_name,
                "SERVER_PORT": listener.server_port or ("443" if tls else default_port),
                "REMOTE_ADDR": "",
                "REMOTE_PORT": "",
                "wsgi.version": (1, 0),
                "wsgi.url_scheme": "https" if tls else options["url_scheme"],
                "wsgi.errors": sys.stderr,
                "wsgi.multithread": threads > 0,
                "wsgi.multiprocess": multiprocess,
                "wsgi.run_once": False,
                "wsgi.input_terminated": True,
                "wsgi.file_wrapper": FileWrapper if options["sendfile"] else ReadingFileWrapper,
            }
            if tls:
                base["HTTPS"] = "on"  # what CGI servers (and uwsgi behind nginx) say
            self._register(listener.fileno(), self._accept_handler(listener))
        # rate-limited warnings of the listeners' peer filters (uwsgi refusals): counts held back
        # when a burst stops are logged by the sweep
        self._warning_flushes = [listener.admits.flush_warnings for listener in self.listeners
                                 if getattr(listener.admits, "flush_warnings", None) is not None]
        if self.proxy_protocol is not None:
            self._warning_flushes.append(self.proxy_protocol.errors.flush)
        self.uwsgi_errors = packet_warnings()  # malformed uwsgi packets (UwsgiConnection.parse_failed)
        if any(listener.protocol == "uwsgi" for listener in self.listeners):
            self._warning_flushes.append(self.uwsgi_errors.flush)

        self._stopping = False
        self._drain_requested = False
        self.draining = False
        self._drain_deadline = 0.0
        self._stopped = threading.Event()
        self._stopped.set()
        self._closed = False
        self.waits_abandoned = False  # stop(), server_close(): the application stops waiting for clients

    # -- wsgiref.simple_server compatibility -------------------------------------------------

    @property
    def server_address(self):
        first = self.listeners[0]
        return (first.host, first.port) if first.is_tcp else first.host

    @property
    def server_port(self):
        return self.listeners[0].port

    @property
    def server_name(self) -> str:
        """The SERVER_NAME of the first listener's environ (wsgiref: its host's FQDN, which takes a
        DNS lookup)."""
        return self.listeners[0].server_name

    @property
    def socket(self) -> socket.socket:
        return self.listeners[0].sock

    def fileno(self) -> int:
        return self.listeners[0].fileno()

    def get_app(self):
        return self.application

    def set_app(self, application) -> None:
        """wsgiref's: the next request is answered by `application` (under --url-prefix's mount)."""
        self.application = application
        self.app = mounted(application, self.url_prefix)  # --url-prefix: a middleware, else app

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.server_close()

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until stop() or shutdown(); one that came before this call counts too (a signal
        between installing the handlers and this call), as in socketserver."""
        self._stopped.clear()
        self._loop_thread = _thread.get_ident()
        self.keep_alive_enabled = self.keep_alive > 0  # again, after a stop()
        self.waits_abandoned = self._closed
        timeout = min(poll_interval, self.sweep_interval)
        try:
            while not self._stopping:
                self._step(timeout)
        finally:
            with self._overdue_lock:
                self._stopping = False
                self._stopped.set()

    def handle_request(self) -> None:
        """Serve until one more request has been answered and its response sent, as wsgiref's does
        (a slow reader is bounded by send_timeout), or until self.timeout passes."""
        target = self.requests_done + 1
        end = None if self.timeout is None else time.monotonic() + self.timeout
        while (self.requests_done < target or self._sending()) and not self._stopping:
            wait = self.sweep_interval
            if end is not None:
                wait = min(wait, end - time.monotonic())
                if wait <= 0:
                    return
            self._step(wait)

    def _sending(self) -> bool:
        return any(conn.out or conn.exchange is not None or conn.in_worker for conn in self.connections.values())

    def sweep_every(self, seconds: float) -> None:
        """Sweep (and call on_sweep) at least every `seconds`: a pre-fork worker's heartbeat must beat
        several times per --timeout, however long the connection timeouts are."""
        self.sweep_interval = min(self.sweep_interval, max(0.01, seconds))
        self._next_sweep = min(self._next_sweep, self.now + self.sweep_interval)

    def stop(self) -> None:
        """Ask serve_forever to return; safe from signal handlers and other threads. A wait for a
        client inside the application ends now too (threads = 0: the signal handler runs on the loop
        thread while it waits there, and the wait would otherwise last up to --read-timeout)."""
        self._stopping = True
        self.keep_alive_enabled = False
        self.abandon_waits()
        self.wake()

    def abandon_waits(self) -> None:
        """Application code waiting for its client (Connection._wait: a send to a client that stopped
        reading, a body that stopped arriving) stops waiting, and no new wait begins."""
        self.waits_abandoned = True  # first: a wait that begins after the scan below sees it
        for conn in list(self.connections.values()):
            if conn.waiting:
                conn.abandon_wait()

    def drain(self) -> None:
        """Graceful stop: finish what is in flight, then return from serve_forever. Safe from signal
        handlers and other threads (the loop does the work in _on_wake). --graceful-timeout counts
        from here."""
        if not self._drain_requested:
            self._drain_requested = True
            self._drain_deadline = time.monotonic() + self.graceful_timeout
            # the loop's sweeps enforce the deadline, but with threads = 0 the loop thread may be in
            # the application, waiting for its client (an upload that stopped): the timer cuts that
            # wait. (_thread, not threading: a signal handler may run while this thread holds one of
            # threading's locks, which Thread.start takes)
            _thread.start_new_thread(self._drain_timer, (self.graceful_timeout,))
        self.keep_alive_enabled = False  # at once: a response in progress says Connection: close
        self.wake()

    def _drain_timer(self, seconds: float) -> None:
        time.sleep(seconds)
        if not self._closed and not self._stopped.is_set():
            self._cut_drain()
            with self._overdue_lock:
                if (self.on_overdue is not None and not self._stopped.is_set()
                        and exchange_on_stack(sys._current_frames().get(self._loop_thread))):
                    self.on_overdue()

    def signal_when_overdue(self) -> None:
        """Called on the thread whose SIGTERM handler drains (the main thread): on_overdue sends it
        SIGTERM again, so that handler interrupts the application left running (drain_overdue)."""
        self.on_overdue = functools.partial(signal.pthread_kill, threading.get_ident(), signal.SIGTERM)

    def drain_overdue(self) -> bool:
        """A graceful stop whose --graceful-timeout has passed."""
        return self._drain_requested and time.monotonic() >= self._drain_deadline

    def _cut_drain(self) -> None:
        """--graceful-timeout passed: stop, cutting what is still in progress (and say so)."""
        if self._stopping:
            return
        if self.connections:
            log.warning("Graceful stop: --graceful-timeout (%g s) passed: closing %d connection(s) "
                        "still in progress", self.graceful_timeout, len(self.connections))
        self.stop()

    def shutdown(self) -> None:
        """Stop serve_forever and wait for it to return (call from another thread)."""
        self.stop()
        self._stopped.wait()

    def server_close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for listener in self.listeners:
            listener.close()
        if self.pool is not None:  # in-flight requests may finish: within 5 s, or what is left of
            # --graceful-timeout after a graceful stop (none once it has passed: it is the bound)
            budget = max(0.0, self._drain_deadline - time.monotonic()) if self.draining else 5.0
            # but an application thread waiting for its client (a send to one that stopped reading, a
            # body that stopped arriving) would wait up to --send-timeout / --read-timeout per step:
            # each such wait is cut now, as the loop's own connections are closed now
            self.abandon_waits()
            self.pool.shutdown(budget)
        for conn in list(self.connections.values()):
            conn.close()
        if self.access_log_held:
            self.access_log.flush()  # the lines of the exchanges just closed
        self.poller.close()
        self._wake_r.close()
        self._wake_w.close()

    def speaks_tls(self, listener) -> bool:
        """TLS is terminated on the HTTP listeners when there is a context; uwsgi stays plain."""
        return self.ssl_context is not None and listener.connection_class is None

    # -- the loop -----------------------------------------------------------------------------

    def _step(self, timeout: float) -> None:
        poll = self.poller.poll  # loaded, then called (Exchange.run says why)
        events = poll(timeout)
        self.now = now = time.monotonic()
        if now >= self._date_expires:
            self._refresh_date(now)
        handlers = self.handlers
        for fd, mask in events:
            if self._stopping:  # stop() came (a signal during the poll or a handler): begin no request
                break
            handler = handlers.get(fd)
            if handler is not None:
                try:
                    handler(mask)
                except Exception:
                    self._internal_error(fd)
        if now >= self._next_sweep:
            self._next_sweep = now + self.sweep_interval
            self._sweep(now)
        if self.access_log_held:
            self.access_log.flush()

    def _refresh_date(self, now: float) -> None:
        """Recompute the Date header (RFC 9110 §6.6.1) at each wall-clock second."""
        wall = time.time()
        self.date = formatdate(wall, usegmt=True)
        self.head_cache.clear()
        self._date_expires = now + (1.0 - wall % 1.0)

    def _sweep(self, now: float) -> None:
        if self.on_sweep is not None:
            self.on_sweep()
        for flush in self._warning_flushes:
            flush()
        if self.draining:
            self._drain_step(now)
        if self._retry_accept:
            self._retry_accept = False
            self._resume_accepting()
        for conn in list(self.connections.values()):
            if conn.deadline < now and not conn.in_worker and not conn.closed:
                conn.on_timeout()

    def _internal_error(self, fd: int) -> None:
        log.exception("Internal error on descriptor %d", fd)
        conn = self.connections.get(fd)
        if conn is not None:
            conn.broken = True
            conn.close()

    def _register(self, fd: int, handler) -> None:
        self.handlers[fd] = handler
        self.poller.register(fd, IN)

    # -- listeners ------------------------------------------------------------------------------

    def _accept_handler(self, listener):
        base = self._environ_bases[listener]
        is_tcp = listener.is_tcp
        if is_tcp:  # accepted sockets inherit TCP_NODELAY from the listener: no call per accept
            listener.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            listener.defer_accept(self.defer_accept)
        connection_class = listener.connection_class or (
            TLSConnection if self.speaks_tls(listener) else Connection)
        if self.proxy_protocol is not None and listener.connection_class is None:
            # HTTP listeners only (uwsgi packets carry the client's address themselves)
            connection_class = reading_proxy_header(connection_class)
        admits = listener.admits  # None: every peer may connect
        connections, handlers = self.connections, self.handlers
        # threads = 0: read at once (a client sends its request right after the handshake, and a
        # deferred accept waits for it; nginx writes its uwsgi packet right after connecting to a
        # UNIX socket: measured, that read found it every time); settle() registers the socket only
        # if the connection outlives that read. With threads > 0 the one-shot registration must
        # exist before a worker can re-arm it.
        read_first = self.pool is None

        def on_accept(_mask):
            if not self._accepting:  # paused (a drain began, or the connection limit) by an
                return  # earlier event of this poll batch: queued connections are for others
            room = self.max_connections - len(connections)
            for sock, addr in listener.accept_batch(room):
                if admits is not None and not admits(addr):
                    sock.close()
                    continue
                sock.setblocking(False)
                environ = base.copy()
                if is_tcp:
                    environ["REMOTE_ADDR"] = addr[0]
                    environ["REMOTE_PORT"] = str(addr[1])
                conn = connection_class(self, sock, environ)
                fd = conn.fd
                connections[fd] = conn
                handlers[fd] = conn.on_event
                if read_first and not self._stopping:  # (a stop from an earlier one's application:
                    try:  # the rest of the batch is only registered, as _step begins no request)
                        conn.on_event(IN)
                    except Exception:
                        self._internal_error(fd)
                        continue
                    if conn.events or conn.closed:
                        continue
                conn.watch(IN)
            if len(self.connections) >= self.max_connections:
                self._pause_accepting()
            elif listener.exhausted:  # EMFILE & co: retry at the next sweep, do not spin
                listener.exhausted = False
                log.warning("cannot accept connections (out of file descriptors or memory)")
                self._pause_accepting()
                self._retry_accept = True

        return on_accept

    def _pause_accepting(self) -> None:
        if self._accepting:
            self._accepting = False
            for listener in self.listeners:
                self.poller.unregister(listener.fileno())

    def _resume_accepting(self) -> None:
        if not self._accepting and not self._closed and not self.draining:
            self._accepting = True
            for listener in self.listeners:
                self.poller.register(listener.fileno(), IN)

    def forget(self, conn) -> None:
        """A connection closed (its descriptor leaves epoll when the socket closes; see
        _discard_and_forget for poll(2))."""
        del self.connections[conn.fd]
        del self.handlers[conn.fd]
        if self.draining and not self.connections:
            self._stopping = True
        if not self._accepting and not self._retry_accept and len(self.connections) < self.max_connections:
            self._resume_accepting()

    def _discard_and_forget(self, conn) -> None:
        """forget() for a poller that keeps closed descriptors (set as `forget` in __init__)."""
        self.poller.discard(conn.fd)
        Server.forget(self, conn)

    # -- threads > 0 -----------------------------------------------------------------------------

    def dispatch(self, conn, exchange) -> None:
        """Hand one exchange to the pool. The socket's one-shot registration fired to get here, so
        the poller reports nothing for it until it is re-armed."""
        self.pool.submit(self._run_in_worker, conn, exchange)

    def _run_in_worker(self, conn, exchange) -> None:
        try:
            exchange.run()
        except BaseException:  # SystemExit & co from the application (the pool logs it)
            conn.must_close = True  # no response is coming: close rather than wait for a next request
            raise
        finally:
            if (conn.inbuf or conn.body is not None or conn.must_close or conn.read_eof or conn.broken
                    or conn.out or self._stopping):
                # pipelined input, a body to drain, a close or the client's EOF: the loop takes over
                self.returned.append(conn)
                if not self._wake_pending:  # read after the append: see _on_wake
                    self._wake_pending = True
                    self.wake()
            else:
                # the common case: idle keep-alive connection; re-arm it from here (one epoll_ctl,
                # no loop wakeup). Nothing touches `conn` in this thread after the re-arm.
                conn.deadline = self.now + self.keep_alive
                conn.events = IN
                conn.in_worker = False
                try:
                    self.rearm(conn.fd, IN | self.oneshot)
                except (OSError, ValueError):  # the server is closing
                    pass

    def _rearm_and_wake(self, fd: int, mask: int) -> None:
        """`rearm` for poll(2): its set reaches the kernel when a poll call begins, so a loop already
        waiting would not see the socket until some other event or its timeout; wake it (one byte
        per wakeup, as for `returned`: a worker that still sees the flag set is covered by the
        step the pending byte causes, which polls again after this modify)."""
        self.poller.modify(fd, mask)
        if not self._wake_pending:
            self._wake_pending = True
            self.wake()

    def wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:  # the buffer is full (a wakeup is pending anyway) or we are closing
            pass

    def _on_wake(self, _mask) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        # after draining, before popping: a worker that still sees True appended before this line
        self._wake_pending = False
        if self._drain_requested and not self.draining:
            self._start_drain()
        returned = self.returned
        while returned:
            conn = returned.popleft()
            if self._closed:
                conn.close()
            else:
                conn.resume()

    # -- graceful stop -----------------------------------------------------------------------------

    def _start_drain(self) -> None:
        log.info("Graceful stop: finishing %d open connection(s) within %g s (--graceful-timeout)",
                 len(self.connections), self.graceful_timeout)
        self.draining = True
        self.keep_alive_enabled = False  # every response from now on says Connection: close
        self.sweep_every(DRAIN_SWEEP)
        self._pause_accepting()
        for listener in self.listeners:
            # --reuse-port: nobody else accepts from this socket's queue. Closed now, the kernel
            # sends the address's new connections to the other processes' sockets (and moves the
            # queued ones there too with net.ipv4.tcp_migrate_req=1)
            if listener.queue_of_its_own:
                listener.close()
        self._drain_step(self.now)

    def _drain_step(self, now: float) -> None:
        """Close the idle connections; stop when none is left or the graceful timeout passed."""
        if now >= self._drain_deadline:
            self._cut_drain()
            return
        quiet_since = now - DRAIN_GRACE
        for conn in list(self.connections.values()):
            if conn.idle() and conn.idle_since() < quiet_since and not conn.input_waiting():
                conn.close()
        if not self.connections:
            self._stopping = True


def _trusted_proxies(spec: str, headers: str):
    from ..proxy import TrustedProxies

    return TrustedProxies.parse(spec, headers=headers)
