"""--proxy-protocol end to end: raw sockets write the PROXY header (v1 text, v2 binary) that HAProxy,
AWS NLB or nginx's stream module would write, then HTTP (or TLS), to real `python -m fastwsgi`
processes; the application reports the environ it got (tests/functional/apps.py /environ).

Theory of operation: a header and a request in one write, a header fed byte by byte, pipelined and
keep-alive requests behind one header, every refusal (no header, malformed headers: closed without a
byte of response, logged as a warning), the peers outside --proxy-allow-from (plain HTTP), what
--forwarded-allow-ips is judged against, the access log, TLS behind the header, a UNIX socket, -w 2
and a uwsgi bind beside it. The core runs on the full matrix (both parser backends x threads 0/4).
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import struct
import time

import pytest

from tests.functional.client import Conn, build_request
from tests.functional.conftest import BACKENDS, FULL_MATRIX, server_fixture
from tests.functional.serverproc import ServerProcess, server_args
from tests.functional.tlscerts import client_context, tls_args
from tests.functional.test_uwsgi import GET, connect_from, packet, read_all

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"

pp_server = server_fixture("--proxy-protocol", matrix=FULL_MATRIX)
pp_only_127_0_0_2 = server_fixture("--proxy-protocol", "--proxy-allow-from", "127.0.0.2")
pp_forwarded = server_fixture("--proxy-protocol", "--forwarded-allow-ips", "127.0.0.1,::1,198.51.100.7")
pp_quick = server_fixture("--proxy-protocol", "--header-timeout", "1")
pp_logged = server_fixture("--proxy-protocol", "--access-logfile", "-", "--access-logformat", "%(h)s %(r)s")


def v1(src="203.0.113.9", dst="192.0.2.80", sport=50123, dport=443, family="TCP4") -> bytes:
    return f"PROXY {family} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src="203.0.113.9", dst="192.0.2.80", sport=50123, dport=443, command=1, tlvs=b"") -> bytes:
    if ":" in src:
        family, block = 0x21, socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
    else:
        family, block = 0x11, socket.inet_aton(src) + socket.inet_aton(dst)
    block += struct.pack("!HH", sport, dport) + tlvs
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(block)) + block


def v2_local() -> bytes:
    return V2_SIGNATURE + b"\x20\x00\x00\x00"


def environ_request(target="/environ", headers=None, close=False) -> bytes:
    headers = list(headers or [])
    if close:
        headers.append(("Connection", "close"))
    return build_request("GET", target, headers)


def peer_of(resp) -> tuple[str, str]:
    assert resp.status == 200, (resp.status, resp.body[:300])
    environ = json.loads(resp.body)
    return environ["REMOTE_ADDR"], environ["REMOTE_PORT"]


def ask(port: int, header: bytes, source: str = "127.0.0.1", headers=None) -> dict:
    """One request behind `header` (sent in the same write); the environ the application saw."""
    with connect_from(source, port) as sock:
        sock.sendall(header + environ_request(headers=headers, close=True))
        data = read_all(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), data[:300]
    return json.loads(body)


def refused(port: int, data: bytes, source: str = "127.0.0.1") -> bool:
    """Send `data`; True if the server closes without sending a byte (no HTTP response)."""
    with connect_from(source, port) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_all(sock) == b""


# -- the header is applied --------------------------------------------------------------------------

@pytest.mark.parametrize("header, expected", [
    (v1(), ("203.0.113.9", "50123")),
    (v1("2001:db8::7", "2001:db8::1", 4321, 80, family="TCP6"), ("2001:db8::7", "4321")),
    (v2(), ("203.0.113.9", "50123")),
    (v2("2001:db8::7", "2001:db8::1", 4321, 80), ("2001:db8::7", "4321")),
    (v2(tlvs=b"\xea\x00\x05\x01vpce"), ("203.0.113.9", "50123")),  # AWS NLB's VPC endpoint TLV
], ids=["v1-tcp4", "v1-tcp6", "v2-tcp4", "v2-tcp6", "v2-tlv"])
def test_header_and_request_in_one_write(pp_server, header, expected):
    environ = ask(pp_server.port, header)
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == expected


@pytest.mark.parametrize("header", [b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n", v2_local(),
                                    V2_SIGNATURE + b"\x21\x00\x00\x00"], ids=["v1-unknown", "v1-unknown-long",
                                                                               "v2-local", "v2-unspec"])
def test_unknown_and_local_keep_the_socket_peer(pp_server, header):
    with connect_from("127.0.0.1", pp_server.port) as sock:
        sock.sendall(header + environ_request(close=True))
        port = sock.getsockname()[1]
        data = read_all(sock)
    environ = json.loads(data.partition(b"\r\n\r\n")[2])
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("127.0.0.1", str(port))


@pytest.mark.parametrize("header", [v1(), v2()], ids=["v1", "v2"])
def test_header_byte_by_byte(pp_server, header):
    with Conn(pp_server.port) as conn:
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in header:
            conn.send(bytes([byte]))
            time.sleep(0.002)
        request = environ_request()
        for position in range(0, len(request), 7):
            conn.send(request[position:position + 7])
        assert peer_of(conn.read_response()) == ("203.0.113.9", "50123")


@pytest.mark.parametrize("header", [v1(), v2()], ids=["v1", "v2"])
def test_pipelined_requests_behind_the_header_in_one_write(pp_server, header):
    with Conn(pp_server.port) as conn:
        conn.send(header + environ_request() * 3 + build_request("GET", "/hello"))
        for _ in range(3):
            assert peer_of(conn.read_response()) == ("203.0.113.9", "50123")
        assert conn.read_response().body == b"hello"


def test_keep_alive_requests_share_the_header(pp_server):
    with Conn(pp_server.port) as conn:
        conn.send(v2())
        for _ in range(3):
            conn.send(environ_request())
            assert peer_of(conn.read_response()) == ("203.0.113.9", "50123")
        # the header comes once: a second one is an HTTP request line, and a bad one
        conn.send(v1("198.51.100.1"))
        assert conn.read_response().status == 400


# -- refusals: closed without a response, logged ----------------------------------------------------

BAD_HEADERS = {
    "no header": environ_request(),
    "v1 bare LF": b"PROXY TCP4 203.0.113.9 192.0.2.80 50123 443\n" + environ_request(),
    "v1 leading zero": v1("203.0.113.09") + environ_request(),
    "v1 port 65536": v1(sport=65536) + environ_request(),
    "v1 over 107 bytes": b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n" + environ_request(),
    "v1 lower case": b"proxy " + v1()[6:] + environ_request(),
    "v2 version 3": V2_SIGNATURE + b"\x31" + v2()[13:] + environ_request(),
    "v2 command 2": V2_SIGNATURE + b"\x22" + v2()[13:] + environ_request(),
    "v2 udp": V2_SIGNATURE + b"\x21\x12" + v2()[14:] + environ_request(),
    "v2 block over the limit": V2_SIGNATURE + b"\x21\x11\x10\x00" + b"\0" * 4096 + environ_request(),
    "v2 bad TLV": v2(tlvs=b"\x01\x00\x09ab") + environ_request(),
    "TLS ClientHello": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\0" * 40,
}


@pytest.mark.parametrize("name", list(BAD_HEADERS))
def test_bad_headers_close_without_a_response(pp_server, name):
    assert refused(pp_server.port, BAD_HEADERS[name])
    assert environ_still_served(pp_server)


def environ_still_served(server) -> bool:
    return ask(server.port, v1())["REMOTE_ADDR"] == "203.0.113.9"


@pytest.mark.parametrize("param", BACKENDS, ids=lambda p: f"{p[0]}-t{p[1]}")
def test_refusals_are_logged_rate_limited(param):
    """50 refusals in a burst: one warning line at once (LOG_INTERVAL is 10 s), naming the peer, the
    reason and the first bytes received."""
    server = ServerProcess(server_args(*param, "--proxy-protocol")).start()
    try:
        for _ in range(50):
            assert refused(server.port, environ_request())
        time.sleep(0.3)
        lines = re.findall(r"PROXY protocol: closed a connection from 127\.0\.0\.1: (.*)\n", server.stderr_text())
        assert len(lines) == 1, server.stderr_text()[-3000:]
        assert lines[0].startswith("not a PROXY protocol header (received b'GET /environ HTTP/1.1")
    finally:
        assert server.stop() == 0


def test_a_partial_header_times_out(pp_quick):
    with connect_from("127.0.0.1", pp_quick.port) as sock:
        sock.sendall(v1()[:20])
        started = time.monotonic()
        assert read_all(sock) == b""
        assert 0.5 < time.monotonic() - started < 4.0


def test_eof_inside_the_header_closes(pp_server):
    with connect_from("127.0.0.1", pp_server.port) as sock:
        sock.sendall(v2()[:10])
        sock.shutdown(socket.SHUT_WR)
        assert read_all(sock) == b""


# -- who must send it ---------------------------------------------------------------------------------

def test_peers_outside_the_allow_list_speak_plain_http(pp_only_127_0_0_2):
    port = pp_only_127_0_0_2.port
    with connect_from("127.0.0.1", port) as sock:  # not in --proxy-allow-from: plain HTTP
        sock.sendall(environ_request(close=True))
        data = read_all(sock)
    assert json.loads(data.partition(b"\r\n\r\n")[2])["REMOTE_ADDR"] == "127.0.0.1"
    with connect_from("127.0.0.1", port) as sock:  # ... so its PROXY line is a bad request line
        sock.sendall(v1() + environ_request())
        assert read_all(sock).startswith(b"HTTP/1.1 400 ")
    environ = ask(port, v2(), source="127.0.0.2")  # in the list: the header is required and applied
    assert environ["REMOTE_ADDR"] == "203.0.113.9"
    assert refused(port, environ_request(), source="127.0.0.2")


# -- X-Forwarded-For is judged against the PROXY source ---------------------------------------------

def test_forwarded_headers_are_trusted_by_the_proxy_source(pp_forwarded):
    port = pp_forwarded.port
    xff = [("X-Forwarded-For", "192.0.2.44"), ("X-Forwarded-Proto", "https")]
    # the socket peer (127.0.0.1) is trusted, but the connection came from 203.0.113.9: headers removed
    environ = ask(port, v1("203.0.113.9"), headers=xff)
    assert environ["REMOTE_ADDR"] == "203.0.113.9" and environ["wsgi.url_scheme"] == "http"
    assert "HTTP_X_FORWARDED_FOR" not in environ
    # the PROXY source is a listed proxy (e.g. a CDN in front of the load balancer): applied
    environ = ask(port, v2("198.51.100.7"), headers=xff)
    assert environ["REMOTE_ADDR"] == "192.0.2.44" and environ["wsgi.url_scheme"] == "https"
    # LOCAL keeps the socket peer, which is trusted
    environ = ask(port, v2_local(), headers=xff)
    assert environ["REMOTE_ADDR"] == "192.0.2.44"


@pytest.mark.parametrize("header", [b"PROXY UNKNOWN\r\n", V2_SIGNATURE + b"\x21\x00\x00\x00",
                                    V2_SIGNATURE + b"\x21\x31\x00\xd8" + b"\0" * 216],
                         ids=["v1-unknown", "v2-unspec", "v2-unix"])
def test_a_relayed_client_without_an_address_cannot_set_proxy_headers(pp_forwarded, header):
    """HAProxy and nginx stream send these for a client on a UNIX socket: the socket's peer (the
    proxy, trusted) stays REMOTE_ADDR, but the X-Forwarded-* it passed on are its client's own."""
    xff = [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-Proto", "https")]
    environ = ask(pp_forwarded.port, header, headers=xff)
    assert (environ["REMOTE_ADDR"], environ["wsgi.url_scheme"]) == ("127.0.0.1", "http")
    assert "HTTP_X_FORWARDED_FOR" not in environ and "HTTP_X_FORWARDED_PROTO" not in environ


def test_access_log_host_is_the_proxy_source(pp_logged):
    ask(pp_logged.port, v2("198.51.100.23"))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if any(line.startswith("198.51.100.23 GET /environ HTTP/1.1") for line in pp_logged.stdout_lines):
            break
        time.sleep(0.05)
    else:
        pytest.fail("no access log line for 198.51.100.23: " + "".join(pp_logged.stdout_lines[-5:]))


# -- with TLS, a UNIX socket, workers, a uwsgi bind ---------------------------------------------------

@pytest.mark.parametrize("param", BACKENDS, ids=lambda p: f"{p[0]}-t{p[1]}")
def test_tls_behind_the_header(param, certs):  # noqa: F811 (the certs fixture)
    server = ServerProcess(server_args(*param, "--proxy-protocol", *tls_args(certs))).start()
    try:
        context = client_context(certs)
        # the header in its own write, then the handshake
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            raw.sendall(v2("2001:db8::9", "2001:db8::1", 777, 443))
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(environ_request(close=True))
                data = read_all(tls)
        environ = json.loads(data.partition(b"\r\n\r\n")[2])
        assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("2001:db8::9", "777")
        assert environ["wsgi.url_scheme"] == "https"
        # the header and the ClientHello in one write (TLS in memory on the client side)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                pass
            raw.sendall(v1() + outgoing.read())
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    if outgoing.pending:
                        raw.sendall(outgoing.read())
                    chunk = raw.recv(65536)
                    assert chunk, "the server closed during the handshake"
                    incoming.write(chunk)
            tls.write(environ_request(close=True))
            raw.sendall(outgoing.read())
            plain, done = b"", False
            while not done:
                chunk = raw.recv(65536)
                if not chunk:
                    break
                incoming.write(chunk)
                while True:
                    try:
                        piece = tls.read(65536)
                    except ssl.SSLWantReadError:
                        break
                    except ssl.SSLZeroReturnError:
                        piece = b""
                    if not piece:  # close_notify
                        done = True
                        break
                    plain += piece
        assert json.loads(plain.partition(b"\r\n\r\n")[2])["REMOTE_ADDR"] == "203.0.113.9"
        # plain HTTP after a good header is still answered 400 in plain text, as without the header
        with connect_from("127.0.0.1", server.port) as sock:
            sock.sendall(v1() + environ_request())
            assert read_all(sock).startswith(b"HTTP/1.1 400 ")
        assert refused(server.port, environ_request())  # no header: closed, no TLS, no 400
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("param", BACKENDS, ids=lambda p: f"{p[0]}-t{p[1]}")
def test_unix_socket_peers_must_send_the_header(param, tmp_path):
    path = str(tmp_path / "pp.sock")
    server = ServerProcess(["--bind", f"unix:{path}", "--proxy-protocol", "--proxy-allow-from", "10.9.9.9",
                            "--http-parser", param[0], "--threads", str(param[1]),
                            "tests.functional.apps:app"]).start()
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(path)
            sock.sendall(v2() + environ_request(close=True))
            data = read_all(sock)
        environ = json.loads(data.partition(b"\r\n\r\n")[2])
        assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("203.0.113.9", "50123")
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(path)
            sock.sendall(environ_request())
            assert read_all(sock) == b""
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("param", BACKENDS, ids=lambda p: f"{p[0]}-t{p[1]}")
def test_workers_and_a_uwsgi_bind(param):
    server = ServerProcess(server_args(*param, "-w", "2", "--proxy-protocol",
                                       "--bind", "uwsgi://127.0.0.1:0")).start()
    try:
        text = server.wait_stderr("Listening at: uwsgi://")  # the second listener's line
        assert text is not None, server.stderr_text()[-2000:]
        urls = re.findall(r"Listening at: (\S+)", text)
        uwsgi_port = int(next(url for url in urls if url.startswith("uwsgi://")).rsplit(":", 1)[1])
        for number in range(20):
            environ = ask(server.port, v1(f"203.0.113.{number + 1}", sport=1000 + number))
            assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == (f"203.0.113.{number + 1}",
                                                                         str(1000 + number))
        with connect_from("127.0.0.1", uwsgi_port) as sock:  # uwsgi: no PROXY header expected
            sock.sendall(packet(GET))
            assert read_all(sock).startswith(b"HTTP/1.1 200 OK\r\n")
    finally:
        assert server.stop() == 0
