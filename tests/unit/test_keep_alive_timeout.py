"""The keep-alive timeout closes an idle connection, but never one whose next request has already
reached its socket: the sweep runs after the poll that would report it, and a close with unread input
resets the connection, losing a request the client sent (behind nginx, a POST becomes a 502). Real
sockets; the loop is stepped by hand so the request arrives between the poll and the sweep."""

import select
import socket

import pytest

from fastwsgi.config import defaults
from fastwsgi.server import Server
from fastwsgi.server.listener import open_listener

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def hello(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


@pytest.fixture(params=["c", "python"])
def served_once(request):
    """(server, its one connection, the client) after one keep-alive exchange; --keep-alive 1."""
    options = defaults()
    options.update(http_parser=request.param, threads=0, defer_accept=0, keep_alive=1)
    server = Server(hello, [open_listener("127.0.0.1:0", 16)], options)
    client = socket.create_connection(("127.0.0.1", server.server_port), timeout=5)
    try:
        client.sendall(REQUEST)
        while not server.requests_done:
            server._step(0.1)
        assert client.recv(4096).endswith(b"ok")
        (conn,) = server.connections.values()
        yield server, conn, client
    finally:
        client.close()
        server.server_close()


def test_an_idle_connection_is_closed_at_its_keep_alive_deadline(served_once):
    server, conn, client = served_once
    server._sweep(server.now + 2)
    assert conn.closed
    assert client.recv(100) == b""


def test_a_request_that_arrived_before_the_deadline_sweep_is_served(served_once):
    server, conn, client = served_once
    client.sendall(REQUEST)
    assert select.select([conn.sock], [], [], 5)[0], "the request never arrived"
    server._sweep(server.now + 2)  # past the keep-alive deadline, the request not read yet
    assert not conn.closed
    while server.requests_done < 2:
        server._step(0.1)
    assert client.recv(4096).startswith(b"HTTP/1.1 200")
