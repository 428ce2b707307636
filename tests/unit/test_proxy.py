"""fastwsgi/proxy.py: --forwarded-allow-ips parsing and proxy headers applied to the environ.

Every test builds the environ the server would build (REMOTE_ADDR = the TCP peer) and checks the exact
environ afterwards: what a trusted proxy may change, what an untrusted client can never change.
"""

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastwsgi.proxy import (DEFAULT_FORWARDED_ALLOW_IPS, FORWARDING_KEYS, HEADER_FAMILIES, OUTCOME_CACHE_SIZE,
                            TrustedProxies, apply_forwarded, parse_forwarded)

DEFAULT = TrustedProxies.parse()
FORWARDED_FAMILY = TrustedProxies.parse(headers="forwarded")  # --forwarded-headers forwarded


def make_environ(peer="127.0.0.1", port="50000", **headers):
    environ = {
        "REMOTE_ADDR": peer,
        "REMOTE_PORT": port,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "backend:8000",
        "wsgi.url_scheme": "http",
        "HTTP_USER_AGENT": "curl/8",
    }
    environ.update(headers)
    return environ


def applied(trusted=DEFAULT, **kwargs):
    environ = make_environ(**kwargs)
    apply_forwarded(environ, trusted)
    return environ


# -- TrustedProxies.parse ---------------------------------------------------------------------------

def test_default_is_gunicorns_loopback_pair():
    assert DEFAULT_FORWARDED_ALLOW_IPS == "127.0.0.1,::1"
    assert DEFAULT.is_trusted("127.0.0.1")
    assert DEFAULT.is_trusted("::1")
    assert not DEFAULT.is_trusted("127.0.0.2")
    assert not DEFAULT.is_trusted("10.0.0.1")
    assert not DEFAULT.is_trusted("::2")


def test_ipv4_mapped_peer_matches_ipv4_entry():
    # a dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d
    assert DEFAULT.is_trusted("::ffff:127.0.0.1")
    assert not DEFAULT.is_trusted("::ffff:127.0.0.2")
    assert TrustedProxies.parse("10.0.0.0/8").is_trusted("::ffff:10.9.8.7")


def test_cidr_ipv4_boundaries():
    trusted = TrustedProxies.parse("192.168.4.0/22")
    assert trusted.is_trusted("192.168.4.0")
    assert trusted.is_trusted("192.168.7.255")
    assert not trusted.is_trusted("192.168.3.255")
    assert not trusted.is_trusted("192.168.8.0")
    assert not trusted.is_trusted("::1")


def test_cidr_ipv6_boundaries():
    trusted = TrustedProxies.parse("2001:db8:abcd::/48, fd00::/8")
    assert trusted.is_trusted("2001:db8:abcd::1")
    assert trusted.is_trusted("2001:db8:abcd:ffff:ffff:ffff:ffff:ffff")
    assert not trusted.is_trusted("2001:db8:abce::")
    assert trusted.is_trusted("fdff::1")
    assert not trusted.is_trusted("fe00::1")
    assert not trusted.is_trusted("10.0.0.1")


def test_link_local_scope_matches_plain_entry():
    trusted = TrustedProxies.parse("fe80::1")
    assert trusted.is_trusted("fe80::1%eth0")
    assert not trusted.is_trusted("fe80::2%eth0")


def test_star_trusts_everyone():
    trusted = TrustedProxies.parse("*")
    assert trusted.is_trusted("203.0.113.9")
    assert trusted.is_trusted("2001:db8::9")
    assert trusted.is_trusted("")


def test_spec_forms_whitespace_brackets_lists_and_empty_items():
    trusted = TrustedProxies.parse(" 10.1.1.1 , [::2],,")
    assert trusted.is_trusted("10.1.1.1") and trusted.is_trusted("::2")
    listed = TrustedProxies.parse(["10.1.1.1", "172.16.0.0/12,::2"])
    assert listed.is_trusted("172.31.255.255") and listed.is_trusted("::2")
    assert not listed.is_trusted("172.32.0.0")


def test_empty_spec_trusts_no_address():
    trusted = TrustedProxies.parse("")
    assert not trusted.is_trusted("127.0.0.1")
    assert not trusted.is_trusted("::1")


@pytest.mark.parametrize("spec, reason", [
    ("localhost", "'localhost' is not an IP address or CIDR network (host names are not resolved)"),
    ("127.0.0.1,example.com", "'example.com' is not an IP address or CIDR network"),
    ("10.0.0.1/8", "'10.0.0.1/8' has host bits set; did you mean 10.0.0.0/8?"),
    ("2001:db8::1/32", "'2001:db8::1/32' has host bits set; did you mean 2001:db8::/32?"),
    ("10.0.0.0/33", "'10.0.0.0/33' is not a CIDR network"),
    ("1.2.3.4.5", "'1.2.3.4.5' is not an IP address"),
    ("01.2.3.4", "'01.2.3.4' is not an IP address"),
    ("**", "'**' is not an IP address"),
])
def test_bad_entries_are_rejected_with_a_one_line_reason(spec, reason):
    with pytest.raises(ValueError) as info:
        TrustedProxies.parse(spec)
    message = str(info.value)
    assert message.startswith(reason)
    assert "\n" not in message


@pytest.mark.parametrize("spec", [None, 17, ["ok", 3], b"127.0.0.1"])
def test_bad_spec_types_are_rejected(spec):
    with pytest.raises(ValueError, match="comma-separated"):
        TrustedProxies.parse(spec)


def test_unix_socket_peer_trusted_by_default_and_can_be_refused():
    assert DEFAULT.is_trusted("")
    environ = applied(peer="", port="", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert environ["REMOTE_ADDR"] == "198.51.100.7"
    strict = TrustedProxies.parse(trust_unix=False)
    assert not strict.is_trusted("")
    environ = applied(strict, peer="", port="", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert environ["REMOTE_ADDR"] == ""
    assert "HTTP_X_FORWARDED_FOR" not in environ


def test_peer_cache_is_bounded_and_stays_correct():
    trusted = TrustedProxies.parse("10.0.0.0/8")
    for i in range(3000):
        address = f"10.{i // 256 % 256}.{i % 256}.1"
        assert trusted.is_trusted(address)
        assert not trusted.is_trusted(f"11.0.{i % 256}.{i // 256}")
    assert len(trusted._cache) <= 1024
    assert trusted.is_trusted("10.0.0.1") and not trusted.is_trusted("not an address")


# -- fast path and untrusted peers ----------------------------------------------------------------

def test_no_forwarding_headers_leaves_environ_untouched():
    for trusted in (DEFAULT, TrustedProxies.parse("")):
        for peer in ("127.0.0.1", "203.0.113.5"):
            environ = make_environ(peer=peer)
            before = dict(environ)
            apply_forwarded(environ, trusted)
            assert environ == before


def test_untrusted_peer_cannot_spoof_anything():
    environ = applied(peer="203.0.113.5",
                      HTTP_X_FORWARDED_FOR="127.0.0.1",
                      HTTP_X_FORWARDED_PROTO="https",
                      HTTP_X_FORWARDED_HOST="bank.example",
                      HTTP_FORWARDED="for=127.0.0.1;proto=https;host=bank.example",
                      HTTP_X_REAL_IP="1.1.1.1")
    assert environ == {**make_environ(peer="203.0.113.5"), "HTTP_X_REAL_IP": "1.1.1.1"}
    for key in FORWARDING_KEYS:
        assert key not in environ


@pytest.mark.parametrize("key", FORWARDING_KEYS)
def test_each_forwarding_header_alone_is_stripped_from_untrusted_peer(key):
    environ = applied(peer="198.51.100.1", **{key: "for=1.2.3.4" if key == "HTTP_FORWARDED" else "x"})
    assert environ == make_environ(peer="198.51.100.1")


# -- X-Forwarded-For -----------------------------------------------------------------------------

def test_xff_single_client():
    environ = applied(HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert environ["REMOTE_ADDR"] == "198.51.100.7"
    assert environ["REMOTE_PORT"] == ""
    assert environ["HTTP_X_FORWARDED_FOR"] == "198.51.100.7"  # kept for the application
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["HTTP_HOST"] == "backend:8000"


def test_xff_client_prepended_values_are_ignored():
    # the client sent "X-Forwarded-For: 10.0.0.1"; our proxy appended the real address
    environ = applied(HTTP_X_FORWARDED_FOR="10.0.0.1, 198.51.100.7")
    assert environ["REMOTE_ADDR"] == "198.51.100.7"


def test_xff_walks_through_trusted_hops_to_rightmost_untrusted():
    trusted = TrustedProxies.parse("127.0.0.1, 10.0.0.0/8, 2001:db8:1::/64")
    environ = applied(trusted, HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7, 10.1.2.3, 2001:db8:1::5")
    assert environ["REMOTE_ADDR"] == "198.51.100.7"


def test_xff_every_hop_trusted_gives_leftmost():
    trusted = TrustedProxies.parse("127.0.0.1, 10.0.0.0/8")
    environ = applied(trusted, HTTP_X_FORWARDED_FOR="10.0.0.9, 10.0.0.8")
    assert environ["REMOTE_ADDR"] == "10.0.0.9"


def test_xff_with_star_takes_leftmost():
    environ = applied(TrustedProxies.parse("*"), peer="192.0.2.1",
                      HTTP_X_FORWARDED_FOR="203.0.113.1, 203.0.113.2")
    assert environ["REMOTE_ADDR"] == "203.0.113.1"


def test_xff_garbage_stops_walk_at_last_real_address():
    trusted = TrustedProxies.parse("127.0.0.1, 10.0.0.0/8")
    environ = applied(trusted, HTTP_X_FORWARDED_FOR="1.1.1.1, evil<script>, 10.0.0.5")
    assert environ["REMOTE_ADDR"] == "10.0.0.5"
    assert applied(trusted, HTTP_X_FORWARDED_FOR="unknown")["REMOTE_ADDR"] == "127.0.0.1"
    assert applied(trusted, HTTP_X_FORWARDED_FOR="1.1.1.1,,10.0.0.5")["REMOTE_ADDR"] == "10.0.0.5"
    assert applied(trusted, HTTP_X_FORWARDED_FOR="")["REMOTE_ADDR"] == "127.0.0.1"


@pytest.mark.parametrize("value, address, port", [
    ("198.51.100.7:4711", "198.51.100.7", "4711"),
    ("[2001:db8::7]:443", "2001:db8::7", "443"),
    ("[2001:db8::7]", "2001:db8::7", ""),
    ("2001:DB8:0:0::7", "2001:db8::7", ""),  # canonical form
    ("  198.51.100.7\t", "198.51.100.7", ""),
    ("198.51.100.7:04711", "198.51.100.7", "4711"),
])
def test_xff_address_forms(value, address, port):
    environ = applied(HTTP_X_FORWARDED_FOR=value)
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == (address, port)


@pytest.mark.parametrize("value", ["198.51.100.7:99999", "198.51.100.7:0", "198.51.100.7:", "[2001:db8::7", "[2001:db8::7]x",
                                   "host.example", "1.2.3.4 5.6.7.8", "999.1.1.1", "-"])
def test_xff_malformed_leaves_peer(value):
    environ = applied(HTTP_X_FORWARDED_FOR=value)
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("127.0.0.1", "50000")


# -- X-Forwarded-Proto / -Host --------------------------------------------------------------------

@pytest.mark.parametrize("value, scheme", [
    ("https", "https"), ("HTTPS", "https"), (" http ", "http"), ("http, https", "https"),
    ("https, http", "http"), ("ftp", "http"), ("wss", "http"), ("", "http"), ("https;x", "http"),
])
def test_xfp(value, scheme):
    environ = applied(HTTP_X_FORWARDED_PROTO=value)
    assert environ["wsgi.url_scheme"] == scheme
    assert environ["SERVER_PORT"] == "8000"  # the scheme alone does not move the port


@pytest.mark.parametrize("proto, host, http_host, name, port", [
    ("https", "shop.example", "shop.example", "shop.example", "443"),
    (None, "shop.example", "shop.example", "shop.example", "80"),
    ("https", "shop.example:8443", "shop.example:8443", "shop.example", "8443"),
    ("https", "[2001:db8::1]:8443", "[2001:db8::1]:8443", "[2001:db8::1]", "8443"),
    ("http", "[2001:db8::1]", "[2001:db8::1]", "[2001:db8::1]", "80"),
    ("https", "evil.example, shop.example", "shop.example", "shop.example", "443"),
    ("https", "203.0.113.9", "203.0.113.9", "203.0.113.9", "443"),
    ("http", "shop.example:0080", "shop.example:0080", "shop.example", "80"),  # (URLs say no port)
])
def test_xfh_sets_host_name_and_port(proto, host, http_host, name, port):
    headers = {"HTTP_X_FORWARDED_HOST": host}
    if proto:
        headers["HTTP_X_FORWARDED_PROTO"] = proto
    environ = applied(**headers)
    assert (environ["HTTP_HOST"], environ["SERVER_NAME"], environ["SERVER_PORT"]) == (http_host, name, port)


def test_xfh_without_port_or_proto_takes_the_servers_own_scheme_port():
    """TLS terminated by fastwsgi itself (wsgi.url_scheme https), a proxy behind it sends only the
    host: its port is https's."""
    environ = make_environ(HTTP_X_FORWARDED_HOST="shop.example")
    environ["wsgi.url_scheme"] = "https"
    apply_forwarded(environ, DEFAULT)
    assert (environ["HTTP_HOST"], environ["SERVER_PORT"], environ["wsgi.url_scheme"]) == (
        "shop.example", "443", "https")


@pytest.mark.parametrize("host", ["a b", "evil/path", "user@host", "host:", "host:http", "host:65536", "host:0", "host:00",
                                  "[::g]", "[2001:db8::1", "[2001:db8::1]x", "", "ex\x00ample", "ünï"])
def test_xfh_malformed_is_ignored(host):
    environ = applied(HTTP_X_FORWARDED_HOST=host, HTTP_X_FORWARDED_PROTO="https")
    assert (environ["HTTP_HOST"], environ["SERVER_NAME"], environ["SERVER_PORT"]) == (
        "backend:8000", "127.0.0.1", "8000")
    assert environ["wsgi.url_scheme"] == "https"


def test_all_x_forwarded_headers_together():
    trusted = TrustedProxies.parse("127.0.0.1,10.0.0.0/8")
    environ = applied(trusted, HTTP_X_FORWARDED_FOR="203.0.113.50, 10.0.0.2",
                      HTTP_X_FORWARDED_PROTO="https", HTTP_X_FORWARDED_HOST="www.example.org")
    expected = make_environ(HTTP_X_FORWARDED_FOR="203.0.113.50, 10.0.0.2", HTTP_X_FORWARDED_PROTO="https",
                            HTTP_X_FORWARDED_HOST="www.example.org")
    expected.update({"REMOTE_ADDR": "203.0.113.50", "REMOTE_PORT": "", "wsgi.url_scheme": "https",
                     "HTTP_HOST": "www.example.org", "SERVER_NAME": "www.example.org", "SERVER_PORT": "443"})
    assert environ == expected


# -- RFC 7239 Forwarded -----------------------------------------------------------------------------

def test_parse_forwarded_grammar():
    assert parse_forwarded('for="_gazonk"') == [{"for": "_gazonk"}]
    assert parse_forwarded('For="[2001:db8:cafe::17]:4711"') == [{"for": "[2001:db8:cafe::17]:4711"}]
    assert parse_forwarded("for=192.0.2.60;proto=http;by=203.0.113.43") == [
        {"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"}]
    assert parse_forwarded("for=192.0.2.43, for=198.51.100.17") == [
        {"for": "192.0.2.43"}, {"for": "198.51.100.17"}]
    assert parse_forwarded(r'for="a\"b\\c";host="x,y"') == [{"for": 'a"b\\c', "host": "x,y"}]
    assert parse_forwarded(" , for=1.2.3.4 ;  proto=https ,, ") == [{"for": "1.2.3.4", "proto": "https"}]
    assert parse_forwarded("") == []


@pytest.mark.parametrize("value", [
    "for", "for=", "=1.2.3.4", 'for="1.2.3.4', "for=1.2.3.4 proto=https", "for=1.2.3.4;for=5.6.7.8",
    "for=[::1]", 'for="x"y', "for=a b", 'for="\x00"', "for=1.2.3.4;;proto=https x", "fo r=1",
])
def test_parse_forwarded_rejects_malformed(value):
    assert parse_forwarded(value) is None


def test_forwarded_simple():
    environ = applied(FORWARDED_FAMILY, HTTP_FORWARDED="for=198.51.100.7;proto=https;host=shop.example")
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"], environ["wsgi.url_scheme"]) == (
        "198.51.100.7", "", "https")
    assert (environ["HTTP_HOST"], environ["SERVER_NAME"], environ["SERVER_PORT"]) == (
        "shop.example", "shop.example", "443")


def test_forwarded_quoted_ipv6_with_port():
    environ = applied(FORWARDED_FAMILY, HTTP_FORWARDED='for="[2001:db8:cafe::17]:4711"')
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("2001:db8:cafe::17", "4711")


def test_forwarded_chain_takes_proto_and_host_of_the_chosen_hop():
    trusted = TrustedProxies.parse("127.0.0.1, 10.0.0.0/8", headers="forwarded")
    environ = applied(trusted, HTTP_FORWARDED=(
        "for=6.6.6.6;proto=http;host=spoofed.example, "          # written by the client: never read
        "for=198.51.100.7;proto=https;host=shop.example, "       # written by the edge proxy
        'for=10.0.0.3;proto=http;host="internal:8080"'))         # written by the inner proxy
    assert environ["REMOTE_ADDR"] == "198.51.100.7"
    assert environ["wsgi.url_scheme"] == "https"
    assert (environ["HTTP_HOST"], environ["SERVER_PORT"]) == ("shop.example", "443")


def test_forwarded_obfuscated_or_unknown_for_keeps_last_real_address_but_uses_its_element():
    trusted = TrustedProxies.parse("127.0.0.1, 10.0.0.0/8", headers="forwarded")
    environ = applied(trusted, HTTP_FORWARDED='for=_hidden;proto=https, for=10.0.0.3')
    assert environ["REMOTE_ADDR"] == "10.0.0.3"
    assert environ["wsgi.url_scheme"] == "https"
    environ = applied(FORWARDED_FAMILY, HTTP_FORWARDED="for=unknown;proto=https")
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("127.0.0.1", "50000")
    assert environ["wsgi.url_scheme"] == "https"
    environ = applied(FORWARDED_FAMILY, HTTP_FORWARDED="proto=https;host=a.example")  # no for= at all
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert (environ["wsgi.url_scheme"], environ["HTTP_HOST"]) == ("https", "a.example")


def test_forwarded_obfuscated_port_keeps_address():
    environ = applied(FORWARDED_FAMILY, HTTP_FORWARDED='for="198.51.100.7:_p1"')
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("198.51.100.7", "")


def test_only_the_configured_family_is_read_and_the_other_is_removed():
    """A proxy passes the family it does not set through as the client sent it (nginx passes a
    client's Forwarded on untouched): the request must not pick the family, or that client picks
    its address. Default: X-Forwarded-*; --forwarded-headers forwarded: Forwarded alone."""
    headers = dict(HTTP_FORWARDED="for=9.9.9.9;proto=https;host=evil.example",
                   HTTP_X_FORWARDED_FOR="192.0.2.99", HTTP_X_FORWARDED_PROTO="https",
                   HTTP_X_FORWARDED_HOST="other.example")
    environ = applied(**headers)
    assert (environ["REMOTE_ADDR"], environ["wsgi.url_scheme"], environ["HTTP_HOST"]) == (
        "192.0.2.99", "https", "other.example")
    assert "HTTP_FORWARDED" not in environ and environ["HTTP_X_FORWARDED_FOR"] == "192.0.2.99"
    environ = applied(FORWARDED_FAMILY, **headers)
    assert (environ["REMOTE_ADDR"], environ["wsgi.url_scheme"], environ["HTTP_HOST"]) == (
        "9.9.9.9", "https", "evil.example")
    assert not {"HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST"} & set(environ)


def test_a_forwarded_header_alone_changes_nothing_by_default():
    environ = applied(HTTP_FORWARDED="for=9.9.9.9;proto=https;host=evil.example")
    assert environ == make_environ()


def test_malformed_forwarded_never_falls_back_to_x_forwarded():
    """The Forwarded family with a header that does not parse: nothing is applied (the client's own
    X-Forwarded-* are not the proxy's, which wrote Forwarded) and X-Forwarded-* are removed."""
    environ = applied(FORWARDED_FAMILY, HTTP_FORWARDED='for="198.51.100.7', HTTP_X_FORWARDED_FOR="192.0.2.99",
                      HTTP_X_FORWARDED_PROTO="https")
    assert (environ["REMOTE_ADDR"], environ["wsgi.url_scheme"]) == ("127.0.0.1", "http")
    assert "HTTP_X_FORWARDED_FOR" not in environ and "HTTP_X_FORWARDED_PROTO" not in environ
    environ = applied(FORWARDED_FAMILY, HTTP_FORWARDED="for=1.2.3.4;for=5.6.7.8")  # duplicate parameter
    assert environ["REMOTE_ADDR"] == "127.0.0.1"


def test_unknown_header_family_is_refused():
    with pytest.raises(ValueError, match="forwarded headers"):
        TrustedProxies.parse(headers="x-real-ip")


def test_forwarded_bad_proto_and_host_are_ignored():
    environ = applied(FORWARDED_FAMILY, HTTP_FORWARDED='for=198.51.100.7;proto=gopher;host="a b"')
    assert environ["REMOTE_ADDR"] == "198.51.100.7"
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["HTTP_HOST"] == "backend:8000"


def test_client_injected_forwarded_prefix_cannot_reparse_the_proxys_element():
    # the client sends an unterminated quote; the proxy appends its own element after a comma
    environ = applied(FORWARDED_FAMILY, HTTP_FORWARDED='for="6.6.6.6, for=198.51.100.7')
    assert environ["REMOTE_ADDR"] == "127.0.0.1"  # Forwarded unparsable: the peer stays


# -- robustness: nothing a trusted peer sends raises, and REMOTE_ADDR stays an IP address ---------

header_text = st.text(alphabet=st.sampled_from(
    list('0123456789abcdef:.[]_, ;="\\\t-xyzHTPSunknow/') + ["\x00", "\xff", "\x7f"]), max_size=40)


@settings(max_examples=400, deadline=None)
@given(forwarded=st.one_of(st.none(), header_text), xff=st.one_of(st.none(), header_text),
       proto=st.one_of(st.none(), header_text), host=st.one_of(st.none(), header_text),
       family=st.sampled_from(HEADER_FAMILIES))
def test_arbitrary_headers_never_raise_and_keep_a_real_address(forwarded, xff, proto, host, family):
    headers = {key: value for key, value in zip(FORWARDING_KEYS, (forwarded, xff, proto, host))
               if value is not None}
    trusted = TrustedProxies.parse("127.0.0.1, 10.0.0.0/8, ::/0", headers=family)
    environ = make_environ(**headers)
    apply_forwarded(environ, trusted)
    ipaddress.ip_address(environ["REMOTE_ADDR"])
    assert environ["wsgi.url_scheme"] in ("http", "https")
    assert environ["REMOTE_PORT"] == "" or str(int(environ["REMOTE_PORT"])) == environ["REMOTE_PORT"]
    assert 0 < int(environ["SERVER_PORT"]) <= 65535 and str(int(environ["SERVER_PORT"])) == environ["SERVER_PORT"]
    untrusted = make_environ(peer="203.0.113.1", **headers)
    apply_forwarded(untrusted, trusted)
    assert untrusted == make_environ(peer="203.0.113.1")


# -- the memo: an outcome remembered is the outcome computed --------------------------------------

_WARM = TrustedProxies.parse("127.0.0.1, 10.0.0.0/8, 2001:db8::/32")  # shared: its memo fills up


@settings(max_examples=600, deadline=None)
@given(peer=st.sampled_from(["127.0.0.1", "10.1.2.3", "203.0.113.1", "2001:db8::5", "", "::1"]),
       scheme=st.sampled_from(["http", "https"]),
       headers=st.lists(st.tuples(st.sampled_from(FORWARDING_KEYS),
                                  st.sampled_from(["10.0.0.7", "203.0.113.9:81", "https", "http",
                                                   "a.example:8443", "for=10.2.2.2;proto=https",
                                                   "for=198.51.100.1, for=10.0.0.1", "unknown",
                                                   "[2001:db8::9]:443", "x y"])), max_size=4))
def test_a_remembered_outcome_equals_a_fresh_computation(peer, scheme, headers):
    """Whatever the memo holds from earlier examples, every input it depends on is in its key: the
    environ after apply_forwarded on the shared (warm) matcher, twice, equals the one a fresh matcher
    gives."""
    fresh = make_environ(peer=peer, **dict(headers))
    fresh["wsgi.url_scheme"] = scheme
    expected = dict(fresh)
    apply_forwarded(expected, TrustedProxies.parse(_WARM.spec))
    for _ in range(2):
        environ = dict(fresh)
        apply_forwarded(environ, _WARM)
        assert environ == expected


def test_the_memo_is_bounded_and_skips_long_values():
    trusted = TrustedProxies.parse()
    for i in range(OUTCOME_CACHE_SIZE * 3):
        environ = applied(trusted, HTTP_X_FORWARDED_FOR=f"198.51.{i // 256}.{i % 256}")
        assert environ["REMOTE_ADDR"] == f"198.51.{i // 256}.{i % 256}"
        assert 0 < len(trusted.outcomes) <= OUTCOME_CACHE_SIZE
    trusted.outcomes.clear()
    long_chain = ", ".join(["192.0.2.1"] * 100) + ", 198.51.100.7"  # the client: the rightmost
    assert applied(trusted, HTTP_X_FORWARDED_FOR=long_chain)["REMOTE_ADDR"] == "198.51.100.7"
    assert applied(trusted, peer="203.0.113.1", HTTP_X_FORWARDED_FOR=long_chain)["REMOTE_ADDR"] == "203.0.113.1"
    assert trusted.outcomes == {}  # computed each time: never held


_pair = st.tuples(st.sampled_from(["for", "FOR", "proto", "host", "by", "x!"]),
                  st.sampled_from(["="] * 8 + ["", " = "]),
                  st.sampled_from(["1.2.3.4", "_h", "https", "a.b"] * 3 + ["", "[::1]", "a b", "x:1"]))
_separated = st.lists(st.tuples(_pair, st.sampled_from([";", ",", " ; ", " , ", ";;", ",,"] * 3 + [" ", ""])),
                      max_size=5).map(lambda items: "".join(n + e + v + sep for (n, e, v), sep in items))


@settings(max_examples=1500, deadline=None)
@given(st.one_of(_separated, st.text(alphabet=st.sampled_from(
    list("for=proto;, \t1.2:_-xAZ!#[]") + ["\x00", "\xe9"]), max_size=30)))
def test_forwarded_fast_split_parser_agrees_with_general_parser(value):
    # parse_forwarded uses plain splits when there is no quoted string; both must read the same grammar
    from fastwsgi.proxy import _parse_forwarded_general, _parse_forwarded_tokens
    assert _parse_forwarded_tokens(value) == _parse_forwarded_general(value)
