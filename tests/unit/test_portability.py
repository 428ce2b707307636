"""What fastwsgi does where a Linux facility is missing, checked on Linux with real sockets: the
listener module as another kernel loads it (no TCP_INFO accept-queue count, no balancing
SO_REUSEPORT), --reuse-port falling back to shared sockets, and FileWrapper without os.sendfile."""

import importlib.util
import logging
import socket
import sys
import time

import pytest

import fastwsgi.cli as cli
import fastwsgi.server.filewrapper as filewrapper
import fastwsgi.server.listener as listener_module
from fastwsgi.config import defaults


@pytest.fixture
def darwin_listener(monkeypatch):
    """A private copy of fastwsgi.server.listener imported as on macOS (sys.platform "darwin")."""
    monkeypatch.setattr(sys, "platform", "darwin")
    spec = importlib.util.spec_from_file_location("fastwsgi.server._listener_as_darwin",
                                                  listener_module.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_other_kernels_read_no_tcp_info_and_get_no_reuse_port_balancing(darwin_listener):
    listener = darwin_listener.open_listener("127.0.0.1:0", 16)
    try:
        assert listener.read_accept_queue is None  # FreeBSD's struct tcp_info has another layout
        assert darwin_listener.REUSE_PORT_BALANCES is False
    finally:
        listener.close()


def test_without_an_accept_queue_count_a_batch_accepts_until_the_queue_is_empty(darwin_listener):
    listener = darwin_listener.open_listener("127.0.0.1:0", 16)
    clients = []
    try:
        for _ in range(5):
            client = socket.create_connection(("127.0.0.1", listener.port))
            clients.append(client)
        time.sleep(0.2)  # the handshakes complete into the accept queue
        batch = listener.accept_batch(100)
        assert len(batch) == 5
        for sock, _addr in batch:
            sock.close()
        assert listener.accept_batch(100) == []
    finally:
        for client in clients:
            client.close()
        listener.close()


def test_reuse_port_falls_back_to_a_shared_socket_where_it_does_not_balance(monkeypatch, caplog):
    """A master reserves a --reuse-port address without listening (each worker opens its own); where
    the kernel would not spread connections over the workers' sockets it listens on a shared one."""
    monkeypatch.setattr(cli, "REUSE_PORT_BALANCES", False)
    options = defaults()
    options.update(bind=["127.0.0.1:0"], reuse_port=True)
    with caplog.at_level(logging.WARNING, logger="fastwsgi"):
        listeners = cli.open_listeners(options, master=True)
    try:
        assert options["reuse_port"] is False  # what the workers forked later read
        [listener] = listeners
        assert listener.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        assert listener.sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
        assert "SO_REUSEPORT spreads connections only on Linux" in caplog.text
    finally:
        for listener in listeners:
            listener.close()


def test_reuse_port_on_linux_reserves_the_address_for_the_workers():
    options = defaults()
    options.update(bind=["127.0.0.1:0"], reuse_port=True)
    [listener] = cli.open_listeners(options, master=True)
    try:
        assert options["reuse_port"] is cli.REUSE_PORT_BALANCES
        listening = listener.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        assert listening == (0 if cli.REUSE_PORT_BALANCES else 1)
    finally:
        listener.close()


def test_without_os_sendfile_a_file_wrapper_is_iterated(monkeypatch, tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    with open(path, "rb") as file:
        assert filewrapper.FileWrapper(file).sendfile_source() == (file.fileno(), 0, 10)
        monkeypatch.setattr(filewrapper, "_SENDFILE", False)
        wrapper = filewrapper.FileWrapper(file)
        assert wrapper.sendfile_source() is None
        assert b"".join(wrapper) == b"x" * 10
