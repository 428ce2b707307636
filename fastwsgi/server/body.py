"""wsgi.input: the request body, streamed from the socket as the application reads it.

Theory of operation: the connection parses a head and leaves whatever followed it in its input
buffer (`conn.inbuf`). A body object takes exactly its own bytes from that buffer: `remaining`
bytes for Content-Length, or what the ChunkedDecoder consumes for chunked (RFC 9112 §7.1), so bytes of
a pipelined next request are never eaten. When the buffer runs dry a read pulls more with
`conn.recv_wait`, which waits at most read_timeout for each piece (an idle timeout) and never blocks
forever, in either threading model. The first read of a request that sent `Expect: 100-continue`
answers `100 Continue` first (RFC 9110 §10.1.1); a client that never gets read never gets it,
nor does one whose response has begun (no 1xx after the final response's head, §15.2).

A body cut short raises an OSError: `BodyError` (a ConnectionError) at an EOF before the end,
TimeoutError after read_timeout without a byte, the socket's error at a reset; a short body is never
returned as if it were complete. A malformed chunked body or one over limit_request_body raises
`BodyError` with `.status` set (400/413), which the server answers instead of a 500. A failure is
sticky: every later read that needs more than was received before it raises it again (the bytes a
failed read had gathered are lost with it, so a retry would otherwise return the body's tail alone).

Before the application is called, `receive_ahead()` lets the connection receive the body in the
event loop (Connection.begin): each call takes what the input buffer holds of the body, without
blocking, and says whether the application may be called: the whole body has arrived (for chunked,
its last chunk and trailers have been decoded), or `bound` bytes of it (--request-buffering), or its
framing failed (the failure is raised by the application's first read past the bytes received
before it). While more are awaited, the pieces gather in a bytearray (`ahead`) up to LOOKAHEAD
(256 KiB), so a body trickled in many small pieces is copied once, not once per piece; beyond that
each piece goes to an anonymous temporary file (the spool: tempfile.TemporaryFile in
--tmp-upload-dir, else $TMPDIR, unlinked at once, so nothing is left behind even after a SIGKILL),
with one write per piece. The application's reads then return the bytes in order: the in-memory
part, the file's (read back in SPOOL_READ pieces by the application's thread), then whatever still
streams from the socket. A file that cannot be created or written (disk full) ends the body with a
BodyError of status 500, raised by the read that reaches the bytes lost, and is logged. The file is
closed when the exchange ends (`release`: the response complete, a refusal, the connection closed);
a read by a thread the application left behind that meets it closed raises BodyError.

Before the response head goes out, `buffer_rest()` lets the connection learn whether a chunked body
the application has not read to its end is all in the input buffer (its end is known only once it
is decoded; the connection adds what its socket holds already and asks again while the answer is
"not yet"): it decodes what is buffered into pieces queued after the read buffer and the spool (no
copy of what was decoded before), where the application still finds every byte, and a failure met
there is raised by the application's next read. What the application reads after the read buffer
is `queued`: None (the usual case), or a list of the spool file, then those pieces. After the
response, `drain_buffered()` lets the connection discard the unread rest of the body from its input
buffer without blocking, so the next request is never parsed from body bytes; from then on
(`end_reads()`) a read by the application that needs more than it had received raises BodyError.
"""

import logging
import tempfile

from ..errors import ParseError

__all__ = ["BodyError", "EMPTY_BODY", "RequestBody", "LOOKAHEAD"]

READ_SIZE = 65536
LOOKAHEAD = 256 * 1024  # bytes of a body received ahead that stay in memory; the rest is spooled
SPOOL_READ = 256 * 1024  # bytes per read of the spool file by the application's reads
DRAIN_LIMIT = 1 << 20  # unread body bytes worth reading and discarding to keep a connection
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

error_log = logging.getLogger("fastwsgi.error")


class BodyError(ConnectionError):
    """The request body could not be read to its end. `.status` is the answer to send, if any."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class EmptyBody:
    """wsgi.input for requests without a body; stateless, so one instance serves every request."""

    complete = True

    def read(self, size=-1):
        return b""

    def readline(self, size=-1):
        return b""

    def readlines(self, hint=-1):
        return []

    def __iter__(self):
        return iter(())

    def drain_buffered(self):
        return True


EMPTY_BODY = EmptyBody()


class RequestBody:
    """The body of one request: Content-Length framed (`length` >= 0) or chunked (`decoder`)."""

    __slots__ = ("conn", "remaining", "decoder", "buf", "pos", "complete", "limit", "received",
                 "expect_continue", "continue_sent", "head_sent", "drained", "failure", "ahead", "taken",
                 "queued")

    def __init__(self, conn, length: int, decoder, limit: int, expect_continue: bool):
        self.conn = conn
        self.remaining = length  # Content-Length bytes still to take from the connection
        self.decoder = decoder  # ChunkedDecoder, or None for Content-Length
        self.buf = b""  # decoded bytes, read by the application up to `pos`
        self.pos = 0
        self.complete = decoder is None and length == 0
        self.limit = limit  # limit_request_body for chunked bodies (0: none)
        self.received = 0
        self.expect_continue = expect_continue
        self.continue_sent = False
        self.head_sent = False  # the response's head is out: no 100 Continue after it (RFC 9110 §15.2)
        self.drained = 0  # bytes discarded after the response
        self.failure = None  # the error that ended the body early, raised again by every later read
        self.ahead = None  # receive_ahead: the bytes received so far (up to LOOKAHEAD) while more are awaited
        # self.taken (receive_ahead: bytes received so far, in memory and spooled) is set by the call
        # that begins to wait: most bodies come with their head and never need it
        self.queued = None  # read after `buf`, before the socket: the spool file, pieces buffer_rest decoded

    def _fail(self, message: str, status: int | None = None) -> BodyError:
        """End the body with an error (sticky: `_more` raises it again); the caller raises it."""
        self.complete = True
        self.failure = BodyError(message, status)
        return self.failure

    # -- taking bytes from the connection ---------------------------------------------------

    def _take_buffered(self) -> bytes:
        """Decode/take this body's bytes from conn.inbuf without blocking."""
        conn = self.conn
        inbuf = conn.inbuf
        if not inbuf or self.complete:
            return b""
        if self.decoder is None:
            data = inbuf[:self.remaining]
            conn.inbuf = inbuf[len(data):]
            self.remaining -= len(data)
            if self.remaining == 0:
                self.complete = True
            return data
        try:
            data, consumed = self.decoder.decode(inbuf)
        except ParseError as exc:
            conn.must_close = True
            raise self._fail(f"malformed chunked body: {exc.code}", exc.status) from None
        conn.inbuf = inbuf[consumed:]
        if self.decoder.done:
            self.complete = True
        self.received += len(data)
        if self.limit and self.received > self.limit:
            conn.must_close = True
            raise self._fail("request body larger than limit_request_body", 413)
        return data

    def _more(self) -> bytes:
        """The next piece of the body, b"" at its end. May wait (and answer 100 Continue first)."""
        queued = self.queued
        while queued:  # the spool file's bytes first (received ahead past LOOKAHEAD), then buffer_rest's
            source = queued[0]
            if type(source) is bytes:
                del queued[0]
                return source
            try:
                piece = source.read(SPOOL_READ)
            except ValueError:  # closed under a late read (a thread the application left behind):
                raise self.failure or BodyError("wsgi.input read after the exchange ended") from None
            if piece:
                return piece
            del queued[0]
            source.close()
        if self.failure is not None:
            raise self.failure
        if self.expect_continue and not self.continue_sent and not self.head_sent:
            self.continue_sent = True
            self.conn.send_interim(CONTINUE)
        while not self.complete:
            data = self._take_buffered()
            if data:
                return data
            if self.complete:
                break
            try:
                more = self.conn.recv_wait(READ_SIZE)  # raises TimeoutError after read_timeout idle
            except OSError as exc:  # (a reset too)
                self.complete = True
                self.failure = exc
                raise
            if not more:
                self.conn.broken = True
                raise self._fail("client closed the connection before the end of the request body")
            self.conn.inbuf += more
        return b""

    # -- the wsgi.input interface (PEP 3333) --------------------------------------------------
    # `buf[pos:]` is what was received and not yet read. A read that needs more collects the pieces
    # in a list and joins them once: appending each piece to the rest would copy everything
    # received so far again for every piece (quadratic in the body's size).

    def read(self, size=-1):
        return self._take(-1 if size is None else size, False)

    def readline(self, size=-1):
        return self._take(-1 if size is None else size, True)

    def _take(self, size: int, line: bool) -> bytes:
        """Up to `size` bytes (all when < 0); with `line`, no further than the first newline."""
        buf, pos = self.buf, self.pos
        end = buf.find(b"\n", pos) + 1 if line else 0  # just past the newline; 0: none
        if end and (size < 0 or end - pos <= size):
            self.pos = end
            return buf[pos:end]
        if 0 <= size <= len(buf) - pos:
            self.pos = pos + size
            return buf[pos:pos + size]
        pieces = [buf[pos:]]  # it goes on past what is buffered: each piece is taken (and searched) once
        have = len(pieces[0])
        self.buf, self.pos = b"", 0
        while have != size:
            piece = self._more()
            if not piece:
                break
            cut = piece.find(b"\n") + 1 if line else 0
            found = cut > 0
            if not found:
                cut = len(piece)
            if 0 <= size < have + cut:
                cut = size - have
            if cut < len(piece):  # the rest waits for the next read
                self.buf, self.pos = piece, cut
                piece = piece[:cut]
            pieces.append(piece)
            have += cut
            if found:
                break
        return b"".join(pieces)

    def readlines(self, hint=-1):
        lines, total = [], 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    # -- before the application, and after the response -------------------------------------

    def receive_ahead(self, bound: int) -> bool:
        """Take this body's bytes that conn.inbuf holds into the read buffer (past LOOKAHEAD: into
        the spool file), without blocking (the application has not been called yet: nothing has
        been read); True once it may be called: the whole body, or at least `bound` bytes of it,
        received, or its framing failed (malformed, over limit_request_body: the read that needs
        more than was received raises the failure). False: wait for more."""
        try:
            data = self._take_buffered()
        except BodyError:
            data = b""
        ahead = self.ahead
        if ahead is None:  # the first call: the body usually came whole with its head
            if self.complete or len(data) >= bound:
                self.buf = data
                return True
            self.ahead = bytearray(data)
            self.taken = len(data)
            return False
        if data:
            self.taken += len(data)
            if self.queued is None and len(ahead) + len(data) <= LOOKAHEAD:
                ahead += data
            else:
                self._spool(ahead, data)
        if self.complete or self.taken >= bound:
            self.buf = bytes(ahead)
            self.ahead = None
            if self.queued is not None:
                self.queued[0].seek(0)  # (the spool, read from its start)
            return True
        return False

    def _spool(self, ahead: bytearray, data: bytes) -> None:
        """Keep a received piece: what still fits under LOOKAHEAD in `ahead`, the rest in the spool
        file (one write). A file that fails ends the body (status 500): the bytes it held are lost."""
        view = memoryview(data)
        room = LOOKAHEAD - len(ahead)
        if room > 0:
            ahead += view[:room]
            view = view[room:]
        try:
            if self.queued is None:
                self.queued = [tempfile.TemporaryFile(buffering=0, prefix="fastwsgi-body-",
                                                      dir=self.conn.server.tmp_upload_dir)]
            spool = self.queued[0]
            while view:  # (a regular file takes it all at once, short of a full disk)
                view = view[spool.write(view):]
        except OSError as exc:
            error_log.error("Could not keep a request body in a temporary file: %s", exc)
            self.release()
            self.conn.must_close = True  # the rest of the body is not read: the input is not framed
            self._fail(f"could not keep the request body: {exc}", 500)

    def buffer_rest(self, limit: int):
        """Decode the rest of this body that conn.inbuf holds into the read buffer, without blocking:
        True when that was all of it (its end included) and at most `limit` bytes are left unread;
        False when it cannot be drained (over `limit`, malformed, over limit_request_body); None
        while its end has not arrived (the connection may receive more and ask again).

        The application still reads every byte; a failure met here is raised by its next read."""
        try:
            data = self._take_buffered()
        except BodyError:
            return False
        queued = self.queued
        if data:  # queued as a piece of its own: nothing decoded before is copied again
            if queued is None:
                queued = self.queued = []
            queued.append(data)
        unread = len(self.buf) - self.pos  # (in memory: the spool's bytes are on disk)
        if queued:
            unread += sum(len(piece) for piece in queued if type(piece) is bytes)
        if unread > limit:
            return False
        if not self.complete:
            return None
        return self.failure is None

    def end_reads(self) -> None:
        """The response is complete: the rest of the body is the connection's to drain, and a late
        read by the application (a thread it left behind) raises instead of racing it for the
        socket and the input buffer (where the next request may already be)."""
        if self.failure is None:
            self.failure = BodyError("wsgi.input read after the response was complete")
        if self.queued is not None:
            self.release()

    def release(self) -> None:
        """Close the spool file, if any, and drop what is queued: the exchange is over."""
        queued, self.queued = self.queued, None
        if queued and type(queued[0]) is not bytes:
            queued[0].close()

    def drain_buffered(self) -> bool:
        """Discard this body's bytes already in conn.inbuf; True once the whole body is gone.

        Raises BodyError once more than DRAIN_LIMIT bytes were discarded (a chunked body's length is
        not known in advance): the connection then closes instead of reading on."""
        self.buf, self.pos = b"", 0  # (end_reads released what was queued)
        while not self.complete:
            data = self._take_buffered()
            if not data:
                break
            self.drained += len(data)
            if self.drained > DRAIN_LIMIT:
                self.complete = True
                raise BodyError("too much unread request body to drain")
        return self.complete

    @property
    def unread_hint(self) -> int:
        """Bytes of body still on the wire when known (Content-Length), else -1."""
        return self.remaining if self.decoder is None else -1
