"""A readable event that finds nothing to read (Connection.rearm). With --threads N the loop
registers each connection one-shot (EPOLLONESHOT, or the poll(2) poller's equivalent): an event
disarms the registration until the connection arms it again. A wakeup whose recv() then finds
nothing (another reader took the bytes; in TLS, the first part of a record) must arm it again, or the
connection would hear nothing more until its deadline closed it. A real Server (no listeners) and a
real Connection over a socketpair, on both pollers; the test drives the poller by hand."""

import pytest

from fastwsgi.config import defaults
from fastwsgi.server import Server
from fastwsgi.server.poller import IN
from tests.unit.serverkit import connect_pair


def hello(environ, start_response):
    start_response("200 OK", [("Content-Length", "5")])
    return [b"hello"]


@pytest.fixture(params=["epoll", "poll"])
def one_shot(request, monkeypatch):
    """(server, connection, client socket): --threads 2, the connection registered one-shot for IN."""
    monkeypatch.setenv("FASTWSGI_POLLER", request.param)
    options = defaults()
    options.update(threads=2)
    server = Server(hello, [], options)
    assert server.oneshot and server.poller.NAME == request.param
    conn, client = connect_pair(server)
    conn.watch(IN)
    yield server, conn, client
    client.close()
    server.server_close()


def readable(server, conn, timeout: float) -> bool:
    return any(fd == conn.fd for fd, _mask in server.poller.poll(timeout))


def test_a_wakeup_with_nothing_to_read_arms_the_registration_again(one_shot):
    server, conn, client = one_shot
    client.sendall(b"G")
    assert readable(server, conn, 5)  # reported once: the registration is spent
    assert conn.sock.recv(1) == b"G"  # another reader took the byte
    conn.on_event(IN)  # the wakeup finds nothing
    assert not conn.closed
    client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert readable(server, conn, 5), "the connection no longer hears its socket"


def test_the_registration_fires_once_per_arming(one_shot):
    """The premise: without arming again, a one-shot registration reports nothing more."""
    server, conn, client = one_shot
    client.sendall(b"G")
    assert readable(server, conn, 5)
    assert not readable(server, conn, 0.2)
