"""--capture-output (an application's print() and writes to fds 1 and 2 land in --log-file FILE, with
and without a master; nothing changes with --log-file -) and -n/--name / proc_name (the process
titles of the master and the workers: setproctitle's, or the 15-byte Linux name without it)."""

import uuid

import pytest

from tests.functional.client import get
from tests.functional.serverproc import ServerProcess
from tests.functional.ops import wait_booted
from tests.functional.test_daemon import PARSERS

WORKERS = pytest.mark.parametrize("workers", [None, 2], ids=["single", "w2"])


def _wait_for(path, needles, timeout=5.0):
    import time

    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        if all(needle in text for needle in needles) or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


@WORKERS
@pytest.mark.parametrize("parser", PARSERS)
def test_capture_output_puts_stdout_and_stderr_in_the_log(tmp_path, parser, workers):
    logfile = tmp_path / "error.log"
    extra = ["-w", str(workers)] if workers else []
    proc = ServerProcess(["--bind", "127.0.0.1:0", "--http-parser", parser, "--log-file", str(logfile),
                          "--capture-output", *extra, "tests.functional.apps:app"], startup_log=logfile)
    try:
        proc.start()
        _check_capture(proc, logfile)
    finally:
        assert proc.stop() == 0


def _check_capture(proc, logfile):
    token = uuid.uuid4().hex
    assert get(proc.port, f"/stdio?t={token}").body == f"wrote {token}".encode()
    needles = [f"print-{token}\n", f"fd1-{token}\n", f"fd2-{token}\n"]
    text = _wait_for(logfile, needles)
    assert all(needle in text for needle in needles), text
    assert "Listening at: " in text  # the master's stderr too
    assert not any(token in line for line in proc.stdout_lines + proc.stderr_lines)


@pytest.mark.parametrize("parser", PARSERS)
def test_capture_output_with_log_file_dash_changes_nothing(started, parser):
    proc = started("--http-parser", parser, "--log-file", "-",
                   "--capture-output", "tests.functional.apps:app")
    token = uuid.uuid4().hex
    assert get(proc.port, f"/stdio?t={token}").status == 200
    assert proc.wait_stderr(f"fd2-{token}\n") is not None, proc.stderr_text()
    proc.stop()
    stdout = "".join(proc.stdout_lines)
    assert f"print-{token}\n" in stdout and f"fd1-{token}\n" in stdout, stdout


def _cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as file:
        return file.read().split(b"\0")[0].decode()


def _comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as file:
        return file.read().rstrip("\n")


def _workers(proc, count: int) -> list:
    """The workers once each has logged "Booting worker" (after it set its title: a child that merely
    exists may still have the master's)."""
    pids = sorted(wait_booted(proc, count))
    assert len(pids) == count, pids
    return pids


@pytest.mark.parametrize("parser", PARSERS)
def test_name_titles_master_and_workers_with_setproctitle(started, parser):
    proc = started("--http-parser", parser, "-w", "2", "-n", "shop-api",
                   "tests.functional.apps:app")
    assert _cmdline(proc.proc.pid) == "fastwsgi: master [shop-api]", "is setproctitle installed ([test] extra)?"
    for pid in _workers(proc, 2):
        assert _cmdline(pid) == "fastwsgi: worker [shop-api]"
    single = started("--http-parser", parser, "tests.functional.apps:app")
    assert _cmdline(single.proc.pid) == "fastwsgi: server [tests.functional.apps:app]"  # gunicorn's default


@pytest.mark.parametrize("parser", PARSERS)
def test_proc_name_in_a_config_file(started, tmp_path, parser):
    config = tmp_path / "gunicorn.conf.py"
    config.write_text('proc_name = "billing-service-long"\n')
    shadow = tmp_path / "shadow"  # hides setproctitle: the prctl(PR_SET_NAME) fallback
    shadow.mkdir()
    (shadow / "setproctitle.py").write_text('raise ImportError("hidden by the test")\n')
    from tests.functional.serverproc import REPO_ROOT

    proc = started("--http-parser", parser, "-w", "2", "-c", str(config),
                   "tests.functional.apps:app", env={"PYTHONPATH": f"{shadow}:{REPO_ROOT}"})
    assert _comm(proc.proc.pid) == "billing-service"  # the kernel keeps 15 bytes
    for pid in _workers(proc, 2):
        assert _comm(pid) == "billing-service"
    assert "fastwsgi" not in _cmdline(proc.proc.pid).split()[0]  # argv itself is untouched
