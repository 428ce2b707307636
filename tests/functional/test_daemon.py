"""-D/--daemon over real processes: the command returns once the daemon serves, the daemon is in a
session of its own, --pid names it, SIGTERM stops it and removes the file, with and without a master;
a daemon that cannot start says why on the terminal and exits 1 (and in the error log file); systemd's
sockets (LISTEN_FDS/LISTEN_PID naming the command) become the daemon's."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.functional.ops import OPS_APP, children, gone, wait_for_text, wait_gone
from tests.functional.serverproc import REPO_ROOT
from tests.functional.test_cli import assert_one_error_line, http_get, run_cli
from tests.functional.test_sockets import SYSTEMD_WRAPPER

PARSERS = ["c", "python"]
LISTENING = re.compile(r"^Listening at: http://127\.0\.0\.1:(\d+) ", re.M)


@pytest.fixture
def daemons():
    """daemons(pid): kill the daemon's process group at teardown if a test left it running."""
    pids = []
    yield pids.append
    for pid in pids:
        if not gone(pid):
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.parametrize("workers", [None, 2], ids=["single", "w2"])
@pytest.mark.parametrize("parser", PARSERS)
def test_daemon_serves_detached_and_stops_on_term(tmp_path, daemons, parser, workers):
    pidfile, logfile = tmp_path / "server.pid", tmp_path / "error.log"
    extra = ["-w", str(workers)] if workers else []
    started = time.monotonic()
    result = run_cli("-D", "--pid", str(pidfile), "--log-file", str(logfile), "--http-parser", parser,
                     "--bind", "127.0.0.1:0", *extra, "tests.functional.apps:app", timeout=15)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 10
    pid = int(pidfile.read_text())
    daemons(pid)
    assert not gone(pid)
    match = LISTENING.search(result.stderr)  # the daemon's start-up lines reach the terminal
    assert match, result.stderr
    assert "error" not in result.stderr.lower(), result.stderr
    assert http_get(int(match.group(1)), "/hello") == (200, b"hello")
    # detached: a session and process group of its own, not their leader (no terminal can be acquired)
    assert os.getsid(pid) not in (os.getsid(0), pid)
    assert os.getpgid(pid) != os.getpgid(0)
    with open(f"/proc/{pid}/stat") as file:
        tty_nr = int(file.read().rpartition(")")[2].split()[4])
    assert tty_nr == 0
    workers_seen = children(pid)
    assert len(workers_seen) == (workers or 0), workers_seen
    for fd in (0, 1):
        assert os.readlink(f"/proc/{pid}/fd/{fd}") == os.devnull
    assert os.readlink(f"/proc/{pid}/fd/2") == str(logfile)  # after start-up: the error log
    os.kill(pid, signal.SIGTERM)
    assert wait_gone(pid), f"the daemon did not stop; log:\n{logfile.read_text()}"
    assert all(wait_gone(child) for child in workers_seen)
    assert not pidfile.exists()


@pytest.mark.parametrize("parser", PARSERS)
def test_daemon_port_in_use_fails_on_the_terminal(tmp_path, parser):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    pidfile = tmp_path / "server.pid"
    try:
        port = holder.getsockname()[1]
        result = run_cli("-D", "--pid", str(pidfile), "--log-file", str(tmp_path / "error.log"),
                         "--http-parser", parser, "--bind", f"127.0.0.1:{port}", "tests.functional.apps:app",
                         timeout=15)
    finally:
        holder.close()
    line = assert_one_error_line(result, 1)
    assert "Address already in use" in line
    assert not pidfile.exists()


@pytest.mark.parametrize("parser", PARSERS)
def test_daemon_workers_that_cannot_load_the_app_fail_on_the_terminal(tmp_path, parser):
    pidfile, logfile = tmp_path / "server.pid", tmp_path / "error.log"
    result = run_cli("-D", "-w", "2", "--pid", str(pidfile), "--log-file", str(logfile),
                     "--http-parser", parser, "--bind", "127.0.0.1:0", "tests.functional.no_such_module:app",
                     timeout=15)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("fastwsgi: error:")]
    assert errors and all(line == "fastwsgi: error: no module named 'tests.functional.no_such_module'"
                          for line in errors), result.stderr
    assert "Worker failed to boot" in logfile.read_text()  # the master's account is in the log
    assert not pidfile.exists()


def test_daemon_usage_errors_stay_in_the_foreground():
    assert_one_error_line(run_cli("-D", "--bogus"), 2)
    assert "no module named" in assert_one_error_line(
        run_cli("-D", "--bind", "127.0.0.1:0", "--log-file", os.devnull, "no_such_module_here:app"), 1)


def test_daemon_without_a_log_file_warns(daemons, tmp_path):
    pidfile = tmp_path / "server.pid"
    result = run_cli("-D", "--pid", str(pidfile), "--bind", "127.0.0.1:0", "tests.functional.apps:app")
    assert result.returncode == 0, result.stderr
    pid = int(pidfile.read_text())
    daemons(pid)
    assert "fastwsgi: warning: --daemon without --log-file FILE" in result.stderr
    assert os.readlink(f"/proc/{pid}/fd/2") == os.devnull
    os.kill(pid, signal.SIGTERM)
    assert wait_gone(pid)
    assert not pidfile.exists()


@pytest.mark.parametrize("workers", [None, 2], ids=["single", "w2"])
def test_daemon_serves_on_systemd_sockets(tmp_path, daemons, listening_socket, workers):
    # Type=forking with socket activation: LISTEN_PID names the command that forks; the daemon (its
    # grandchild) takes the sockets as its own instead of falling back to --bind
    pidfile, logfile = tmp_path / "server.pid", tmp_path / "error.log"
    fd, port = listening_socket.fileno(), listening_socket.getsockname()[1]
    extra = ["-w", str(workers)] if workers else []
    result = subprocess.run([sys.executable, "-c", SYSTEMD_WRAPPER, str(fd), "-D", "--pid", str(pidfile),
                             "--log-file", str(logfile), "--bind", "127.0.0.1:1", *extra, OPS_APP],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=20,
                            stdin=subprocess.DEVNULL, pass_fds=(fd,))
    assert result.returncode == 0, result.stderr
    pid = int(pidfile.read_text())
    daemons(pid)
    assert [int(found) for found in LISTENING.findall(result.stderr)] == [port], result.stderr
    status, body = http_get(port, "/pid")
    assert status == 200
    assert (int(body.split()[0]) == pid) == (workers is None)  # a worker answers under a master
    os.kill(pid, signal.SIGTERM)
    assert wait_gone(pid), f"the daemon did not stop; log:\n{logfile.read_text()}"


# imported by the daemon (or its workers): says so, then waits until the test has interrupted the
# command and lets it go on; GATED_BROKEN_APP then raises
GATED_APP = """import os, time
open("importing", "a").close()
while not os.path.exists("gate"):
    time.sleep(0.02)

def app(environ, start_response):
    start_response("200 OK", [("Content-Length", "4")])
    return [b"slow"]
"""
GATED_BROKEN_APP = GATED_APP.replace("\ndef app", "\nraise RuntimeError('cannot load this')\n\ndef app")
# the command's environment: Python's own stderr (buffered, the default) or the suite's unbuffered one
STDERR_MODES = {"buffered": "", "unbuffered": "1"}


def interrupt_while_importing(tmp_path, app: str, stderr_mode: str, *args: str) -> None:
    """Start `fastwsgi -D ARGS gated:app` in tmp_path, Ctrl-C the command while the application is
    being imported, check what the command said, then let the import go on."""
    (tmp_path / "gated.py").write_text(app)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    if STDERR_MODES[stderr_mode]:
        env["PYTHONUNBUFFERED"] = STDERR_MODES[stderr_mode]
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), str(tmp_path)])
    command = subprocess.Popen([sys.executable, "-m", "fastwsgi", "-D", *args, "gated:app"], cwd=tmp_path,
                               env=env, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 10
    while not (tmp_path / "importing").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    command.send_signal(signal.SIGINT)
    stderr = command.communicate(timeout=10)[1]
    assert command.returncode == 1, stderr
    assert stderr.endswith("fastwsgi: interrupted: the daemon goes on starting (its errors go to "
                           "--log-file)\n"), stderr
    (tmp_path / "gate").touch()


@pytest.mark.parametrize("stderr_mode", STDERR_MODES)
@pytest.mark.parametrize("workers", [None, 2], ids=["single", "w2"])
def test_interrupting_the_command_leaves_the_daemon_starting(tmp_path, daemons, workers, stderr_mode):
    """Ctrl-C while the command waits for the daemon's start: the daemon (a session of its own)
    never gets the SIGINT, so it goes on, its Listening lines going to --log-file once nobody reads
    the pipe, each once. It used to die of the BrokenPipeError, and the command printed a traceback;
    then, with Python's buffered stderr, of the BrokenPipeError the refused line raised again at the
    next flush (the line stayed in the buffer, to be written a second time)."""
    pidfile, logfile = tmp_path / "server.pid", tmp_path / "error.log"
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    number = port.getsockname()[1]
    port.close()
    extra = ["-w", str(workers), "--preload"] if workers else []
    interrupt_while_importing(tmp_path, GATED_APP, stderr_mode, "--pid", str(pidfile), "--log-file", str(logfile),
                              "--bind", f"127.0.0.1:{number}", *extra)
    deadline = time.monotonic() + 10
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(pidfile.read_text())
    daemons(pid)
    logged = wait_for_text(logfile, "Listening at:")
    assert logged.count(f"Listening at: http://127.0.0.1:{number}") == 1, logged
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            assert http_get(number, "/") == (200, b"slow")
            break
        except ConnectionRefusedError:
            time.sleep(0.1)
    else:
        pytest.fail(f"the daemon does not serve: {logfile.read_text()}")
    assert "Traceback" not in logfile.read_text()
    os.kill(pid, signal.SIGTERM)
    assert wait_gone(pid, 15)


@pytest.mark.parametrize("stderr_mode", STDERR_MODES)
def test_workers_failing_to_boot_after_the_command_was_interrupted_say_why_in_the_log(tmp_path, daemons,
                                                                                      stderr_mode):
    """The workers' "cannot load the application" reaches the error log once the command that
    would have shown it is gone, and the master stops as for any failed boot. It used to be written
    to the dead pipe: the worker crashed with BrokenPipeError (exit 1, not a failed boot's status)."""
    pidfile, logfile = tmp_path / "server.pid", tmp_path / "error.log"
    interrupt_while_importing(tmp_path, GATED_BROKEN_APP, stderr_mode, "-w", "2", "--pid", str(pidfile),
                              "--log-file", str(logfile), "--bind", "127.0.0.1:0")
    pid = int(pidfile.read_text())  # (written before the workers are forked)
    daemons(pid)
    logged = wait_for_text(logfile, "Worker failed to boot")
    assert "Worker failed to boot" in logged, logged
    assert "fastwsgi: error: importing 'gated' raised RuntimeError: cannot load this" in logged, logged
    assert "BrokenPipeError" not in logged and "crashed" not in logged, logged
    assert "exited with code 1" not in logged, logged  # (a failed boot's status is BOOT_ERROR)
    assert wait_gone(pid)
    assert not pidfile.exists()


def test_a_reload_that_changes_the_log_file_moves_the_daemons_stderr_there(tmp_path, daemons):
    """A daemon's stderr is its error log file (a worker's "cannot load the application" of a failed
    reload, a traceback, the application's own writes go there): a HUP that names another file used
    to leave it on the old one."""
    pidfile, conf, first = logging_daemon(tmp_path, daemons)
    pid = int(pidfile.read_text())
    assert os.readlink(f"/proc/{pid}/fd/2") == str(first)
    assert_a_hup_moves_stderr(pid, conf, first, tmp_path / "second.log")


def logging_daemon(tmp_path, daemons):
    """`fastwsgi -D -c conf.py -w 1` whose config names first.log: (its --pid file, conf.py, first.log)."""
    pidfile, conf, first = tmp_path / "server.pid", tmp_path / "conf.py", tmp_path / "first.log"
    conf.write_text(f"error_logfile = {str(first)!r}\n")
    result = run_cli("-D", "-c", str(conf), "--pid", str(pidfile), "-w", "1", "--bind", "127.0.0.1:0",
                     OPS_APP, timeout=15)
    assert result.returncode == 0, result.stderr
    daemons(int(pidfile.read_text()))
    return pidfile, conf, first


def assert_a_hup_moves_stderr(pid: int, conf, first, second) -> None:
    """The config now names `second`: a HUP moves the master's stderr and its new workers' there;
    then TERM."""
    old_workers = children(pid)
    conf.write_text(f"error_logfile = {str(second)!r}\n")
    os.kill(pid, signal.SIGHUP)
    assert "Reload complete" in wait_for_text(second, "Reload complete"), first.read_text()
    new_workers = children(pid) - old_workers
    assert len(new_workers) == 1
    for process in [pid, *new_workers]:
        assert os.readlink(f"/proc/{process}/fd/2") == str(second)
    os.kill(pid, signal.SIGTERM)
    assert wait_gone(pid)


@pytest.mark.parametrize("capture", [False, True], ids=["plain", "capture-output"])
def test_daemon_with_the_access_log_on_stdout_warns(daemons, tmp_path, capture):
    """A daemon's stdout is /dev/null: --access-logfile - used to lose every line without a word
    (with --capture-output and --log-file FILE, stdout is that file: no warning)."""
    pidfile = tmp_path / "server.pid"
    extra = ["--capture-output"] if capture else []
    result = run_cli("-D", "--pid", str(pidfile), "--log-file", str(tmp_path / "error.log"), "--access-logfile", "-",
                     *extra, "--bind", "127.0.0.1:0", "tests.functional.apps:app")
    assert result.returncode == 0, result.stderr
    pid = int(pidfile.read_text())
    daemons(pid)
    warned = "fastwsgi: warning: --daemon with --access-logfile -: the access log goes to stdout" in result.stderr
    assert warned != capture, result.stderr
    os.kill(pid, signal.SIGTERM)
    assert wait_gone(pid)


def test_a_master_started_by_usr2_is_a_daemon_too(tmp_path, daemons):
    """USR2 under -D: the new master is executed by the old daemon, so it is detached already and
    does not detach again, but it is still a daemon: a HUP that names another log file moves its
    stderr (and its new workers') there. It did not know: its stderr stayed on the first file."""
    pidfile, conf, first = logging_daemon(tmp_path, daemons)
    old = int(pidfile.read_text())
    os.kill(old, signal.SIGUSR2)
    deadline = time.monotonic() + 15
    while (not pidfile.exists() or pidfile.read_text().strip() in ("", str(old))) and time.monotonic() < deadline:
        time.sleep(0.05)
    new = int(pidfile.read_text())
    daemons(new)
    assert new != old and os.getsid(new) == os.getsid(old) != os.getsid(os.getpid())
    wait_for_text(first, f"The new master (pid:{new}) serves")
    for fd in ("0", "1", "2"):  # as the old master's: /dev/null, /dev/null, the error log
        assert os.readlink(f"/proc/{new}/fd/{fd}") == os.readlink(f"/proc/{old}/fd/{fd}")
    assert os.readlink(f"/proc/{new}/cwd") == os.readlink(f"/proc/{old}/cwd")
    assert umask_of(new) == umask_of(old)
    os.kill(old, signal.SIGTERM)
    assert wait_gone(old)
    assert_a_hup_moves_stderr(new, conf, first, tmp_path / "second.log")


def umask_of(pid: int) -> str:
    with open(f"/proc/{pid}/status") as status:
        return next(line for line in status if line.startswith("Umask:"))
