"""A graceful stop (Server.drain: --max-requests reached, TERM, HUP) stops accepting at once. A
connection waiting in the listen queue when the drain starts stays there for another worker, even
when the listener's readiness came in the same poll batch as the wakeup that started the drain (its
handler then runs after the drain began). Real sockets; the batch is played by calling the two
handlers in that order. The connections already open: one used less than DRAIN_GRACE ago stays open
and its next request is answered with Connection: close; one idle for longer is closed; one whose
next request is already in its socket is never closed under it."""

import select
import socket
import threading
import time

import pytest

from fastwsgi.config import defaults
from fastwsgi.server import Server
from fastwsgi.server.listener import open_listener
from fastwsgi.server.loop import DRAIN_GRACE, DRAIN_SWEEP
from fastwsgi.server.poller import IN


def hello(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


@pytest.mark.parametrize("threads", [0, 2])
@pytest.mark.parametrize("parser", ["c", "python"])
def test_a_draining_server_leaves_queued_connections_to_other_workers(parser, threads):
    options = defaults()
    options.update(http_parser=parser, threads=threads, defer_accept=0)
    listener = open_listener("127.0.0.1:0", 16)
    server = Server(hello, [listener], options)
    client = socket.create_connection(("127.0.0.1", listener.port), timeout=5)
    try:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert select.select([listener.sock], [], [], 5)[0], "the connection never reached the queue"
        server.drain()
        server._on_wake(IN)  # the wakeup, first in the batch: the drain starts
        assert server.draining
        server.handlers[listener.fileno()](IN)  # then the listener's readiness from the same batch
        assert not server.connections, "a draining server accepted a connection it will not serve"
        assert not select.select([client], [], [], 0)[0]  # nothing was answered, nothing closed
        queued, _ = listener.sock.accept()  # still there for a worker that is not stopping
        queued.close()
    finally:
        client.close()
        server.server_close()


def _serving(parser: str, threads: int):
    options = defaults()
    options.update(http_parser=parser, threads=threads, defer_accept=0, keep_alive=30)
    listener = open_listener("127.0.0.1:0", 16)
    server = Server(hello, [listener], options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread, listener.port


def _exchange(client: socket.socket) -> bytes:
    """Send one GET and read its response head (the body is the 2 bytes of `hello`)."""
    client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while not data.endswith(b"\r\n\r\nok"):
        chunk = client.recv(4096)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


@pytest.mark.parametrize("threads", [0, 2])
@pytest.mark.parametrize("parser", ["c", "python"])
def test_a_draining_server_answers_a_request_on_a_connection_it_just_used(parser, threads):
    """A proxy's keep-alive pool sends its next request on the connection it used last: within the
    drain's grace that request is answered (with Connection: close), not cut off by a close."""
    server, thread, port = _serving(parser, threads)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            assert b"connection: close" not in _exchange(client).lower()
            server.drain()
            time.sleep(0.3)  # the drain has begun; the connection has been idle for less than the grace
            head = _exchange(client).lower()
            assert head.startswith(b"http/1.1 200") and b"connection: close" in head
            assert client.recv(100) == b""
        thread.join(5)
        assert not thread.is_alive()
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("threads", [0, 2])
@pytest.mark.parametrize("parser", ["c", "python"])
def test_a_draining_server_closes_a_connection_idle_for_longer_than_the_grace(parser, threads):
    server, thread, port = _serving(parser, threads)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            _exchange(client)
            time.sleep(DRAIN_GRACE + 0.1)
            started = time.monotonic()
            server.drain()
            assert client.recv(100) == b""
            assert time.monotonic() - started < DRAIN_SWEEP + 2  # neither --keep-alive nor the graceful timeout
        thread.join(5)
        assert not thread.is_alive()
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("parser", ["c", "python"])
def test_a_draining_server_never_closes_a_connection_whose_request_has_arrived(parser):
    """The request reached the socket after the last poll: the drain's sweep sees the connection idle
    for longer than the grace, yet closing it would reset that request. It is served instead."""
    options = defaults()
    options.update(http_parser=parser, threads=0, defer_accept=0, keep_alive=30)
    listener = open_listener("127.0.0.1:0", 16)
    server = Server(hello, [listener], options)
    try:
        with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            while not server.requests_done:
                server._step(0.1)
            (conn,) = server.connections.values()
            assert client.recv(4096).endswith(b"ok")
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert select.select([conn.sock], [], [], 5)[0], "the request never arrived"
            server.drain()
            server._on_wake(IN)
            server._drain_step(server.now + DRAIN_GRACE + 1)  # idle long enough, but a request waits
            assert not conn.closed
            while server.requests_done < 2:
                server._step(0.1)
            head = client.recv(4096).lower()
            assert head.startswith(b"http/1.1 200") and b"connection: close" in head
    finally:
        server.server_close()
