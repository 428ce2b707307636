"""TLS termination (--certfile & co): real handshakes against real server processes.

The certificates are made at test time with the openssl command: a test CA, the server's certificate
(localhost, 127.0.0.1) and a renewed one, client certificates from the test CA and from another CA.
Clients: http.client.HTTPSConnection, raw ssl-wrapped sockets (pipelining, slow handshakes), plain
sockets (plain HTTP to the TLS port, clients that never handshake) and curl.
"""

from __future__ import annotations

import hashlib
import http.client
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from tests.functional.apps import pattern_bytes
from tests.functional.client import FILLING, Conn, build_request, chunked, tell, wait_delivered
from tests.functional.conftest import BACKENDS, FULL_MATRIX, STREAMING, check_alive, use_server, matrix_id
from tests.functional.ops import wait_booted
from tests.functional.serverproc import DEFAULT_APP, ServerProcess
from tests.functional.test_cli import http_get, run_cli
from tests.functional.tlscerts import MemoryClient, client_context, peer_organization, stream_over_tls, tls_args

def tls_server_fixture(*extra: str, matrix=BACKENDS, app: str = DEFAULT_APP):
    """A fixture serving `app` over TLS with extra flags ("{ca}" stands for the test CA's file)."""

    @pytest.fixture(params=matrix, ids=matrix_id)
    def fixture(request, pool, certs):
        flags = [flag.replace("{ca}", certs["ca.pem"]) for flag in extra]
        server = use_server(pool, request.param, tls_args(certs, *flags), app)
        yield server
        check_alive(server)

    return fixture


tls_server = tls_server_fixture(matrix=FULL_MATRIX)
tls_streaming_server = tls_server_fixture(*STREAMING, matrix=FULL_MATRIX)
tls_backend_server = tls_server_fixture()
tls_quick_timeout = tls_server_fixture("--header-timeout", "1")
tls_short_keep_alive = tls_server_fixture("--keep-alive", "1", matrix=FULL_MATRIX)
tls_refusing = tls_server_fixture("--limit-request-body", "1000000")
tls_send_timeout = tls_server_fixture("--send-timeout", "1")
required_server = tls_server_fixture("--ca-certs", "{ca}", "--cert-reqs", "2")  # gunicorn's spelling
optional_server = tls_server_fixture("--ca-certs", "{ca}", "--cert-reqs", "optional")


class TLSConn(Conn):
    """tests.functional.client.Conn over TLS (the handshake happens in the constructor)."""

    def __init__(self, port: int, context: ssl.SSLContext, suppress_ragged_eofs: bool = True, **kwargs):
        super().__init__(port, **kwargs)
        self.sock = context.wrap_socket(self.sock, server_hostname="localhost",
                                        suppress_ragged_eofs=suppress_ragged_eofs)


def https(server, certs, cert=None, timeout: float = 10.0) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection("127.0.0.1", server.port, timeout=timeout,
                                       context=client_context(certs, cert))


def fetch(server, certs, target: str = "/hello", cert=None):
    conn = https(server, certs, cert)
    try:
        conn.request("GET", target)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# -- the basics, on the full matrix (both backends x threads 0/4) ----------------------------------

def test_https_keep_alive_one_connection(tls_server, certs):
    conn = https(tls_server, certs)
    try:
        bodies = []
        for i in range(5):
            conn.request("GET", f"/p/{i}")
            response = conn.getresponse()
            assert response.status == 200
            assert response.getheader("Connection") is None or "close" not in response.getheader("Connection")
            bodies.append(response.read())
            if i == 0:
                first_sock = conn.sock
            assert conn.sock is first_sock  # no reconnect: the TLS session carried every request
    finally:
        conn.close()
    assert bodies == [f"GET /p/{i}?".encode() for i in range(5)]


def test_environ_says_https(tls_server, certs):
    import json

    status, body = fetch(tls_server, certs, "/environ")
    report = json.loads(body)
    assert status == 200
    assert report["wsgi.url_scheme"] == "https"
    assert report["HTTPS"] == "on"
    assert report["SERVER_PORT"] == str(tls_server.port)


def test_a_trusted_proxys_http_scheme_removes_https_on(tls_backend_server, certs):
    """Behind a trusted proxy (127.0.0.1 by default) that says the client spoke plain HTTP, the
    environ does not say both wsgi.url_scheme "http" and HTTPS "on"."""
    import json

    conn = https(tls_backend_server, certs)
    try:
        for proto, scheme, https_var in (("http", "http", None), ("https", "https", "on")):
            conn.request("GET", "/environ", headers={"X-Forwarded-Proto": proto})
            report = json.loads(conn.getresponse().read())
            assert (report["wsgi.url_scheme"], report.get("HTTPS")) == (scheme, https_var), proto
    finally:
        conn.close()


def test_pipelined_requests_in_one_tls_write(tls_server, certs):
    """Five requests in one sendall (one TLS record): all five are answered, in order."""
    with TLSConn(tls_server.port, client_context(certs)) as conn:
        conn.send(b"".join(build_request("GET", f"/p/{i}") for i in range(5)))
        bodies = [conn.read_response().body for _ in range(5)]
    assert bodies == [f"GET /p/{i}?".encode() for i in range(5)]


def test_pipelined_requests_then_close_notify_are_all_answered(tls_server, certs):
    """The client's close_notify right behind its requests (often in the same read) ends its side
    only: every request before it is answered, then the connection closes. (With threads the
    close_notify used to stop the requests after the first.)"""
    data = b"".join(build_request("GET", f"/p/n{i}") for i in range(3))
    received = stream_over_tls(tls_server.port, data, client_context(certs))
    assert received.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert [received.find(f"GET /p/n{i}?".encode()) for i in range(3)] == sorted(
        received.find(f"GET /p/n{i}?".encode()) for i in range(3))


def test_close_notify_right_behind_a_short_body_fails_its_read_at_once(tls_server, certs, token, events):
    """A head promising 100 bytes, 3 of them, and close_notify, in one TCP write: the application's
    read fails at once (as at a TCP EOF), instead of waiting read_timeout (30 s) for bytes that the
    client said will never come, with the event loop stalled meanwhile (threads=0). (100-continue:
    the application is called before its body has come; test_body_ahead.py for the other case.)"""
    client = MemoryClient(tls_server.port, client_context(certs))  # 10 s socket timeout
    try:
        client.handshake()
        received = client.send_last(build_request("POST", f"/read-record?t={token}",
                                                  headers=[("Expect", "100-continue"), ("Content-Length", "100")])
                                    + b"abc")
    finally:
        client.close()
    assert not received.startswith(b"HTTP/1.1 200"), received[:200]
    seen = events(token)
    assert seen and seen[0]["event"] == "read-error" and seen[0]["oserror"], seen


@pytest.mark.parametrize("first_request", [True, False], ids=["after-a-request", "before-any"])
def test_records_without_data_do_not_hold_an_idle_connection_open(tls_quick_timeout, certs, first_request):
    """A record's bytes trickled one at a time (or a KeyUpdate now and then) decrypt to nothing: they
    start the next head's deadline (--header-timeout, 1 s here) as a head's first byte does, and no
    longer restart the keep-alive deadline (or replace the one from accept) with every byte."""
    client = MemoryClient(tls_quick_timeout.port, client_context(certs))
    try:
        client.handshake()
        client.sock.sendall(client.outgoing.read())  # the client's Finished: the handshake is over
        if first_request:
            client.send_records(build_request("GET", "/hello"))
            client.read_until(b"hello")
        client.tls.write(build_request("GET", "/p/never", headers=[("X-Pad", "p" * 4000)]))
        record = client.outgoing.read()
        closed = False
        for i in range(40):  # 8 s of one byte every 0.2 s
            try:
                client.sock.sendall(record[i:i + 1])
                time.sleep(0.2)
                client.sock.settimeout(0.001)
                closed = client.sock.recv(1, socket.MSG_PEEK) == b""
            except (socket.timeout, BlockingIOError):
                pass
            except OSError:  # reset: closed all the same
                closed = True
            finally:
                client.sock.settimeout(10)
            if closed:
                break
        assert closed, "the connection outlived --header-timeout (1 s) by 8 s while its bytes trickled in"
    finally:
        client.close()


def test_a_body_trickled_in_cut_records_keeps_its_connection(tls_quick_timeout, certs):
    """A body received before its application runs, each record in two TCP writes over longer than
    --header-timeout (1 s here): the cut records belong to the body, not to a next head, so once it
    is answered the connection is idle under --keep-alive (5 s) and serves the next request. (They
    used to start a head deadline, long past at the response: the sweep closed the connection.)"""
    client = MemoryClient(tls_quick_timeout.port, client_context(certs))
    try:
        client.handshake()
        client.sock.sendall(client.outgoing.read())
        body = bytes(range(80))
        client.send_records(build_request("POST", "/echo", headers=[("Content-Length", str(len(body)))]))
        for i in range(0, len(body), 10):  # 8 records, 0.2 s apart
            client.tls.write(body[i:i + 10])
            record = client.outgoing.read()
            client.sock.sendall(record[:3])
            time.sleep(0.1)
            client.sock.sendall(record[3:])
            time.sleep(0.1)
        assert client.read_until(body).endswith(body)
        time.sleep(0.75)  # sweeps run every 0.25 s: a deadline already past closes the connection now
        client.received = b""
        client.send_records(build_request("GET", "/p/next"))
        assert client.read_until(b"GET /p/next?").startswith(b"HTTP/1.1 200 OK\r\n")
    finally:
        client.close()


def test_the_end_of_a_body_received_ahead_with_close_notify_is_answered(tls_server, certs):
    """A body received before its application runs, whose last bytes, a pipelined request and the
    client's close_notify come in one TCP write (decrypted at once: the EOF is known before the body
    is whole): both requests are answered, in order, then the connection closes."""
    client = MemoryClient(tls_server.port, client_context(certs))
    try:
        client.handshake()
        body = bytes(range(256)) * 4
        client.tls.write(build_request("POST", "/echo", headers=[("Content-Length", str(len(body)))])
                         + body[:100])
        client.sock.sendall(client.outgoing.read())
        wait_delivered(client.sock)
        received = client.send_last(body[100:] + build_request("GET", "/p/after"))
    finally:
        client.close()
    assert received.startswith(b"HTTP/1.1 200 OK\r\n"), received[:300]
    assert received.count(b"HTTP/1.1 200 OK\r\n") == 2, received[:300]
    assert received.index(body) < received.index(b"GET /p/after?")
    assert received.endswith(b"GET /p/after?")


def test_a_body_begun_with_the_handshake_waits_under_read_timeout(tls_quick_timeout, certs):
    """The head and half a body in the TCP write of the client's Finished, the rest 1.5 s later:
    the body being received is bounded by --read-timeout (30 s), not by the head deadline from
    accept (--header-timeout 1 s here), which used to answer 408 meanwhile."""
    client = MemoryClient(tls_quick_timeout.port, client_context(certs))
    try:
        client.handshake()
        body = bytes(range(100))
        client.tls.write(build_request("POST", "/echo", headers=[("Content-Length", str(len(body)))])
                         + body[:50])
        client.sock.sendall(client.outgoing.read())  # Finished, then the records of the request
        time.sleep(1.5)  # past --header-timeout, with its sweeps (every 0.25 s)
        client.send_records(body[50:])
        answer = client.read_until(b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:200]
        assert client.read_until(body).endswith(body)
    finally:
        client.close()


def test_head_of_a_streamed_response_over_tls(tls_server, certs):
    """A HEAD answered by a generator: its later blocks queue nothing, and the loop's flush after
    each block must cope with nothing to encrypt (it raised IndexError: a 500 and a dropped pipeline)."""
    mark = tls_server.stderr_mark()
    with TLSConn(tls_server.port, client_context(certs)) as conn:
        conn.request("HEAD", "/chunks?n=4")
        resp = conn.read_response(method="HEAD")
        assert resp.status == 200 and resp.body == b""
        conn.request("GET", "/p/after")
        assert conn.read_response().body == b"GET /p/after?"
    time.sleep(0.2)
    assert "Error handling request" not in "".join(tls_server.stderr_lines[mark:])


def test_pipelined_requests_in_separate_records_of_one_tcp_write(tls_server, certs):
    """Four records in one TCP segment: the server decrypts them all from one wakeup (epoll will not
    wake again for bytes already read from the kernel)."""
    client = MemoryClient(tls_server.port, client_context(certs))
    try:
        client.handshake()
        client.send_records(*(build_request("GET", f"/p/r{i}") for i in range(4)))
        received = client.read_until(b"GET /p/r3?")
    finally:
        client.close()
    assert [received.find(f"GET /p/r{i}?".encode()) for i in range(4)] == sorted(
        received.find(f"GET /p/r{i}?".encode()) for i in range(4))
    assert received.count(b"HTTP/1.1 200 OK\r\n") == 4


def test_chunked_request_body_over_tls(tls_server, certs):
    body = chunked(b"hello ", b"over ", b"tls" * 10000)
    with TLSConn(tls_server.port, client_context(certs)) as conn:
        conn.request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")], body=body)
        response = conn.read_response()
        conn.request("GET", "/p/after")  # the same connection goes on
        after = conn.read_response()
    assert response.status == 200
    assert response.body == b"hello over " + b"tls" * 10000
    assert after.body == b"GET /p/after?"


def test_a_chunked_body_that_arrived_while_the_app_ran_keeps_a_tls_connection(tls_streaming_server, certs, token, events,
                                                                             events_dir):
    """test_connection's look-ahead over TLS: the head and a first chunk that makes the server call
    the application (FILLING), then (once it runs) the body in two records of two sends; the records
    waiting in the socket are decrypted before the head goes out, and the connection stays open."""
    body = chunked(b"hello", b"t" * 3000)
    with TLSConn(tls_streaming_server.port, client_context(certs)) as conn:
        conn.send(build_request("POST", f"/answer-when-told?t={token}", headers=[("Transfer-Encoding", "chunked")])
                  + FILLING)
        assert events(token) == [{"event": "started"}]
        conn.send(body[:10])
        time.sleep(0.01)
        conn.send(body[10:])
        wait_delivered(conn.sock)
        tell(events_dir, token)
        first = conn.read_response()
        assert first.body == b"answered after 0"
        assert "close" not in first.connection_tokens(), first.raw_head
        conn.request("GET", "/p/after")
        assert conn.read_response().body == b"GET /p/after?"


def test_a_tls_record_cut_in_the_socket_is_not_waited_for(tls_streaming_server, certs, token, events, events_dir):
    """The body's last record has only partly arrived when the application answers: nothing more is
    decrypted (the server does not wait for the record's end), the answer says Connection: close,
    and the request behind the body never runs."""
    client = MemoryClient(tls_streaming_server.port, client_context(certs))
    try:
        client.handshake()
        client.send_records(build_request("POST", f"/answer-when-told?t={token}",
                                          headers=[("Transfer-Encoding", "chunked")]) + FILLING)
        assert events(token) == [{"event": "started"}]
        client.tls.write(chunked(b"cut", b"short") + build_request("GET", f"/record?t={token}-smuggled"))
        records = client.outgoing.read()
        client.sock.sendall(records[:-20])
        wait_delivered(client.sock)
        tell(events_dir, token)
        while raw := client.sock.recv(65536):  # the answer, close_notify, then the server's FIN
            client.incoming.write(raw)
        answer = client.tls.read(65536)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"answered after 0"), answer
        assert b"\r\nConnection: close\r\n" in answer, answer
        assert client.tls.read(65536) == b""  # close_notify
        try:
            client.sock.sendall(records[-20:])
        except OSError:
            pass
    finally:
        client.close()
    assert events(f"{token}-smuggled", count=1, timeout=0.5) == []


def test_large_request_body_streamed_over_tls(tls_server, certs):
    payload = pattern_bytes(3_000_000)
    conn = https(tls_server, certs)
    try:
        conn.request("POST", "/hash", body=payload)
        response = conn.getresponse()
        assert response.status == 200
        assert response.read() == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}".encode()
    finally:
        conn.close()


def test_refused_body_sent_whole_over_tls_still_gets_its_413(tls_refusing, certs):
    """test_limits' refused-body test over TLS: the client writes the head and all of a 4 MiB body
    over the 1 MB limit (one thread: an SSLSocket is not shared between threads, and the small
    answer waits in the socket buffer meanwhile), then reads the 413, the close_notify (ragged EOFs
    are errors here) and the EOF. The lingering close discards raw records to the end of the body.
    Three times, so a lucky pass is unlikely."""
    size = 4 * 1024 * 1024
    head = build_request("POST", "/echo", headers=[("Content-Length", str(size))])
    for attempt in range(3):
        with TLSConn(tls_refusing.port, client_context(certs), suppress_ragged_eofs=False,
                     timeout=20) as conn:
            try:
                conn.send(head)
                conn.send(b"t" * size)
                received = conn.read_to_eof()
            except OSError as exc:  # ssl.SSLError included
                pytest.fail(f"try {attempt}: {exc!r}")
            assert received.startswith(b"HTTP/1.1 413 "), f"try {attempt}: {received[:200]!r}"
            assert not conn.reset, f"try {attempt}: the 413 ended with a reset"


def test_large_response_to_a_slow_reader(tls_server, certs):
    """6 MB do not fit the socket buffers: the server resends the rest of its records as the client
    reads (slowly at first), and the bytes arrive intact; the connection is then reused."""
    size = 6_000_000
    with TLSConn(tls_server.port, client_context(certs)) as conn:
        conn.request("GET", f"/download?n={size}")
        time.sleep(0.3)  # let the server hit a full socket
        response = conn.read_response(timeout=30)
        conn.request("GET", "/p/next")
        after = conn.read_response()
    assert response.status == 200
    assert len(response.body) == size
    assert response.body == pattern_bytes(size)
    assert after.body == b"GET /p/next?"


# -- on both backends -----------------------------------------------------------------------------

def test_a_close_delimited_body_cut_by_the_send_timeout_ends_with_a_reset(tls_send_timeout, certs, token,
                                                                          events):
    """A stalled HTTP/1.0 response without Content-Length is closed with a TCP reset, as a plain one
    is: without close_notify alone, the partial body looks whole to clients that do not check
    for it (Python's default suppress_ragged_eofs, nginx's proxy_ssl)."""
    client = MemoryClient(tls_send_timeout.port, client_context(certs))
    try:
        client.handshake()
        client.send_records(f"GET /close?mode=flood&t={token} HTTP/1.0\r\n\r\n".encode())
        client.read_until(b"\r\n\r\n")
        seen = events(token, timeout=10)
        assert seen and seen[0]["event"] == "closed", "the stalled response was never abandoned"
        with pytest.raises(ConnectionResetError):
            while client.sock.recv(1 << 20):
                pass
    finally:
        client.sock.close()


def test_filewrapper_over_tls(tls_backend_server, certs):
    size = 3_000_000
    for kind in ("real", "bytesio"):
        conn = https(tls_backend_server, certs)
        try:
            conn.request("GET", f"/file?kind={kind}&n={size}")
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        assert response.status == 200
        assert response.getheader("Content-Length") == str(size)
        assert body == pattern_bytes(size), kind


def test_curl_with_cacert(tls_backend_server, certs):
    curl = shutil.which("curl")
    assert curl, "curl is needed (Debian: apt-get install curl)"
    result = subprocess.run([curl, "-sS", "--cacert", certs["ca.pem"], "--max-time", "10",
                             f"https://localhost:{tls_backend_server.port}/p/a",
                             f"https://localhost:{tls_backend_server.port}/p/b"],
                            capture_output=True, timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"GET /p/a?GET /p/b?"


def test_plain_http_to_the_tls_port_gets_400(tls_backend_server, certs):
    """Whatever the method (OpenSSL itself recognizes GET, POST, HEAD, PUT and CONNECT only)."""
    for method in ("GET", "DELETE", "OPTIONS", "PATCH", "PROPFIND"):
        with Conn(tls_backend_server.port) as conn:
            conn.request(method, "/hello")
            response = conn.read_response()
            assert conn.closed_by_server(3)
        assert response.status == 400, method
        assert b"plain HTTP request was sent to an HTTPS port" in response.body
    assert fetch(tls_backend_server, certs) == (200, b"hello")


def _client_hello(certs) -> bytes:
    """The bytes a client sends first (a ClientHello), made with an in-memory TLS client."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context(certs).wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def test_stalled_handshakes_do_not_stall_others(tls_quick_timeout, certs):
    """A client that never says anything and one that sends half a ClientHello hold no one up, and
    --header-timeout (1 s here) closes both."""
    hello = _client_hello(certs)
    with Conn(tls_quick_timeout.port) as silent, Conn(tls_quick_timeout.port) as half:
        half.send(hello[:len(hello) // 2])
        started = time.monotonic()
        assert fetch(tls_quick_timeout, certs) == (200, b"hello")
        assert time.monotonic() - started < 1.0
        assert silent.closed_by_server(4)
        assert half.closed_by_server(4)


def test_header_timeout_runs_from_accept_through_the_handshake(tls_quick_timeout, certs):
    """A client that completes the handshake and then sends nothing is closed by --header-timeout
    (1 s) counted from accept, not given a fresh keep-alive period."""
    with TLSConn(tls_quick_timeout.port, client_context(certs)) as idle:
        started = time.monotonic()
        assert fetch(tls_quick_timeout, certs) == (200, b"hello")
        assert idle.closed_by_server(4)
        assert time.monotonic() - started < 3.0


def test_slow_handshake_completes_while_others_are_served(tls_backend_server, certs):
    """A client that dribbles its handshake (7 bytes at a time) gets its answer, and a second
    client is served meanwhile."""
    served_meanwhile = []

    def between():
        time.sleep(0.005)
        if not served_meanwhile:
            served_meanwhile.append(fetch(tls_backend_server, certs))

    client = MemoryClient(tls_backend_server.port, client_context(certs))
    try:
        client.handshake(piece=7, between=between)
        client.send_records(build_request("GET", "/p/slow"))
        received = client.read_until(b"GET /p/slow?")
    finally:
        client.close()
    assert served_meanwhile == [(200, b"hello")]
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")


def test_tls_on_a_unix_socket(certs, tmp_path):
    """unix: binds speak TLS too (the announce line says https://unix:PATH)."""
    path = tmp_path / "tls.sock"
    for parser, threads in BACKENDS:
        server = ServerProcess(["--bind", f"unix:{path}", "--http-parser", parser, "--threads",
                                str(threads), *tls_args(certs), DEFAULT_APP]).start()
        try:
            assert server.url == f"https://unix:{path}"
            raw = socket.socket(socket.AF_UNIX)
            raw.settimeout(10)
            raw.connect(str(path))
            with client_context(certs).wrap_socket(raw, server_hostname="localhost") as sock:
                sock.sendall(build_request("GET", "/environ", headers=[("Connection", "close")]))
                received = b""
                while chunk := sock.recv(65536):
                    received += chunk
        finally:
            server.stop()
        assert received.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b'"wsgi.url_scheme": "https"' in received and b'"SERVER_PORT": "443"' in received


def test_uwsgi_bind_stays_plain(certs):
    """With --certfile, an HTTP bind speaks TLS and a uwsgi bind beside it stays plain."""
    from tests.functional.test_uwsgi import environ_of, listening_urls, request_vars

    for parser, threads in BACKENDS:
        server = ServerProcess(["--bind", "uwsgi://127.0.0.1:0", "--bind", "127.0.0.1:0",
                                "--http-parser", parser, "--threads", str(threads), *tls_args(certs),
                                DEFAULT_APP]).start()
        try:
            uwsgi_url, https_url = listening_urls(server, 2)
            environ = environ_of(int(uwsgi_url.rpartition(":")[2]), request_vars(path="/environ"))
            server.port = int(https_url.rpartition(":")[2])
            status, _body = fetch(server, certs)
        finally:
            server.stop()
        assert uwsgi_url.startswith("uwsgi://127.0.0.1:") and https_url.startswith("https://127.0.0.1:")
        assert environ["wsgi.url_scheme"] == "http" and "HTTPS" not in environ
        assert status == 200


# -- close_notify on every orderly close (RFC 8446 §6.1) -------------------------------------------

def _served_once(port: int, certs) -> TLSConn:
    """A TLS connection that got one keep-alive response and is now idle. Its reads raise SSLEOFError
    if the server closes without close_notify (suppress_ragged_eofs=False)."""
    conn = TLSConn(port, client_context(certs), suppress_ragged_eofs=False)
    conn.request("GET", "/hello")
    response = conn.read_response()
    assert (response.status, response.body) == (200, b"hello")
    assert "close" not in response.connection_tokens()
    return conn


def test_idle_keep_alive_close_says_close_notify(tls_short_keep_alive, certs):
    with _served_once(tls_short_keep_alive.port, certs) as conn:
        started = time.monotonic()
        assert conn.read_to_eof(timeout=8) == b""  # close_notify, then EOF: no SSLEOFError
        assert time.monotonic() - started > 0.5  # closed by --keep-alive 1, not at once


@pytest.mark.parametrize("parser,threads", BACKENDS, ids=[matrix_id(p) for p in BACKENDS])
@pytest.mark.parametrize("workers", [0, 1])
def test_graceful_stop_says_close_notify_to_idle_connections(certs, parser, threads, workers):
    """SIGTERM closes idle keep-alive connections (once idle for the drain's grace), each with a
    close_notify (single process and a pre-fork worker)."""
    server = ServerProcess(["--bind", "127.0.0.1:0", "--http-parser", parser, "--threads", str(threads),
                            *(["-w", str(workers)] if workers else []), *tls_args(certs),
                            DEFAULT_APP]).start()
    try:
        if workers:
            wait_booted(server, workers)
        conn = _served_once(server.port, certs)
        time.sleep(1.2)  # past the drain's grace (loop.DRAIN_GRACE): closed as soon as the drain starts
        server.signal(signal.SIGTERM)
        with conn:
            assert conn.read_to_eof(timeout=8) == b""
        assert server.wait(10) == 0
    finally:
        server.stop()


@pytest.mark.parametrize("parser,threads", BACKENDS, ids=[matrix_id(p) for p in BACKENDS])
def test_max_requests_drain_says_close_notify(certs, parser, threads):
    """A worker that reached --max-requests drains: its idle keep-alive connection gets close_notify,
    and the response that reached the limit ends with one too."""
    server = ServerProcess(["--bind", "127.0.0.1:0", "--http-parser", parser, "--threads", str(threads),
                            "-w", "1", "--max-requests", "2", *tls_args(certs), DEFAULT_APP]).start()
    try:
        wait_booted(server, 1)
        idle = _served_once(server.port, certs)
        time.sleep(1.2)
        with _served_once_or_closed(server.port, certs) as last, idle:
            assert idle.read_to_eof(timeout=8) == b""
            assert last.read_to_eof(timeout=8) == b""
    finally:
        server.stop()


def _served_once_or_closed(port: int, certs) -> TLSConn:
    """Like _served_once, for the request that reaches --max-requests (its response may say close)."""
    conn = TLSConn(port, client_context(certs), suppress_ragged_eofs=False)
    conn.request("GET", "/hello")
    response = conn.read_response()
    assert (response.status, response.body) == (200, b"hello")
    return conn


# -- client certificates --------------------------------------------------------------------------

def _refused(server, certs, cert) -> bool:
    """True if the server refuses the handshake (TLS 1.3: the client learns it at its first read)."""
    try:
        status, _body = fetch(server, certs, cert=cert)
    except (ssl.SSLError, ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError):
        return True
    assert status == 200
    return False


def test_client_cert_required(required_server, certs):
    assert fetch(required_server, certs, cert="client") == (200, b"hello")
    assert _refused(required_server, certs, None)
    assert _refused(required_server, certs, "stranger")
    assert fetch(required_server, certs, cert="client") == (200, b"hello")


def test_client_cert_optional(optional_server, certs):
    assert fetch(optional_server, certs) == (200, b"hello")
    assert fetch(optional_server, certs, cert="client") == (200, b"hello")
    assert _refused(optional_server, certs, "stranger")  # sent, hence verified


# -- startup errors ---------------------------------------------------------------------------------

def _fails(*args: str, parser: str) -> str:
    result = run_cli("--bind", "127.0.0.1:0", "--http-parser", parser, *args, DEFAULT_APP, timeout=30)
    assert result.returncode != 0, result.stderr
    assert "Listening at" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastwsgi: error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("parser", ["c", "python"])
def test_startup_errors_are_one_line(certs, parser, tmp_path):
    unreadable = tmp_path / "nope.pem"
    assert "--keyfile needs --certfile" in _fails("--keyfile", certs["server.key"], parser=parser)
    assert "--cert-reqs needs --certfile" in _fails("--cert-reqs", "required", parser=parser)
    assert str(unreadable) in _fails("--certfile", str(unreadable), parser=parser)
    assert "No such file" in _fails("--certfile", certs["server.pem"], "--keyfile", str(unreadable),
                                    parser=parser)
    assert "cannot load" in _fails("--certfile", certs["garbage.pem"], "--keyfile", certs["server.key"],
                                   parser=parser)
    assert "does not match" in _fails("--certfile", certs["server.pem"], "--keyfile", certs["client.key"],
                                      parser=parser)
    assert "needs --ca-certs" in _fails(*tls_args(certs, "--cert-reqs", "required"), parser=parser)
    assert "--cert-reqs" in _fails(*tls_args(certs, "--cert-reqs", "sometimes"), parser=parser)
    assert "--ciphers" in _fails(*tls_args(certs, "--ciphers", "NO-SUCH-CIPHER"), parser=parser)
    assert "does not match" in _fails("--check-config", "--certfile", certs["server.pem"], "--keyfile",
                                      certs["client.key"], parser=parser)
    # the same checks stop a pre-fork master before it binds or forks
    assert "does not match" in _fails("-w", "2", "--certfile", certs["server.pem"], "--keyfile",
                                      certs["client.key"], parser=parser)


@pytest.mark.parametrize("parser", ["c", "python"])
def test_what_a_key_or_certificate_file_lacks_is_named(certs, parser):
    """An encrypted key is refused at once (OpenSSL's passphrase prompt would print on stderr, or
    wait on a terminal), and a file without a certificate or a key is named (OpenSSL: "PEM lib")."""
    encrypted = _fails("--certfile", certs["server.pem"], "--keyfile", certs["encrypted.key"], parser=parser)
    assert f"--keyfile {certs['encrypted.key']}: the private key is encrypted" in encrypted
    assert f"--certfile {certs['server.pem']} holds no private key" in _fails(
        "--certfile", certs["server.pem"], parser=parser)
    assert f"--certfile {certs['server.key']} holds no PEM certificate" in _fails(
        "--certfile", certs["server.key"], "--keyfile", certs["server.key"], parser=parser)
    assert f"--keyfile {certs['ca.pem']} holds no PEM private key" in _fails(
        "--certfile", certs["server.pem"], "--keyfile", certs["ca.pem"], parser=parser)


# -- workers and HUP ----------------------------------------------------------------------------------

@pytest.mark.parametrize("parser,threads", BACKENDS, ids=[matrix_id(p) for p in BACKENDS])
def test_workers_and_hup_pick_up_a_renewed_certificate(launch, certs, tmp_path, parser, threads):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    shutil.copy(certs["server.pem"], cert)
    shutil.copy(certs["server.key"], key)
    server = launch("-w", "2", "--http-parser", parser, "--threads", str(threads),
                    "--certfile", str(cert), "--keyfile", str(key))
    wait_booted(server, 2)
    assert server.url.startswith("https://")
    assert {peer_organization(server.port, certs) for _ in range(6)} == {"first"}
    # a broken file on HUP: the new workers keep the certificate they had
    cert.write_text("broken")
    mark = server.stderr_mark()
    server.signal(signal.SIGHUP)
    assert server.wait_stderr("keeping the previous TLS certificate", since=mark, timeout=20), \
        server.stderr_text()
    wait_booted(server, 4, timeout=20)
    assert {peer_organization(server.port, certs) for _ in range(6)} == {"first"}
    # the renewal lands: the next HUP serves it (once the old generation has retired)
    shutil.copy(certs["renewed.pem"], cert)
    shutil.copy(certs["renewed.key"], key)
    server.signal(signal.SIGHUP)
    wait_booted(server, 6, timeout=20)
    deadline = time.monotonic() + 30
    seen = set()
    while time.monotonic() < deadline:
        seen = {peer_organization(server.port, certs) for _ in range(6)}
        if seen == {"renewed"}:
            break
        time.sleep(0.1)
    assert seen == {"renewed"}, server.stderr_text()


# -- gunicorn's ssl_context hook ----------------------------------------------------------------------

SSL_CONTEXT_HOOK = '''
import ssl

def ssl_context(config, default_ssl_context_factory):
    context = default_ssl_context_factory()
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    with open({marker!r}, "a") as marker:
        marker.write(config.certfile + "\\n")
    return context
'''


@pytest.mark.parametrize("parser,threads", BACKENDS, ids=[matrix_id(p) for p in BACKENDS])
def test_ssl_context_hook_shapes_the_context(certs, tmp_path, parser, threads):
    """The hook gets the options and our factory; what it returns is served (here: TLS 1.3 only)."""
    marker = tmp_path / "marker"
    conf = tmp_path / "conf.py"
    conf.write_text(SSL_CONTEXT_HOOK.format(marker=str(marker)))
    server = ServerProcess(["-c", str(conf), "--bind", "127.0.0.1:0", "--http-parser", parser,
                            "--threads", str(threads), *tls_args(certs), DEFAULT_APP]).start()
    try:
        assert fetch(server, certs) == (200, b"hello")
        old_client = client_context(certs)
        old_client.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            with pytest.raises(ssl.SSLError):
                old_client.wrap_socket(raw, server_hostname="localhost")
        assert fetch(server, certs) == (200, b"hello")  # still serving
    finally:
        server.stop()
    assert marker.read_text().splitlines() == [certs["server.pem"]]


@pytest.mark.parametrize("parser", ["c", "python"])
def test_ssl_context_hook_errors_stop_the_start(certs, tmp_path, parser):
    wrong = tmp_path / "wrong.py"
    wrong.write_text("def ssl_context(config, factory):\n    return None\n")
    assert "returned NoneType, not an ssl.SSLContext" in _fails("-c", str(wrong), *tls_args(certs),
                                                                  parser=parser)
    raising = tmp_path / "raising.py"
    raising.write_text("def ssl_context(config, factory):\n    raise ValueError('no context today')\n")
    result = run_cli("--bind", "127.0.0.1:0", "--http-parser", parser, "-c", str(raising),
                     *tls_args(certs), DEFAULT_APP, timeout=30)
    assert result.returncode != 0 and "Listening at" not in result.stderr
    assert "Traceback" in result.stderr and "no context today" in result.stderr  # the hook's own
    assert result.stderr.strip().splitlines()[-1] == (
        "fastwsgi: error: the ssl_context hook raised ValueError: no context today")


@pytest.mark.parametrize("workers", [[], ["-w", "2"]], ids=["single", "workers"])
def test_ssl_context_hook_without_a_certificate_is_not_called_and_says_so_once(tmp_path, workers):
    """As gunicorn, the hook is called only with --certfile (a config may set it for all its
    deployments); plain HTTP is served, and the log says once why the hook did not run."""
    marker = tmp_path / "marker"
    conf = tmp_path / "conf.py"
    conf.write_text(SSL_CONTEXT_HOOK.format(marker=str(marker)))
    server = ServerProcess(["-c", str(conf), "--bind", "127.0.0.1:0", *workers, DEFAULT_APP]).start()
    try:
        assert http_get(server.port, "/") == (200, b"GET /?")
    finally:
        server.stop()
    assert not marker.exists()
    assert server.stderr_text().count("The ssl_context hook is not called without --certfile") == 1, \
        server.stderr_text()
