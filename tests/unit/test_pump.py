"""A streamed response on the event loop (threads = 0) asks the application for its next block only
once the socket took the previous one whole: the application may take its time to produce the next
block, and a block must not wait for it (PEP 3333). A real Server (no listeners) and a real
Connection over a socketpair whose send buffer is small, so that a block leaves in parts; the test
plays the loop (on_event) and reads as the client. The functional tests (test_responses) check
streaming against real server processes."""

import pytest

from fastwsgi.config import defaults
from fastwsgi.server import Server
from fastwsgi.server.poller import IN, OUT
from tests.unit.serverkit import connect_pair

BLOCK = b"x" * 65536


@pytest.fixture(params=["c", "python"])
def streaming(request):
    """(server, connection, client socket, asked) for an application streaming two blocks, the
    connection's send buffer far smaller than one block; `asked` gets the bytes still waiting in
    the connection's output when the application is asked for its second block."""
    asked = []
    connection = []

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", str(2 * len(BLOCK)))])

        def body():
            yield BLOCK
            asked.append(connection[0].out_size)  # the application starts on the next block
            yield BLOCK

        return body()

    options = defaults()
    options.update(http_parser=request.param)
    server = Server(app, [], options)
    conn, client = connect_pair(server, send_buffer=4096)
    connection.append(conn)
    yield server, conn, client, asked
    client.close()
    server.server_close()


def test_the_next_block_is_asked_for_once_the_socket_took_the_previous_one(streaming):
    server, conn, client, asked = streaming
    client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.on_event(IN)
    assert conn.out, "the first block fit in the socket: nothing to check"
    received = b""
    while not received.endswith(BLOCK * 2):  # the client reads; the loop hears the socket drain
        received += client.recv(1 << 20)
        conn.on_event(OUT)
    assert asked == [0], f"asked for the next block while {asked[0]} bytes of this one waited"
    head, body = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == BLOCK * 2
    assert conn.exchange is None and not conn.out
