"""fastwsgi/server/proxyproto.py's parser: HAProxy's proxy-protocol.txt, v1 and v2.

A table of headers with the expected outcome (the address, "keep the socket's peer", incomplete, or
refused), every prefix of every valid header (incomplete until the last byte), and hypothesis: random
bytes, random bytes behind each signature and mutated valid headers are never accepted unless an
independent reading of the spec (`reference`, written from the text with the ipaddress module and
struct rather than the parser's regexes) accepts them too, with the same length and address.
"""

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastwsgi.server.proxyproto import (UNKNOWN_CLIENT, V1_MAX_LINE, V2_MAX_BLOCK, V2_SIGNATURE,
                                        ProxyHeaderError, parse_header)

INCOMPLETE, ERROR, KEEP = "incomplete", "error", "keep the socket's peer"
RELAYED = "a client without an address: keep the socket's peer, trust no proxy header"


def v2(command=1, family=0x11, block=b"", version=2, length=None):
    """A v2 header: signature, version/command, family/transport, block length, block."""
    return (V2_SIGNATURE + bytes([version << 4 | command, family])
            + struct.pack("!H", len(block) if length is None else length) + block)


def inet4(src="192.0.2.1", dst="198.51.100.2", sport=50000, dport=443):
    return (ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
            + struct.pack("!HH", sport, dport))


def inet6(src="2001:db8::1", dst="2001:db8::2", sport=50000, dport=443):
    return (ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
            + struct.pack("!HH", sport, dport))


def tlv(kind, value):
    return bytes([kind]) + struct.pack("!H", len(value)) + value


FULL6 = ":".join(["ffff"] * 8)
AWS_VPCE = tlv(0xEA, b"\x01vpce-08d2bf15fEXAMPLE")  # PP2_TYPE_AWS, subtype VPC endpoint id
ALPN = tlv(0x01, b"h2")

# (name, bytes, expected): expected is (address, port), KEEP, INCOMPLETE or ERROR
CASES = [
    # -- v1, valid
    ("v1 tcp4 spec example", b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", ("192.168.0.1", 56324)),
    ("v1 tcp4 longest", b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
     ("255.255.255.255", 65535)),
    ("v1 tcp4 zeros", b"PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", ("0.0.0.0", 0)),
    ("v1 tcp6", b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 80\r\n", ("2001:db8::1", 4000)),
    ("v1 tcp6 canonicalised", b"PROXY TCP6 2001:0DB8:0000:0000:0000:0000:0000:0001 ::1 1 2\r\n",
     ("2001:db8::1", 1)),
    ("v1 tcp6 longest (104 bytes)", f"PROXY TCP6 {FULL6} {FULL6} 65535 65535\r\n".encode(),
     ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535)),
    ("v1 tcp6 v4-mapped", b"PROXY TCP6 ::ffff:192.0.2.7 ::1 80 80\r\n", ("::ffff:192.0.2.7", 80)),
    ("v1 unknown short", b"PROXY UNKNOWN\r\n", RELAYED),
    ("v1 unknown longest (107 bytes)", f"PROXY UNKNOWN {FULL6} {FULL6} 65535 65535\r\n".encode(), RELAYED),
    ("v1 unknown with anything", b"PROXY UNKNOWN whatever \x01\xff comes\r\n", RELAYED),
    # -- v1, incomplete
    ("empty", b"", INCOMPLETE),
    ("v1 part of the word", b"PROX", INCOMPLETE),
    ("v1 no CRLF yet", b"PROXY TCP4 192.0.2.1 198.51.100.2 1", INCOMPLETE),
    ("v1 CR without LF yet", b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r", INCOMPLETE),
    ("v1 106 bytes, no LF", b"PROXY " + b"A" * 100, INCOMPLETE),
    # -- v1, refused
    ("HTTP request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", ERROR),
    ("TLS ClientHello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", ERROR),
    ("lower case", b"proxy TCP4 192.0.2.1 198.51.100.2 1 2\r\n", ERROR),
    ("v1 word misspelt", b"PRXY", ERROR),
    ("v1 no space after PROXY", b"PROXYTCP4", ERROR),
    ("v1 bare LF", b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n", ERROR),
    ("v1 CR CR LF", b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\r\n", ERROR),
    ("v1 two spaces", b"PROXY  TCP4 192.0.2.1 198.51.100.2 1 2\r\n", ERROR),
    ("v1 trailing space", b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2 \r\n", ERROR),
    ("v1 tab", b"PROXY TCP4\t192.0.2.1 198.51.100.2 1 2\r\n", ERROR),
    ("v1 lower-case family", b"PROXY tcp4 192.0.2.1 198.51.100.2 1 2\r\n", ERROR),
    ("v1 unknown family", b"PROXY TCP5 192.0.2.1 198.51.100.2 1 2\r\n", ERROR),
    ("v1 UDP4", b"PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n", ERROR),
    ("v1 missing port", b"PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n", ERROR),
    ("v1 extra field", b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n", ERROR),
    ("v1 octet leading zero", b"PROXY TCP4 192.0.2.01 198.51.100.2 1 2\r\n", ERROR),
    ("v1 octet 256", b"PROXY TCP4 192.0.2.256 198.51.100.2 1 2\r\n", ERROR),
    ("v1 three octets", b"PROXY TCP4 192.0.2 198.51.100.2 1 2\r\n", ERROR),
    ("v1 destination bad", b"PROXY TCP4 192.0.2.1 198.51.100 1 2\r\n", ERROR),
    ("v1 host name", b"PROXY TCP4 localhost 198.51.100.2 1 2\r\n", ERROR),
    ("v1 port 65536", b"PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n", ERROR),
    ("v1 destination port 99999", b"PROXY TCP4 192.0.2.1 198.51.100.2 1 99999\r\n", ERROR),
    ("v1 port leading zero", b"PROXY TCP4 192.0.2.1 198.51.100.2 080 2\r\n", ERROR),
    ("v1 port sign", b"PROXY TCP4 192.0.2.1 198.51.100.2 +80 2\r\n", ERROR),
    ("v1 tcp4 with IPv6", b"PROXY TCP4 2001:db8::1 2001:db8::2 1 2\r\n", ERROR),
    ("v1 tcp6 with IPv4", b"PROXY TCP6 192.0.2.1 198.51.100.2 1 2\r\n", ERROR),
    ("v1 tcp6 mixed families", b"PROXY TCP6 2001:db8::1 198.51.100.2 1 2\r\n", ERROR),
    ("v1 tcp6 zone index", b"PROXY TCP6 fe80::1%eth0 fe80::2 1 2\r\n", ERROR),
    ("v1 tcp6 nine groups", b"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", ERROR),
    ("v1 tcp6 two double colons", b"PROXY TCP6 1::2::3 ::1 1 2\r\n", ERROR),
    ("v1 tcp6 brackets", b"PROXY TCP6 [::1] [::1] 1 2\r\n", ERROR),
    ("v1 unknown glued", b"PROXY UNKNOWNX\r\n", ERROR),
    ("v1 unknown bare CR inside", b"PROXY UNKNOWN a\rb\r\n", ERROR),
    ("v1 unknown 108 bytes", b"PROXY UNKNOWN " + b"x" * 92 + b"\r\n", ERROR),
    ("v1 107 bytes without LF", b"PROXY " + b"A" * 101, ERROR),
    ("v1 NUL", b"PROXY TCP4 192.0.2.1\x00198.51.100.2 1 2\r\n", ERROR),
    # -- v2, valid
    ("v2 tcp4", v2(block=inet4()), ("192.0.2.1", 50000)),
    ("v2 tcp6", v2(family=0x21, block=inet6()), ("2001:db8::1", 50000)),
    ("v2 tcp6 v4-mapped", v2(family=0x21, block=inet6(src="::ffff:192.0.2.9")), ("::ffff:192.0.2.9", 50000)),
    ("v2 tcp4 port 0", v2(block=inet4(sport=0)), ("192.0.2.1", 0)),
    ("v2 tcp4 + AWS VPC endpoint TLV", v2(block=inet4() + AWS_VPCE), ("192.0.2.1", 50000)),
    ("v2 tcp6 + two TLVs", v2(family=0x21, block=inet6() + ALPN + tlv(0x04, b"")), ("2001:db8::1", 50000)),
    ("v2 tcp4 TLVs up to the limit", v2(block=inet4() + tlv(0x04, b"\0" * (V2_MAX_BLOCK - 12 - 3))),
     ("192.0.2.1", 50000)),
    ("v2 local, no block", v2(command=0, family=0x00), KEEP),
    ("v2 local, family and block ignored", v2(command=0, family=0x11, block=inet4()[:5]), KEEP),
    ("v2 proxy unspec", v2(family=0x00), RELAYED),
    ("v2 proxy unspec, block ignored", v2(family=0x00, block=b"\x01\x02\x03"), RELAYED),
    ("v2 unix stream", v2(family=0x31, block=b"/run/a.sock".ljust(108, b"\0") * 2), RELAYED),
    # -- v2, incomplete
    ("v2 signature start", V2_SIGNATURE[:5], INCOMPLETE),
    ("v2 15 bytes", v2(block=inet4())[:15], INCOMPLETE),
    ("v2 block not all there", v2(block=inet4())[:27], INCOMPLETE),
    ("v2 TLV not all there", v2(block=inet4() + AWS_VPCE)[:30], INCOMPLETE),
    # -- v2, refused
    ("v2 signature wrong", b"\r\n\r\n\x01", ERROR),
    ("v2 signature wrong at the end", V2_SIGNATURE[:11] + b"X", ERROR),
    ("v2 CRLF CRLF (HTTP blank lines)", b"\r\n\r\nGET", ERROR),
    ("v2 version 1", v2(version=1, block=inet4()), ERROR),
    ("v2 version 3", v2(version=3, block=inet4()), ERROR),
    ("v2 version 0 (local)", v2(version=0, command=0, family=0), ERROR),
    ("v2 command 2", v2(command=2, block=inet4()), ERROR),
    ("v2 command 15", v2(command=15, block=inet4()), ERROR),
    ("v2 family 4", v2(family=0x41, block=inet4()), ERROR),
    ("v2 transport 3", v2(family=0x13, block=inet4()), ERROR),
    ("v2 local with family 0xff", v2(command=0, family=0xFF), ERROR),
    ("v2 udp4", v2(family=0x12, block=inet4()), ERROR),
    ("v2 udp6", v2(family=0x22, block=inet6()), ERROR),
    ("v2 unix datagram", v2(family=0x32, block=b"\0" * 216), ERROR),
    ("v2 inet, transport unspec", v2(family=0x10, block=inet4()), ERROR),
    ("v2 unspec family, stream", v2(family=0x01, block=b""), ERROR),
    ("v2 tcp4 block 11 bytes", v2(block=inet4()[:11]), ERROR),
    ("v2 tcp6 block of a tcp4", v2(family=0x21, block=inet4()), ERROR),
    ("v2 unix block too short", v2(family=0x31, block=b"\0" * 215), ERROR),
    ("v2 TLV truncated header", v2(block=inet4() + b"\x01\x00"), ERROR),
    ("v2 TLV longer than the block", v2(block=inet4() + b"\x01\x00\x05ab"), ERROR),
    ("v2 block over the limit, refused before it arrives", v2(length=V2_MAX_BLOCK + 1), ERROR),
    ("v2 block 65535", v2(length=65535), ERROR),
]


def outcome(data: bytes):
    try:
        parsed = parse_header(data)
    except ProxyHeaderError:
        return ERROR
    if parsed is None:
        return INCOMPLETE
    length, source = parsed
    assert 0 < length <= len(data)
    return KEEP if source is None else RELAYED if source is UNKNOWN_CLIENT else source


@pytest.mark.parametrize("name, data, expected", CASES, ids=[case[0] for case in CASES])
def test_header_table(name, data, expected):
    assert outcome(data) == expected
    if expected not in (INCOMPLETE, ERROR):
        # the whole header is consumed, nothing after it: a request in the same segment is left alone
        follow = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        assert parse_header(data + follow)[0] == len(data)
        assert parse_header(data + follow + follow)[0] == len(data)


VALID = [(name, data) for name, data, expected in CASES if expected not in (INCOMPLETE, ERROR)]


@pytest.mark.parametrize("name, data", VALID, ids=[name for name, _ in VALID])
def test_every_prefix_of_a_valid_header_is_incomplete(name, data):
    for end in range(len(data)):
        assert parse_header(data[:end]) is None, (end, data[:end])


def test_limits_are_the_specs():
    assert V1_MAX_LINE == 107  # proxy-protocol.txt §2.1: "not found in the first 107 characters"
    assert V2_SIGNATURE == bytes([0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A])
    assert 16 + V2_MAX_BLOCK == 4096


# -- an independent reading of the spec, for hypothesis ----------------------------------------------

def _v1_port(text: bytes):
    if not text.isdigit() or not text.isascii() or (len(text) > 1 and text[0:1] == b"0"):
        return None
    value = int(text)
    return value if value <= 65535 else None


def reference(data: bytes):
    """(length, (address, port) or None) if `data` begins with a complete valid header, else None."""
    if data.startswith(b"PROXY "):
        end = data.find(b"\r\n")
        if end < 0 or end + 2 > 107:
            return None
        line = data[:end]
        if b"\r" in line or b"\n" in line:
            return None
        if line == b"PROXY UNKNOWN" or line.startswith(b"PROXY UNKNOWN "):
            return end + 2, UNKNOWN_CLIENT
        parts = line.split(b" ")
        if len(parts) != 6 or parts[1] not in (b"TCP4", b"TCP6"):
            return None
        kind = ipaddress.IPv4Address if parts[1] == b"TCP4" else ipaddress.IPv6Address
        try:
            src, dst = (part.decode("ascii") for part in parts[2:4])
            if "%" in src + dst:
                return None
            address = kind(src)
            kind(dst)
        except (ValueError, UnicodeDecodeError):
            return None
        sport, dport = _v1_port(parts[4]), _v1_port(parts[5])
        if sport is None or dport is None:
            return None
        return end + 2, (address, sport)
    if data[:12] == V2_SIGNATURE and len(data) >= 16:
        version, command = data[12] >> 4, data[12] & 15
        family, transport = data[13] >> 4, data[13] & 15
        (length,) = struct.unpack("!H", data[14:16])
        if version != 2 or command not in (0, 1) or family > 3 or transport > 2:
            return None
        if length > 4080 or len(data) < 16 + length:
            return None
        block = data[16:16 + length]
        if command == 0:
            return 16 + length, None
        if (family, transport) == (0, 0):
            return 16 + length, UNKNOWN_CLIENT
        sizes = {(1, 1): 12, (2, 1): 36, (3, 1): 216}
        if (family, transport) not in sizes or length < sizes[family, transport]:
            return None
        rest = block[sizes[family, transport]:]
        while rest:
            if len(rest) < 3:
                return None
            size = struct.unpack("!H", rest[1:3])[0]
            if len(rest) < 3 + size:
                return None
            rest = rest[3 + size:]
        if family == 3:
            return 16 + length, UNKNOWN_CLIENT
        if family == 1:
            return 16 + length, (ipaddress.IPv4Address(block[:4]), struct.unpack("!H", block[8:10])[0])
        return 16 + length, (ipaddress.IPv6Address(block[:16]), struct.unpack("!H", block[32:34])[0])
    return None


def check_against_reference(data: bytes) -> None:
    try:
        parsed = parse_header(data)
    except ProxyHeaderError:
        parsed = "error"
    expected = reference(data)
    if expected is None:
        assert parsed is None or parsed == "error", (data, parsed)
        return
    assert parsed not in (None, "error"), (data, expected)
    length, source = parsed
    assert length == expected[0]
    if expected[1] is None or expected[1] is UNKNOWN_CLIENT:
        assert source is expected[1]
    else:
        assert (ipaddress.ip_address(source[0]), source[1]) == expected[1]


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(data):
    check_against_reference(data)


SIGNATURES = [b"PROXY ", b"PROXY TCP4 ", b"PROXY TCP6 ", b"PROXY UNKNOWN", V2_SIGNATURE,
              V2_SIGNATURE + b"\x21\x11", V2_SIGNATURE + b"\x20\x00", V2_SIGNATURE + b"\x21\x21\x00\x24"]


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(SIGNATURES), st.binary(max_size=200))
def test_random_bytes_behind_a_signature(signature, tail):
    check_against_reference(signature + tail)


V1_TEXT = st.sampled_from([b"PROXY TCP4 ", b"PROXY TCP6 ", b"PROXY UNKNOWN ", b" ", b"\r\n", b"\r", b"\n",
                           b"192.0.2.1", b"::1", b"::ffff:1.2.3.4", b"0", b"65535", b"65536", b"080",
                           b"255", b"256", b".", b":", b"ffff", b"01"])


@settings(max_examples=3000, deadline=None)
@given(st.lists(V1_TEXT, max_size=12))
def test_v1_made_of_plausible_pieces(pieces):
    check_against_reference(b"".join(pieces))


@st.composite
def valid_headers(draw):
    """(bytes, expected outcome) of a random valid header."""
    if draw(st.booleans()):
        ipv6 = draw(st.booleans())
        address = draw(st.ip_addresses(v=6 if ipv6 else 4))
        port = draw(st.integers(0, 65535))
        text = (f"PROXY TCP{6 if ipv6 else 4} {address.exploded if draw(st.booleans()) else address} "
                f"{address} {port} {draw(st.integers(0, 65535))}\r\n")
        return text.encode(), (str(address), port)
    ipv6 = draw(st.booleans())
    address = draw(st.ip_addresses(v=6 if ipv6 else 4))
    port = draw(st.integers(0, 65535))
    block = address.packed * 2 + struct.pack("!HH", port, 80)
    for value in draw(st.lists(st.binary(max_size=40), max_size=4)):
        block += tlv(draw(st.integers(0, 255)), value)
    return v2(family=0x21 if ipv6 else 0x11, block=block), (address, port)


@settings(max_examples=1000, deadline=None)
@given(valid_headers(), st.binary(max_size=50), st.data())
def test_valid_headers_any_split(header, after, data):
    raw, (address, port) = header
    cut = data.draw(st.integers(0, len(raw) - 1))
    assert parse_header(raw[:cut]) is None
    length, source = parse_header(raw + after)
    assert length == len(raw)
    assert (ipaddress.ip_address(source[0]), source[1]) == (ipaddress.ip_address(address), port)


@settings(max_examples=3000, deadline=None)
@given(valid_headers(), st.data())
def test_mutated_valid_headers(header, data):
    raw = bytearray(header[0])
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] = data.draw(st.integers(0, 255))
    check_against_reference(bytes(raw))
