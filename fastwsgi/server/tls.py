"""TLS termination: the SSLContext built from the options, and the connection that speaks TLS.

Theory of operation. `make_context(options)` turns --certfile/--keyfile/--ca-certs/--cert-reqs/
--ciphers into an `ssl.SSLContext` (as gunicorn: `ssl.create_default_context(Purpose.CLIENT_AUTH)`,
so TLS 1.2 or newer, then the chain, the verify mode and the cipher list), or None when no
certificate is set; any mistake raises `TLSError` with one line naming the file or the option (what
a file lacks, a certificate or a key, when OpenSSL says only "PEM lib"). An encrypted private key is
such a mistake: OpenSSL would ask for its passphrase on the terminal (gunicorn's start waits there),
so the server asks nothing and refuses it. It is
called before the sockets are bound (cli.py), so a bad certificate stops the start before anyone can
connect; a pre-fork master builds the context once, its workers inherit it across fork, and a HUP
builds a new one from the files as they are then (a renewed certificate), keeping the old one if the
new files do not load.

`TLSConnection` is the server's Connection for an HTTP listener when a context exists; the loop picks
the class once per listener, so a plain-HTTP connection runs exactly the code it ran before. It keeps
its socket non-blocking and does TLS in memory (`SSLContext.wrap_bio` over two `ssl.MemoryBIO`):

* Handshake: each readable event feeds the incoming BIO and calls `do_handshake`; SSLWantReadError
  means wait for IN, and the records OpenSSL produced wait for OUT if the socket cannot take them. The
  loop is never blocked, and the deadline set at accept (--header-timeout) covers the handshake: a
  client that connects and never finishes it is closed by the sweep like one that never sends a head.
  A client that speaks plain HTTP to this port gets a plain-text 400 (as nginx does) and a lingering
  close: its first byte is a letter (a method's), never a TLS record's type (0x16 for a ClientHello),
  so any method is recognized (OpenSSL's own check knows GET, POST, HEAD, PUT and CONNECT only, and
  fails the others with no answer). Any other handshake failure (bad client certificate, no shared cipher) closes the connection
  after the alert, logged at debug level.
* Reads: the bytes of one recv() are fed to the BIO and every decrypted byte is read out at once (until
  SSLWantReadError), so nothing waits inside the SSL object while the kernel socket is quiet (the
  `pending()` trap of SSLSocket under epoll): pipelined requests in one TLS record are all in `inbuf`.
  A close_notify is an EOF; so is a TCP EOF without it (a "ragged" EOF, ignored as gunicorn does).
* Writes: `out` holds plaintext; `flush` encrypts all of it into the outgoing BIO (it never blocks: the
  BIO grows) and sends the records. Records the socket did not take wait in `cipher`, and `out` then
  holds an empty chunk so the base class keeps calling `flush` (and `out_size` counts the waiting
  bytes, so the output high-water mark still applies). A partial send resends the rest of the same
  records, never re-encrypts.
* FileWrapper: os.sendfile cannot encrypt, so `sendfile` reads the file (os.pread) and queues the
  bytes as a write, one chunk at a time, once the previous chunk has left.
* Blocking waits (wsgi.input, write(), threads > 0) go through `recv_wait` / `flush_wait` as on a
  plain connection: writes only need the socket writable (renegotiation is off: OP_NO_RENEGOTIATION).
  Reads go through `recv_now`, which decrypts what the socket holds without waiting (a partial
  record, SSLWantReadError, is "nothing yet"): recv_wait waits between its calls, and the look-ahead
  that decides whether an unread chunked body can be drained (Connection.can_drain) never waits.
* Closing: every orderly close of an established connection says close_notify first (RFC 8446
  §6.1): after the last response (before the lingering close), when it was idle past --keep-alive,
  when a graceful stop (SIGTERM, --max-requests) closes it idle, and after the client's own EOF. It is
  one non-blocking send, and only when no response is in progress or unsent: a close_notify after a
  cut-off response would make the cut look complete. Error closes (a failed handshake, a TLS or
  socket error, a stalled send) end without it, as an error alert or a reset would.

The environ of a TLS listener says wsgi.url_scheme "https" and HTTPS "on" (loop.py), whatever
--url-scheme says. Nothing about the client certificate is put in the environ (gunicorn puts none).
"""

import logging
import os
import ssl
import string

from .connection import READ_SIZE, Connection
from .poller import IN, OUT

__all__ = ["TLSError", "TLSConnection", "make_context", "CERT_REQS"]

log = logging.getLogger("fastwsgi.error")

# --cert-reqs: gunicorn's numbers (ssl.CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED) or their names
CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}

_PLAIN_HTTP_BODY = b"400 Bad Request\nThe plain HTTP request was sent to an HTTPS port.\n"
_PLAIN_HTTP_START = string.ascii_letters.encode("ascii")  # a request line's first byte (a method's)


class TLSError(RuntimeError):
    """The TLS options or files cannot make a context (the message is shown to the user)."""


def _readable(option: str, path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise TLSError(f"--{option} {path}: {exc.strerror or exc}") from None


def _pem_problem(certfile: str, keyfile) -> str | None:
    """What the files lack, when load_cert_chain refused them (its "PEM lib" names neither the file
    nor the part): no certificate, or no private key; None when both are there (but damaged)."""
    try:
        with open(certfile, "rb") as f:
            cert_text = f.read()
        if keyfile:
            with open(keyfile, "rb") as f:
                key_text = f.read()
        else:
            key_text = cert_text
    except OSError:
        return None
    if b"-----BEGIN CERTIFICATE-----" not in cert_text:
        return f"--certfile {certfile} holds no PEM certificate"
    if b"PRIVATE KEY-----" not in key_text:
        return (f"--keyfile {keyfile} holds no PEM private key" if keyfile else
                f"--certfile {certfile} holds no private key: give its key with --keyfile")
    return None


def make_context(options: dict):
    """The server's SSLContext for these options, or None without --certfile; raises TLSError.
    With the ssl_context hook (gunicorn's), the hook's return value, given a factory of ours."""
    hook = options.get("ssl_context")
    if hook is None or not options.get("certfile"):
        if hook is not None:  # (gunicorn too calls it only with a certificate: its config may rely on that)
            log.warning("The ssl_context hook is not called without --certfile: serving plain HTTP")
        return _default_context(options)
    from ..hooks import Cfg

    try:
        context = hook(Cfg(options), lambda: _default_context(options))
    except TLSError:
        raise
    except Exception as exc:
        log.exception("Exception in the ssl_context hook")
        raise TLSError(f"the ssl_context hook raised {type(exc).__name__}: {exc}") from None
    if not isinstance(context, ssl.SSLContext):
        raise TLSError(f"the ssl_context hook returned {type(context).__name__}, not an ssl.SSLContext")
    return context


def _default_context(options: dict):
    """make_context without the hook: the context built from --certfile & co."""
    certfile, keyfile, ca_certs = options.get("certfile"), options.get("keyfile"), options.get("ca_certs")
    cert_reqs = options.get("cert_reqs", "none")
    if not certfile:
        if keyfile or ca_certs or cert_reqs != "none" or options.get("ciphers"):
            given = [name for name in ("keyfile", "ca_certs", "cert_reqs", "ciphers")
                     if options.get(name) and options.get(name) != "none"]
            raise TLSError(f"--{given[0].replace('_', '-')} needs --certfile (the server's certificate)")
        return None
    if cert_reqs == "required" and not ca_certs:
        raise TLSError("--cert-reqs required needs --ca-certs (the CAs that sign client certificates)")
    _readable("certfile", certfile)
    if keyfile:
        _readable("keyfile", keyfile)
    if ca_certs:
        _readable("ca-certs", ca_certs)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    key_option = f"--keyfile {keyfile}" if keyfile else f"--certfile {certfile}"

    def no_passphrase():  # OpenSSL would prompt on the terminal (a start, or a HUP, waits for it)
        raise TLSError(f"{key_option}: the private key is encrypted and fastwsgi asks for no "
                       f"passphrase; give it an unencrypted key (openssl pkey -in KEY -out PLAIN)")

    try:
        context.load_cert_chain(certfile, keyfile, password=no_passphrase)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise TLSError(f"--keyfile {keyfile or certfile} does not match the certificate in "
                           f"--certfile {certfile}") from None
        raise TLSError(_pem_problem(certfile, keyfile) or
                       f"cannot load the certificate and key from --certfile {certfile}"
                       f"{f' --keyfile {keyfile}' if keyfile else ''}: {exc.reason or exc}") from None
    except OSError as exc:
        raise TLSError(f"cannot load --certfile {certfile}: {exc.strerror or exc}") from None
    if ca_certs:
        try:
            context.load_verify_locations(cafile=ca_certs)
        except (ssl.SSLError, OSError) as exc:
            raise TLSError(f"cannot load --ca-certs {ca_certs}: "
                           f"{getattr(exc, 'reason', None) or exc}") from None
    context.verify_mode = CERT_REQS[cert_reqs]
    if options.get("ciphers"):
        try:
            context.set_ciphers(options["ciphers"])
        except ssl.SSLError:
            raise TLSError(f"--ciphers {options['ciphers']!r}: no cipher matches") from None
    return context


class TLSConnection(Connection):
    """A Connection whose bytes go through TLS in memory (see the module docstring)."""

    __slots__ = ("tls", "tls_in", "tls_out", "cipher", "handshaking", "greeted", "notified")

    def __init__(self, server, sock, environ_base: dict):
        super().__init__(server, sock, environ_base)
        self.tls_in = ssl.MemoryBIO()
        self.tls_out = ssl.MemoryBIO()
        self.tls = server.ssl_context.wrap_bio(self.tls_in, self.tls_out, server_side=True)
        self.cipher = b""  # records the socket has not taken yet
        self.handshaking = True
        self.greeted = False  # the client's first byte came (a ClientHello's, or plain HTTP's)
        self.notified = False  # close_notify was sent

    # -- events ---------------------------------------------------------------------------------

    def on_event(self, events: int) -> None:
        if self.lingering:  # only raw bytes to discard now
            Connection.on_event(self, events)
            return
        if self.handshaking:
            self._handshake_event(events)
            return
        if events & OUT:
            self.on_writable()
            if self.closed or events == OUT:
                return
        raw = self._read_socket()
        if raw is None:
            if self.broken:
                self.close()
            else:
                self.rearm()  # (nothing to read)
            return
        if not raw:  # TCP EOF without close_notify: an EOF all the same
            self.read_eof = True
        elif not self._receive(raw):
            return
        self.settle()

    def _read_socket(self):
        """One recv(): the bytes (b"" at EOF), or None when nothing waits or the socket failed (then
        the connection is `broken`; the caller closes it, or raises on a worker thread)."""
        try:
            return Connection.recv_now(self, READ_SIZE)  # (the raw bytes: recv_now is overridden)
        except OSError:
            return None

    def _receive(self, raw: bytes) -> bool:
        """Decrypt `raw` into inbuf and run what is complete; False if the connection closed."""
        self.tls_in.write(raw)
        try:
            data, eof = self._decrypt()
        except ssl.SSLError:
            self.broken = True
            self.close()
            return False
        if self.tls_out.pending:
            self._take_cipher()
        if eof:  # close_notify: the requests before it are still answered (Connection.settle);
            self.read_eof = True  # set first: a body cut short by it fails at once, not at read_timeout
        if data:
            self.inbuf = self.inbuf + data if self.inbuf else data
            if self.exchange is None:
                self.process()
        elif not eof and not self.head_started and self.exchange is None and self.body is None:
            # records that hold no data (a KeyUpdate, part of a record) count as the start of the next
            # head: its deadline runs, and the keep-alive deadline is not restarted by them. Not while
            # a body is received before its application runs or drained after its response: they
            # are its records (read_timeout bounds it), and a head deadline set now would be the
            # idle connection's once it is answered
            self.head_started = True
            self.head_deadline = self.server.now + self.server.header_timeout
        return True

    def _decrypt(self):
        """(all the plaintext the incoming records hold, whether the client sent close_notify).
        It stops reading once neither the incoming BIO nor the SSL object holds more, so the common
        case (one whole record) raises no SSLWantReadError: that exception costs ~4 us a request."""
        chunks = []
        read, incoming, tls = self.tls.read, self.tls_in, self.tls
        try:
            while True:
                chunk = read(READ_SIZE)
                if not chunk:
                    return b"".join(chunks), True
                chunks.append(chunk)
                if not incoming.pending and not tls.pending():
                    return (chunk if len(chunks) == 1 else b"".join(chunks)), False
        except ssl.SSLWantReadError:  # a partial record waits for its other bytes
            return b"".join(chunks), False
        except ssl.SSLZeroReturnError:
            return b"".join(chunks), True

    def _take_cipher(self) -> None:
        """Move the records OpenSSL wrote to `cipher`; `out` then holds at least an empty chunk."""
        records = self.tls_out.read()
        self.cipher += records
        self.out_size += len(records)
        if not self.out:
            self.out = [b""]

    def _handshake_event(self, events: int) -> None:
        if events & OUT and self.out and not self.flush() and self.broken:
            self.close()
            return
        raw = self._read_socket()
        if raw == b"" or self.broken:  # the client left during the handshake
            self.broken = True
            self.close()
            return
        if raw:
            if not self.greeted:
                self.greeted = True
                if raw[0] in _PLAIN_HTTP_START:
                    self._reject_plain_http()
                    return
            self.tls_in.write(raw)
        try:
            self.tls.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        except ssl.SSLError as exc:
            self._handshake_failed(exc)
            return
        if self.tls_out.pending:
            self._take_cipher()
            if not self.flush() and self.broken:
                self.close()
                return
        if not done:
            self.watch(IN | OUT if self.out else IN)  # the deadline stays the one set at accept
            return
        self.handshaking = False
        if self.tls_in.pending and not self._receive(b""):  # a request sent with the Finished
            return
        if (self.inbuf or self.out or self.must_close or self.read_eof or self.in_worker
                or self.body is not None):  # (a body received before its application: read_timeout)
            self.settle()
        else:
            self.watch(IN)  # the first head's deadline still runs from accept (--header-timeout)

    def _handshake_failed(self, exc: ssl.SSLError) -> None:
        log.debug("TLS handshake with %s failed: %s", self.environ_base.get("REMOTE_ADDR") or "a client",
                  exc)
        if self.tls_out.pending:  # the alert tells the client why
            try:
                self.sock.send(self.tls_out.read())
            except OSError:
                pass
        self.broken = True
        self.close()

    def _reject_plain_http(self) -> None:
        """Plain HTTP on the TLS port: answer 400 in plain text (nginx does), then close lingering."""
        head = self.server.backend.serialize_head(
            "400 Bad Request", [("Content-Type", "text/plain; charset=utf-8"),
                                ("Content-Length", str(len(_PLAIN_HTTP_BODY)))],
            date=self.server.date, server="fastwsgi", connection="close")
        try:
            self.sock.send(head + _PLAIN_HTTP_BODY)  # a fresh socket takes a few hundred bytes
        except OSError:
            self.broken = True
            self.close()
            return
        self.inbuf = b""
        self.out = []
        self.out_size = 0
        self.cipher = b""
        Connection.linger(self)

    # -- output ---------------------------------------------------------------------------------

    def flush(self) -> bool:
        """Encrypt the queued plaintext and send what the socket takes; True when nothing waits.
        Connection.flush sends the records (`out` holds them for that call only: between calls it
        holds plaintext, so the records it could not send go back to `cipher`)."""
        out = self.out
        if not out:  # nothing queued, nor records (they keep at least an empty chunk in `out`)
            return True
        if len(out) > 1 or out[0]:
            try:
                self.tls.write(out[0] if len(out) == 1 else b"".join(out))
            except ssl.SSLError:  # nothing more can be encrypted: what waits is lost
                self.broken = True
                self.out = []
                self.out_size = 0
                self.cipher = b""
                return False
            self.cipher += self.tls_out.read()
        # (a connection already `broken` by its client, e.g. an EOF inside a request body, still
        # sends the responses before it, as Connection.flush does: the client may be reading them)
        self.out = [self.cipher]
        self.cipher = b""
        if Connection.flush(self):
            return True
        if not self.broken:  # the rest of the records, as Connection.flush left it
            self.cipher = self.out[0]
            self.out = [b""]
        return False

    def sendfile(self, fd: int, offset: int, count: int):
        """Read a chunk of the file and queue it encrypted (os.sendfile cannot encrypt); None when
        the loop must wait for the socket to drain first."""
        if not self.output_sent():
            return None
        data = os.pread(fd, count, offset)
        if data:
            self.out.append(data)
            self.out_size += len(data)
            if self.in_worker:
                self.flush_wait()
            elif not self.flush() and self.broken:
                raise ConnectionResetError("the client closed the connection")
        return len(data)

    # -- input the application waits for ------------------------------------------------------

    def recv_now(self, size: int):
        """The decrypted bytes the socket holds now (maybe more than `size`: the caller buffers them),
        None when no whole record waits (SSLWantReadError: nothing yet), b"" at the client's EOF
        (close_notify, or TCP's); never waits. A socket or TLS error marks the connection broken and
        raises ConnectionResetError."""
        while True:
            if self.read_eof:  # close_notify came (maybe with the last bytes): nothing more will
                return b""
            raw = self._read_socket()
            if self.broken:
                raise ConnectionResetError("the client closed the connection")
            if not raw:
                return raw  # None: nothing waits; b"": the EOF
            self.tls_in.write(raw)
            try:
                data, eof = self._decrypt()
            except ssl.SSLError as exc:
                self.broken = True
                raise ConnectionResetError(f"TLS error: {exc.reason or exc}") from None
            if self.tls_out.pending:
                self._take_cipher()
            if eof:  # the connection closes once the complete requests are answered (settle)
                self.read_eof = True
            if data or eof:
                return data
            # part of a record: read on

    # -- closing --------------------------------------------------------------------------------

    def close_notify(self) -> None:
        """Say close_notify (RFC 8446 §6.1) once, if this close is orderly: the handshake is done,
        nothing failed, and no response is in progress or waiting for the socket (a close_notify
        after a cut-off response would tell the client it got all of it). Best effort: the alert
        goes out with one non-blocking send, and the client's close_notify is not awaited."""
        if (self.notified or self.broken or self.cut_short or self.handshaking or self.closed or self.out or self.in_worker
                or self.exchange is not None):
            return
        self.notified = True
        try:
            self.tls.unwrap()
        except ssl.SSLError:  # SSLWantReadError: the client's close_notify is not awaited
            pass
        if self.tls_out.pending:
            try:
                self.sock.send(self.tls_out.read())
            except OSError:
                pass

    def linger(self) -> None:
        """Say close_notify after the last response, then close as a plain connection does, with one
        difference: a client that said Connection: close still sends its own close_notify, an alert
        record (data, unlike TCP's FIN), and a close before it is read is answered with a reset,
        which can destroy the response in the client's buffers. So unless it came already, the
        close waits for it (lingering) as for any client that may still send."""
        self.close_notify()
        if not self.read_eof:
            self.peer_done = False
        Connection.linger(self)

    def expire(self) -> None:
        """Idle past --keep-alive (or a client too slow): close_notify before the close, which
        expire marks `broken`. A stalled handshake or send says nothing (see close_notify)."""
        self.close_notify()
        Connection.expire(self)

    def close(self) -> None:
        """Every close of an idle, healthy connection (graceful stop, --max-requests, the client's
        EOF) says close_notify first; error closes (`broken`) do not."""
        self.close_notify()
        Connection.close(self)
