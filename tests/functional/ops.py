"""Helpers for the operations tests (workers, signals, sockets, config sources): `ops_app`, the small
application they serve (it reports the worker's pid, sleeps, or hangs), and waits on the master's
workers. The `launch` fixture that starts servers with it lives in conftest.py.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time

from tests.functional.client import get
from tests.functional.serverproc import ServerProcess

IMPORTED_IN = os.getpid()  # with --preload this module is imported by the master
OPS_APP = "tests.functional.ops:ops_app"
BOOTING = re.compile(r"Booting worker with pid: (\d+)")


def ops_app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/pid":
        body = f"{os.getpid()} {IMPORTED_IN} {environ['wsgi.multiprocess']}".encode()
    elif path == "/sleep":
        seconds = float(environ.get("QUERY_STRING", "").partition("=")[2] or "1")
        time.sleep(seconds)
        body = f"slept {seconds}".encode()
    elif path == "/hang":
        time.sleep(3600)  # the master's --timeout must end this
        body = b"unreachable"
    elif path == "/exit":  # the worker process ends with ?status (os._exit: no cleanup, no response)
        os._exit(int(environ.get("QUERY_STRING", "").partition("=")[2] or "1"))
    elif path == "/env":  # a variable of the process environment the application runs in
        body = os.environ.get(environ.get("QUERY_STRING", ""), "-").encode()
    elif path == "/addr":
        body = (f"{environ['REMOTE_ADDR']} {environ['wsgi.url_scheme']} {environ.get('HTTP_HOST')} "
                f"{environ.get('HTTP_X_FORWARDED_FOR', '-')}").encode()
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def sleepy_app(seconds):
    """A factory (`tests.functional.ops:sleepy_app(3)`): an application that takes `seconds` to load."""
    time.sleep(seconds)
    return ops_app


def gated_app(path):
    """A factory (`tests.functional.ops:gated_app('/tmp/gate')`) that loads only once the file `path`
    exists (waiting at most 20 s): if it says "fail", loading raises; otherwise it gives ops_app."""
    deadline = time.monotonic() + 20
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    with open(path) as file:
        if file.read().strip() == "fail":
            raise RuntimeError("the gate said fail")
    return ops_app


def deployed_app(path):
    """A factory (`tests.functional.ops:deployed_app('/tmp/x')`) standing for the code on disk: the
    file `path` holds "VERSION [SECONDS]". Loading leaves a file `path.PID` once it has read it, takes
    SECONDS, and gives ops_app plus GET /version -> VERSION. VERSION "broken" is a broken deploy: it
    waits (at most 10 s) for a file `path.go`, then raises."""
    with open(path) as file:
        version, _, seconds = file.read().strip().partition(" ")
    open(f"{path}.{os.getpid()}", "w").close()
    time.sleep(float(seconds or 0))
    if version == "broken":
        deadline = time.monotonic() + 10
        while not os.path.exists(f"{path}.go") and time.monotonic() < deadline:
            time.sleep(0.01)
        raise RuntimeError("broken deploy")

    def app(environ, start_response):
        if environ["PATH_INFO"] != "/version":
            return ops_app(environ, start_response)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(version)))])
        return [version.encode()]

    return app


def dying_app(how):
    """A factory whose loading ends the worker process, as a crash at import does: "exit" raises
    SystemExit(1), "signal" dies of SIGALRM (no handler; a crash without a core dump)."""
    if how == "exit":
        sys.exit(1)
    os.kill(os.getpid(), signal.SIGALRM)
    time.sleep(10)


def loaded_by(path) -> set[int]:
    """The pids of the workers that read the deployed_app file `path` so far."""
    directory, name = os.path.split(path)
    return {int(entry.rpartition(".")[2]) for entry in os.listdir(directory)
            if entry.startswith(name + ".") and entry.rpartition(".")[2].isdigit()}


def zombie(pid: int) -> bool:
    """The process exited and its parent has not reaped it yet."""
    with open(f"/proc/{pid}/stat") as file:
        return file.read().rpartition(")")[2].split()[0] == "Z"


def gone(pid: int) -> bool:
    """The process exited: reaped, or a zombie (an orphan waits for whoever reaps orphans: not us)."""
    try:
        return zombie(pid)
    except (FileNotFoundError, ProcessLookupError):  # reaped before open, or between open and read
        return True


def wait_for(predicate, timeout: float = 10.0) -> bool:
    """Whether `predicate()` turned true within `timeout` (polled every 20 ms)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def wait_for_text(path, text: str, timeout: float = 10.0) -> str:
    """What the file `path` holds once it contains `text` (or after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while text not in (path.read_text() if path.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.read_text() if path.exists() else ""


def booted(server: ServerProcess) -> list[int]:
    return [int(pid) for pid in BOOTING.findall(server.stderr_text())]


def wait_booted(server: ServerProcess, count: int, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(booted(server)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = booted(server)
    assert len(pids) >= count, server.stderr_text()
    return pids


def listening_on(port: int) -> int:
    """How many IPv4 sockets listen on 127.0.0.1:`port` (one shared, or one per --reuse-port worker;
    a master's reserved socket is bound, not listening)."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return sum(1 for row in rows if row[1] == f"0100007F:{port:04X}" and row[3] == "0A")


def worker_pid(server: ServerProcess) -> int:
    return int(get(server.port, "/pid").body.split()[0])


def children(pid: int) -> set[int]:
    """The child processes of `pid`, forked by any of its threads, zombies included: a worker that
    exited counts until its master has reaped it (a master that never reaps is a bug to see)."""
    found = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as file:
                found.update(int(child) for child in file.read().split())
        except (FileNotFoundError, ProcessLookupError):  # the thread ended before open or read
            pass
    return found


def wait_children(pid: int, count: int, timeout: float = 10.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while len(children(pid)) != count and time.monotonic() < deadline:
        time.sleep(0.05)
    return children(pid)
