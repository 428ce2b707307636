"""Concurrency models: with --threads N a slow application call does not stall other connections, and
pipelined responses stay in order whatever the model."""

import threading
import time

from tests.functional.client import Conn, build_request


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
