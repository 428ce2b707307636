"""The lingering close's deadlines (fastwsgi/server/connection.py) on a simulated clock: a real
Server (no listeners) and a real Connection over a socketpair, with `server.now` set by the test and
the loop's own sweep (`Server._sweep`) doing the closing, so the 30 s total bound is checked in
milliseconds. The functional tests (test_limits, test_tls) check the idle gap and the byte count
against real server processes."""

import socket

import pytest

from fastwsgi.config import defaults
from fastwsgi.server import Server
from fastwsgi.server.connection import LINGER_TIME, LINGER_TOTAL
from fastwsgi.server.poller import IN
from tests.unit.serverkit import connect_pair

START = 1000.0  # the simulated monotonic clock at the 413


@pytest.fixture(params=["c", "python"])
def refused(request):
    """(server, connection, client socket): a request over --limit-request-body answered 413 at
    START, the connection lingering."""
    options = defaults()
    options.update(http_parser=request.param, limit_request_body=1000)
    server = Server(lambda environ, start_response: [], [], options)
    conn, client = connect_pair(server)
    server.now = START
    client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n" + b"b" * 1000)
    conn.on_event(IN)
    assert client.recv(65536).startswith(b"HTTP/1.1 413 ") and conn.lingering
    yield server, conn, client
    client.close()
    server.server_close()


def step(server, conn, client, now: float, data: bytes = b"") -> None:
    """One loop step at `now`: the client's bytes (if any) are read, then the sweep runs."""
    server.now = now
    if data:
        client.sendall(data)
        conn.on_event(IN)
    server._sweep(now)


def test_input_moves_the_idle_deadline_but_never_past_the_total_bound(refused):
    server, conn, client = refused
    now = START
    for _ in range(int(2 * LINGER_TOTAL / LINGER_TIME)):
        now += LINGER_TIME * 0.75  # always within the idle gap
        step(server, conn, client, now, b"x" * 1000)
        if conn.closed:
            break
        assert conn.deadline == min(now + LINGER_TIME, START + LINGER_TOTAL)
    assert conn.closed, f"still open {now - START:g} s after the 413 though the total bound is {LINGER_TOTAL:g} s"
    assert START + LINGER_TOTAL < now <= START + LINGER_TOTAL + LINGER_TIME


def test_a_quiet_gap_closes_before_the_total_bound(refused):
    server, conn, client = refused
    step(server, conn, client, START + 10.0, b"x")
    step(server, conn, client, START + 10.0 + LINGER_TIME - 0.1)
    assert not conn.closed
    step(server, conn, client, START + 10.0 + LINGER_TIME + 0.1)
    assert conn.closed


def test_the_client_closing_ends_the_linger_at_once(refused):
    server, conn, client = refused
    step(server, conn, client, START + 0.5, b"x" * 100)
    client.shutdown(socket.SHUT_WR)
    server.now = START + 0.6
    conn.on_event(IN)  # the EOF, long before any deadline
    assert conn.closed
