"""The pre-fork master with real processes: workers replaced after kill -9, a hung worker killed after
--timeout (and the log names its request), --max-requests recycling, --preload, --reuse-port, -w 1.

The application and helpers shared with the other operations tests are in ops.py; `launch` is a
fixture in conftest.py.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from fastwsgi.server.listener import queued_connections_move
from tests.functional.client import Conn, get
from tests.functional.ops import children, listening_on, loaded_by, wait_booted, wait_children, wait_gone, worker_pid
from tests.functional.serverproc import REPO_ROOT, ServeScript, ServerProcess


def test_killed_worker_is_replaced_and_logged(launch):
    server = launch("-w", "2")
    first = wait_booted(server, 2)
    master = server.proc.pid
    assert children(master) == set(first)
    os.kill(first[0], signal.SIGKILL)
    assert server.wait_stderr(f"Worker (pid:{first[0]}) was killed by signal SIGKILL", timeout=5)
    pids = wait_booted(server, 3)
    assert wait_children(master, 2) == {first[1], pids[2]}
    for _ in range(6):
        assert get(server.port, "/pid").status == 200


def test_a_serving_worker_that_exits_with_status_3_is_replaced_not_a_failed_boot(launch):
    """3 is a worker's 'could not load the application' status; an application that exits with it
    while serving (os._exit(3), sys.exit(3)) is an ordinary death: logged and replaced. It used to
    stop the master with 'Worker failed to boot'."""
    server = launch("-w", "2")
    wait_booted(server, 2)
    with Conn(server.port) as conn:
        conn.request("GET", "/exit?status=3")
        assert conn.closed_by_server(timeout=5)
    assert server.wait_stderr("exited with code 3", timeout=5)
    wait_booted(server, 3)
    assert server.alive() and "failed to boot" not in server.stderr_text()
    for _ in range(4):
        assert get(server.port, "/pid").status == 200
    assert len(wait_children(server.proc.pid, 2)) == 2


def test_hung_worker_is_killed_after_timeout_and_the_log_names_its_request(launch):
    server = launch("-w", "1", "--timeout", "1")
    first = wait_booted(server, 1)[0]
    started = time.monotonic()
    with Conn(server.port, timeout=10) as conn:
        conn.request("GET", "/hang?which=this-one")
        assert conn.closed_by_server(timeout=8)  # the worker died: the connection ends without a response
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 6, elapsed
    text = server.wait_stderr("WORKER TIMEOUT", timeout=5)
    assert text and f"(pid:{first})" in text and "GET /hang?which=this-one" in text, server.stderr_text()
    # and where the loop was stuck: the application's frame, innermost last
    assert ", in ops_app\n    time.sleep(3600)" in text, text
    second = wait_booted(server, 2)[1]
    assert worker_pid(server) == second != first


def test_a_worker_still_loading_the_application_after_timeout_is_reported_as_such(launch):
    server = launch("-w", "1", "--timeout", "0.5", app="tests.functional.ops:sleepy_app(3)")
    text = server.wait_stderr("WORKER TIMEOUT", timeout=5)
    assert text and "still loading the application after more than 0.5 s" in text, server.stderr_text()
    assert ", in sleepy_app\n    time.sleep(seconds)" in text, text
    assert "no request in progress" not in text


def test_a_live_worker_is_not_killed_by_a_short_timeout_idle_or_busy(launch):
    # --timeout below the loop's usual sweep interval (1 s with the default timeouts): the worker
    # must beat its heartbeat more often than that, or the master kills a healthy worker
    server = launch("-w", "1", "--timeout", "0.5")
    first = wait_booted(server, 1)[0]
    time.sleep(1.5)  # idle well past the timeout
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:  # then busy
        assert worker_pid(server) == first
    assert "WORKER TIMEOUT" not in server.stderr_text()


def test_a_worker_that_cannot_get_a_heartbeat_file_does_not_stop_the_master(launch, tmp_path):
    """The master makes each worker's heartbeat file in --worker-tmp-dir; when it cannot (the
    directory cleaned away, a full disk, no descriptor left) the replacement of a crashed worker is
    retried later and the worker left serves on. The error used to end the master, and with it
    every worker."""
    beats = tmp_path / "beats"
    beats.mkdir()
    server = launch("-w", "2", "--worker-tmp-dir", str(beats))
    first, second = wait_booted(server, 2)[:2]
    beats.rmdir()  # (the heartbeat files are unlinked at once: it is empty)
    with Conn(server.port) as conn:
        conn.request("GET", "/exit?status=1")
        assert conn.closed_by_server(timeout=5)
    assert server.wait_stderr("Cannot start a worker: no heartbeat file", timeout=10), server.stderr_text()
    assert server.alive()
    survivor = ({first, second} & children(server.proc.pid)).pop()
    assert {worker_pid(server) for _ in range(5)} == {survivor}
    beats.mkdir()  # back: the retry starts the replacement
    assert len(wait_children(server.proc.pid, 2, timeout=15)) == 2, server.stderr_text()
    assert "Traceback" not in server.stderr_text()


FAILING_FORK = """\
import errno, os

def on_starting(server):
    real_fork = os.fork

    def fork():  # fails while the file FLAG exists: a process limit reached (EAGAIN)
        if os.path.exists({flag!r}):
            raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))
        return real_fork()

    os.fork = fork
"""


def failing_fork_config(tmp_path):
    flag, config = tmp_path / "no-fork", tmp_path / "conf.py"
    config.write_text(FAILING_FORK.format(flag=str(flag)))
    return flag, config


def test_a_failed_fork_at_start_halts_with_one_message(tmp_path):
    flag, config = failing_fork_config(tmp_path)
    flag.touch()
    result = subprocess.run([sys.executable, "-m", "fastwsgi", "-c", str(config), "-w", "2", "--bind",
                             "127.0.0.1:0", "tests.functional.ops:ops_app"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result.stderr
    assert "Cannot start a worker: fork failed: Resource temporarily unavailable" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_failed_fork_later_keeps_the_master_and_its_signals(launch, tmp_path):
    """fork() fails with EAGAIN at a process limit (ENOMEM alike): the replacement of a crashed
    worker is retried later and the worker left serves on. The OSError used to end the master,
    which also left the workers' signals blocked in it."""
    flag, config = failing_fork_config(tmp_path)
    server = launch("-c", str(config), "-w", "2")
    first, second = wait_booted(server, 2)[:2]
    flag.touch()
    os.kill(first, signal.SIGKILL)
    assert server.wait_stderr("Cannot start a worker: fork failed", timeout=10), server.stderr_text()
    assert server.alive()
    assert {worker_pid(server) for _ in range(5)} == {second}
    server.signal(signal.SIGUSR1)  # one of the signals blocked around a fork
    assert server.wait_stderr("Handling signal: usr1", timeout=5), server.stderr_text()
    flag.unlink()
    assert len(wait_children(server.proc.pid, 2, timeout=15)) == 2, server.stderr_text()
    server.signal(signal.SIGTERM)
    assert server.proc.wait(timeout=15) == 0, server.stderr_text()
    assert "Traceback" not in server.stderr_text()


def test_max_requests_recycles_the_worker(launch):
    server = launch("-w", "1", "--max-requests", "3", "--max-requests-jitter", "2")
    first = wait_booted(server, 1)[0]
    seen = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = get(server.port, "/pid")  # never refused while the worker is replaced
        assert response.status == 200
        seen.add(int(response.body.split()[0]))
        if len(seen) > 1:
            break
        time.sleep(0.05)
    assert first in seen and len(seen) == 2, (seen, server.stderr_text())
    assert "reached max requests" in server.stderr_text()


def test_max_requests_is_exact_not_once_per_sweep(launch):
    # requests as fast as one client can send them: a check once per sweep (1 s) let a worker serve
    # hundreds more than --max-requests; counted per request, the worker drains right after the 5th
    server = launch("-w", "1", "--max-requests", "5")
    first = wait_booted(server, 1)[0]
    served_by_first = 0
    for _ in range(400):
        response = get(server.port, "/pid")
        assert response.status == 200
        if int(response.body.split()[0]) != first:
            break
        served_by_first += 1
    else:
        pytest.fail(f"the worker was not replaced after 400 requests: {server.stderr_text()}")
    # 6: a connection accepted in the same loop turn as the drain request is still served
    assert served_by_first in (5, 6), (served_by_first, server.stderr_text())
    assert "reached max requests (5)" in server.stderr_text()


def test_a_recycled_worker_is_replaced_as_its_drain_begins(launch):
    """--max-requests: the worker tells the master as it begins to drain, and its replacement starts
    then, not once it has exited. With -w 1 and a slow request keeping the old worker alive, a new
    connection is served by the new worker meanwhile instead of waiting in the listen queue until
    the slow request ends; the slow request still completes."""
    server = launch("-w", "1", "--threads", "2", "--max-requests", "3", "--graceful-timeout", "30",
                    "--log-level", "info")
    old = wait_booted(server, 1)[0]
    with Conn(server.port, timeout=20) as slow:
        slow.request("GET", "/sleep?s=8")  # in the application on a thread; counted once complete
        time.sleep(0.3)
        for _ in range(3):  # the third response reaches --max-requests: the worker drains
            assert int(get(server.port, "/pid").body.split()[0]) == old
        # its loop has stopped accepting once it says so (a connection made before may be its own)
        assert server.wait_stderr(f"[{old}] [INFO] Graceful stop", timeout=5), server.stderr_text()
        with Conn(server.port, timeout=6) as fresh:  # well before the slow request ends
            fresh.request("GET", "/pid")
            served_by = int(fresh.read_response().body.split()[0])
        os.kill(old, 0)  # the old worker is still there, draining (ProcessLookupError otherwise)
        assert served_by != old
        response = slow.read_response()
        assert response.status == 200 and response.body == b"slept 8.0"
        assert "close" in response.connection_tokens()


def test_a_reuse_port_worker_reaching_max_requests_serves_until_its_replacement_is_ready(started, tmp_path):
    """--reuse-port: a worker's drain closes its own socket at once; with -w 1 (or workers recycling
    together) nothing listened on the port until the replacement did, and connections were refused.
    The worker serves on until the master sends it TERM, once its replacement (held loading here by a
    gate file) is ready."""
    gate = tmp_path / "gate"
    gate.write_text("ok")
    server = started("-w", "1", "--reuse-port", "--max-requests", "3",
                     f"tests.functional.ops:gated_app({str(gate)!r})")
    old = wait_booted(server, 1)[0]
    gate.unlink()  # the replacement waits in the application's import
    try:
        assert {worker_pid(server) for _ in range(3)} == {old}  # the third reaches --max-requests
        assert server.wait_stderr("restarting once the master has a replacement ready"), server.stderr_text()
        replacement = wait_children(server.proc.pid, 2) - {old}
        assert len(replacement) == 1
        assert {worker_pid(server) for _ in range(10)} == {old}  # no connection refused
    finally:
        gate.write_text("ok")
    assert wait_gone(old), server.stderr_text()  # TERM once the replacement is ready
    assert {worker_pid(server) for _ in range(3)} == replacement


def test_workers_drain_and_exit_when_the_master_dies(launch):
    """A master killed outright (SIGKILL, the OOM killer) cannot stop its workers: they drain (Linux
    sends them SIGTERM, PR_SET_PDEATHSIG; elsewhere the sweep sees getppid() change), the request in
    flight is answered, and they exit, instead of serving on with nobody to replace or stop them.
    The worker still draining says once why (every sweep of its drain repeated it)."""
    server = launch("-w", "2", "--threads", "2", "--log-level", "info")
    workers = wait_booted(server, 2)
    try:
        with Conn(server.port, timeout=15) as slow:
            slow.request("GET", "/pid")
            busy = int(slow.read_response().body.split()[0])
            slow.request("GET", "/sleep?s=3")
            time.sleep(0.3)  # in the application
            os.kill(server.proc.pid, signal.SIGKILL)
            response = slow.read_response()
            assert response.status == 200 and response.body == b"slept 3.0"
            assert "close" in response.connection_tokens()
        assert all(wait_gone(pid) for pid in workers), server.stderr_text()
        assert server.stderr_text().count(f"Worker {busy}: the master died; stopping") == 1, \
            server.stderr_text()
    finally:
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_preload_imports_the_application_in_the_master(launch):
    server = launch("-w", "2", "--preload")
    wait_booted(server, 2)
    pid, imported_in, multiprocess = get(server.port, "/pid").body.decode().split()
    assert int(imported_in) == server.proc.pid != int(pid)
    assert multiprocess == "True"


def test_without_preload_each_worker_imports_the_application(launch):
    server = launch("-w", "1")
    wait_booted(server, 1)
    pid, imported_in, _ = get(server.port, "/pid").body.decode().split()
    assert pid == imported_in


def test_two_workers_share_the_listening_socket(launch):
    server = launch("-w", "2", "--threads", "2")
    pids = set(wait_booted(server, 2))
    seen = set()
    connections = [Conn(server.port) for _ in range(2)]  # two requests in flight at once
    try:
        for conn in connections:
            conn.request("GET", "/sleep?s=0.5")
        for conn in connections:
            response = conn.read_response()
            assert response.status == 200
    finally:
        for conn in connections:
            conn.close()
    for _ in range(30):
        seen.add(worker_pid(server))
    assert seen <= pids and seen


def test_reuse_port_gives_each_worker_its_own_socket(launch):
    server = launch("-w", "2", "--reuse-port")
    pids = set(wait_booted(server, 2))
    seen = {worker_pid(server) for _ in range(40)}
    assert seen == pids  # the kernel spreads fresh connections over both sockets


def test_reuse_port_warns_when_a_stopping_worker_would_reset_its_queue(launch):
    """The master says at start, when the kernel resets the connections queued on a closing
    SO_REUSEPORT socket (net.ipv4.tcp_migrate_req = 0), how to make reloads lossless; and says
    nothing when it moves them."""
    server = launch("-w", "2", "--reuse-port")
    wait_booted(server, 2)
    warned = "sysctl net.ipv4.tcp_migrate_req=1" in server.stderr_text()
    assert warned == (queued_connections_move() is False), server.stderr_text()


def test_a_stopping_reuse_port_worker_closes_its_socket_at_once(launch):
    """With --reuse-port the kernel queues some of the new connections on each worker's own socket.
    A worker that stops gracefully (TERM, a reload, --max-requests) with a slow request in flight
    closes that socket as its drain begins, so every new connection goes to the other worker at
    once; none waits in a queue that nobody accepts from until the slow request ends (and is then
    reset, unless net.ipv4.tcp_migrate_req=1 moves it)."""
    server = launch("-w", "2", "--reuse-port", "--threads", "2", "--graceful-timeout", "30",
                    "--log-level", "info")
    wait_booted(server, 2)
    with Conn(server.port, timeout=20) as slow:
        slow.request("GET", "/pid")
        stopping = int(slow.read_response().body.split()[0])
        slow.request("GET", "/sleep?s=6")
        time.sleep(0.3)  # the request is in the application (on a thread: the loop is free)
        mark = server.stderr_mark()
        os.kill(stopping, signal.SIGTERM)
        assert server.wait_stderr("Graceful stop", since=mark, timeout=5), server.stderr_text()
        served_by = []
        for _ in range(20):  # ~half would hash to the stopping worker's socket if it were open
            with Conn(server.port, timeout=3) as conn:  # well before the slow request ends
                conn.request("GET", "/pid")
                served_by.append(int(conn.read_response().body.split()[0]))
        assert stopping not in served_by and len(served_by) == 20
        response = slow.read_response()
        assert response.status == 200 and response.body == b"slept 6.0"
        assert "close" in response.connection_tokens()


def test_a_reuse_port_worker_listens_only_once_its_application_is_loaded(launch, tmp_path):
    """A new --reuse-port worker (a reload here) binds its socket before loading the application, but
    listens only once it is loaded: listening, it gets a share of the new connections, which would
    wait for the import (seconds, for a big application) or be reset when it fails. Here the new code
    is broken and waits for a go: meanwhile every request is the old worker's."""
    flag = tmp_path / "deploy"
    flag.write_text("v1")
    server = launch("-w", "1", "--reuse-port", app=f"tests.functional.ops:deployed_app({str(flag)!r})")
    old = wait_booted(server, 1)[0]
    flag.write_text("broken")
    server.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while not loaded_by(flag) - {old} and time.monotonic() < deadline:  # it reads the file once bound
        time.sleep(0.02)
    assert loaded_by(flag) - {old}, server.stderr_text()
    try:
        assert listening_on(server.port) == 1
        assert {worker_pid(server) for _ in range(20)} == {old}
    finally:
        (tmp_path / "deploy.go").touch()
    assert server.wait_stderr("Reload failed", timeout=15), server.stderr_text()
    assert worker_pid(server) == old


@pytest.mark.parametrize("parser, first", [("c", False), ("python", True)],
                         ids=["c-shared-then-reuse-port", "python-reuse-port-then-shared"])
def test_reload_keeps_how_the_sockets_were_bound(launch, tmp_path, parser, first):
    """The master bound the sockets for shared use or reserved them for --reuse-port workers; a HUP
    whose config file flips reuse_port keeps the first choice (the new workers failed with
    EADDRINUSE, or accepted on a socket that was not listening, and the reload never completed)."""
    conf = tmp_path / "fastwsgi.conf.py"
    conf.write_text(f"reuse_port = {first}\n")
    server = launch("-c", str(conf), "-w", "1", "--http-parser", parser)
    old = wait_booted(server, 1)
    conf.write_text(f"reuse_port = {not first}\n")
    mark = server.stderr_mark()
    server.signal(signal.SIGHUP)
    log = server.wait_stderr("Reload complete", since=mark, timeout=20)
    assert log is not None, server.stderr_text()
    assert f"--reuse-port cannot change without a restart; keeping {first}" in log
    new = set(wait_booted(server, 2)) - set(old)
    deadline = time.monotonic() + 10  # the old worker drains and exits
    while old[0] in children(server.proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert children(server.proc.pid) == new
    assert {worker_pid(server) for _ in range(5)} == new
    assert "crashed" not in server.stderr_text()


def test_one_worker_flag_runs_a_master(launch):
    server = launch("-w", "1")
    worker = wait_booted(server, 1)[0]
    assert worker != server.proc.pid and children(server.proc.pid) == {worker}
    assert "Master" in server.stderr_text()


def test_web_concurrency_sets_the_worker_count(launch):
    server = launch(env={"WEB_CONCURRENCY": "2"})
    assert len(set(wait_booted(server, 2))) == 2
    assert len(wait_children(server.proc.pid, 2)) == 2


def test_application_that_cannot_load_stops_the_master(tmp_path):
    server = ServerProcess(["--bind", "127.0.0.1:0", "-w", "2", "no_such_module_xyz:app"])
    try:
        server.start(timeout=5)  # the master listens before its workers import the application
        code = server.wait(10)
    except AssertionError:  # it exited before (or without) a Listening line
        code = server.proc.returncode
    finally:
        server.stop()
    assert code == 1
    assert "no module named 'no_such_module_xyz'" in server.stderr_text()


@pytest.mark.parametrize("how", ["exit", "signal"])
def test_a_worker_that_dies_while_loading_stops_the_master_instead_of_respawning_it(how):
    # respawning it would fork about a hundred workers a second, forever, at 100% CPU
    server = ServerProcess(["--bind", "127.0.0.1:0", "-w", "2", f"tests.functional.ops:dying_app({how!r})"])
    try:
        server.start(timeout=5)
        code = server.wait(10)
    except AssertionError:  # it exited before (or without) a Listening line
        code = server.proc.returncode
    finally:
        server.stop()
    text = server.stderr_text()
    assert code == 1, text
    assert "Worker failed to boot" in text and len(re.findall(r"Worker \(pid:\d+\)", text)) <= 2, text
    assert ("exited with code 1" if how == "exit" else "killed by signal SIGALRM") in text


def test_reload_restarts_workers_when_the_application_changes(tmp_path):
    module = tmp_path / "reload_target_app.py"
    source = ("def app(environ, start_response):\n"
              "    start_response('200 OK', [('Content-Length', '2')])\n"
              "    return [b'{}']\n")
    module.write_text(source.format("v1"))
    server = ServerProcess(["--bind", "127.0.0.1:0", "--reload", "reload_target_app:app"],
                           env={"PYTHONPATH": str(tmp_path)})
    try:
        server.start()
        first = wait_booted(server, 1)[0]
        assert get(server.port, "/").body == b"v1"
        module.write_text(source.format("v2"))
        later = time.time() + 2
        os.utime(module, (later, later))  # a visible mtime change even on a coarse clock
        seen = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            response = get(server.port, "/")  # never refused while the workers are replaced
            seen.append(response.body)
            if response.body == b"v2":
                break
            time.sleep(0.1)
        assert seen[-1] == b"v2", server.stderr_text()
        assert set(seen) <= {b"v1", b"v2"}
        assert "reload_target_app.py changed" in server.stderr_text()
        assert first not in children(server.proc.pid) or server.wait_stderr("Reload complete")
    finally:
        server.stop()


def metrics_port(server: ServerProcess) -> int:
    url = next(line.split()[2] for line in server.stderr_lines if line.startswith("Metrics at:"))
    return int(url.split("//")[1].split("/")[0].rsplit(":", 1)[1])


def scrape(server: ServerProcess) -> dict[str, float]:
    with Conn(metrics_port(server)) as conn:
        conn.request("GET", "/metrics")
        response = conn.read_response()
    assert response.status == 200 and response.header("Content-Type").startswith("text/plain")
    values = {}
    for line in response.body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def test_metrics_are_aggregated_across_workers_and_restarts(launch):
    server = launch("-w", "2", "--metrics-bind", "127.0.0.1:0", "--timeout", "0")
    pids = wait_booted(server, 2)
    for _ in range(4):
        assert get(server.port, "/pid").status == 200
    assert get(server.port, "/sleep?s=0.3").status == 200
    os.kill(pids[0], signal.SIGKILL)  # its counts must survive it
    wait_booted(server, 3)
    assert get(server.port, "/pid").status == 200
    values = scrape(server)
    assert values['fastwsgi_requests_total{status="2xx"}'] == 6
    assert values['fastwsgi_requests_total{status="5xx"}'] == 0
    assert values['fastwsgi_request_duration_seconds_bucket{le="0.25"}'] == 5
    assert values['fastwsgi_request_duration_seconds_bucket{le="+Inf"}'] == 6
    assert values["fastwsgi_request_duration_seconds_count"] == 6
    assert values["fastwsgi_request_duration_seconds_sum"] >= 0.3
    assert values["fastwsgi_workers"] == 2 and values["fastwsgi_worker_restarts_total"] == 1
    assert "fastwsgi_active_connections" in values
    # scaling is not restarting: the count follows TTIN/TTOU, the restarts stay
    server.signal(signal.SIGTTIN)
    assert len(wait_children(server.proc.pid, 3)) == 3
    assert scrape(server)["fastwsgi_workers"] == 3
    server.signal(signal.SIGTTOU)
    assert len(wait_children(server.proc.pid, 2)) == 2
    values = scrape(server)
    assert values["fastwsgi_workers"] == 2 and values["fastwsgi_worker_restarts_total"] == 1


def test_a_slow_metrics_client_does_not_stall_the_master(launch):
    server = launch("-w", "1", "--metrics-bind", "127.0.0.1:0")
    first = wait_booted(server, 1)[0]
    done = threading.Event()
    with socket.create_connection(("127.0.0.1", metrics_port(server))) as slow:

        def trickle():  # a request head one byte at a time, never finished
            for _ in range(60):
                if done.wait(0.2):
                    return
                try:
                    slow.send(b"G")
                except OSError:
                    return

        thread = threading.Thread(target=trickle)
        thread.start()
        try:
            time.sleep(0.5)
            os.kill(first, signal.SIGKILL)  # the master must still reap and replace it
            assert len(wait_booted(server, 2, timeout=4)) == 2
            assert scrape(server)["fastwsgi_workers"] == 1
        finally:
            done.set()
            thread.join()


def test_serve_with_metrics_bind_runs_a_master_that_serves_them():
    """serve(metrics_bind=...) implies a master, as --metrics-bind does (it was silently ignored)."""
    script = ("import fastwsgi\nfrom tests.functional.ops import ops_app\n"
              "fastwsgi.serve(ops_app, port=0, metrics_bind='127.0.0.1:0')\n")
    server = ServeScript([script])
    try:
        server.start()
        worker = wait_booted(server, 1)[0]
        assert worker != server.proc.pid
        assert get(server.port, "/pid").status == 200
        assert scrape(server)['fastwsgi_requests_total{status="2xx"}'] == 1
    finally:
        server.stop()


def test_serve_refuses_reload():
    script = ("import fastwsgi\nfrom tests.functional.ops import ops_app\n"
              "try:\n    fastwsgi.serve(ops_app, port=0, reload=True)\n"
              "except ValueError as exc:\n    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("option 'reload': serve() is handed an application imported already")


def process_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as file:
        return file.read().rpartition(")")[2].split()[0]


def test_the_master_signals_sent_to_a_worker_neither_end_nor_stop_it(launch):
    """`systemctl kill -s USR2` (or TTIN, TTOU, HUP, WINCH) reaches every process of the service, the
    workers too: USR2 used to end each worker (its default action) and TTIN/TTOU to stop it, so
    -w 1 answered nothing until --timeout killed it."""
    server = launch("-w", "1")
    worker = wait_booted(server, 1)[0]
    for signum in (signal.SIGUSR2, signal.SIGTTIN, signal.SIGTTOU, signal.SIGHUP, signal.SIGWINCH):
        os.kill(worker, signum)
    assert get(server.port, "/pid").body.split()[0] == str(worker).encode()
    assert process_state(worker) in ("S", "R")
    assert children(server.proc.pid) == {worker}
