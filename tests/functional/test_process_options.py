"""The process options people bring from gunicorn, on real server processes: --chdir, --pythonpath,
-e/--env (applied before the application is imported, in every process model, and again on HUP) and
--pid (the file names the process to signal, is removed at exit, refuses a running instance).

Each application module is written to a temporary directory that is not on sys.path, so it imports
only if the option under test works; the module reports what it sees (its directory, its file, the
environment at import time and per request, its pid) as JSON.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.functional.client import get
from tests.functional.ops import OPS_APP, wait_booted
from tests.functional.serverproc import REPO_ROOT, ServeScript, ServerProcess
from tests.functional.test_cli import assert_one_error_line, run_cli

PARSERS = ["c", "python"]
# the process models --chdir/--pythonpath/--env must hold in: (extra flags, workers to wait for)
MODES = {"single": ([], 0), "workers": (["-w", "2"], 2), "preload": (["-w", "2", "--preload"], 2),
         "reload": (["--reload"], 1)}

REPORTING_APP = textwrap.dedent('''
    import json
    import os

    IMPORT_ENV = os.environ.get("FW_TEST_VAR")
    IMPORT_CWD = os.getcwd()
    BODY = {body!r}


    def app(environ, start_response):
        body = json.dumps({{"cwd": os.getcwd(), "import_cwd": IMPORT_CWD, "file": __file__,
                           "pid": os.getpid(), "env": os.environ.get("FW_TEST_VAR"),
                           "import_env": IMPORT_ENV, "body": BODY}}).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]
''')


def write_app(directory, module: str, body: str = "", prelude: str = "") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{module}.py").write_text(prelude + REPORTING_APP.format(body=body))


def report(server: ServerProcess) -> dict:
    response = get(server.port, "/")
    assert response.status == 200, (response.status, response.body, server.stderr_text())
    return json.loads(response.body)


# -- --chdir ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("mode", list(MODES))
def test_chdir_imports_and_runs_the_application_from_dir(started, tmp_path, parser, mode):
    site = tmp_path / "site"
    write_app(site, "fw_chdir_app")
    flags, workers = MODES[mode]
    server = started("--http-parser", parser, "--chdir", str(site), *flags, "fw_chdir_app:app", booted=workers)
    seen = report(server)
    assert seen["file"] == str(site / "fw_chdir_app.py")
    assert seen["cwd"] == seen["import_cwd"] == str(site)
    if workers:
        assert seen["pid"] != server.proc.pid  # a worker answered: it inherited the directory


@pytest.mark.parametrize("parser", PARSERS)
def test_chdir_and_env_hold_after_a_hup_that_rereads_a_relative_config_file(tmp_path, parser):
    """HUP reads the config file again from the directory fastwsgi started in (not from --chdir's),
    applies the new --env to the master, and the new workers still import from DIR."""
    start, site = tmp_path / "start", tmp_path / "site"
    write_app(site, "fw_hup_app")
    (start / "run").mkdir(parents=True)
    conf = start / "conf.py"
    settings = 'workers = 1\nchdir = "../site"\npid = "run/fw.pid"\nenv = ["FW_TEST_VAR={}"]\n'
    conf.write_text(settings.format("one"))
    server = ServerProcess(["--bind", "127.0.0.1:0", "--http-parser", parser, "-c", "conf.py",
                            "fw_hup_app:app"], cwd=start)
    try:
        server.start()
        first = wait_booted(server, 1)[0]
        seen = report(server)
        assert (seen["cwd"], seen["env"], seen["pid"]) == (str(site), "one", first)
        pidfile = start / "run" / "fw.pid"  # relative to the start directory, not to DIR
        assert pidfile.read_text() == f"{server.proc.pid}\n" and not (site / "run").exists()
        conf.write_text(settings.format("two"))
        server.signal(signal.SIGHUP)
        assert server.wait_stderr("Reload complete", timeout=15), server.stderr_text()
        deadline = time.monotonic() + 10
        while (seen := report(server))["pid"] == first and time.monotonic() < deadline:
            time.sleep(0.05)  # the old worker drains
        assert (seen["cwd"], seen["env"], seen["import_env"]) == (str(site), "two", "two")
        assert seen["file"] == str(site / "fw_hup_app.py")
        assert "Reload aborted" not in server.stderr_text()
        os.kill(int(pidfile.read_text()), signal.SIGTERM)
        assert server.wait(15) == 0
        assert not pidfile.exists()
    finally:
        server.stop()


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("mode", ["single", "workers"])
def test_relative_paths_of_the_server_stay_relative_to_the_start_directory(started, tmp_path, parser, mode):
    """As with gunicorn, --chdir moves the application, not fastwsgi's own files."""
    write_app(tmp_path / "site", "fw_rel_app")
    flags, workers = MODES[mode]
    server = started("--http-parser", parser, "--chdir", "site", "--pid", "fw.pid", "--access-logfile",
                     "access.log", *flags, "fw_rel_app:app", cwd=tmp_path, booted=workers)
    assert report(server)["cwd"] == str(tmp_path / "site")
    assert (tmp_path / "fw.pid").read_text() == f"{server.proc.pid}\n"
    log, line = tmp_path / "access.log", '"GET / HTTP/1.1" 200'
    deadline = time.monotonic() + 5  # (the line is written after the response, at the loop turn's end)
    while not (log.exists() and line in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert line in log.read_text()
    assert sorted(p.name for p in (tmp_path / "site").iterdir() if p.is_file()) == ["fw_rel_app.py"]


def test_missing_chdir_directory_is_one_line_and_exit_1(tmp_path):
    result = run_cli("--bind", "127.0.0.1:0", "--chdir", str(tmp_path / "missing"), OPS_APP)
    assert "missing" in assert_one_error_line(result, 1)


# -- --pythonpath --------------------------------------------------------------------------------

@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("mode", ["single", "workers"])
def test_pythonpath_directories_come_first_in_the_order_given(started, tmp_path, parser, mode):
    write_app(tmp_path / "first", "fw_pp_app", body="first")
    write_app(tmp_path / "second", "fw_pp_app", body="second")
    write_app(tmp_path / "second", "fw_pp_only_second", body="only in second")
    flags, workers = MODES[mode]
    server = started("--http-parser", parser, "--pythonpath", "first,second", *flags, "fw_pp_app:app",
                     cwd=tmp_path, booted=workers)
    assert report(server)["body"] == "first"
    other = started("--http-parser", parser, "--pythonpath", "first,second", *flags, "fw_pp_only_second:app",
                    cwd=tmp_path, booted=workers)
    assert report(other)["body"] == "only in second"


# -- -e/--env --------------------------------------------------------------------------------------

@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("mode", ["single", "workers", "preload"])
def test_env_is_set_before_the_application_is_imported(started, tmp_path, parser, mode):
    # the module reads the variable at import: without -e the import itself fails
    write_app(tmp_path, "fw_env_app", prelude='import os\nREQUIRED = os.environ["FW_TEST_OTHER"]\n')
    flags, workers = MODES[mode]
    server = started("--http-parser", parser, "--pythonpath", str(tmp_path), "-e", "FW_TEST_VAR=1",
                     "--env", "FW_TEST_OTHER=a=b", *flags, "fw_env_app:app", booted=workers)
    seen = report(server)
    assert seen["env"] == seen["import_env"] == "1"
    assert (server.proc.pid == seen["pid"]) == (mode == "single")


@pytest.mark.parametrize("value", ["NOEQUALS", "=value"])
def test_env_without_a_key_and_equals_sign_is_one_line_and_exit_2(value):
    assert value in assert_one_error_line(run_cli("--bind", "127.0.0.1:0", "-e", value, OPS_APP), 2)


def test_check_config_honours_chdir_pythonpath_and_env(tmp_path):
    write_app(tmp_path / "lib", "fw_cc_helper")
    write_app(tmp_path / "site", "fw_cc_app",
              prelude='import os\nimport fw_cc_helper\nREQUIRED = os.environ["FW_TEST_OTHER"]\n')
    args = ["--check-config", "--chdir", "site", "--pythonpath", "lib", "fw_cc_app:app"]
    ok = run_cli(*args, "-e", "FW_TEST_OTHER=1", cwd=tmp_path)
    assert ok.returncode == 0 and "configuration OK" in ok.stdout, ok.stderr
    without_env = run_cli(*args, cwd=tmp_path)
    assert without_env.returncode == 1 and "KeyError: 'FW_TEST_OTHER'" in without_env.stderr


# -- --pid ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("mode", ["single", "workers"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_pid_file_names_the_process_to_signal_and_is_removed_at_exit(started, tmp_path, parser, mode, signum):
    pidfile = tmp_path / "fw.pid"
    flags, workers = MODES[mode]
    server = started("--http-parser", parser, "-p" if mode == "single" else "--pid", str(pidfile), *flags,
                     OPS_APP, booted=workers)
    text = pidfile.read_text()  # written before "Listening at" is announced
    assert text == f"{server.proc.pid}\n"
    assert pidfile.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["fw.pid"]  # no temporary file left behind
    answered_by = int(get(server.port, "/pid").body.split()[0])
    assert (answered_by == int(text)) == (mode == "single")  # with workers: the master's PID
    os.kill(int(text), signum)
    assert server.wait(15) == 0, server.stderr_text()
    assert not pidfile.exists()


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("mode", ["single", "workers"])
def test_term_sent_as_soon_as_the_pid_file_appears_is_a_graceful_stop(tmp_path, parser, mode):
    """A supervisor may signal the PID the moment it can read it: the handlers must be in place."""
    pidfile = tmp_path / "fw.pid"
    proc = subprocess.Popen([sys.executable, "-m", "fastwsgi", "--bind", "127.0.0.1:0", "--http-parser", parser,
                             "--pid", str(pidfile), *MODES[mode][0], OPS_APP], cwd=REPO_ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not pidfile.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        os.kill(int(pidfile.read_text()), signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err.decode()
        assert not pidfile.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("mode", ["single", "workers"])
def test_pid_file_of_a_running_process_refuses_the_start(tmp_path, mode):
    pidfile = tmp_path / "fw.pid"
    pidfile.write_text(f"{os.getpid()}\n")  # this test process: alive
    result = run_cli("--bind", "127.0.0.1:0", "--pid", str(pidfile), *MODES[mode][0], OPS_APP)
    line = assert_one_error_line(result, 1)
    assert str(pidfile) in line and str(os.getpid()) in line
    assert pidfile.read_text() == f"{os.getpid()}\n"
    checked = run_cli("--check-config", "--pid", str(pidfile), OPS_APP)  # checking a running setup is fine
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("stale", ["dead", "garbage"])
def test_stale_pid_file_is_overwritten(started, tmp_path, stale):
    pidfile = tmp_path / "fw.pid"
    if stale == "dead":
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        pidfile.write_text(f"{gone.pid}\n")
    else:
        pidfile.write_text("not a pid\n")
    server = started("--pid", str(pidfile), OPS_APP)
    assert pidfile.read_text() == f"{server.proc.pid}\n"


def test_pid_file_taken_over_by_another_process_is_left_alone(started, tmp_path):
    pidfile = tmp_path / "fw.pid"
    server = started("--pid", str(pidfile), OPS_APP)
    pidfile.write_text(f"{os.getpid()}\n")  # e.g. a newer instance wrote its own PID
    assert server.stop() == 0
    assert pidfile.read_text() == f"{os.getpid()}\n"


def test_pid_file_in_a_missing_directory_is_one_line_and_exit_1(tmp_path):
    result = run_cli("--bind", "127.0.0.1:0", "--pid", str(tmp_path / "missing" / "fw.pid"), OPS_APP)
    assert "missing" in assert_one_error_line(result, 1)


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("workers", [None, 2])
def test_serve_writes_and_removes_the_pid_file(tmp_path, parser, workers):
    pidfile = tmp_path / "fw.pid"
    script = (f"import fastwsgi\nfrom tests.functional.ops import ops_app\n"
              f"fastwsgi.serve(ops_app, port=0, http_parser={parser!r}, workers={workers}, pid={str(pidfile)!r})\n")
    server = ServeScript([script])
    try:
        server.start()
        assert pidfile.read_text() == f"{server.proc.pid}\n"
        assert get(server.port, "/pid").status == 200
        server.signal(signal.SIGTERM)
        assert server.wait(15) == 0, server.stderr_text()
        assert not pidfile.exists()
    finally:
        server.stop()
