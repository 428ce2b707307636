"""Concurrency models: with --threads N a slow application call does not stall other connections, and
pipelined responses stay in order whatever the model."""

import socket
import threading
import time

import pytest

from tests.functional.client import Conn, build_request, chunked


def test_slow_request_does_not_stall_a_fast_one(threaded_server):
    with Conn(threaded_server.port) as slow, Conn(threaded_server.port) as fast:
        start = time.monotonic()
        slow.request("GET", "/sleep?s=1")
        time.sleep(0.1)
        fast.request("GET", "/hello")
        fast_resp = fast.read_response(timeout=5)
        fast_done = time.monotonic() - start
        slow_resp = slow.read_response(timeout=5)
        slow_done = time.monotonic() - start
    assert fast_resp.body == b"hello" and slow_resp.body == b"slept 1.0"
    assert fast_done < 0.8, f"the fast request waited for the slow one ({fast_done:.2f} s)"
    assert slow_done >= 1.0
    assert fast_done < slow_done


def test_thread_pool_runs_requests_in_parallel(threaded_server):
    conns = [Conn(threaded_server.port) for _ in range(4)]
    try:
        start = time.monotonic()
        for conn in conns:
            conn.request("GET", "/sleep?s=1")
        for conn in conns:
            assert conn.read_response(timeout=6).body == b"slept 1.0"
        elapsed = time.monotonic() - start
    finally:
        for conn in conns:
            conn.close()
    assert elapsed < 2.5, f"4 x 1 s on 4 threads took {elapsed:.2f} s"


def test_pipelined_slow_then_fast_stays_in_order(server):
    with Conn(server.port) as conn:
        conn.send(build_request("GET", "/sleep?s=0.5") + build_request("GET", "/p/fast")
                  + build_request("GET", "/sleep?s=0.2") + build_request("GET", "/p/last"))
        bodies = [conn.read_response(timeout=5).body for _ in range(4)]
    assert bodies == [b"slept 0.5", b"GET /p/fast?", b"slept 0.2", b"GET /p/last?"]


def test_concurrent_clients_with_bodies(server):
    """Several threads each pipelining POSTs: every body comes back to the connection that sent it."""
    errors: list[str] = []

    def client(n: int):
        try:
            with Conn(server.port, timeout=10) as conn:
                payloads = [(b"%d-%d;" % (n, i)) * (100 * (i + 1)) for i in range(5)]
                conn.send(b"".join(build_request("POST", "/echo", body=p) for p in payloads))
                for p in payloads:
                    got = conn.read_response(timeout=10).body
                    if got != p:
                        errors.append(f"client {n}: got {got[:30]!r}, want {p[:30]!r}")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(f"client {n}: {exc!r}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []


@pytest.mark.parametrize("target", ["/hash?sleep=0.05", "/sleep?s=0.05"], ids=["read", "unread"])
def test_a_client_pipelining_bodies_does_not_keep_the_loop(server, target):
    """A client that keeps the server's socket full of pipelined POSTs must not have the loop to itself
    (threads = 0: the application runs on it): a new client is answered while that one still sends.
    It was not, on either backend, before the loop received request bodies itself: reading a
    body (the application, or the server draining what it left) took 64 KiB from the socket at a time,
    so the input buffer held the next request's start after every request, and the loop went on
    serving that connection until a read happened to end on a request's last byte, or until 256 KiB
    of its answers were waiting (here, 85 s away). Now each event's read is taken as it comes, and a
    body not all in the buffer waits for the next event. The application's 50 ms a request make every
    server slower than the client, whose requests have an odd length, so no 64 KiB read ends on one's
    last byte."""
    request = b""
    for size in (70_000, 70_001):
        if len(request) % 2 == 0:
            request = build_request("POST", target, headers=[("Transfer-Encoding", "chunked")],
                                    body=chunked(b"x" * size))
    assert len(request) % 2 == 1
    stop = threading.Event()
    answered = []

    def flood(conn: Conn):
        try:
            while not stop.is_set():
                conn.send(request * 8)
        except OSError:
            pass

    def drain(conn: Conn):
        try:
            while not stop.is_set():
                data = conn.sock.recv(262144)
                if not data:
                    return
                answered.append(data.count(b"HTTP/1.1 200"))
        except OSError:
            pass

    with Conn(server.port, timeout=60) as flooding:
        workers = [threading.Thread(target=flood, args=(flooding,), daemon=True),
                   threading.Thread(target=drain, args=(flooding,), daemon=True)]
        for worker in workers:
            worker.start()
        try:
            while sum(answered) < 3:  # the flood is under way
                time.sleep(0.01)
            with Conn(server.port, timeout=20) as newcomer:
                newcomer.request("GET", "/hello")
                response = newcomer.read_response(timeout=20)
            assert response.status == 200 and response.body == b"hello"
        finally:
            stop.set()
            flooding.sock.shutdown(socket.SHUT_RDWR)
            for worker in workers:
                worker.join(10)
