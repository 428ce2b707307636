"""Signals with gunicorn's meanings, on real processes: TERM drains (an in-flight request completes
with `Connection: close`, idle keep-alive connections close within a second or two, the rest is killed after
--graceful-timeout), INT stops fast, HUP replaces every worker under a steady client loop without a
single failed request, TTIN/TTOU change the worker count. Also the single-process mode's TERM drain,
and that it ignores HUP (it has nothing to reload)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from tests.functional.apps import EVENTS_ENV
from tests.functional.client import Conn, build_request, get
from tests.functional.ops import (booted, children, loaded_by, wait_booted, wait_children, wait_for_text,
                                  worker_pid, zombie)
from tests.functional.serverproc import DEFAULT_APP, ServerProcess, ServerStartError


@pytest.mark.parametrize("threads", ["0", "4"])
def test_term_lets_an_in_flight_request_finish_with_connection_close(launch, threads):
    server = launch("-w", "1", "--graceful-timeout", "10", "--threads", threads)
    wait_booted(server, 1)
    with Conn(server.port, timeout=10) as conn:
        conn.request("GET", "/sleep?s=1.5")
        time.sleep(0.4)  # the application is sleeping now
        server.signal(signal.SIGTERM)
        response = conn.read_response()
        assert response.status == 200 and response.body == b"slept 1.5"
        assert "close" in response.connection_tokens()
        assert conn.closed_by_server(timeout=3)
    assert server.wait(10) == 0
    assert "Handling signal: term" in server.stderr_text()


def test_term_closes_idle_keep_alive_connections_without_waiting_for_timeouts(launch):
    server = launch("-w", "1", "--graceful-timeout", "20", "--keep-alive", "30")
    wait_booted(server, 1)
    with Conn(server.port) as conn:
        conn.request("GET", "/pid")
        assert conn.read_response().status == 200
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        assert conn.closed_by_server(timeout=5)
        assert server.wait(10) == 0
        assert time.monotonic() - started < 4  # not the keep-alive nor the graceful timeout


@pytest.mark.parametrize("path", ["/echo", "/ignore-body"])
def test_term_closes_a_connection_idle_after_an_upload_without_waiting(launch, path):
    """A body the application read to its end (/echo), or left for the server to drain (/ignore-body), is done
    with: the connection is idle, and a graceful stop closes it without waiting."""
    server = launch("--graceful-timeout", "20", "--keep-alive", "30", app="tests.functional.apps:app")
    with Conn(server.port) as conn:
        conn.request("POST", path, body=b"x" * 5000)
        response = conn.read_response()
        assert response.status == 200 and response.body == (b"x" * 5000 if path == "/echo" else b"ignored")
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        assert conn.closed_by_server(timeout=5)
        assert server.wait(10) == 0
        assert time.monotonic() - started < 4  # not the keep-alive nor the graceful timeout


@pytest.mark.parametrize("model", [("-w", "1", "--timeout", "0"), ("--threads", "2")], ids=["master", "single"])
def test_graceful_timeout_ends_what_is_left(launch, model):
    """--graceful-timeout bounds the stop: a worker whose application is still busy on its loop
    thread when it passes interrupts it (the master would kill it 0.5 s later); a single process
    abandons an application thread still busy then (not waited for 5 s more)."""
    server = launch("--graceful-timeout", "1", *model)
    if model[0] == "-w":
        wait_booted(server, 1)
    with Conn(server.port, timeout=10) as conn:
        conn.request("GET", "/sleep?s=30")
        time.sleep(0.3)
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.wait(10) == 0
        assert time.monotonic() - started < 5, "the stop outlasted --graceful-timeout (1 s) by 4 s"
        assert conn.closed_by_server(timeout=2)
    if model[0] == "-w":
        assert "stopping at once: cut GET /sleep?s=30 HTTP/1.1" in server.stderr_text()


def test_int_stops_fast(launch):
    server = launch("-w", "1", "--graceful-timeout", "30")
    wait_booted(server, 1)
    with Conn(server.port, timeout=10) as conn:
        conn.request("GET", "/sleep?s=30")
        time.sleep(0.3)
        started = time.monotonic()
        server.signal(signal.SIGINT)
        assert server.wait(10) == 0
        assert time.monotonic() - started < 5


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
@pytest.mark.parametrize("workers", [(), ("-w", "1")])
def test_a_stop_interrupts_an_application_stuck_on_the_loop_thread(launch, events_dir, events, workers, stop):
    """Ctrl-C on a server whose application is stuck on the loop thread (--threads 0) stops it at
    once, as wsgiref's and gunicorn's do; TERM does once --graceful-timeout has passed. Both used to
    wait for the application to return (one process: Ctrl-C did nothing, TERM outlived its graceful
    timeout; a worker was SIGKILLed by the master). The application sees a BaseException; the cut
    request is logged."""
    server = launch(*workers, "--threads", "0", "--timeout", "0", "--graceful-timeout", "1",
                    env={EVENTS_ENV: str(events_dir)}, app=DEFAULT_APP)
    if workers:
        wait_booted(server, 1)
    token = f"stop-loop-{len(workers)}-{stop}"
    with Conn(server.port, timeout=10) as conn:
        conn.request("GET", f"/sleep?s=120&t={token}")
        assert events(token)[0]["event"] == "sleeping"  # the application runs: now the signal
        server.signal(stop)
        assert server.wait(60) == 0  # (before: 120 s, then the response)
        assert conn.closed_by_server(timeout=5)
    assert events(token, count=2)[1] == {"event": "interrupted", "by": "StopNow"}
    log = server.stderr_text()
    assert f"stopping at once: cut get /sleep?s=120&t={token} http/1.1 from 127.0.0.1" in log.lower(), log
    assert "SIGKILL" not in log


@pytest.mark.parametrize("threads", ["0", "2"])
@pytest.mark.parametrize("stalled", ["reader", "sender"])
def test_quit_does_not_wait_for_a_stalled_client_of_the_application(launch, events_dir, events, stalled, threads):
    """A fast stop: application code waiting for its client (a send to one that stopped reading, a
    body that stopped arriving; on a pool thread, or with threads 0 on the loop thread, where the
    signal handler runs inside that wait) is woken, so the worker stops by itself within the master's
    fast-stop time instead of waiting out --send-timeout / --read-timeout and being killed."""
    server = launch("-w", "1", "--threads", threads, "--send-timeout", "60", "--read-timeout", "60",
                    "--timeout", "0", env={EVENTS_ENV: str(events_dir)}, app=DEFAULT_APP)
    wait_booted(server, 1)
    with Conn(server.port, timeout=10, rcvbuf=4096) as conn:
        if stalled == "reader":  # an endless response the client never reads
            conn.request("GET", f"/close?mode=flood&t=quit-{stalled}")
            conn.read_exact(1)
        else:  # half of a body: the application waits in wsgi.input.read() (100-continue: it is
            # called before its body has come, which the server otherwise receives first)
            conn.send(build_request("POST", f"/read-record?t=quit-{stalled}",
                                    headers=[("Expect", "100-continue"), ("Content-Length", "100000")])
                      + b"x" * 50000)
        time.sleep(0.5)  # the application thread waits for the socket now
        server.signal(signal.SIGQUIT)
        assert server.wait(10) == 0
        assert conn.closed_by_server(timeout=5)
    assert "did not finish within the fast-stop timeout" not in server.stderr_text()
    assert events(f"quit-{stalled}")[0]["event"] == ("closed" if stalled == "reader" else "read-error")


@pytest.mark.parametrize("fast", [signal.SIGINT, signal.SIGQUIT])
def test_int_or_quit_during_a_graceful_stop_makes_it_fast(launch, fast):
    server = launch("-w", "1", "--graceful-timeout", "30", "--timeout", "0")
    wait_booted(server, 1)
    with Conn(server.port, timeout=10) as conn:
        conn.request("GET", "/sleep?s=30")
        time.sleep(0.3)
        server.signal(signal.SIGTERM)
        time.sleep(0.3)
        started = time.monotonic()
        server.signal(fast)  # the operator will not wait 30 s
        assert server.wait(6) == 0
        assert time.monotonic() - started < 4
        assert conn.closed_by_server(timeout=2)


def test_hup_replaces_every_worker_without_losing_a_request(launch):
    server = launch("-w", "2")
    old = set(wait_booted(server, 2))
    failures, statuses, pids = [], [], set()
    stop = threading.Event()

    def client_loop():
        # a fresh connection per request until the test says stop (bounded by time, not by a
        # count: a count ran out on a fast run before the new generation had served one)
        deadline = time.monotonic() + 40  # past the waits below (15 + 10 + 10 s)
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                response = get(server.port, "/pid")
                statuses.append(response.status)
                pids.add(int(response.body.split()[0]))
            except Exception as exc:  # refused, reset, timeout: all count as lost
                failures.append(repr(exc))
            time.sleep(0.001)  # a few hundred connections a second, not as many as the CPU allows

    worker = threading.Thread(target=client_loop)
    worker.start()
    try:
        time.sleep(0.5)
        server.signal(signal.SIGHUP)
        assert server.wait_stderr("Reload complete", timeout=15), server.stderr_text()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and children(server.proc.pid) & old:
            time.sleep(0.05)  # the old generation drains and exits
        deadline = time.monotonic() + 10  # then the new one serves (a loaded machine may take > 0.5 s)
        while time.monotonic() < deadline and not pids - old:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(30)
    new = set(booted(server)) - old
    assert len(new) == 2
    assert children(server.proc.pid) == new
    assert failures == [] and len(statuses) > 50 and set(statuses) == {200}
    assert pids & old and pids & new  # requests were served by both generations


def deploy(launch, tmp_path, version: str, *args: str):
    """A master serving deployed_app from tmp_path/deploy (holding `version`), its workers booted."""
    flag = tmp_path / "deploy"
    flag.write_text(version)
    server = launch(*args, app=f"tests.functional.ops:deployed_app({str(flag)!r})")
    wait_booted(server, int(args[args.index("-w") + 1]))
    return server, flag


def wait_loaded(flag, count: int) -> set[int]:
    deadline = time.monotonic() + 10
    while len(loaded_by(flag)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return loaded_by(flag)


def test_a_reload_whose_workers_all_fail_to_load_keeps_the_old_workers(launch, tmp_path):
    server, flag = deploy(launch, tmp_path, "v1", "-w", "2")
    old = set(booted(server))
    master = server.proc.pid
    flag.write_text("broken")
    server.signal(signal.SIGHUP)
    new = wait_loaded(flag, 4) - old
    assert len(new) == 2, server.stderr_text()
    # both new workers fail before the master reaps either: it must see one failed reload, not a
    # failed reload and then a failed boot (which stops the server)
    os.kill(master, signal.SIGSTOP)
    try:
        (tmp_path / "deploy.go").touch()
        deadline = time.monotonic() + 10
        while not all(zombie(pid) for pid in new) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert all(zombie(pid) for pid in new)
    finally:
        os.kill(master, signal.SIGCONT)
    assert server.wait_stderr("Reload failed", timeout=5), server.stderr_text()
    time.sleep(0.5)
    assert server.alive(), server.stderr_text()
    text = server.stderr_text()
    assert text.count("raised RuntimeError: broken deploy") == 2 and text.count("Reload failed") == 1
    assert {worker_pid(server) for _ in range(10)} <= old
    assert children(master) == old


def test_a_reload_whose_workers_hang_while_loading_keeps_the_old_workers(launch, tmp_path):
    """New code that never finishes loading (a hung import, a database that does not answer) is a
    failed reload once --timeout passed: the hung workers are killed and the old ones keep serving.
    The old ones used to be retired at the deadline, leaving nothing that serves."""
    server, flag = deploy(launch, tmp_path, "v1", "-w", "2", "--timeout", "3")
    old = set(booted(server))
    flag.write_text("v2 60")
    server.signal(signal.SIGHUP)
    hung = wait_loaded(flag, 4) - old
    assert len(hung) == 2, server.stderr_text()
    assert server.wait_stderr("Reload failed: no new worker was ready", timeout=10), server.stderr_text()
    assert len(wait_children(server.proc.pid, 2)) == 2
    assert children(server.proc.pid) == old and server.alive()
    assert {get(server.port, "/version").body for _ in range(6)} == {b"v1"}
    assert "Reload complete" not in server.stderr_text()


def failed_reload(launch, tmp_path, *args: str):
    """A master serving v1 whose HUP to broken code failed: (server, flag, old worker pids)."""
    server, flag = deploy(launch, tmp_path, "v1", *args)
    old = booted(server)
    (tmp_path / "deploy.go").touch()  # a broken version fails at once
    flag.write_text("broken")
    server.signal(signal.SIGHUP)
    assert server.wait_stderr("Reload failed", timeout=10), server.stderr_text()
    return server, flag, old


def test_after_a_failed_reload_a_replacement_that_cannot_load_does_not_stop_the_master(launch, tmp_path):
    """The code on disk stays broken after a failed reload, so the replacement of an old worker (a
    crash here; --max-requests or TTIN alike) fails to load too: the master keeps serving with the
    worker left and retries, and the fixed code is picked up. It used to stop: 'Worker failed to boot'."""
    server, flag, old = failed_reload(launch, tmp_path, "-w", "2")
    os.kill(old[0], signal.SIGKILL)
    assert server.wait_stderr("broken since the last reload failed: retrying", timeout=10), server.stderr_text()
    assert server.alive(), server.stderr_text()
    assert {worker_pid(server) for _ in range(6)} == {old[1]}
    flag.write_text("v3")  # fixed on disk, no HUP yet: the retry loads it
    deadline = time.monotonic() + 15
    while len(children(server.proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(children(server.proc.pid)) == 2 and server.alive(), server.stderr_text()


def test_after_a_failed_reload_a_worker_reaching_max_requests_serves_on(launch, tmp_path):
    """Its replacement could not load the code on disk, so a worker recycling after --max-requests
    would leave nothing serving (with -w 1 at once, with -w N once each had recycled): it serves on,
    and the next HUP with fixed code replaces it."""
    server, flag, old = failed_reload(launch, tmp_path, "-w", "1", "--max-requests", "4")
    responses = [get(server.port, "/version") for _ in range(12)]
    assert [r.body for r in responses] == [b"v1"] * 12, server.stderr_text()
    assert "the last one failed: serving on" in server.stderr_text()
    assert children(server.proc.pid) == set(old)
    flag.write_text("v3")
    server.signal(signal.SIGHUP)
    assert server.wait_stderr("Reload complete", timeout=10), server.stderr_text()
    assert {get(server.port, "/version").body for _ in range(3)} == {b"v3"}


def test_during_a_reload_an_old_worker_reaching_max_requests_serves_on(launch, tmp_path):
    """Until the new code has loaded, the old workers are all that can serve: one recycling after
    --max-requests during a reload is not replaced until the reload ends, and if the reload fails its
    replacement cannot load. With -w 1 nothing served: connections waited in the listen queue."""
    server, flag = deploy(launch, tmp_path, "v1", "-w", "1", "--max-requests", "4")
    old = booted(server)
    flag.write_text("broken")  # the new worker waits for deploy.go, then raises
    server.signal(signal.SIGHUP)
    assert len(wait_loaded(flag, 2)) == 2, server.stderr_text()
    assert [get(server.port, "/version").body for _ in range(8)] == [b"v1"] * 8, server.stderr_text()
    (tmp_path / "deploy.go").touch()
    assert server.wait_stderr("Reload failed", timeout=10), server.stderr_text()
    assert [get(server.port, "/version").body for _ in range(3)] == [b"v1"] * 3
    assert children(server.proc.pid) == set(old) and server.alive()


def test_after_a_failed_reload_a_replacement_that_loads_lets_held_workers_recycle(launch, tmp_path):
    """Once a worker forked after the failed reload has loaded the application (the code was fixed
    on disk; TTIN here, a retried replacement alike), the code loads again: a worker held past
    --max-requests recycles. It used to serve on until a HUP."""
    server, flag, old = failed_reload(launch, tmp_path, "-w", "1", "--max-requests", "4")
    assert [get(server.port, "/version").body for _ in range(6)] == [b"v1"] * 6
    assert server.wait_stderr("serving on", timeout=5), server.stderr_text()
    flag.write_text("v3")
    server.signal(signal.SIGTTIN)
    deadline = time.monotonic() + 15
    while (old[0] in children(server.proc.pid) or len(children(server.proc.pid)) < 2) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert old[0] not in children(server.proc.pid), server.stderr_text()
    assert {get(server.port, "/version").body for _ in range(6)} == {b"v3"}, server.stderr_text()
    assert server.alive()


def wait_text(path, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text() if path.exists() else ""
        if text in content:
            return content
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {path}: {content[-2000:]!r}")


def test_hup_applies_the_reread_error_log_options(launch, tmp_path):
    """The config file's errorlog and loglevel take effect at a HUP, as its other options do (the
    new workers kept logging to the old file at the old level)."""
    conf, first, second = tmp_path / "conf.py", tmp_path / "first.log", tmp_path / "second.log"
    conf.write_text(f"errorlog = {str(first)!r}\nloglevel = 'info'\n")
    server = launch("-c", str(conf), "-w", "1", app="tests.functional.apps:app")
    wait_text(first, "Booting worker")
    conf.write_text(f"errorlog = {str(second)!r}\nloglevel = 'warning'\n")
    server.signal(signal.SIGHUP)
    wait_text(first, "Graceful stop")  # the old worker's last words: the new one serves
    get(server.port, "/raise?msg=after-hup")
    logged = wait_text(second, "boom after-hup")
    assert "[INFO]" not in logged  # the new level: warnings and errors only
    assert "boom after-hup" not in first.read_text()
    third = tmp_path / "later" / "third.log"
    conf.write_text(f"errorlog = {str(third)!r}\n")  # no such directory yet: the log stays
    server.signal(signal.SIGHUP)
    wait_text(second, "the error log stays as it was: cannot open the error log")
    assert server.alive()
    third.parent.mkdir()  # the same config, now usable: the next HUP applies it
    server.signal(signal.SIGHUP)
    wait_text(third, "Reload")


def test_a_hup_during_a_reload_is_done_after_it(launch, tmp_path):
    server, flag = deploy(launch, tmp_path, "v1", "-w", "1")
    flag.write_text("v2 1.0")  # v2 takes a second to load
    server.signal(signal.SIGHUP)
    wait_loaded(flag, 2)
    flag.write_text("v3")  # deployed while v2 loads; the operator signals again
    server.signal(signal.SIGHUP)
    deadline = time.monotonic() + 8
    while server.stderr_text().count("Reload complete") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stderr_text().count("Reload complete") == 2, server.stderr_text()
    assert len(wait_children(server.proc.pid, 1)) == 1
    assert {get(server.port, "/version").body for _ in range(5)} == {b"v3"}


def test_ttin_during_a_reload_joins_the_new_generation(launch, tmp_path):
    server, flag = deploy(launch, tmp_path, "v1", "-w", "1")
    old = set(booted(server))
    flag.write_text("v2 1.0")
    server.signal(signal.SIGHUP)
    wait_loaded(flag, 2)
    server.signal(signal.SIGTTIN)  # while the new worker loads: the new generation has two
    assert server.wait_stderr("Reload complete", timeout=6), server.stderr_text()
    master = server.proc.pid
    deadline = time.monotonic() + 5
    while (len(children(master)) != 2 or children(master) & old) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(children(master)) == 2 and not children(master) & old
    assert get(server.port, "/version").body == b"v2"


def test_ttin_and_ttou_change_the_worker_count(launch):
    server = launch("-w", "1")
    wait_booted(server, 1)
    master = server.proc.pid
    server.signal(signal.SIGTTIN)
    assert len(wait_children(master, 2)) == 2
    server.signal(signal.SIGTTOU)
    assert len(wait_children(master, 1)) == 1
    server.signal(signal.SIGTTOU)  # never below one
    time.sleep(1.5)
    assert len(children(master)) == 1
    assert get(server.port, "/pid").status == 200


@pytest.mark.parametrize("threads", ["0", "4"])
def test_single_process_term_lets_an_in_flight_request_finish(launch, threads):
    server = launch("--graceful-timeout", "10", "--threads", threads)
    with Conn(server.port, timeout=10) as conn:
        conn.request("GET", "/sleep?s=1")
        time.sleep(0.3)
        server.signal(signal.SIGTERM)
        response = conn.read_response()
        assert response.status == 200 and response.body == b"slept 1.0"
        assert "close" in response.connection_tokens()
    assert server.wait(10) == 0
    assert "Graceful stop: finishing 1 open connection(s) within 10 s" in server.stderr_text()


@pytest.mark.parametrize("parser", ["c", "python"])
@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGUSR2, signal.SIGTTIN, signal.SIGTTOU],
                         ids=lambda signum: signum.name)
def test_single_process_ignores_the_master_signals(launch, tmp_path, parser, signum):
    """Without a master there is nothing to reload, upgrade or resize: HUP (a closed terminal, a
    `systemctl reload`) and USR2 (gunicorn's upgrade habit) must neither kill the server nor leave
    its --pid file behind, and TTIN/TTOU must not stop it (their default action)."""
    pidfile = tmp_path / "fw.pid"
    server = launch("--http-parser", parser, "--pid", str(pidfile))
    server.signal(signum)
    time.sleep(0.3)
    assert server.alive() and get(server.port, "/pid").status == 200
    server.signal(signal.SIGTERM)
    assert server.wait(10) == 0
    assert not pidfile.exists()


@pytest.mark.parametrize("expect", [[("Expect", "100-continue")], []], ids=["app-reads", "received-first"])
@pytest.mark.parametrize("model", [("--threads", "0"), ("--threads", "2"), ("-w", "1", "--threads", "0")],
                         ids=["single-t0", "single-t2", "worker-t0"])
def test_graceful_timeout_cuts_a_stalled_upload(launch, model, expect):
    """TERM while the application waits in wsgi.input.read() for a body that stopped arriving (it was
    called before its body came: 100-continue), or while the server receives that body before calling
    it: the stop ends once --graceful-timeout passed, not --read-timeout (with threads 0 the wait is
    on the loop thread itself, which used to hold the process for the whole read timeout), and says
    what it cut."""
    server = launch("--graceful-timeout", "1", "--read-timeout", "120", "--timeout", "0", *model,
                    app=DEFAULT_APP)
    if model[0] == "-w":
        wait_booted(server, 1)
    with Conn(server.port, timeout=30) as conn:
        conn.send(build_request("POST", "/read-record", headers=[*expect, ("Content-Length", "100000")])
                  + b"x" * 5000)
        time.sleep(0.5)  # the application (or the server) waits for the rest of the body now
        server.signal(signal.SIGTERM)
        assert server.wait(20) == 0, server.stderr_text()
        assert conn.closed_by_server(timeout=2)
    assert "--graceful-timeout (1 s) passed: closing 1 connection(s) still in progress" in server.stderr_text()


# imported by the server: says so, waits for the test's signals (until the file "gate" exists), and
# serves an application that logs an error for every request (through the server's error log)
SLOW_IMPORT = """import os, time
open("importing", "a").close()
while not os.path.exists("gate"):
    time.sleep(0.02)

def app(environ, start_response):
    raise RuntimeError("logged after the import")
"""


def importing(tmp_path, server: ServerProcess) -> None:
    deadline = time.monotonic() + 15
    while not (tmp_path / "importing").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (tmp_path / "importing").exists(), server.stderr_text()


@pytest.fixture
def slow_import():
    """slow_import(tmp_path, *args, during=f) -> `fastwsgi ARGS slowimport:app`, running in tmp_path
    once `f(server)` was called while the application was being imported (on a thread: start() waits
    on this one, which must be the one that started the server, see serverproc._die_with_parent)."""
    servers = []

    def start(tmp_path, *args: str, during) -> ServerProcess:
        (tmp_path / "slowimport.py").write_text(SLOW_IMPORT)
        server = ServerProcess(["--bind", "127.0.0.1:0", *args, "slowimport:app"], cwd=tmp_path)
        failures = []

        def meanwhile():
            try:
                while server.proc is None:
                    time.sleep(0.01)
                importing(tmp_path, server)
                during(server)
            except BaseException as exc:  # noqa: BLE001 - shown by the test
                failures.append(exc)
            finally:
                (tmp_path / "gate").touch()

        thread = threading.Thread(target=meanwhile)
        thread.start()
        servers.append(server)
        try:
            server.start(timeout=30)
        finally:
            thread.join(30)
        if failures:
            raise failures[0]
        return server

    yield start
    for server in servers:
        server.stop(timeout=10)


def test_signals_during_a_slow_import_are_not_fatal_and_a_usr1_reopens_the_logs(slow_import, tmp_path):
    """One process: a logrotate USR1, a `systemctl reload` HUP, a USR2, TTIN or TTOU that comes while
    the application is imported (before the handlers of a serving process are set) used to kill or
    stop the server. Now the USR1 reopens the logs once it serves (the log was rotated meanwhile), and
    the others are ignored, as they are while it serves."""
    log, pidfile = tmp_path / "error.log", tmp_path / "server.pid"

    def rotate_and_signal(server):
        log.rename(tmp_path / "error.log.1")  # logrotate moved the log away: USR1 asks to reopen it
        for signum in (signal.SIGHUP, signal.SIGUSR2, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1):
            server.signal(signum)
        time.sleep(0.3)  # (delivered while the import goes on)

    server = slow_import(tmp_path, "--log-file", str(log), "--pid", str(pidfile), during=rotate_and_signal)
    assert get(server.port, "/").status == 500
    assert "logged after the import" in wait_for_text(log, "logged after the import")
    assert "logged after the import" not in (tmp_path / "error.log.1").read_text()
    server.signal(signal.SIGTERM)
    assert server.wait(10) == 0
    assert not pidfile.exists()


def test_master_signals_during_a_preload_import_are_handled_once_it_serves(slow_import, tmp_path):
    """The master: a TTIN and a HUP that come while --preload imports the application are handled
    once its loop runs (one more worker, a reload), instead of the HUP killing it."""

    def resize_and_reload(server):
        server.signal(signal.SIGTTIN)
        server.signal(signal.SIGHUP)
        time.sleep(0.3)

    server = slow_import(tmp_path, "-w", "1", "--preload", during=resize_and_reload)
    assert server.wait_stderr("Reload complete", timeout=15), server.stderr_text()
    assert len(wait_children(server.proc.pid, 2)) == 2, server.stderr_text()
    assert "Handling signal: ttin" in server.stderr_text()
    assert get(server.port, "/").status == 500


@pytest.mark.parametrize("model", [(), ("-w", "1", "--preload")], ids=["single", "master"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT], ids=lambda s: s.name)
def test_a_stop_signal_during_a_slow_import_still_stops_at_once(slow_import, tmp_path, model, signum):
    with pytest.raises(ServerStartError, match="exited"):
        slow_import(tmp_path, *model, during=lambda server: server.signal(signum))
