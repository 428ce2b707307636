"""Listener.accept_batch over real sockets: on TCP it takes every waiting connection up to the room
given (Linux: counting the accept queue), on a UNIX socket one per call; either way an empty queue
gives an empty batch, not an exception."""

import socket
import sys
import time

import pytest

from fastwsgi.server.listener import _ACCEPT_QUEUE, open_listener


def queued(listener) -> int:
    return _ACCEPT_QUEUE.unpack(listener.read_accept_queue())[0]


def wait_queued(listener, count: int) -> None:
    """TCP: wait until the kernel has completed `count` handshakes (the client's connect() returns
    a moment before the server's side is in the accept queue). A UNIX connect() is queued on return."""
    if listener.read_accept_queue is None:
        return
    deadline = time.monotonic() + 2.0
    while queued(listener) < count and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.fixture(params=["tcp", "unix"])
def listener(request, tmp_path):
    address = "127.0.0.1:0" if request.param == "tcp" else f"unix:{tmp_path}/l.sock"
    listener = open_listener(address, 16)
    yield listener
    listener.close()


def connect(listener, count: int) -> list:
    target = ("127.0.0.1", listener.port) if listener.is_tcp else listener.host
    family = socket.AF_INET if listener.is_tcp else socket.AF_UNIX
    clients = []
    for _ in range(count):
        client = socket.socket(family, socket.SOCK_STREAM)
        client.connect(target)
        clients.append(client)
    wait_queued(listener, count)
    return clients


def test_tcp_listener_counts_its_accept_queue_on_linux(listener):
    if sys.platform.startswith("linux") and listener.is_tcp:
        assert listener.read_accept_queue is not None
        clients = connect(listener, 3)
        assert queued(listener) == 3
        listener.accept_batch(1)[0][0].close()
        assert queued(listener) == 2
        for client in clients:
            client.close()
    else:
        assert listener.read_accept_queue is None


def test_a_batch_takes_every_waiting_tcp_connection_and_one_unix_connection(listener):
    clients = connect(listener, 3)
    batches = [listener.accept_batch(100) for _ in range(4)]
    if listener.is_tcp:
        assert [len(batch) for batch in batches] == [3, 0, 0, 0]
    else:
        assert [len(batch) for batch in batches] == [1, 1, 1, 0]  # one per wakeup, then empty
    for batch in batches:
        for sock, _addr in batch:
            sock.close()
    for client in clients:
        client.close()


def test_a_batch_stops_at_the_room_left(listener):
    clients = connect(listener, 3)
    first = listener.accept_batch(2)
    assert len(first) == (2 if listener.is_tcp else 1)
    rest = listener.accept_batch(2)
    assert len(first) + len(rest) == (3 if listener.is_tcp else 2)
    assert listener.accept_batch(0) == []  # no room: nothing taken, even with one waiting (UNIX)
    for sock, _addr in first + rest + listener.accept_batch(2):
        sock.close()
    for client in clients:
        client.close()


def test_defer_accept_sets_the_kernel_option_on_tcp_only(listener):
    deferring = listener.is_tcp and hasattr(socket, "TCP_DEFER_ACCEPT")
    assert not listener.deferred
    listener.defer_accept(2)
    assert listener.deferred is deferring
    if deferring:
        assert listener.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT) > 0
        listener.defer_accept(0)
        assert listener.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT) == 0
        assert not listener.deferred


def test_a_deferred_tcp_listener_hands_over_only_the_client_that_sent():
    if not hasattr(socket, "TCP_DEFER_ACCEPT"):
        pytest.skip("TCP_DEFER_ACCEPT is Linux only")
    listener = open_listener("127.0.0.1:0", 16)
    silent = talker = None
    try:
        listener.defer_accept(5)
        silent = socket.create_connection(("127.0.0.1", listener.port))
        talker = socket.create_connection(("127.0.0.1", listener.port))
        talker.sendall(b"GET / HTTP/1.1\r\n")
        wait_queued(listener, 1)
        batch = listener.accept_batch(100)
        assert [addr[1] for _sock, addr in batch] == [talker.getsockname()[1]]
        assert batch[0][0].recv(100) == b"GET / HTTP/1.1\r\n"
        assert listener.accept_batch(100) == []  # the silent one is still the kernel's
        for sock, _addr in batch:
            sock.close()
    finally:
        for client in (silent, talker):
            if client is not None:
                client.close()
        listener.close()


def test_a_name_with_ipv4_and_ipv6_addresses_listens_on_ipv4(monkeypatch):
    """glibc lists ::1 first for localhost with the stock Debian /etc/hosts ("::1 localhost"): the
    listener took it, and a proxy_pass to 127.0.0.1 was refused. wsgiref and gunicorn take IPv4."""
    real = socket.getaddrinfo

    def ipv6_first(host, port, *args):
        if host != "dualstack.test":
            return real(host, port, *args)
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", ipv6_first)
    listener = open_listener("dualstack.test:0", 16)
    try:
        assert listener.family == socket.AF_INET and listener.host == "127.0.0.1"
    finally:
        listener.close()


def test_a_port_in_use_keeps_its_errno():
    """Code written for wsgiref's make_server tests `exc.errno == errno.EADDRINUSE`."""
    import errno

    from fastwsgi.server.listener import BindError

    first = open_listener("127.0.0.1:0", 16)
    try:
        with pytest.raises(BindError) as caught:
            open_listener(f"127.0.0.1:{first.port}", 16)
        assert caught.value.errno == errno.EADDRINUSE
        assert str(caught.value).endswith("Address already in use")
    finally:
        first.close()
