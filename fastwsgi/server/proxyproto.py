"""The PROXY protocol in front of HTTP connections (--proxy-protocol): HAProxy's proxy-protocol.txt,
version 1 (one text line) and version 2 (binary), as HAProxy's send-proxy / send-proxy-v2, AWS NLB
(v2) and nginx's stream `proxy_protocol on` (v1) send it.

Theory of operation. An L4 proxy (one that relays bytes and does not read HTTP) connects to us, so the
socket's peer is the proxy; the PROXY header it writes first says whom it relays. With
--proxy-protocol every connection from a peer in --proxy-allow-from (default 127.0.0.1,::1; UNIX-socket
peers are always in it: the socket file's permissions decide who connects) MUST begin with one valid
header, v1 or v2, told apart by their first byte ("P" or CR). Anything else (no header, a malformed
one, a v1 line without CRLF in its first 107 bytes, a v2 block longer than V2_MAX_BLOCK, an unknown
version, command, family or transport) closes the connection without a response: the peer is a proxy
that broke the protocol, and HTTP bytes after a bad header cannot be trusted (the spec: "MUST NOT try
to guess whether the protocol header is present"). The closes are logged on fastwsgi.error as
warnings, rate-limited per process like the uwsgi refusals (fastwsgi.logs.Throttled, one line per
LOG_INTERVAL seconds with a count of those held back). A peer outside the list is not expected to
send the header (gunicorn's rule): its connection is plain HTTP from the first byte, so a PROXY line
from it is a malformed request line (400) and can never set an address.

Effect: the header's source address and port become REMOTE_ADDR and REMOTE_PORT of every request on
the connection (the header comes once per connection; keep-alive requests share it), and so the
access log's %(h)s. v1 `PROXY UNKNOWN ...`, v2 LOCAL (the proxy's own health checks), v2 family
UNSPEC and v2 AF_UNIX (a client on a UNIX socket has no address to give) keep the socket's own peer;
but for the three that relay a client (all but LOCAL) no proxy header applies: the peer is the proxy,
which passed its client's X-Forwarded-* through as the client wrote them, so they are removed.
--forwarded-allow-ips is otherwise applied to the PROXY source, not to the socket's peer: behind a TCP proxy
that passes HTTP bytes through untouched, judging the socket's peer (the proxy, on loopback, trusted
by default) would let every client set X-Forwarded-For; judging the PROXY source trusts the headers
only when the connection itself came from a listed proxy (e.g. a CDN in front of an NLB).

Cost: none when the option is off (the loop picks the plain classes once per listener). When it is on,
the listener's connection class is `reading_proxy_header(base)` (base: Connection or TLSConnection): a
subclass with no slots of its own whose `on_event` reads the header; once it is complete the object's
class becomes `base` (same layout) and the loop's handler for the socket becomes the base's `on_event`,
so every later read and request runs the base's code unchanged.
The header is read with MSG_PEEK and then exactly its bytes are consumed, so nothing after it is read
here: the base's first read finds the request (or the TLS ClientHello: with --certfile the PROXY
header comes first, then the handshake) in the socket as if the header had never been there. A header
split across segments is kept in `inbuf` (empty before the header) until it is whole; the deadline
set at accept (--header-timeout) covers it.

`parse_header(data)` is the sans-IO parser: bytes from the connection's start -> None (incomplete),
(length, source) with source (address text, port), UNKNOWN_CLIENT (a relayed client without an
address: keep the socket's peer, trust no proxy header) or None (LOCAL: keep the socket's peer), or
ProxyHeaderError.
"""

import functools
import logging
import re
import socket
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton

from ..logs import Throttled
from ..proxy import TrustedProxies
from .poller import IN

__all__ = ["ProxyHeaderError", "ProxyProtocol", "parse_header", "reading_proxy_header", "V1_MAX_LINE",
           "V2_SIGNATURE", "V2_MAX_BLOCK", "LOG_INTERVAL", "UNKNOWN_CLIENT"]

log = logging.getLogger("fastwsgi.error")

LOG_INTERVAL = 10.0  # seconds between two warnings about closed connections (with a count between)

V1_PREFIX = b"PROXY "
V1_MAX_LINE = 107  # the longest valid line, CRLF included (proxy-protocol.txt §2.1)
# \x0D \x0A \x0D \x0A \x00 \x0D \x0A \x51 \x55 \x49 \x54 \x0A (§2.2)
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED = 16  # signature, version/command, family/transport, block length
V2_MAX_BLOCK = 4096 - V2_FIXED  # addresses + TLVs accepted: a whole v2 header fits in 4096 bytes
PEEK_SIZE = V2_FIXED + V2_MAX_BLOCK  # enough for any acceptable header, v1 or v2
UNKNOWN_CLIENT = "a relayed client without an address"  # parse_header's source for those headers

# v2 family/transport byte (§2.2): high nibble the family, low nibble the transport; with the PROXY
# command: -> length of the address block, and whether it gives an address we use
_V2_ADDRESSES = {0x00: (0, False),  # UNSPEC: keep the socket's peer
                 0x11: (12, True),  # TCP over IPv4: 4 + 4 + 2 + 2
                 0x21: (36, True),  # TCP over IPv6: 16 + 16 + 2 + 2
                 0x31: (216, False)}  # UNIX stream: 108 + 108, no address to give: keep the peer
# 0x12, 0x22, 0x32 (UDP, UNIX datagram) are valid v2 but cannot carry an HTTP/1.1 byte stream: refused

# v1 (§2.1): "PROXY" SP ("TCP4" | "TCP6") SP src SP dst SP sport SP dport CRLF, or "PROXY UNKNOWN"
# followed by anything up to the CRLF. IPv4: exactly four decimal numbers 0..255 without leading zeros.
# IPv6: hex digits and colons (inet_pton decides; an embedded IPv4 tail is allowed, as inet_ntop writes
# ::ffff:a.b.c.d). Ports: 0..65535 without leading zeros.
_OCTET = rb"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rb"(?:" + _OCTET + rb"\.){3}" + _OCTET
_IPV6 = rb"[0-9A-Fa-f:.]{2,45}"
_PORT = rb"(0|[1-9][0-9]{0,4})"
_V1_TCP4 = re.compile(rb"PROXY TCP4 (" + _IPV4 + rb") (" + _IPV4 + rb") " + _PORT + rb" " + _PORT + rb"\r\n")
_V1_TCP6 = re.compile(rb"PROXY TCP6 (" + _IPV6 + rb") (" + _IPV6 + rb") " + _PORT + rb" " + _PORT + rb"\r\n")
_V1_UNKNOWN = re.compile(rb"PROXY UNKNOWN(?: [^\r\n]*)?\r\n")


class ProxyHeaderError(ValueError):
    """The bytes are not a valid PROXY protocol header (the message says why)."""


def parse_header(data: bytes):
    """The PROXY header at the start of `data` (a connection's first bytes): None while it may still
    become valid (more bytes needed), else (length of the header in bytes, source), source being
    (address text, port int), UNKNOWN_CLIENT (v1 UNKNOWN, v2 PROXY from UNSPEC or AF_UNIX: a client
    whose address the proxy does not know) or None (v2 LOCAL, the proxy's own connection: keep the
    socket's peer). Raises ProxyHeaderError as soon as the bytes cannot be the start of a valid
    header."""
    if not data:
        return None
    first = data[0]
    if first == 0x50:  # "P"
        return _parse_v1(data)
    if first == 0x0D:  # CR
        return _parse_v2(data)
    raise ProxyHeaderError("not a PROXY protocol header")


def _parse_v1(data: bytes):
    if not data.startswith(V1_PREFIX[:len(data)]):
        raise ProxyHeaderError("not a PROXY protocol header")
    end = data.find(b"\n", 0, V1_MAX_LINE)
    if end < 0:
        if len(data) >= V1_MAX_LINE:
            raise ProxyHeaderError(f"v1: no CRLF in the first {V1_MAX_LINE} bytes")
        return None
    length = end + 1
    line = data[:length]
    match = _V1_TCP4.fullmatch(line)
    family = AF_INET
    if match is None:
        match = _V1_TCP6.fullmatch(line)
        family = AF_INET6
    if match is None:
        if _V1_UNKNOWN.fullmatch(line):
            return length, UNKNOWN_CLIENT
        raise ProxyHeaderError("v1: malformed line")
    source, destination, source_port, destination_port = match.groups()
    try:
        packed = inet_pton(family, source.decode("ascii"))
        inet_pton(family, destination.decode("ascii"))
    except OSError:
        raise ProxyHeaderError("v1: malformed address") from None
    port = int(source_port)
    if port > 65535 or int(destination_port) > 65535:
        raise ProxyHeaderError("v1: port out of range")
    return length, (inet_ntop(family, packed), port)  # canonical text, as a socket's peer would be


def _parse_v2(data: bytes):
    size = len(data)
    if not data.startswith(V2_SIGNATURE[:size]):
        raise ProxyHeaderError("not a PROXY protocol header")
    if size < V2_FIXED:
        return None
    version_command, family, length = data[12], data[13], int.from_bytes(data[14:16], "big")
    if version_command >> 4 != 2:
        raise ProxyHeaderError(f"v2: unknown version {version_command >> 4}")
    command = version_command & 0x0F
    if command > 1:
        raise ProxyHeaderError(f"v2: unknown command {command}")
    if family >> 4 > 3 or family & 0x0F > 2:
        raise ProxyHeaderError(f"v2: unknown address family or transport 0x{family:02x}")
    if length > V2_MAX_BLOCK:
        raise ProxyHeaderError(f"v2: address block of {length} bytes (at most {V2_MAX_BLOCK})")
    end = V2_FIXED + length
    if size < end:
        return None
    if command == 0:  # LOCAL: the proxy's own connection (a health check); the block is ignored
        return end, None
    addresses = _V2_ADDRESSES.get(family)
    if addresses is None:
        raise ProxyHeaderError(f"v2: family/transport 0x{family:02x} cannot carry HTTP")
    address_length, gives_address = addresses
    if length < address_length:
        raise ProxyHeaderError(f"v2: address block of {length} bytes for family 0x{family:02x}")
    if family != 0x00:
        _check_tlvs(data, V2_FIXED + address_length, end)
    if not gives_address:
        return end, UNKNOWN_CLIENT
    if family == 0x11:
        return end, (inet_ntop(AF_INET, data[16:20]), int.from_bytes(data[24:26], "big"))
    return end, (inet_ntop(AF_INET6, data[16:32]), int.from_bytes(data[48:50], "big"))


def _check_tlvs(data: bytes, position: int, end: int) -> None:
    """The TLVs after the addresses (§2.2.x: type, 2-byte length, value) must fill the block exactly;
    their contents are not used."""
    while position < end:
        if end - position < 3:
            raise ProxyHeaderError("v2: truncated TLV")
        position += 3 + int.from_bytes(data[position + 1:position + 3], "big")
        if position > end:
            raise ProxyHeaderError("v2: TLV longer than the address block")


class ProxyProtocol:
    """The server's --proxy-protocol settings: who must send the header, and the warning throttle."""

    __slots__ = ("allowed", "errors")

    def __init__(self, allow_from="127.0.0.1,::1"):
        self.allowed = TrustedProxies.parse(allow_from)  # the --forwarded-allow-ips matcher
        self.errors = Throttled(log, "closed PROXY protocol connections", LOG_INTERVAL)

    def expects_header(self, peer: str) -> bool:
        """Must a connection from `peer` (REMOTE_ADDR: "" for a UNIX socket) begin with a header?"""
        return self.allowed.is_trusted(peer)

    def refuse(self, conn, reason: str, data: bytes) -> None:
        self.errors.warn("PROXY protocol: closed a connection from %s: %s (received %r)",
                         conn.environ_base.get("REMOTE_ADDR") or "a UNIX socket", reason, data[:40])
        conn.broken = True
        conn.close()


class ProxyHeaderReader:
    """Reads the PROXY header, then turns the connection into `after_header` (see the module doc).
    Mixed in before a Connection class by `reading_proxy_header`; no slots of its own."""

    __slots__ = ()
    after_header = None  # the Connection class this one becomes once the header is read

    def __init__(self, server, sock, environ_base: dict):
        super().__init__(server, sock, environ_base)
        if not server.proxy_protocol.expects_header(environ_base["REMOTE_ADDR"]):
            self.__class__ = self.after_header  # plain HTTP (or TLS) from the first byte

    def on_event(self, events: int) -> None:
        sock = self.sock
        try:
            peeked = sock.recv(PEEK_SIZE, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            self.watch(IN)
            return
        except OSError:
            self.broken = True
            self.close()
            return
        if not peeked:  # the proxy closed before a whole header
            self.broken = True
            self.close()
            return
        held = self.inbuf  # the start of a header split across segments
        data = held + peeked if held else peeked
        try:
            parsed = parse_header(data)
        except ProxyHeaderError as exc:
            self.server.proxy_protocol.refuse(self, str(exc), data)
            return
        wanted = len(peeked) if parsed is None else parsed[0] - len(held)
        try:
            taken = sock.recv(wanted)  # exactly the peeked header bytes, still in the socket
        except OSError:
            taken = b""
        if len(taken) != wanted:
            self.broken = True
            self.close()
            return
        if parsed is None:
            self.inbuf = data
            self.watch(IN)  # the deadline set at accept (--header-timeout) still runs
            return
        source = parsed[1]
        if source is UNKNOWN_CLIENT:  # the socket's peer is the proxy; its client's headers are the
            self.trusted_proxies = NOBODY  # client's own: removed, never applied
        elif source is not None:
            environ = self.environ_base
            environ["REMOTE_ADDR"], port = source
            environ["REMOTE_PORT"] = str(port)
        self.inbuf = b""
        self.__class__ = self.after_header
        self.server.handlers[self.fd] = self.on_event  # the loop's handler: the base's method now
        if len(peeked) > wanted:  # the request (or ClientHello) is waiting behind the header
            self.on_event(IN)
        else:
            self.watch(IN)


NOBODY = TrustedProxies.parse("", trust_unix=False)  # no peer's proxy headers apply


@functools.cache
def reading_proxy_header(base: type) -> type:
    """The connection class of an HTTP listener under --proxy-protocol whose connections are `base`
    (Connection or TLSConnection) once the header is read; one class per base."""
    return type(f"ProxyHeader{base.__name__}", (ProxyHeaderReader, base),
                {"__slots__": (), "after_header": base, "__doc__": ProxyHeaderReader.__doc__})
