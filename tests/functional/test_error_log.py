"""The error log's handlers on real processes, across a real HUP: fastwsgi replaces only the handler
it installed itself (a hook's stays), a reload to --log-config leaves the config alone in charge (no
line also in the old error log, none twice), and an application that configures the root logger
does not get each of fastwsgi's lines a second time (gunicorn's error log does not propagate). A
worker that cannot load the application says why in the error log file, once."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.functional.ops import OPS_APP, wait_booted, wait_for_text
from tests.functional.test_cli import run_cli

HOOK = """import logging

def on_starting(server):  # a handler of the user's own on fastwsgi's logger (say, an alerting one)
    handler = logging.FileHandler({path!r})
    handler.setFormatter(logging.Formatter("HOOK %(message)s"))
    logging.getLogger("fastwsgi").addHandler(handler)
"""


def reload_with(server, conf, text: str) -> None:
    """Write the config file anew and HUP the master (which reads it again)."""
    conf.write_text(text)
    server.signal(signal.SIGHUP)


def test_a_reload_that_changes_the_log_level_keeps_a_handler_fastwsgi_did_not_install(started, tmp_path):
    hook_log, error_log, conf = tmp_path / "hook.log", tmp_path / "error.log", tmp_path / "conf.py"
    settings = HOOK.format(path=str(hook_log)) + f"error_logfile = {str(error_log)!r}\n"
    conf.write_text(settings + "log_level = 'info'\n")
    server = started("-c", str(conf), "-w", "1", OPS_APP)
    assert "Booting worker with pid" in wait_for_text(hook_log, "Booting worker with pid")
    reload_with(server, conf, settings + "log_level = 'debug'\n")
    assert "Reload complete" in wait_for_text(error_log, "Reload complete"), server.stderr_text()
    # the hook's handler was closed and removed with fastwsgi's own: it saw nothing after the HUP
    assert "HOOK Reload complete" in wait_for_text(hook_log, "Reload complete")
    assert server.alive()


@pytest.mark.parametrize("error_logfile", ["-", "file"])
def test_a_reload_to_a_log_config_leaves_it_alone_in_charge(started, tmp_path, error_logfile):
    """The log config routes the root logger to stderr. fastwsgi's own handler used to stay: each
    line then went to the old error log too, or, with --error-logfile -, was printed twice."""
    error_log, conf, logging_json = tmp_path / "error.log", tmp_path / "conf.py", tmp_path / "logging.json"
    logging_json.write_text(json.dumps({
        "version": 1,
        "formatters": {"routed": {"format": "ROUTED %(message)s"}},
        "handlers": {"err": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                             "formatter": "routed"}},
        "root": {"handlers": ["err"], "level": "INFO"},
    }))
    settings = f"error_logfile = {str(error_log)!r}\n" if error_logfile == "file" else ""
    conf.write_text(settings)
    server = started("-c", str(conf), "-w", "1", OPS_APP)
    wait_booted(server, 1) if error_logfile == "-" else wait_for_text(error_log, "Booting worker")
    mark = server.stderr_mark()
    reload_with(server, conf, settings + f"log_config = {str(logging_json)!r}\n")
    after = server.wait_stderr("ROUTED Reload complete", since=mark, timeout=15)
    assert after is not None, server.stderr_text()
    server.stop()
    after = "".join(server.stderr_lines[mark:])
    for line in ("Reload complete", "Handling signal: term"):
        assert [text for text in after.splitlines() if line in text] == [f"ROUTED {line}"], after
        if error_logfile == "file":
            assert line not in error_log.read_text()


APP_CONFIGURING_ROOT = """import logging, sys

logging.basicConfig(stream=sys.stderr, format="ROOT %(name)s: %(message)s", level=logging.INFO)


def app(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
"""


@pytest.mark.parametrize("workers", [None, 1], ids=["single", "w1"])
def test_an_application_that_configures_the_root_logger_gets_no_line_twice(started, tmp_path, workers):
    (tmp_path / "rootapp.py").write_text(APP_CONFIGURING_ROOT)
    extra = ("-w", str(workers)) if workers else ()
    server = started(*extra, "rootapp:app", cwd=tmp_path)
    if workers:
        wait_booted(server, 1)
    server.stop()
    lines = [line for line in server.stderr_lines if "Graceful stop" in line or "Booting worker" in line]
    assert len(lines) == (2 if workers else 1), server.stderr_text()
    assert not any(line.startswith("ROOT fastwsgi") for line in lines), lines


@pytest.mark.parametrize("capture", [False, True], ids=["stderr-elsewhere", "capture-output"])
def test_a_worker_that_cannot_load_the_application_says_why_in_the_error_log_file(tmp_path, capture):
    """The master's "Worker failed to boot ... see above" is in --error-logfile FILE; the worker's
    reason used to go to stderr only (the terminal, the journal), not above it in that file. With
    --capture-output stderr is that file: the reason is there once."""
    (tmp_path / "unloadable.py").write_text("raise RuntimeError('the database URL is not set')\n")
    error_log = tmp_path / "error.log"
    extra = ["--capture-output"] if capture else []
    result = run_cli("-w", "1", "--error-logfile", str(error_log), *extra, "--bind", "127.0.0.1:0",
                     "unloadable:app", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    logged = error_log.read_text()
    reason = "fastwsgi: error: importing 'unloadable' raised RuntimeError: the database URL is not set"
    assert logged.count(reason) == 1, logged
    assert logged.index(reason) < logged.index("Worker failed to boot"), logged
    assert (reason in result.stderr) != capture, result.stderr  # the terminal has it too
