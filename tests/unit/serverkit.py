"""A real Server's connection without a listener, for unit tests that drive the loop by hand: a
Connection over one end of a socketpair (non-blocking, as accepted sockets are), registered in the
server's tables as the listener would, and the client's end (blocking, 5 s timeout)."""

import socket

from fastwsgi.server.connection import Connection


def connect_pair(server, send_buffer: int = 0) -> tuple:
    """(connection, client socket); `send_buffer` > 0 sets the connection's SO_SNDBUF."""
    ours, client = socket.socketpair()
    if send_buffer:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    ours.setblocking(False)
    client.settimeout(5)
    conn = Connection(server, ours, {"REMOTE_ADDR": "127.0.0.1"})
    server.connections[conn.fd] = conn
    server.handlers[conn.fd] = conn.on_event
    return conn, client
