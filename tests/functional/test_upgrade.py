"""USR2 binary upgrade (fastwsgi.workers.upgrade) with real processes: a new master on the old one's
sockets (shared, or with --reuse-port reserved for workers that listen on their own) while a client
keeps connecting (not one request may fail), FILE.oldbin, WINCH, TERM to the old master, how the
sockets are bound kept whatever the new master's config says, the roll-back (the new master exits: the old one serves again), a UNIX socket's file
kept while either master runs, the pre_exec hook, the refusals, and systemd's main process moving to the
new master and back (a real notification socket, as in test_sdnotify.py).

The new master is a child of the old one, not of the test: `new_master()` finds it and every test
ends it itself (a finally), so no process outlives the test.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from contextlib import contextmanager

import pytest

from fastwsgi.server.listener import queued_connections_move
from tests.functional.client import Conn, get
from tests.functional.ops import (booted, children, gone, listening_on, loaded_by, wait_booted, wait_children,
                                  wait_gone, worker_pid)
from tests.functional.test_sdnotify import Listener


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as file:
        return int(file.read().rpartition(")")[2].split()[1])


def wait_for(predicate, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def pid_in(path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


@contextmanager
def upgraded(server, pidfile, old_workers: int):
    """Send USR2; yield the new master's pid once FILE names it and FILE.oldbin the old master; end
    the new master afterwards whatever happened."""
    old = server.proc.pid
    server.signal(signal.SIGUSR2)
    new = wait_for(lambda: pid_in(pidfile) not in (None, old) and pid_in(pidfile), "the new master's pid file")
    try:
        assert pid_in(pidfile.with_name(pidfile.name + ".oldbin")) == old
        assert parent_of(new) == old
        wait_for(lambda: len(children(new)) >= 1 and len(booted(server)) >= old_workers + 1,
                 "the new master's workers")
        yield new
    finally:
        try:
            os.kill(new, signal.SIGTERM)
        except ProcessLookupError:
            pass
        wait_gone(new, 15)


def acceptable(failures: list, reuse_port: bool) -> bool:
    """No failed request; with --reuse-port, a connection reset is what the docs allow where the
    kernel does not move a closing worker socket's queue (net.ipv4.tcp_migrate_req=0)."""
    if reuse_port and queued_connections_move() is False:
        return all(str(failure).startswith(("ConnectionReset", "ConnectionResetError")) for failure in failures)
    return failures == []


class Load:
    """A client connecting again and again (one request per connection) until stopped."""

    def __init__(self, port: int):
        self.port, self.answers, self.failures = port, 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            conn = None
            try:
                with Conn(self.port) as conn:
                    conn.request("GET", "/pid")
                    response = conn.read_response()
                if response.status == 200:
                    self.answers += 1
                else:
                    self.failures.append(response.status)
            except Exception as exc:  # noqa: BLE001 (every failure is the finding)
                # (the client reads a reset as the end of the response: say which it was)
                self.failures.append(f"ConnectionReset: {exc!r}" if conn is not None and conn.reset
                                     else repr(exc))

    def stop(self):
        self._stop.set()
        self._thread.join(10)


@pytest.mark.parametrize("reuse_port", [False, True], ids=["shared", "reuse-port"])
def test_usr2_then_winch_then_term_hands_the_socket_over_without_a_failed_request(launch, tmp_path,
                                                                                  reuse_port):
    """Shared: both generations accept on the one socket. --reuse-port (USR2 was refused): the old
    master hands over the address it reserved, and each new worker listens on a socket of its own
    beside the old workers' (four sockets on the port)."""
    pidfile = tmp_path / "app.pid"
    server = launch("-w", "2", "--pid", str(pidfile), *(["--reuse-port"] if reuse_port else []))
    old_workers = set(wait_booted(server, 2))
    old = server.proc.pid
    load = Load(server.port)
    try:
        with upgraded(server, pidfile, 2) as new:
            new_workers = wait_children(new, 2)
            assert len(new_workers) == 2 and not new_workers & old_workers
            # all its workers listen, and WINCH is not ignored (with --reuse-port it waits for this)
            assert server.wait_stderr(f"The new master (pid:{new}) serves", timeout=15), server.stderr_text()
            wait_for(lambda: worker_pid(server) in new_workers, "an answer from a new worker")
            assert listening_on(server.port) == (4 if reuse_port else 1)
            server.signal(signal.SIGWINCH)  # the old workers stop; the old master stays
            for pid in old_workers:
                assert wait_gone(pid), f"old worker {pid} still runs after WINCH"
            assert not server.proc.poll() and wait_children(old, 1) == {new}
            server.signal(signal.SIGTERM)
            assert server.wait(15) == 0
            assert pid_in(pidfile) == new and not pidfile.with_name("app.pid.oldbin").exists()
            answered = load.answers
            wait_for(lambda: load.answers > answered + 20, "answers from the new master alone")
            load.stop()  # before the new master is ended
            assert {worker_pid(server) for _ in range(10)} <= new_workers
            assert listening_on(server.port) == (2 if reuse_port else 1)
            assert "Upgrading: new master (pid:%d) started" % new in server.stderr_text()
            assert "--reuse-port cannot change" not in server.stderr_text()
    finally:
        load.stop()
    assert acceptable(load.failures, reuse_port) and load.answers > 50, (load.failures[:5], load.answers)


def test_with_reuse_port_winch_waits_until_the_new_master_serves(started, tmp_path):
    """With --reuse-port no queue is shared: old workers stopping before a new one listens would leave
    the port refusing connections. The old master ignores WINCH until the new master says it serves
    (its workers are held loading by a gate file meanwhile)."""
    pidfile, gate = tmp_path / "app.pid", tmp_path / "gate"
    gate.write_text("ok")
    server = started("-w", "1", "--reuse-port", "--pid", str(pidfile),
                     f"tests.functional.ops:gated_app({str(gate)!r})")
    old_worker = wait_booted(server, 1)[0]
    old = server.proc.pid
    gate.unlink()  # the new master's worker waits in its application's import
    server.signal(signal.SIGUSR2)
    new = wait_for(lambda: pid_in(pidfile) not in (None, old) and pid_in(pidfile), "the new master's pid file")
    try:
        wait_for(lambda: children(new), "the new master's worker")
        server.signal(signal.SIGWINCH)
        assert server.wait_stderr(f"WINCH ignored: the new master (pid:{new}) does not serve yet, and with "
                                  f"--reuse-port nothing would accept on {server.url}")
        assert not gone(old_worker) and worker_pid(server) == old_worker
        gate.write_text("ok")
        assert server.wait_stderr(f"The new master (pid:{new}) serves", timeout=15), server.stderr_text()
        mark = server.stderr_mark()
        server.signal(signal.SIGWINCH)
        assert server.wait_stderr("Stopping this master's workers gracefully", since=mark)
        assert wait_gone(old_worker)
        assert parent_of(worker_pid(server)) == new
    finally:
        os.kill(new, signal.SIGTERM)
        wait_gone(new, 15)


@pytest.mark.parametrize("first", [True, False], ids=["reuse-port-then-shared", "shared-then-reuse-port"])
def test_the_new_master_keeps_how_the_old_one_bound_its_sockets(launch, tmp_path, first):
    """The new master adopts the old master's sockets as they are, whatever its config file now says
    of reuse_port (as a HUP does): a reserved address stays reserved (its workers listen on their
    own), a shared socket stays shared (no EADDRINUSE, no worker accepting on an unlistened socket)."""
    conf, pidfile = tmp_path / "fastwsgi.conf.py", tmp_path / "app.pid"
    conf.write_text(f"reuse_port = {first}\n")
    server = launch("-c", str(conf), "-w", "1", "--pid", str(pidfile))
    wait_booted(server, 1)
    conf.write_text(f"reuse_port = {not first}\n")
    with upgraded(server, pidfile, 1) as new:
        assert server.wait_stderr(f"--reuse-port cannot change across USR2; keeping {first}")
        new_worker = wait_for(lambda: (children(new) or {0}).pop(), "the new master's worker")
        wait_for(lambda: worker_pid(server) == new_worker, "an answer from the new worker")
        assert listening_on(server.port) == (2 if first else 1)
        server.signal(signal.SIGTERM)
        assert server.wait(15) == 0
        assert {worker_pid(server) for _ in range(5)} == {new_worker}


def test_when_the_new_master_exits_the_old_one_serves_again(launch, tmp_path):
    pidfile, marker = tmp_path / "app.pid", tmp_path / "pre_exec-ran"
    conf = tmp_path / "conf.py"
    conf.write_text(f"def pre_exec(server):\n    open({str(marker)!r}, 'w').write(str(server.pid))\n")
    server = launch("-w", "1", "--pid", str(pidfile), "-c", str(conf))
    wait_booted(server, 1)
    old = server.proc.pid
    with upgraded(server, pidfile, 1) as new:
        assert marker.read_text() == str(old)  # pre_exec ran in the child, with the old master
        server.signal(signal.SIGUSR2)  # a second upgrade while one runs: refused
        assert server.wait_stderr(f"USR2 ignored: the new master (pid:{new}) still runs")
        os.kill(new, signal.SIGUSR2)  # nor may the new master upgrade while the old one runs
        assert server.wait_stderr(f"USR2 ignored: the old master (pid:{old}) still runs")
        server.signal(signal.SIGWINCH)
        wait_for(lambda: not (children(old) - {new}), "the old master's workers to stop")
        os.kill(new, signal.SIGTERM)  # the roll-back
        assert server.wait_stderr(f"The new master (pid:{new}) exited (exit 0): this master serves on")
    wait_for(lambda: pid_in(pidfile) == old, "FILE naming the old master again")
    assert not pidfile.with_name("app.pid.oldbin").exists()
    wait_for(lambda: parent_of(worker_pid(server)) == old, "a worker of the old master again")
    server.signal(signal.SIGWINCH)  # no upgrade running: WINCH would leave nobody serving
    assert server.wait_stderr("WINCH ignored")
    assert get(server.port, "/pid").status == 200


def unix_get(path: str) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


@pytest.mark.parametrize("flags", [(), ("--reuse-port",)], ids=["shared", "reuse-port"])
def test_a_unix_socket_file_stays_while_either_master_runs(started, tmp_path, flags):
    """(--reuse-port changes nothing on a UNIX socket: the master owns it, USR2 hands it over.)"""
    path, pidfile = str(tmp_path / "app.sock"), tmp_path / "app.pid"
    server = started("-w", "1", "--pid", str(pidfile), *flags, "tests.functional.ops:ops_app",
                     bind=("--bind", f"unix:{path}"))
    wait_booted(server, 1)
    with upgraded(server, pidfile, 1) as new:
        server.signal(signal.SIGTERM)  # the old master goes first: the file must stay
        assert server.wait(15) == 0
        assert os.path.exists(path) and unix_get(path).startswith(b"HTTP/1.1 200")
        os.kill(new, signal.SIGTERM)
        assert wait_gone(new)
        wait_for(lambda: not os.path.exists(path), "the last master to remove the socket's file")


def test_a_new_master_whose_workers_cannot_load_leaves_the_old_one_serving(started, tmp_path):
    pidfile, gate = tmp_path / "app.pid", tmp_path / "gate"
    gate.write_text("ok")
    server = started("-w", "1", "--pid", str(pidfile), f"tests.functional.ops:gated_app({str(gate)!r})")
    old = server.proc.pid
    before = worker_pid(server)
    gate.write_text("fail")  # the new master's worker raises while loading: "Worker failed to boot"
    server.signal(signal.SIGUSR2)
    line = server.wait_stderr("exited (exit 1): this master serves on", timeout=20)
    assert line is not None, server.stderr_text()
    new = int(re.search(r"The new master \(pid:(\d+)\)", line).group(1))
    assert "Worker failed to boot" in server.stderr_text() and wait_gone(new)
    wait_for(lambda: pid_in(pidfile) == old, "FILE naming the old master again")
    assert worker_pid(server) == before and server.proc.poll() is None


PIDS_CGROUP = "/sys/fs/cgroup/pids"  # cgroup v1's pids hierarchy (v2: the unified one, if it has pids)


@contextmanager
def forks_refused(pid: int, tmp_path):
    """Put process `pid` alone in a new pids cgroup whose limit is what it has: its fork() fails with
    EAGAIN, as under a container's or systemd's TasksMax= limit. Needs root and a writable cgroupfs."""
    root = PIDS_CGROUP
    if not os.path.isdir(root):
        root = "/sys/fs/cgroup"
        try:
            with open(f"{root}/cgroup.subtree_control") as controllers:
                usable = "pids" in controllers.read().split()
        except OSError:
            usable = False
        if not usable:
            pytest.skip("no pids cgroup controller to make fork() fail with")
    group = f"{root}/fastwsgi-test-{os.getpid()}-{tmp_path.name}"
    try:
        os.mkdir(group)
    except OSError as exc:
        pytest.skip(f"cannot make a pids cgroup (root and a writable cgroupfs needed): {exc}")
    with open(f"/proc/{pid}/cgroup") as membership:  # where it goes back to
        line = next(line for line in membership if line.split(":")[1] in ("pids", ""))
    before = root + line.strip().split(":", 2)[2].rstrip("/")
    try:
        with open(f"{group}/cgroup.procs", "w") as procs:
            procs.write(str(pid))
        with open(f"{group}/pids.current") as current, open(f"{group}/pids.max", "w") as limit:
            limit.write(current.read().strip())
        yield
    finally:
        with open(f"{group}/pids.max", "w") as limit:
            limit.write("max")
        try:
            with open(f"{before}/cgroup.procs", "w") as procs:
                procs.write(str(pid))
            os.rmdir(group)
        except OSError:  # it has exited (the failure this guards against): the group goes once empty
            pass


def test_a_usr2_whose_fork_fails_leaves_the_master_serving(launch, tmp_path):
    """fork() failing (EAGAIN at a pids limit) escaped handle_usr2: the master died with a traceback,
    its workers drained and the pid file was gone. It logs one line and serves on; FILE stays."""
    pidfile = tmp_path / "app.pid"
    server = launch("-w", "1", "--pid", str(pidfile))
    worker = wait_booted(server, 1)[0]
    with forks_refused(server.proc.pid, tmp_path):
        server.signal(signal.SIGUSR2)
        assert server.wait_stderr("USR2 failed: cannot start the new master: Resource temporarily "
                                  "unavailable"), server.stderr_text()
    assert server.alive() and pid_in(pidfile) == server.proc.pid
    assert not pidfile.with_name("app.pid.oldbin").exists()
    assert worker_pid(server) == worker
    with upgraded(server, pidfile, 1):  # and the next USR2, forks allowed again, works
        pass


def test_under_systemd_the_new_master_becomes_the_main_process_and_the_old_one_leaves_quietly(
        launch, tmp_path):
    """Type=notify + NotifyAccess=all: systemd must learn MAINPID= of the new master once it serves,
    and the old master's exit must not say STOPPING=1 (systemd would stop the unit, new master too)."""
    systemd = Listener(str(tmp_path / "notify.sock"))
    pidfile = tmp_path / "app.pid"
    try:
        server = launch("-w", "1", "--pid", str(pidfile), env={"NOTIFY_SOCKET": systemd.address})
        ready, _ = systemd.wait_for("READY")
        assert "MAINPID" not in ready
        with upgraded(server, pidfile, 1) as new:
            taken, before = systemd.wait_for("MAINPID")
            assert before == [] and taken == {"READY": "1", "STATUS": "serving, 1 worker(s)",
                                              "MAINPID": str(new)}
            wait_for(lambda: parent_of(worker_pid(server)) == new, "an answer from the new master's worker")
            assert get(server.port, "/env?NOTIFY_SOCKET").body == b"-"  # nor do the new workers see it
            server.signal(signal.SIGWINCH)
            server.signal(signal.SIGTERM)
            assert server.wait(15) == 0
            assert systemd.next(timeout=0.5) is None  # the old master said nothing (no STOPPING=1)
            os.kill(new, signal.SIGTERM)  # the service's main process stops: now STOPPING=1
            stopping, before = systemd.wait_for("STOPPING")
            assert before == [] and stopping["STOPPING"] == "1"
            assert wait_gone(new)
    finally:
        systemd.close()


def test_under_systemd_a_roll_back_gives_the_service_back_to_the_old_master(launch, tmp_path):
    systemd = Listener(str(tmp_path / "notify.sock"))
    pidfile = tmp_path / "app.pid"
    try:
        server = launch("-w", "1", "--pid", str(pidfile), env={"NOTIFY_SOCKET": systemd.address})
        systemd.wait_for("READY")
        old = server.proc.pid
        with upgraded(server, pidfile, 1) as new:
            assert systemd.wait_for("MAINPID")[0]["MAINPID"] == str(new)
            os.kill(new, signal.SIGTERM)  # the roll-back: the new master hands the service back first
            handed, before = systemd.wait_for("MAINPID")
            assert before == [] and handed["MAINPID"] == str(old) and "STOPPING" not in handed
            assert server.wait_stderr(f"The new master (pid:{new}) exited (exit 0): this master serves on")
        again, before = systemd.wait_for("MAINPID")  # and the old master says so once it has reaped it
        assert before == [] and again["MAINPID"] == str(old)
        assert get(server.port, "/pid").status == 200
        server.signal(signal.SIGTERM)  # the old master is the service again: its stop is the service's
        assert systemd.wait_for("STOPPING")[1] == []
        assert server.wait(15) == 0
    finally:
        systemd.close()


@pytest.mark.parametrize("outcome", ["broken", "v2"])
def test_winch_during_a_reload_leaves_no_worker_whatever_the_reload_does(launch, tmp_path, outcome):
    """USR2, then a HUP to the old master (its new code waits to load), then WINCH: the old master is
    to keep no worker, of either generation. A reload that then failed set the worker count back to
    the old generation's, undoing the WINCH; one that succeeded kept the new workers."""
    pidfile, flag = tmp_path / "app.pid", tmp_path / "deploy"
    flag.write_text("v1")
    server = launch("-w", "2", "--pid", str(pidfile), app=f"tests.functional.ops:deployed_app({str(flag)!r})")
    wait_booted(server, 2)
    old = server.proc.pid
    with upgraded(server, pidfile, 2) as new:
        assert server.wait_stderr(f"The new master (pid:{new}) serves", timeout=15), server.stderr_text()
        flag.write_text("broken" if outcome == "broken" else "v2 3")  # loading waits (deploy.go, or 3 s)
        server.signal(signal.SIGHUP)
        wait_for(lambda: len(loaded_by(flag)) >= 6, "the reload's workers loading")  # 2 old, 2 new, 2 reload
        mark = server.stderr_mark()
        server.signal(signal.SIGWINCH)
        assert server.wait_stderr("WINCH stops every worker", since=mark), server.stderr_text()
        (tmp_path / "deploy.go").touch()  # the broken code fails now
        wait_for(lambda: not (children(old) - {new}), "the old master to keep no worker")
        server.signal(signal.SIGTTOU)  # a round of the master's loop later: still none
        assert server.wait_stderr("Handling signal: ttou", since=mark)
        assert not (children(old) - {new}) and server.alive()
