"""Proxy headers: X-Forwarded-For/-Proto/-Host and RFC 7239 Forwarded, from trusted peers only.

Theory of operation. `TrustedProxies.parse(spec)` turns the --forwarded-allow-ips value (IPs, CIDR
networks, "*", comma-separated; default "127.0.0.1,::1" as gunicorn) into a matcher built once: a set
of exact address strings (one lookup decides the usual peer), and addresses and networks as integers
with masks, so a forwarded address costs one inet_pton and a few integer comparisons.
`apply_forwarded(environ, trusted)` runs on the environ the server built, where REMOTE_ADDR is the
TCP peer ("" for a UNIX-socket peer), when it holds one of the FORWARDING_KEYS (the server's
`Exchange` tests the four keys inline, the hot path: most requests carry none, and without any
this function would change nothing):

* The peer is not trusted: the four forwarding keys are deleted from the environ, so an application
  (or a framework's own proxy middleware) can never read a value a client made up.
* The peer is trusted: the headers are applied to REMOTE_ADDR/REMOTE_PORT, wsgi.url_scheme and
  HTTP_HOST/SERVER_NAME/SERVER_PORT, and are left in the environ for the application to see. A
  forwarded scheme "http" also removes the HTTPS "on" of a TLS listener (fastwsgi/server/tls.py):
  the client spoke plain HTTP to the proxy, and an application reading HTTPS would build https URLs.

Choosing the client address (both header kinds): walk the hop list from the right (the entry added by
our peer) to the left, as nginx `real_ip_recursive on` and uvicorn do. Each trusted address is a proxy
we believe, so keep walking; the first address that is not trusted is the client. If every address is
trusted the leftmost one is the client. Entries left of the client were written by the client itself
and are never looked at. If the walk meets an entry that is not a usable address (garbage, "unknown",
an RFC 7239 obfuscated "_name") it stops and the client is the last real address it passed (a trusted
proxy, or the peer itself): REMOTE_ADDR is always a genuine IP address. REMOTE_PORT takes the port the
entry carried ("1.2.3.4:5678", "[2001:db8::1]:443") or "" when it has none.

Scheme and host. RFC 7239 ties for=, proto= and host= together per element (one element per proxy),
so proto/host come from the element where the walk stopped: that element was written by a proxy we
trust, describing the request it received from the client. X-Forwarded-Proto and X-Forwarded-Host are
separate lists with no per-hop link, so their rightmost entry is used: the value set by the nearest
proxy, which we trust (the usual nginx setup `proxy_set_header X-Forwarded-Proto $scheme` overwrites
it). Only "http" and "https" are accepted as a scheme. A forwarded host (reg-name or IPv4 of
[A-Za-z0-9._~-], or a bracketed IPv6 literal, with an optional port) sets HTTP_HOST, SERVER_NAME and
SERVER_PORT (its port, else the scheme's default 80/443). A port is 1-65535, given in decimal
(leading zeros are dropped: SERVER_PORT "0080" would make a reconstructed URL say ":0080"); a host
or an address with port 0 or a larger one is malformed.

One family, chosen by configuration (--forwarded-headers, as waitress's trusted_proxy_headers and
hypercorn's ProxyFix mode): X-Forwarded-* (the default: what nginx's proxy_set_header examples, AWS
load balancers and gunicorn/uvicorn use) or RFC 7239 Forwarded (HAProxy option forwarded, Envoy).
The other family is never read and is deleted from the environ: a proxy passes the headers it does
not set through as the client sent them (nginx passes a client's Forwarded on untouched), so letting
the request pick the family (as fastwsgi once did: a well-formed Forwarded won) let that client
choose its address and scheme. A Forwarded header that does not parse (RFC 7239 §4 grammar:
token=token-or-quoted-string pairs, ';' within an element, ',' between elements) is ignored as a
whole.

UNIX sockets: a UNIX-socket peer (REMOTE_ADDR "") is trusted by default, as gunicorn does: only local
processes allowed by the socket file's permissions can connect (typically the proxy itself).
`TrustedProxies.parse(spec, trust_unix=False)` turns that off.

Malformed values never raise: anything unparsable is ignored (and the computation happens before the
environ is touched, so a failure leaves it as the server built it).

Memo: what to do with an environ depends on six of its values only (REMOTE_ADDR, the four headers,
wsgi.url_scheme), so `_outcome` is a function of those six and nothing else, and its result (the
items to set, or UNTRUSTED: the keys to delete) is remembered per TrustedProxies under them. Behind
a proxy most requests repeat a few such combinations (one client's address over many requests, the
same proto and host): the walk, the address parsing and the host checks then run once per
combination instead of once per request (a keep-alive request with nginx's X-Forwarded-For and
-Proto, in process: 49.5k instructions -> 35.4k). The memo is bounded (OUTCOME_CACHE_SIZE entries,
emptied when full) and skips combinations whose header values are long, so a client cannot make it
hold much.
"""

import ipaddress
import re
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton

__all__ = ["TrustedProxies", "apply_forwarded", "DEFAULT_FORWARDED_ALLOW_IPS", "FORWARDING_KEYS",
           "HEADER_FAMILIES"]

DEFAULT_FORWARDED_ALLOW_IPS = "127.0.0.1,::1"

# The environ keys of the headers this module interprets (deleted when the peer is not trusted).
FORWARDED = "HTTP_FORWARDED"
X_FORWARDED_FOR = "HTTP_X_FORWARDED_FOR"
X_FORWARDED_PROTO = "HTTP_X_FORWARDED_PROTO"
X_FORWARDED_HOST = "HTTP_X_FORWARDED_HOST"
FORWARDING_KEYS = (FORWARDED, X_FORWARDED_FOR, X_FORWARDED_PROTO, X_FORWARDED_HOST)
# --forwarded-headers: the one header family a trusted peer's requests are read by
X_FORWARDED_HEADERS = "x-forwarded"
FORWARDED_HEADERS = "forwarded"
HEADER_FAMILIES = (X_FORWARDED_HEADERS, FORWARDED_HEADERS)

_DEFAULT_PORTS = {"http": "80", "https": "443"}
_PEER_CACHE_SIZE = 1024  # peer address -> trusted?, for specs with networks
OUTCOME_CACHE_SIZE = 256  # apply_forwarded's memo: (the six inputs) -> outcome
_OUTCOME_KEY_MAX = 512  # characters of header values above which an outcome is not remembered
UNTRUSTED = "untrusted"  # the outcome for an untrusted peer: the forwarding keys are deleted


class TrustedProxies:
    """Which peers may set proxy headers. Build with `parse()`; test an address with `is_trusted()`."""

    __slots__ = ("trust_all", "trust_unix", "spec", "headers", "ignored_keys", "_exact_text", "_exact",
                 "_networks", "_cache", "outcomes")

    def __init__(self, addresses=(), networks=(), trust_all=False, trust_unix=True, spec="",
                 headers=X_FORWARDED_HEADERS):
        """addresses: ipaddress addresses; networks: ipaddress networks (see `parse`); headers: the
        family applied (--forwarded-headers: HEADER_FAMILIES)."""
        if headers not in HEADER_FAMILIES:
            raise ValueError(f"forwarded headers: {headers!r} is not one of {', '.join(HEADER_FAMILIES)}")
        self.trust_all = trust_all
        self.trust_unix = trust_unix
        self.spec = spec
        self.headers = headers
        # the other family's keys: a trusted peer passes them on as the client sent them (deleted)
        self.ignored_keys = (FORWARDED,) if headers == X_FORWARDED_HEADERS else FORWARDING_KEYS[1:]
        # exact strings as a socket reports them: one set lookup decides the usual peers
        self._exact_text = frozenset(str(address) for address in addresses)
        self._exact = frozenset((address.max_prefixlen, int(address)) for address in addresses)
        self._networks = tuple((network.max_prefixlen, int(network.network_address), int(network.netmask))
                               for network in networks)
        self._cache = {}
        self.outcomes = {}  # apply_forwarded's memo (module docstring)

    @classmethod
    def parse(cls, spec=DEFAULT_FORWARDED_ALLOW_IPS, *, trust_unix: bool = True,
              headers: str = X_FORWARDED_HEADERS) -> "TrustedProxies":
        """Parse "IP, CIDR, ..." or "*" (also a list of such strings); ValueError names a bad entry."""
        if isinstance(spec, str):
            entries = spec.split(",")
        elif isinstance(spec, (list, tuple)) and all(isinstance(entry, str) for entry in spec):
            entries = [part for entry in spec for part in entry.split(",")]
        else:
            raise ValueError(f"expected a comma-separated string of IPs and networks, got {spec!r}")
        addresses, networks, trust_all = [], [], False
        for entry in entries:
            entry = entry.strip()
            if not entry:
                continue  # "a,,b" and a trailing comma are harmless
            if entry == "*":
                trust_all = True
            elif "/" in entry:
                networks.append(_parse_network(entry))
            else:
                addresses.append(_parse_address(entry))
        text = spec if isinstance(spec, str) else ",".join(spec)
        return cls(addresses, networks, trust_all, trust_unix, text, headers)

    def is_trusted(self, address: str) -> bool:
        """Is the peer `address` (a socket's text form; "" for a UNIX socket) a trusted proxy?"""
        if self.trust_all or address in self._exact_text:
            return True
        if not address:
            return self.trust_unix
        cached = self._cache.get(address)
        if cached is None:
            ip = _parse_ip(address)
            cached = ip is not None and self.trusts(ip)
            cache = self._cache
            if len(cache) >= _PEER_CACHE_SIZE:
                cache.clear()
            cache[address] = cached
        return cached

    def trusts(self, ip) -> bool:
        """Is `ip` = (bits, integer, text) from `_parse_ip` trusted? IPv4-mapped IPv6 also matches as IPv4."""
        if self.trust_all:
            return True
        bits, value = ip[0], ip[1]
        if (bits, value) in self._exact:
            return True
        for network_bits, network, mask in self._networks:
            if network_bits == bits and value & mask == network:
                return True
        if bits == 128 and value >> 32 == 0xFFFF:  # ::ffff:a.b.c.d (RFC 4291 §2.5.5.2)
            return self.trusts((32, value & 0xFFFFFFFF))
        return False

    def __repr__(self) -> str:
        return f"TrustedProxies.parse({self.spec!r}, trust_unix={self.trust_unix})"


def _parse_address(entry: str):
    text = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{entry!r} is not an IP address or CIDR network "
                         "(host names are not resolved)") from None


def _parse_network(entry: str):
    try:
        return ipaddress.ip_network(entry)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"{entry!r} is not a CIDR network ({exc})") from None
        raise ValueError(f"{entry!r} has host bits set; did you mean {loose}?") from None


# -- addresses and hop nodes: "1.2.3.4", "1.2.3.4:80", "[2001:db8::1]:443", "2001:db8::1" ----------

_PORT = re.compile(r"[0-9]{1,5}")
_OBFUSCATED_PORT = re.compile(r"_[A-Za-z0-9._-]+")  # RFC 7239 §6.3 obfport
_SCOPE = re.compile(r"[A-Za-z0-9._-]+")  # an IPv6 zone index (RFC 6874), e.g. fe80::1%eth0


def _port(text: str):
    """A port as forwarded ("443", "0443") -> its decimal string ("443"); None unless 1..65535."""
    if _PORT.fullmatch(text) and 0 < int(text) <= 65535:
        return str(int(text))
    return None


def _parse_ip(text: str):
    """-> (32 or 128, integer value, canonical text) or None. inet_pton: strict and done in C."""
    try:
        if ":" not in text:
            # inet_pton accepts only a.b.c.d in decimal without leading zeros: the text is canonical
            return 32, int.from_bytes(inet_pton(AF_INET, text), "big"), text
        address, percent, scope = text.partition("%")
        if percent and not _SCOPE.fullmatch(scope):
            return None
        packed = inet_pton(AF_INET6, address)
    except (OSError, ValueError):  # ValueError: embedded NUL, text that is not ASCII
        return None
    return 128, int.from_bytes(packed, "big"), inet_ntop(AF_INET6, packed) + percent + scope


def _parse_node(text):
    """-> (ip from _parse_ip, port str) or None for "unknown", obfuscated names (§6.2, §6.3), junk."""
    if not text:
        return None
    port = ""
    if text[0] == "[":  # RFC 7239 §6: "[" IPv6address "]" [ ":" node-port ]
        end = text.find("]")
        if end < 0:
            return None
        host, rest = text[1:end], text[end + 1:]
        if ":" not in host:
            return None  # brackets hold IPv6 only
        if rest:
            if rest[0] != ":":
                return None
            port = rest[1:] or None
    elif text.count(":") == 1:  # IPv4 (or a name) with a port
        host, _, port = text.partition(":")
        port = port or None
    else:  # IPv4 or a bare IPv6 address
        host = text
    if port is None:
        return None  # a colon without a port
    if port:
        if _OBFUSCATED_PORT.fullmatch(port):
            port = ""  # an obfuscated port: the address is still good
        else:
            port = _port(port)
            if port is None:
                return None
    ip = _parse_ip(host)  # None for "unknown", "_hidden", a host name, junk
    return None if ip is None else (ip, port)


def _walk(nodes, trusted: TrustedProxies):
    """Walk hop nodes right to left; -> (index where the walk stopped, client node or None)."""
    client = None
    index = len(nodes) - 1
    while index >= 0:
        node = nodes[index]
        if node is None:
            break  # unusable identifier: keep the last real address passed
        client = node
        if not trusted.trusts(node[0]):
            break
        if index == 0:
            break  # every hop trusted: the leftmost is the client
        index -= 1
    return index, client


# -- RFC 7239 §4 Forwarded -----------------------------------------------------------------------

_TCHARS = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
# forwarded-pair = token "=" value; value = token / quoted-string (RFC 9110 §5.6.2, §5.6.4)
_QDTEXT = r"[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]"  # RFC 9110 §5.6.4
_QUOTED_PAIR_TEXT = r"\\[\t \x21-\x7e\x80-\xff]"
_PAIR = re.compile(rf'([{_TCHARS}]+)=(?:([{_TCHARS}]+)|"((?:{_QDTEXT}|{_QUOTED_PAIR_TEXT})*)")')
_QUOTED_PAIR = re.compile(r"\\(.)")
_OWS = " \t"


def parse_forwarded(value: str):
    """-> list of elements (dicts of lower-cased parameter -> value) or None if malformed.

    A parameter repeated inside one element (§4: "MUST NOT occur more than once") makes the whole
    header malformed, like any syntax error: a half-understood header is not trusted in part.
    """
    if '"' not in value:
        return _parse_forwarded_tokens(value)  # the common case, about 3x faster
    return _parse_forwarded_general(value)


def _parse_forwarded_general(value: str):
    """parse_forwarded for any header: scans pairs with a regex (quoted strings may hold , ; =)."""
    elements = []
    current = {}
    position, length = 0, len(value)
    expect_pair = True
    while True:
        while position < length and value[position] in _OWS:
            position += 1
        if position >= length:
            break
        char = value[position]
        if char == ",":  # element separator (empty list elements are allowed, RFC 9110 §5.6.1)
            if current:
                elements.append(current)
                current = {}
            position += 1
            expect_pair = True
            continue
        if char == ";":
            position += 1
            expect_pair = True
            continue
        if not expect_pair:
            return None  # two pairs without a separator
        match = _PAIR.match(value, position)
        if match is None:
            return None
        name = match.group(1).lower()
        if name in current:
            return None
        token, quoted = match.group(2), match.group(3)
        current[name] = token if token is not None else _QUOTED_PAIR.sub(r"\1", quoted)
        position = match.end()
        expect_pair = False
    if current:
        elements.append(current)
    return elements


_TOKEN = re.compile(rf"[{_TCHARS}]+")


def _parse_forwarded_tokens(value: str):
    """parse_forwarded for a header without quoted strings: plain splits, same grammar and results."""
    elements = []
    for part in value.split(","):
        element = {}
        for pair in part.split(";"):
            pair = pair.strip(_OWS)
            if not pair:
                continue
            name, equals, token = pair.partition("=")
            if not equals or not _TOKEN.fullmatch(name) or not _TOKEN.fullmatch(token):
                return None
            name = name.lower()
            if name in element:
                return None
            element[name] = token
        if element:
            elements.append(element)
    return elements


# -- X-Forwarded-* and hosts ------------------------------------------------------------------------

_HOST_NAME = re.compile(r"[A-Za-z0-9._~-]+")


def _split_host(value: str):
    """Host header syntax (RFC 9110 §7.2) -> (host for SERVER_NAME, port str) or None."""
    port = ""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        literal = _parse_ip(value[1:end])
        if literal is None or literal[0] != 128:
            return None
        name, rest = value[:end + 1], value[end + 1:]
        if rest:
            if rest[0] != ":":
                return None
            port = rest[1:]
    else:
        name, colon, port = value.partition(":")
        if colon and not port:
            return None
        if not _HOST_NAME.fullmatch(name):
            return None
    if port:
        port = _port(port)
        if port is None:
            return None
    return name, port


def _last_item(value: str) -> str:
    return value.rpartition(",")[2].strip(_OWS)


def _scheme(value):
    if value is None:
        return None
    scheme = value.strip(_OWS).lower()
    return scheme if scheme in _DEFAULT_PORTS else None


def _resolve(forwarded, xff, proto, host, trusted: TrustedProxies):
    """Decide what a trusted peer's headers mean: -> (client node, scheme, host), each possibly None."""
    if trusted.headers == FORWARDED_HEADERS:
        elements = parse_forwarded(forwarded) if forwarded is not None else None
        if not elements:
            return None, None, None
        index, client = _walk([_parse_node(element.get("for")) for element in elements], trusted)
        element = elements[index]
        return client, _scheme(element.get("proto")), element.get("host")
    client = None
    if xff is not None:
        _, client = _walk([_parse_node(item.strip(_OWS)) for item in xff.split(",")], trusted)
    return (client, _scheme(_last_item(proto)) if proto is not None else None,
            _last_item(host) if host is not None else None)


def apply_forwarded(environ: dict, trusted: TrustedProxies) -> None:
    """Apply (trusted peer) or delete (untrusted peer) the proxy headers in `environ`, in place."""
    get = environ.get
    inputs = (get("REMOTE_ADDR", ""), get(FORWARDED), get(X_FORWARDED_FOR), get(X_FORWARDED_PROTO),
              get(X_FORWARDED_HOST), get("wsgi.url_scheme"))
    outcomes = trusted.outcomes
    outcome = outcomes.get(inputs)
    if outcome is None:
        outcome = _outcome(*inputs, trusted)
        if sum(len(value) for value in inputs[1:5] if value is not None) <= _OUTCOME_KEY_MAX:
            if len(outcomes) >= OUTCOME_CACHE_SIZE:
                outcomes.clear()
            outcomes[inputs] = outcome
    if outcome is UNTRUSTED:
        for key in FORWARDING_KEYS:
            environ.pop(key, None)
    else:
        environ.update(outcome)
        if outcome.get("wsgi.url_scheme") == "http":  # a TLS listener's HTTPS "on" would contradict it
            environ.pop("HTTPS", None)
        for key in trusted.ignored_keys:
            environ.pop(key, None)


def _outcome(peer: str, forwarded, xff, proto, host, url_scheme, trusted: TrustedProxies):
    """What apply_forwarded does, from its six inputs alone: UNTRUSTED, or a dict of the items to set."""
    if not trusted.is_trusted(peer):
        return UNTRUSTED
    try:
        client, scheme, forwarded_host = _resolve(forwarded, xff, proto, host, trusted)
        split_host = _split_host(forwarded_host) if forwarded_host else None
        default_port = _DEFAULT_PORTS.get(scheme or url_scheme, "80")
    except Exception:  # a bug here must not become the server's problem: leave the environ alone
        return {}
    changes = {}
    if client is not None:
        changes["REMOTE_ADDR"] = client[0][2]
        changes["REMOTE_PORT"] = client[1]
    if scheme is not None:
        changes["wsgi.url_scheme"] = scheme
    if split_host is not None:
        name, port = split_host
        changes["HTTP_HOST"] = forwarded_host
        changes["SERVER_NAME"] = name
        changes["SERVER_PORT"] = port or default_port
    return changes
