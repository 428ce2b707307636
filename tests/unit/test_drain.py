"""A graceful stop (Server.drain: --max-requests reached, TERM, HUP) stops accepting at once. A
connection waiting in the listen queue when the drain starts stays there for another worker, even
when the listener's readiness came in the same poll batch as the wakeup that started the drain (its
handler then runs after the drain began). Real sockets; the batch is played by calling the two
handlers in that order."""

import select
import socket

import pytest

from fastwsgi.config import defaults
from fastwsgi.server import Server
from fastwsgi.server.listener import open_listener
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
