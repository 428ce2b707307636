"""Server hooks on real processes: tests/functional/hooks_conf.py, a gunicorn-style config file whose
every hook appends "PID HOOK ARGS..." to a file, is given with -c; the tests check which hooks ran, in
which process, in which order, with which arguments, through the master's life (boot, a request,
kill -9 of a worker, TTIN, TTOU, HUP, TERM), a worker's SIGINT/SIGQUIT and SIGABRT, the single-process
mode, and what a raising, non-callable, wrongly-declared or misspelled hook does. Each behaviour runs on
both parser backends (a threaded pool with the Python one)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.functional.apps import EVENTS_ENV
from tests.functional.client import Conn, get
from tests.functional.conftest import BACKENDS, matrix_id
from tests.functional.ops import wait_booted
from tests.functional.serverproc import REPO_ROOT, ServeScript, ServerProcess, ServerStartError
from tests.functional.test_cli import run_cli

CONF = str(REPO_ROOT / "tests" / "functional" / "hooks_conf.py")


@pytest.fixture(params=BACKENDS, ids=matrix_id)
def backend(request):
    parser, threads = request.param
    return ["--http-parser", parser, "--threads", str(threads)]


@pytest.fixture
def marks_file(tmp_path):
    return tmp_path / "marks"


def read_marks(path) -> list[tuple]:
    """[(pid, hook, args...)] in the order they were written."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        pid, hook, *args = line.split(" ")
        rows.append((int(pid), hook, *args))
    return rows


def wait_marks(path, hook: str, count: int = 1, timeout: float = 10.0) -> list[tuple]:
    deadline = time.monotonic() + timeout
    while True:
        found = [row for row in read_marks(path) if row[1] == hook]
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) >= count, f"{hook} x{count}: {read_marks(path)}"
            return read_marks(path)
        time.sleep(0.05)


def hooks_of(rows, pid=None) -> list[str]:
    return [row[1] for row in rows if pid is None or row[0] == pid]


def start(marks, *args, raise_in="", app="tests.functional.ops:ops_app") -> ServerProcess:
    env = {"HOOK_MARKS": str(marks), "HOOK_RAISE": raise_in, EVENTS_ENV: str(marks.parent)}
    return ServerProcess(["--bind", "127.0.0.1:0", "-c", CONF, *args, app], env)


@pytest.fixture
def servers():
    started = []
    yield started
    for server in started:
        server.stop(timeout=10)


def test_master_lifecycle_order_pids_and_arguments(servers, marks_file, backend):
    server = start(marks_file, "-w", "2", *backend)
    servers.append(server)
    server.start()
    master = server.proc.pid
    first = wait_booted(server, 2)
    rows = wait_marks(marks_file, "post_worker_init", 2)
    # the master: on_starting, nworkers_changed(2, None), when_ready, then one pre_fork per worker
    assert [row for row in rows if row[0] == master] == [
        (master, "on_starting", str(master), "2"), (master, "nworkers_changed", "2", "None"),
        (master, "when_ready", str(master)), (master, "pre_fork", "None", "1"),
        (master, "pre_fork", "None", "2")]
    assert "when_ready: cfg.timeout=30.0" in server.stderr_text()  # server.log and server.cfg
    age = {row[0]: row[4] for row in rows if row[1] == "post_fork"}
    assert sorted(age.values()) == ["1", "2"] and set(age) == set(first)
    for pid in first:  # post_fork runs in the worker, with the master as server
        assert [row for row in rows if row[0] == pid] == [
            (pid, "post_fork", str(master), str(pid), age[pid]), (pid, "post_worker_init", str(pid))]
    assert hooks_of(rows).index("pre_fork") < hooks_of(rows).index("post_fork")

    # a request: pre_request and post_request in the worker that served it
    response = get(server.port, "/pid?x=1")
    assert response.status == 200
    served = int(response.body.split()[0])
    rows = wait_marks(marks_file, "post_request")
    assert [row for row in rows if row[1].endswith("_request")] == [
        (served, "pre_request", str(served), "GET", "/pid", "x=1"),
        (served, "post_request", str(served), "/pid", "200", "text/plain")]

    # kill -9 of a worker: child_exit once, in the master, for that pid; the dead worker ran nothing
    os.kill(first[0], signal.SIGKILL)
    pids = wait_booted(server, 3)
    rows = wait_marks(marks_file, "post_worker_init", 3)
    assert [row for row in rows if row[1] == "child_exit"] == [(master, "child_exit", str(first[0]), age[first[0]])]
    assert "worker_exit" not in hooks_of(rows)
    assert rows[-3:] == [(master, "pre_fork", "None", "3"),
                         (pids[2], "post_fork", str(master), str(pids[2]), "3"),
                         (pids[2], "post_worker_init", str(pids[2]))]

    # TTIN: nworkers_changed(3, 2) and a fourth worker; TTOU: (2, 3), the oldest retires gracefully
    server.signal(signal.SIGTTIN)
    rows = wait_marks(marks_file, "post_worker_init", 4)
    assert (master, "nworkers_changed", "3", "2") in rows
    server.signal(signal.SIGTTOU)
    rows = wait_marks(marks_file, "child_exit", 2)
    assert (master, "nworkers_changed", "2", "3") in rows
    assert (first[1], "worker_exit", str(master), str(first[1])) in rows  # it stopped on its own
    assert rows[-1] == (master, "child_exit", str(first[1]), age[first[1]])

    # HUP: the options reread (nworkers_changed(2, 2)), on_reload, then the new generation forks
    before = len(rows)
    server.signal(signal.SIGHUP)
    rows = wait_marks(marks_file, "child_exit", 4)
    reload_rows = rows[before:]
    assert hooks_of(reload_rows)[:3] == ["nworkers_changed", "on_reload", "pre_fork"]
    assert reload_rows[1] == (master, "on_reload", "2")
    assert hooks_of(reload_rows).count("post_fork") == 2

    # TERM: every worker runs worker_exit, the master child_exit for each, on_exit last
    alive = {row[0]: row[4] for row in reload_rows if row[1] == "post_fork"}
    assert sorted(alive.values()) == ["5", "6"]
    assert server.stop(timeout=15) == 0
    rows = read_marks(marks_file)
    for pid, its_age in alive.items():
        assert (pid, "worker_exit", str(master), str(pid)) in rows
        assert (master, "child_exit", str(pid), its_age) in rows
    assert rows[-1] == (master, "on_exit", str(master))
    assert hooks_of(rows).count("on_exit") == 1
    assert "Exception in the" not in server.stderr_text()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGQUIT], ids=["INT", "QUIT"])
def test_worker_int_runs_in_the_worker_on_sigint_or_sigquit(servers, marks_file, backend, signum):
    server = start(marks_file, "-w", "1", *backend)
    servers.append(server)
    server.start()
    worker = wait_booted(server, 1)[0]
    os.kill(worker, signum)
    rows = wait_marks(marks_file, "post_worker_init", 2)  # replaced: it stopped without being asked
    assert (worker, "worker_int", str(worker)) in rows
    assert hooks_of(rows, worker)[-2:] == ["worker_int", "worker_exit"]
    assert (server.proc.pid, "child_exit", str(worker), "1") in rows
    # INT to the master: a fast stop, each worker gets INT and runs worker_int
    second = wait_booted(server, 2)[1]
    server.signal(signal.SIGINT)
    assert server.wait(10) == 0
    rows = read_marks(marks_file)
    assert hooks_of(rows, second)[-2:] == ["worker_int", "worker_exit"]
    assert rows[-1][1] == "on_exit"


def test_worker_abort_runs_in_a_worker_killed_for_its_timeout(servers, marks_file, backend):
    # the loop thread must hang for the heartbeat to stop: the application runs on it (--threads 0)
    server = start(marks_file, "-w", "1", "--timeout", "1", *backend[:2], "--threads", "0")
    servers.append(server)
    server.start()
    worker = wait_booted(server, 1)[0]
    with Conn(server.port, timeout=10) as conn:
        conn.request("GET", "/hang")
        assert conn.closed_by_server(timeout=8)
    rows = wait_marks(marks_file, "child_exit")
    assert (worker, "worker_abort", str(worker)) in rows
    assert hooks_of(rows, worker)[-1] == "worker_abort"  # then SIGKILL: no worker_exit
    assert (server.proc.pid, "child_exit", str(worker), "1") in rows


def test_single_process_runs_the_hooks_that_have_no_master(servers, marks_file, backend):
    server = start(marks_file, *backend)
    servers.append(server)
    server.start()
    pid = server.proc.pid
    assert get(server.port, "/pid").status == 200
    wait_marks(marks_file, "post_request")
    server.signal(signal.SIGINT)
    assert server.wait(10) == 0
    rows = read_marks(marks_file)
    assert {row[0] for row in rows} == {pid}  # this process is both server and worker
    assert hooks_of(rows) == ["on_starting", "post_worker_init", "when_ready", "pre_request",
                              "post_request", "worker_int", "worker_exit", "on_exit"]
    assert rows[0] == (pid, "on_starting", str(pid), "1")


def test_request_hooks_keep_the_response_bytes_and_see_every_response(servers, marks_file, backend):
    # the test application: lists with and without Content-Length, chunks, a file, an exception
    server = start(marks_file, *backend, app="tests.functional.apps:app")
    servers.append(server)
    server.start()
    plain = ServerProcess(["--bind", "127.0.0.1:0", *backend, "tests.functional.apps:app"],
                          {EVENTS_ENV: str(marks_file.parent)})
    servers.append(plain)
    plain.start()
    paths = ["/hello", "/chunks", "/download?n=100000&cl=0", "/file?n=300000", "/status?code=204",
             "/write", "/exc-before-headers", "/raise"]
    for count, path in enumerate(paths, 1):
        hooked, bare = get(server.port, path), get(plain.port, path)
        assert (hooked.status, hooked.body) == (bare.status, bare.body), path
        strip = {"date"}
        assert [(k, v) for k, v in hooked.headers if k.lower() not in strip] == \
            [(k, v) for k, v in bare.headers if k.lower() not in strip], path
        # post_request runs once the response is out, so with --threads the next request's hook
        # could otherwise overtake it: the order below is the requests' order
        rows = wait_marks(marks_file, "post_request", count)
    done = [row for row in rows if row[1] == "post_request"]
    assert [row[3] for row in done] == [path.partition("?")[0] for path in paths]
    # the status the application gave last (exc_info); None: it raised before start_response (500)
    assert [row[4] for row in done] == ["200", "200", "200", "200", "204", "200", "503", "None"]


def test_a_raising_pre_request_is_a_500_and_a_raising_post_request_is_logged(servers, tmp_path, backend):
    marks = tmp_path / "pre"
    server = start(marks, *backend, raise_in="pre_request")
    servers.append(server)
    server.start()
    assert get(server.port, "/pid").status == 500
    assert server.wait_stderr("RuntimeError: boom in pre_request")
    marks = tmp_path / "post"
    server = start(marks, *backend, raise_in="post_request")
    servers.append(server)
    server.start()
    assert get(server.port, "/pid").status == 200
    text = server.wait_stderr("RuntimeError: boom in post_request")
    assert text and "Exception in the post_request hook" in text
    assert get(server.port, "/pid").status == 200


BYTE_COUNTS = """
import os

def post_request(worker, req, environ, resp):
    with open(os.environ["HOOK_MARKS"], "a") as file:
        file.write(f"{req.method} {req.uri} {resp.status_code} {resp.sent} {resp.response_length}\\n")
"""

# (method, target, resp.sent, resp.response_length): gunicorn's meaning (the body bytes sent, the
# Content-Length the application set), with the bytes fastwsgi sends: none for HEAD or a 204 (gunicorn
# counts, and sends, the body the application yields to a HEAD), at most the Content-Length given
COUNTED = [
    ("GET", "/hello", 5, 5),  # a list with a Content-Length
    ("GET", "/download?n=100000&cl=0", 100000, None),  # a list of 64 KiB pieces, chunked
    ("GET", "/chunks", 35, None),  # a generator
    ("GET", "/write", 16, None),  # write() twice, then a list
    ("GET", "/file?n=300000", 300000, 300000),  # wsgi.file_wrapper over a real file: sendfile
    ("GET", "/file?n=300000&cl=0", 300000, None),  # sendfile, the server's Content-Length
    ("GET", "/file?n=1000&kind=bytesio", 1000, 1000),  # a file_wrapper the server iterates
    ("HEAD", "/head", 0, 100),
    ("GET", "/status?code=204", 0, None),
    ("GET", "/cl-extra", 5, 5),  # 10 bytes given, 5 declared: 5 sent
    ("GET", "/raise", 0, None),  # raised before start_response: the server's 500
]


def test_post_request_resp_counts_the_body_bytes_sent(servers, tmp_path, backend):
    """resp.sent / resp.response_length as gunicorn's, and resp.sent is the access log's count."""
    marks, conf, access = tmp_path / "marks", tmp_path / "conf.py", tmp_path / "access.log"
    conf.write_text(BYTE_COUNTS)
    server = ServerProcess(["--bind", "127.0.0.1:0", "-c", str(conf), *backend, "--access-logfile",
                            str(access), "--access-logformat", "%(m)s %(B)s",
                            "tests.functional.apps:app"],
                           {"HOOK_MARKS": str(marks), EVENTS_ENV: str(tmp_path)})
    servers.append(server)
    server.start()
    for done, (method, target, _sent, _length) in enumerate(COUNTED, 1):
        response = get(server.port, target, method=method)
        assert response.status in (200, 204, 500), target
        # one at a time: with threads, post_request runs after the client has its response
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (marks.exists() and access.exists() and min(
                len(marks.read_text().splitlines()), len(access.read_text().splitlines())) >= done):
            time.sleep(0.02)
        assert marks.exists() and len(marks.read_text().splitlines()) >= done, server.stderr_text()[-2000:]
    rows = [line.split(" ") for line in marks.read_text().splitlines()]
    assert [(method, uri, int(sent), None if length == "None" else int(length))
            for method, uri, _status, sent, length in rows] == COUNTED
    logged = [line.split(" ") for line in access.read_text().splitlines()]
    # the access log counts the same bytes, but for /raise it logs the server's own 500 body, which
    # gunicorn's post_request does not see either (the application's response sent nothing)
    assert [(method, int(sent)) for method, sent in logged[:-1]] == \
        [(method, sent) for method, _target, sent, _length in COUNTED[:-1]]
    assert COUNTED[-1][1] == "/raise" and int(logged[-1][1]) > 0


PRE_ONLY = """
import os

def pre_request(worker, req):
    with open(os.environ["HOOK_MARKS"], "a") as file:
        file.write(f"{worker.pid} {req.method} {req.path} {req.version} {dict(req.headers).get('X-TRACE')}\\n")
    if req.path == "/boom":
        raise ValueError("refused")
"""


def test_pre_request_alone_sees_each_request_and_its_exception_is_a_500(servers, tmp_path, backend):
    marks, conf = tmp_path / "marks", tmp_path / "conf.py"
    conf.write_text(PRE_ONLY)
    server = ServerProcess(["--bind", "127.0.0.1:0", "-c", str(conf), *backend, "tests.functional.ops:ops_app"],
                           {"HOOK_MARKS": str(marks)})
    servers.append(server)
    server.start()
    assert get(server.port, "/pid", headers=[("X-Trace", "abc")]).status == 200
    assert get(server.port, "/boom").status == 500
    assert server.wait_stderr("ValueError: refused")
    pid = server.proc.pid
    assert marks.read_text().splitlines() == [f"{pid} GET /pid (1, 1) abc", f"{pid} GET /boom (1, 1) None"]


@pytest.mark.parametrize("hook, workers", [("on_starting", "2"), ("when_ready", "2"), ("on_starting", None),
                                           ("when_ready", None), ("post_worker_init", None)])
def test_a_raising_startup_hook_stops_with_a_traceback_and_status_1(marks_file, backend, hook, workers):
    server = start(marks_file, *(["-w", workers] if workers else []), *backend, raise_in=hook)
    try:
        server.start(timeout=10)
    except ServerStartError:
        pass  # on_starting raises before `Listening at`
    assert server.wait(15) == 1
    text = server.stderr_text()
    assert f"Exception in the {hook} hook" in text and f"RuntimeError: boom in {hook}" in text, text
    assert f"the {hook} hook raised RuntimeError: boom in {hook}" in text
    assert "post_fork" not in hooks_of(read_marks(marks_file))


@pytest.mark.parametrize("hook", ["post_fork", "post_worker_init"])
def test_a_raising_post_fork_is_a_failed_boot(marks_file, backend, hook):
    server = start(marks_file, "-w", "2", *backend, raise_in=hook)
    try:
        server.start(timeout=10)
    except ServerStartError:
        pass
    assert server.wait(15) == 1
    text = server.stderr_text()
    assert f"RuntimeError: boom in {hook}" in text and "Worker failed to boot" in text, text
    rows = read_marks(marks_file)
    failed = [row[0] for row in rows if row[1] == hook]
    assert failed and all((pid, "worker_exit", str(server.proc.pid), str(pid)) in rows for pid in failed)
    assert rows[-1][1] == "on_exit"


def test_a_raising_pre_fork_stops_the_master(marks_file, backend):
    server = start(marks_file, "-w", "2", *backend, raise_in="pre_fork")
    server.start(timeout=10)
    assert server.wait(15) == 1
    assert "the pre_fork hook raised RuntimeError: boom in pre_fork" in server.stderr_text()
    assert "post_fork" not in hooks_of(read_marks(marks_file))


@pytest.mark.parametrize("hook", ["child_exit", "worker_exit", "nworkers_changed"])
def test_a_raising_hook_in_a_running_master_is_logged_and_serving_goes_on(servers, marks_file, backend, hook):
    server = start(marks_file, "-w", "2", *backend, raise_in=hook)
    servers.append(server)
    server.start()
    first = wait_booted(server, 2)
    server.signal(signal.SIGTTIN)  # nworkers_changed
    wait_booted(server, 3)
    os.kill(first[0], signal.SIGKILL)  # child_exit
    wait_marks(marks_file, "child_exit")
    wait_booted(server, 4)
    server.signal(signal.SIGTTOU)  # a graceful retirement: worker_exit
    wait_marks(marks_file, "child_exit", 2)
    assert server.wait_stderr(f"Exception in the {hook} hook")
    assert get(server.port, "/pid").status == 200
    assert server.stop(timeout=15) == 0
    assert read_marks(marks_file)[-1][1] == "on_exit"


def test_a_raising_on_exit_is_exit_status_1(marks_file, backend):
    server = start(marks_file, "-w", "1", *backend, raise_in="on_exit")
    server.start()
    wait_booted(server, 1)
    assert server.stop(timeout=15) == 1
    assert "RuntimeError: boom in on_exit" in server.stderr_text()


@pytest.mark.parametrize("source, message", [
    ("post_fork = 3\n", "option 'post_fork': expected a function (server, worker), got 3"),
    ("def post_fork(server):\n    pass\n",
     "option 'post_fork': post_fork must accept 2 argument(s) (server, worker); its signature is (server)"),
    ("def post_forks(server, worker):\n    pass\n",
     "post_forks() is not a server hook (did you mean 'post_fork'?)"),
    ("def postfork(server, worker):\n    pass\n", "postfork() is not a server hook (did you mean 'post_fork'?)"),
    ("def Child_Exit(server, worker):\n    pass\n", "Child_Exit() is not a server hook (did you mean 'child_exit'?)"),
])
def test_bad_hooks_are_one_line_errors_at_startup(tmp_path, backend, source, message):
    path = tmp_path / "conf.py"
    path.write_text(source)
    result = run_cli("-c", str(path), "-w", "1", *backend, "tests.functional.ops:ops_app")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_helpers_are_ignored_and_pre_exec_is_a_hook(tmp_path, backend):
    path = tmp_path / "conf.py"
    path.write_text("workers = 1\ndef post_data(x):\n    pass\ndef load_settings():\n    pass\n"
                    "def pre_exec(server):\n    pass\n")
    result = run_cli("-c", str(path), *backend, "--check-config", "tests.functional.ops:ops_app")
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr
    printed = run_cli("-c", str(path), *backend, "--print-config", "tests.functional.ops:ops_app")
    assert "# pre_exec = " in printed.stdout, printed.stdout  # (test_upgrade.py: it runs on USR2)


def test_print_config_names_the_hooks_as_comments(backend):
    result = run_cli("-c", CONF, *backend, "--print-config")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "# post_fork = post_fork (a function: set it in a Python config file)" in lines
    assert "# helper_that_is_not_a_hook" not in result.stdout
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    assert "post_fork" not in tomllib.loads(result.stdout)["tool"]["fastwsgi"]


SERVE_SCRIPT = """
import os, sys, fastwsgi
from tests.functional.ops import ops_app
marks = sys.argv[1]
def mark(*parts):
    with open(marks, "a") as f:
        f.write(" ".join(str(p) for p in (os.getpid(),) + parts) + "\\n")
fastwsgi.serve(ops_app, port=0, http_parser=sys.argv[2], workers=1,
               when_ready=lambda server: mark("when_ready", server.num_workers),
               post_fork=lambda server, worker: mark("post_fork", worker.pid),
               post_request=lambda worker, req, environ, resp: mark("post_request", resp.status_code))
"""


def test_serve_takes_hooks_as_keywords(servers, marks_file, backend):
    proc = ServeScript([SERVE_SCRIPT, str(marks_file), backend[1]])
    servers.append(proc)
    proc.start()
    worker = wait_booted(proc, 1)[0]
    assert get(proc.port, "/pid").status == 200
    rows = wait_marks(marks_file, "post_request")
    assert rows == [(proc.proc.pid, "when_ready", "1"), (worker, "post_fork", str(worker)),
                    (worker, "post_request", "200")]
