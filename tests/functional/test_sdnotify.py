"""systemd notifications (fastwsgi.sdnotify): a real datagram socket in NOTIFY_SOCKET, as systemd gives a
Type=notify service, and a real server process, single or under a master, that must say READY=1 only
once it serves, RELOADING=1 then READY=1 around a HUP's reload (also a failed one), STOPPING=1 when it
stops, WATCHDOG=1 at half of WATCHDOG_USEC, and keep the socket from its application."""

import os
import signal
import socket
import time
import uuid

import pytest

from tests.functional.client import get
from tests.functional.ops import worker_pid

GATED_APP = "tests.functional.ops:gated_app({!r})"


class Listener:
    """systemd's side: a datagram socket, and the messages read from it as dicts."""

    def __init__(self, address: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address.replace("@", "\0", 1) if address.startswith("@") else address)
        self.address = address

    def next(self, timeout: float = 10.0):
        """The next message ({KEY: VALUE}), or None if none came within `timeout` seconds."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        return dict(line.split("=", 1) for line in data.decode().split("\n"))

    def wait_for(self, key: str, timeout: float = 15.0) -> tuple[dict, list[dict]]:
        """(the first message with `key`, the messages before it that lacked it)."""
        before = []
        while True:
            message = self.next(timeout)
            assert message is not None, f"no {key} within {timeout} s; before it: {before}"
            if key in message:
                return message, before
            before.append(message)

    def close(self):
        self.sock.close()


@pytest.fixture
def systemd(tmp_path):
    listener = Listener(str(tmp_path / "notify.sock"))
    yield listener
    listener.close()


def test_a_single_process_says_ready_when_it_serves_and_stopping_on_term(launch, systemd):
    server = launch(env={"NOTIFY_SOCKET": systemd.address})
    ready, before = systemd.wait_for("READY")
    assert before == [] and ready["READY"] == "1" and ready["STATUS"] == "serving"
    assert get(server.port, "/").status == 200
    # the application's process never sees the service's socket
    assert get(server.port, "/env?NOTIFY_SOCKET").body == b"-"
    server.signal(signal.SIGTERM)
    stopping, before = systemd.wait_for("STOPPING")
    assert stopping["STOPPING"] == "1" and before == []
    assert server.wait(10) == 0


def test_the_master_says_ready_only_once_its_workers_serve(started, systemd, tmp_path):
    gate = tmp_path / "gate"
    server = started("-w", "2", GATED_APP.format(str(gate)), env={"NOTIFY_SOCKET": systemd.address})
    # listening, but the workers are still loading (longer than the master's 1 s between rounds)
    assert systemd.next(timeout=1.5) is None
    gate.write_text("ok")
    ready, before = systemd.wait_for("READY")
    assert before == [] and ready["STATUS"] == "serving, 2 worker(s)"
    assert get(server.port, "/pid").status == 200
    assert get(server.port, "/env?NOTIFY_SOCKET").body == b"-"
    server.signal(signal.SIGINT)
    systemd.wait_for("STOPPING")
    assert server.wait(10) == 0


def serving_one_gated_worker(started, systemd, gate):
    """A master with one worker of gated_app(gate), ready: (the server, its worker's pid)."""
    gate.write_text("ok")
    server = started("-w", "1", GATED_APP.format(str(gate)), env={"NOTIFY_SOCKET": systemd.address})
    systemd.wait_for("READY")
    return server, worker_pid(server)


def test_a_reload_says_reloading_then_ready_once_the_new_workers_serve(started, systemd, tmp_path):
    gate = tmp_path / "gate"
    server, old = serving_one_gated_worker(started, systemd, gate)
    gate.unlink()
    server.signal(signal.SIGHUP)
    reloading, _ = systemd.wait_for("RELOADING")
    assert reloading["RELOADING"] == "1"
    # CLOCK_MONOTONIC in microseconds, as Type=notify-reload requires (the same clock as ours)
    now = int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6)
    assert 0 < now - int(reloading["MONOTONIC_USEC"]) < 60_000_000
    assert systemd.next(timeout=1.5) is None  # the new worker waits at the gate: not ready yet
    gate.write_text("ok")
    ready, _ = systemd.wait_for("READY")
    assert ready["STATUS"] == "serving, 1 worker(s)"
    assert get(server.port, "/pid").status == 200
    deadline = time.monotonic() + 10
    while worker_pid(server) == old:  # the old worker finishes its drain, then only the new answers
        assert time.monotonic() < deadline, "the old worker still answers"
        time.sleep(0.05)


def test_a_failed_reload_says_ready_again_and_the_old_workers_serve_on(started, systemd, tmp_path):
    gate = tmp_path / "gate"
    server, old = serving_one_gated_worker(started, systemd, gate)
    gate.write_text("fail")  # the new worker's application raises while loading
    server.signal(signal.SIGHUP)
    systemd.wait_for("RELOADING")
    ready, _ = systemd.wait_for("READY")
    assert ready["STATUS"] == "serving; the last reload failed, 1 worker(s)"
    assert worker_pid(server) == old


@pytest.mark.parametrize("workers", [(), ("-w", "1")], ids=["single", "master"])
def test_watchdog_beats_at_half_the_interval_and_only_for_its_pid(launch, tmp_path, workers):
    address = f"@fastwsgi-test-{uuid.uuid4().hex}"  # the abstract namespace, as systemd may pass
    systemd = Listener(address)
    try:
        server = launch(*workers, env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"})
        systemd.wait_for("READY")
        beats = [systemd.wait_for("WATCHDOG", timeout=5)[0] for _ in range(3)]
        assert all(beat == {"WATCHDOG": "1"} for beat in beats)
        assert get(server.port, "/env?WATCHDOG_USEC").body == b"-"
    finally:
        systemd.close()
    other = Listener(str(tmp_path / "other.sock"))
    try:  # WATCHDOG_PID names another process (systemd's, for a forking service): not ours to feed
        launch(*workers, env={"NOTIFY_SOCKET": other.address, "WATCHDOG_USEC": "200000",
                               "WATCHDOG_PID": str(os.getpid())})
        other.wait_for("READY")
        assert other.next(timeout=1.0) is None
    finally:
        other.close()


def test_an_unreachable_notify_socket_is_one_warning_not_a_failure(launch, tmp_path):
    server = launch(env={"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")})
    assert get(server.port, "/").status == 200
    assert server.wait_stderr("cannot notify systemd at NOTIFY_SOCKET") is not None
