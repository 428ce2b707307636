"""One client socket: input buffer -> parser -> exchanges in order -> output buffer -> socket.

Theory of operation. The event loop calls `on_event` when the socket is readable or writable. A read
appends to `inbuf` and `process()` parses as many pipelined requests as it can, one at a time: each
complete head becomes an `Exchange` (wsgi.py), run on the loop thread (threads=0) or handed to the
worker pool (threads>0: the socket's one-shot registration in the loop's poller stays disarmed until
the exchange is over) once its body is in (`begin`): a body that did not come with its head is
received by the loop first, event by event, while the exchange waits in `receiving`, until all of it
or --request-buffering bytes of it have come (`server.request_buffering`; the first LOOKAHEAD bytes
in memory, the rest in a temporary file: body.py), so a client that trickles its body holds no
thread. Not when the client waits for 100 Continue, which only the application's read asks for, nor
with --request-buffering 0, where the application streams every body. A body found malformed, over
--limit-request-body, or impossible to keep while it is received first is answered (400, 413, 500:
`refused_received`) without calling the application.
Responses are appended to `out`, and `settle()` sends them with one send() per wakeup, so pipelined
responses leave together and in order. A response larger than the socket can take keeps the exchange
suspended (its iterator is resumed when the socket is writable: OUT); no new pipelined request starts
while the output holds OUTPUT_HIGH_WATER bytes; and the connection stops reading once `LOOKAHEAD`
bytes of unprocessed input are buffered behind a pending response (bounded look-ahead), so neither
buffer grows without bound however the client pipelines.

Unread request bodies are drained from the input so the next head is never parsed out of body bytes.
Whether that is worth it is decided before the response head goes out, which says whether the
connection stays open (`can_drain`): a Content-Length body with up to DRAIN_LIMIT bytes still to come
is read and discarded after the response; a chunked body, whose size is unknown until its last chunk,
only when the whole rest of it (trailers included) has arrived and decodes to at most DRAIN_LIMIT
bytes (RequestBody.buffer_rest: the decoded bytes stay readable by the application). "Arrived" means
buffered, or waiting in the socket: clients write the head and the body in separate sends, so the
body often reaches the socket while the application runs, and the socket is read (`recv_now`,
non-blocking, at most DRAIN_LIMIT bytes ahead) until the body's end or until nothing more waits;
the client is never waited for. Any other, and one whose framing is invalid, gets Connection: close. Rejections and "Connection:
close" responses end with a lingering close (RFC 9112 §9.6): shutdown(SHUT_WR), then input is read
and discarded until the client closes, until no byte has arrived for LINGER_TIME (at most
read_timeout), or until LINGER_TOTAL has passed since the shutdown, whichever comes first (nginx's
lingering_timeout and lingering_time). There is no byte cap: a close while the client still sends
makes the kernel answer with a reset, which destroys the response the client has not read yet, so a
client that writes all of a refused body before it reads gets its 413 whatever the body's size. A
client that trickles bytes holds the socket for LINGER_TOTAL at most. The one exception is a client
that said it sends nothing more (`Connection: close`, or HTTP/1.0 without keep-alive) and whose
request we read to its last byte, with nothing buffered behind it: no unread input can turn the
close into a reset, so the socket is closed at once (a plain FIN).

A new connection is not in the poller set until it needs to be: the loop reads it once right after
accept (threads = 0) and `settle()` registers it only if it outlives that read, so a one-request
connection costs accept, recv, send and close, and no epoll_ctl. The interest masks are poller.IN
and poller.OUT (epoll's and poll(2)'s bits are equal); `on_event` gets the poller's mask as it is.
Parsers of closed connections are reset and kept (up to SPARE_PARSERS) for new ones.

Timeouts are deadlines checked by the loop's periodic sweep: header_timeout from the first byte of a
head (from accept for the first one), keep_alive while idle between requests, read_timeout while
receiving a body before its application runs (then a 408, `body_timed_out`) or draining one after
its response, send_timeout while output is stuck, and the lingering close's bounds (each
discarded read moves the deadline to `linger_idle` later, never past `linger_end`). They count from
the loop's clock (`server.now`), which is read again each time the application has run on the loop
thread (threads = 0: `begin`, and `settle` after pump): an application slower than --keep-alive
would otherwise leave its connection (and those served after it in the same loop turn) with a
deadline already past, closed at the next sweep. Reads and
writes that must wait inside the application (wsgi.input, write(), a worker's response) wait with
poll() on this socket only, for at most read_timeout / send_timeout per step; a fast stop, and the
close of the server (also after a graceful stop's timeout), wake such a wait by shutting the socket
down (`abandon_wait`), so a client that stopped reading or sending cannot hold a stopping server.

The connection marks itself `broken` when the client's side fails (reset, EOF inside a body, timeout):
such failures end the exchange quietly. A client's EOF between requests (it shut its side down; over
TLS, its close_notify) is `read_eof`, not `must_close`: the complete requests read before it are still
answered, in order, whatever is in progress when it arrives, and then the connection closes.
"""

import os
import select
import socket
import struct
from time import monotonic

from ..errors import ParseError
from .body import DRAIN_LIMIT, EMPTY_BODY, LOOKAHEAD, BodyError, RequestBody
from .poller import IN, OUT
from .wsgi import OUTPUT_HIGH_WATER, error_response

__all__ = ["Connection"]

READ_SIZE = 65536
LINGER_TIME = 2.0  # lingering close: seconds without input (at most read_timeout) before closing
LINGER_TOTAL = 30.0  # lingering close: seconds from shutdown(SHUT_WR) to the close, at most
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 seconds: close() sends a reset
SPARE_PARSERS = 64  # parsers of closed connections kept for new ones (creating one costs microseconds)


class Connection:
    __slots__ = ("server", "sock", "fd", "environ_base", "parser", "inbuf", "out", "out_size",
                 "exchange", "body", "in_worker", "must_close", "broken", "closed", "lingering",
                 "read_eof", "head_started", "head_deadline", "send_deadline", "deadline", "events",
                 "linger_idle", "linger_end", "output_full", "peer_done", "environ_head",
                 "environ_whole", "trusted_proxies", "cut_short", "close_delimited", "waiting",
                 "receiving")

    def __init__(self, server, sock: socket.socket, environ_base: dict):
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.environ_base = environ_base
        self.parser = self.new_parser(server)
        self.inbuf = b""
        self.out = []
        self.out_size = 0
        self.exchange = None  # a response suspended until the socket drains (loop thread only)
        self.body = None  # the current request's body until it is fully read or drained
        self.receiving = None  # the exchange whose body the loop receives before it runs (begin)
        self.in_worker = False  # a worker thread owns the connection
        self.waiting = False  # the application waits in _wait for this socket (see abandon_wait)
        self.must_close = False  # close once the current output is sent (no request after it is run)
        self.broken = False  # the client's side failed: nothing more can be said
        self.cut_short = False  # an error ended the response after its head: reset, don't FIN
        self.close_delimited = False  # the response in flight ends at the close (wsgi.py: no length)
        self.closed = False
        self.lingering = False
        self.read_eof = False  # the client sends nothing more: answer the complete requests, then close
        self.head_started = True  # the first head's deadline runs from accept
        self.head_deadline = self.deadline = server.now + server.header_timeout
        self.send_deadline = 0.0
        self.events = 0  # the poller interest; 0 until the loop or settle() registers the socket
        self.linger_idle = 0.0  # lingering: the longest gap between two reads
        self.linger_end = 0.0  # lingering: the close comes by then, however the client sends
        self.output_full = False  # process() stopped at the output high-water mark
        self.peer_done = False  # the last request said the client sends nothing more (close)
        self.environ_head = None  # the last request's Head, and (its environ untouched, whether that
        self.environ_whole = None  # holds a proxy header) from its second request on (wsgi.py)
        self.trusted_proxies = server.trusted_proxies  # whose proxy headers apply (fastwsgi.proxy)

    parser_name = "RequestParser"  # the parser backend's class for this connection's protocol

    def new_parser(self, server):
        """The parser for this connection's requests: a spare one (reset) or a new one."""
        spare = server.spare_parsers[self.parser_name]
        return spare.pop() if spare else getattr(server.backend, self.parser_name)(server.limits)

    # -- events from the loop -----------------------------------------------------------------

    def on_event(self, events: int) -> None:
        if events & OUT:
            self.on_writable()
            if self.closed or events == OUT:
                return
        # readable (or an error to find out about): one recv, inline (the per-request path)
        try:
            data = self.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):  # a wakeup another reader beat
            self.rearm()
            return
        except OSError:
            self.broken = True
            self.close()
            return
        if self.lingering:  # discard; input pushes the idle deadline on, never past linger_end
            if not data:
                self.close()
                return
            self.push_linger_deadline()
            self.rearm()  # keep reading
            return
        if data:
            self.inbuf = self.inbuf + data if self.inbuf else data
            if self.exchange is None:
                self.process()
        else:  # the client shut down its side: answer what is complete, then close (settle)
            self.read_eof = True
        self.settle()

    def rearm(self) -> None:
        """An event was handled without settle() (nothing to read, part of a TLS record, input
        discarded while lingering): with threads > 0 the one-shot registration it spent is armed
        again with the same interest, or the connection would hear nothing more until its deadline
        closed it. The deadline stays."""
        if self.server.oneshot:
            self.watch(self.events)

    def on_writable(self) -> None:
        """The socket takes output again: the client is reading, so --send-timeout, which bounds a
        stall, counts from now (a sendfile, or a send that took everything, moves no deadline)."""
        self.send_deadline = self.server.now + self.server.send_timeout
        self.settle()

    def on_timeout(self) -> None:
        """A deadline passed: close (a body received before its application runs gets a 408 first:
        body_timed_out). Not when it is the keep-alive deadline and the next request has
        already reached the socket (the sweep runs after the poll that would have reported it):
        closing would reset a request the client has sent, which nginx cannot retry if it is a POST.
        That request is served (the poller reports it at once) under a head deadline."""
        if self.receiving is not None and not self.out:  # (output stuck: a send timeout)
            self.body_timed_out()
            return
        if not self.head_started and self.idle() and self.input_waiting():
            self.deadline = self.server.now + self.server.header_timeout
            return
        self.expire()

    def expire(self) -> None:
        """Close after a deadline (the client was too slow, or idle too long)."""
        self.broken = True
        self.close()

    # -- requests ---------------------------------------------------------------------------------

    def process(self) -> None:
        """Drain the previous body, then parse and run requests until one is in progress (or its
        body is being received: begin)."""
        while True:
            inbuf = self.inbuf
            body = self.body
            if not inbuf and body is None:
                return  # nothing buffered (the usual end, after a response): not one check more
            if self.exchange is not None or self.in_worker or self.must_close:
                return
            if self.out_size >= OUTPUT_HIGH_WATER:
                self.output_full = True  # pipelined responses wait until the socket drains
                return
            if body is not None and self.receiving is not None:
                # its body is received before its application runs (begin)
                if not body.receive_ahead(self.server.request_buffering):
                    return
                exchange, self.receiving = self.receiving, None
                if self.refused_received(exchange, body):
                    continue
            else:
                if body is not None:
                    try:
                        if not body.drain_buffered():
                            return  # wait for the rest of the body
                    except BodyError:
                        self.must_close = True
                        return
                    self.body = None
                    inbuf = self.inbuf
                    if not inbuf:
                        return
                try:
                    head = self.parser.parse_next(inbuf)  # (a head resets it for the next)
                except ParseError as exc:
                    self.parse_failed(exc, inbuf)
                    return
                if head is None:
                    if not self.head_started:
                        self.head_started = True
                        self.head_deadline = self.server.now + self.server.header_timeout
                    return
                self.head_started = False
                consumed = head.consumed
                self.inbuf = inbuf[consumed:] if consumed < len(inbuf) else b""
                exchange = self.begin(head)
                if exchange is None:
                    continue  # refused, or its body is still to come
            server = self.server
            if server.pool is not None:
                self.in_worker = True
                server.dispatch(self, exchange)
            else:
                done = exchange.run()
                # the application ran on this thread (threads = 0), maybe for long: the deadlines
                # this turn sets from here on count from now, not from the start of the turn
                server.now = monotonic()
                if not done:
                    self.exchange = exchange

    def begin(self, head):
        """The exchange of a parsed head, for process() to run now; None when the request was
        refused, or when its body is to be received first (`receiving`: process() goes on taking it
        from the input until all of it, or --request-buffering bytes, have come), so a client that
        sends its body slowly never holds the application's thread while it waits. Not when the
        client waits for 100 Continue (the application's first read asks for it), nor with
        --request-buffering 0."""
        server = self.server
        if head.chunked:
            body = RequestBody(self, 0, server.backend.ChunkedDecoder(server.limits),
                               server.limit_request_body, head.expect_continue)
        elif head.content_length > 0:
            limit = server.limit_request_body
            if limit and head.content_length > limit:
                self.reject(413, head)  # RFC 9110 §15.5.14, before reading any of it
                return None
            body = RequestBody(self, head.content_length, None, 0, head.expect_continue)
        else:
            body = EMPTY_BODY
        self.peer_done = not head.keep_alive  # Connection: close, or HTTP/1.0 without keep-alive
        exchange_class = server.exchange_class  # loaded, then called (Exchange.run says why)
        exchange = exchange_class(self, head, body, head.keep_alive and server.keep_alive_enabled)
        if body is not EMPTY_BODY:
            self.body = body
            bound = server.request_buffering
            if head.expect_continue or not bound:
                return exchange  # the application's reads receive it (and ask for the 100 Continue)
            if not body.receive_ahead(bound):
                self.receiving = exchange  # settle() waits for more (read_timeout: body_timed_out)
                return None
            if self.refused_received(exchange, body):
                return None
        return exchange

    def refused_received(self, exchange, body) -> bool:
        """True when the body received before its application runs failed (malformed, over
        --limit-request-body, or could not be kept): its status (400, 413, 500) is answered and the
        connection closes, without calling the application (as waitress does), which would otherwise
        run with a body it cannot read."""
        failure = body.failure
        if failure is None:
            return False
        self.reject(failure.status or 400, exchange=exchange)
        return True

    def parse_failed(self, exc: ParseError, data: bytes) -> None:
        """The input `data` does not parse: answer exc.status and close (a protocol may log it)."""
        self.reject(exc.status)

    def reject(self, status: int, head=None, exchange=None) -> None:
        """Answer a request that cannot be served and close (the input is no longer trusted). Given
        its parsed head or its exchange, the answer goes through an exchange (the access log and
        the metrics see it), without calling the application."""
        if head is not None:
            exchange = self.server.exchange_class(self, head, EMPTY_BODY, False)
        if exchange is None:
            self.write(error_response(self, status))
            self.response_complete(False)
        else:
            exchange.refuse(status)
        self.inbuf = b""
        if self.body is not None:
            self.body.release()  # (a 408 while it was received ahead)
            self.body = None
        self.peer_done = False  # the client may still be sending: linger

    def body_timed_out(self) -> None:
        """read_timeout passed without a byte of a body received before its application runs: answer
        408 (RFC 9110 §15.5.9) and close, without calling the application."""
        exchange, self.receiving = self.receiving, None
        self.reject(408, exchange=exchange)
        self.settle()

    def response_complete(self, keep_alive: bool) -> None:
        body = self.body
        if body is not None:
            body.end_reads()  # its unread rest is ours now (drained, or lost with the connection)
        server = self.server
        server.requests_done += 1
        if server.requests_done >= server.requests_limit:
            server.on_requests_limit()
        if not keep_alive:
            self.must_close = True

    def can_drain(self, body) -> bool:
        """May the unread rest of `body` be read and discarded to keep the connection?"""
        if body.expect_continue and not body.continue_sent:
            return False  # the client waits for 100 Continue and will not send it (RFC 9110 §10.1.1)
        hint = body.unread_hint
        if hint >= 0:
            return hint <= DRAIN_LIMIT
        # a chunked body's size is unknown: draining what is still to come could pass DRAIN_LIMIT and
        # close the connection after a response that promised to keep it. Its rest is decoded now, so
        # its end, or invalid framing, is known before the head: what is buffered, then what the
        # socket holds already (a client writes the head and the body apart, so the body is often
        # still in the socket when the application answers), never waiting for more
        taken = 0
        while True:
            whole = body.buffer_rest(DRAIN_LIMIT)
            if whole is not None:
                return whole
            if taken >= DRAIN_LIMIT:
                return False  # not worth reading further ahead (chunk framing costs bytes too)
            try:
                data = self.recv_now(READ_SIZE)
            except OSError:  # (the connection is broken)
                return False
            if not data:  # nothing more has arrived (None), or the client's EOF inside the body
                return False
            taken += len(data)
            self.inbuf = self.inbuf + data if self.inbuf else data

    # -- output -------------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.out.append(data)
        self.out_size += len(data)
        if self.in_worker:
            self.flush_wait()

    def send_interim(self, data: bytes) -> None:
        """Send an interim (1xx) response now, after any responses queued before it."""
        self.out.append(data)
        self.out_size += len(data)
        self.flush_wait()

    def flush(self) -> bool:
        """Send what the socket takes without waiting; True when the output is empty."""
        out = self.out
        data = out[0] if len(out) == 1 else b"".join(out)
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.broken = True
            self.out = []
            self.out_size = 0
            return False
        if sent == len(data):
            self.out = []
            self.out_size = 0
            return True
        rest = data[sent:]
        self.out = [rest]
        self.out_size = len(rest)
        if sent:
            self.send_deadline = self.server.now + self.server.send_timeout
        return False

    def flush_wait(self) -> None:
        """Send all output, waiting up to send_timeout whenever the socket is full."""
        while self.out and not self.flush():
            if self.broken:
                raise ConnectionResetError("the client closed the connection")
            if not self._wait(OUT, self.server.send_timeout):
                self.broken = True
                raise TimeoutError("timed out sending the response")

    def output_sent(self) -> bool:
        """Send the queued output before a file's bytes (waiting, on a worker thread); False when
        the loop must wait for the socket to drain."""
        if self.out:
            if self.in_worker:
                self.flush_wait()
            elif not self.flush():
                if self.broken:
                    raise ConnectionResetError("the client closed the connection")
                return False
        return True

    def sendfile(self, fd: int, offset: int, count: int):
        """os.sendfile some of a file; None when the loop must wait for the socket to drain."""
        if not self.output_sent():
            return None
        while True:
            try:
                return os.sendfile(self.fd, fd, offset, count)
            except (BlockingIOError, InterruptedError):
                if not self.in_worker:
                    return None
            except OSError:
                self.broken = True
                raise
            if not self._wait(OUT, self.server.send_timeout):
                self.broken = True
                raise TimeoutError("timed out sending the response")

    # -- input the application waits for ----------------------------------------------------------

    def recv_now(self, size: int):
        """Up to `size` bytes the socket holds now (b"" at the client's EOF), or None when nothing
        waits; never waits. A socket error marks the connection broken and is raised."""
        try:
            return self.sock.recv(size)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            self.broken = True
            raise

    def recv_wait(self, size: int) -> bytes:
        """Receive up to `size` bytes (recv_now), waiting at most read_timeout for them."""
        while True:
            data = self.recv_now(size)
            if data is not None:
                return data
            if not self._wait(IN, self.server.read_timeout):
                self.broken = True
                raise TimeoutError("timed out reading the request body")

    def _wait(self, mask: int, timeout: float) -> bool:
        """Wait up to `timeout` for the socket; False when it did not come ready, or the server is
        stopping (a fast stop, or its close: nothing is left to wait for)."""
        self.waiting = True  # before the check: server_close sets the flag, then looks at `waiting`
        try:
            if self.server.waits_abandoned:
                return False
            poller = select.poll()
            poller.register(self.fd, mask)
            return bool(poller.poll(timeout * 1000.0))
        finally:
            self.waiting = False

    def abandon_wait(self) -> None:
        """End a wait in _wait (Server.abandon_waits): shutting the socket down makes poll return
        at once, and the send or recv that follows fails, which ends the exchange as a client's
        failure would."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- state after an event ---------------------------------------------------------------------

    def settle(self) -> None:
        """Push output and resume suspended work, then pick the poller interest and the deadline."""
        if self.in_worker:
            return
        while True:
            if self.out and not self.flush():
                if self.broken:
                    self.close()
                    return
                break  # the socket is full: wait for OUT
            exchange = self.exchange
            if exchange is not None:
                done = exchange.pump()
                self.server.now = monotonic()  # the application's iterator ran (see begin)
                if not done:
                    if self.out:
                        continue
                    break  # a sendfile waits for the socket
                self.exchange = None
            elif self.output_full:
                self.output_full = False
            else:
                break
            self.process()
            if self.in_worker:
                return
        if self.closed:
            return
        server = self.server
        if self.out or self.exchange is not None:
            if not self.events & OUT:
                self.send_deadline = server.now + server.send_timeout
            self.deadline = self.send_deadline
            mask = OUT
            if len(self.inbuf) < LOOKAHEAD and not self.read_eof:
                mask |= IN
        elif self.must_close or self.read_eof:  # (read_eof: every complete request was answered)
            if self.cut_short or self.broken or self.read_eof:
                self.close()  # (cut_short: with a reset)
            else:
                self.linger()
            return
        else:
            mask = IN
            if self.body is not None:
                self.deadline = server.now + server.read_timeout
            elif self.inbuf or self.head_started:  # (TLS: records with no data yet, tls.py)
                self.deadline = self.head_deadline
            else:
                self.deadline = server.now + server.keep_alive
        if mask != self.events or server.oneshot:
            self.watch(mask)

    def watch(self, mask: int) -> None:
        """Set the poller interest (registering the socket the first time)."""
        server = self.server
        if self.events:
            server.poller.modify(self.fd, mask | server.oneshot)
        else:
            server.poller.register(self.fd, mask | server.oneshot)
        self.events = mask

    def resume(self) -> None:
        """A worker finished its exchange: take the connection back into the loop."""
        self.in_worker = False
        if self.closed:
            return
        if self.broken:
            self.close()
            return
        self.process()
        self.settle()  # re-arms the (one-shot) registration

    def idle(self) -> bool:
        """Nothing in progress and nothing buffered (graceful stop, keep-alive timeout); bytes may
        still wait in the socket: see input_waiting."""
        return not (self.in_worker or self.exchange is not None or self.out or self.inbuf
                    or self.body is not None or self.lingering or self.closed)

    def idle_since(self) -> float:
        """When an idle connection last did something: its accept while no head has started, else its
        last response (a keep-alive deadline is that moment plus --keep-alive)."""
        if self.head_started:
            return self.head_deadline - self.server.header_timeout
        return self.deadline - self.server.keep_alive

    def input_waiting(self) -> bool:
        """Bytes the loop has not read yet wait in the socket: a request that arrived since the last
        poll. One non-blocking MSG_PEEK (the raw bytes: a TLS record counts); an EOF is no request."""
        try:
            return bool(self.sock.recv(1, socket.MSG_PEEK))
        except OSError:  # BlockingIOError: nothing waits; a reset: nothing to save
            return False

    def linger(self) -> None:
        """Half-close after the last response and discard input (RFC 9112 §9.6; the bounds are in
        the module docstring), unless the client can send nothing we would fail to read: then close
        at once (a plain FIN)."""
        if self.peer_done and not self.inbuf and (self.body is None or self.body.complete):
            self.close()
            return
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()
            return
        self.lingering = True
        self.linger_idle = min(LINGER_TIME, self.server.read_timeout)
        self.linger_end = self.server.now + LINGER_TOTAL
        self.push_linger_deadline()
        if self.events != IN or self.server.oneshot:
            self.watch(IN)

    def push_linger_deadline(self) -> None:
        """Lingering: close after linger_idle more seconds without input, never after linger_end."""
        deadline = self.server.now + self.linger_idle
        self.deadline = deadline if deadline < self.linger_end else self.linger_end

    def close(self) -> None:
        """Close the socket: with a FIN, or with a reset (SO_LINGER 0) when the response in flight is
        close-delimited (HTTP/1.0 without Content-Length, nginx's uwsgi_pass) and incomplete: an
        error cut it short after its head (`cut_short`), or it is still in progress or unsent (a
        send timeout, a graceful stop's deadline). A FIN would make its partial body look complete
        to a peer that reads to the end of the stream; over TLS it would lack close_notify, which
        many clients do not check. Over a UNIX socket the peer sees an end of stream either way."""
        if self.closed:
            return
        self.closed = True
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            exchange.abort()
        receiving, self.receiving = self.receiving, None
        if receiving is not None:  # the client left (or the server closed) before its body came
            receiving.abort()
        body = self.body
        if body is not None and not self.in_worker:  # (a worker's exchange releases it as it ends)
            body.release()  # its spool file, if any
        if self.cut_short or (self.close_delimited and (exchange is not None or self.out or self.in_worker)):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
            except OSError:
                pass
        server = self.server
        parser, self.parser = self.parser, None  # a closed connection parses nothing more
        spare = server.spare_parsers[self.parser_name]
        if len(spare) < SPARE_PARSERS:
            parser.reset()
            spare.append(parser)
        server.forget(self)
        try:
            self.sock.close()
        except OSError:
            pass
