"""A gunicorn-style config file for tests/functional/test_hooks.py: every server hook appends one line
"PID HOOK ARGS..." to the file named by $HOOK_MARKS; $HOOK_RAISE names a hook that raises instead."""

import os

_MARKS = os.environ.get("HOOK_MARKS", os.devnull)
_RAISE = os.environ.get("HOOK_RAISE", "")


def _mark(hook, *parts):
    with open(_MARKS, "a") as file:
        file.write(" ".join(str(part) for part in (os.getpid(), hook, *parts)) + "\n")
    if hook == _RAISE:
        raise RuntimeError(f"boom in {hook}")


def on_starting(server):
    _mark("on_starting", server.pid, server.num_workers)


def nworkers_changed(server, new_value, old_value):
    _mark("nworkers_changed", new_value, old_value)


def when_ready(server):
    server.log.info("when_ready: cfg.timeout=%s", server.cfg.timeout)
    _mark("when_ready", server.pid)


def pre_fork(server, worker):
    _mark("pre_fork", worker.pid, worker.age)


def post_fork(server, worker):
    _mark("post_fork", server.pid, worker.pid, worker.age)


def post_worker_init(worker):
    _mark("post_worker_init", worker.pid)


def pre_request(worker, req):
    _mark("pre_request", worker.pid, req.method, req.path, req.query or "-")


def post_request(worker, req, environ, resp):
    _mark("post_request", worker.pid, req.path, resp.status_code,
          dict(resp.headers or ()).get("Content-Type", "-").replace(" ", ""))


def worker_int(worker):
    _mark("worker_int", worker.pid)


def worker_abort(worker):
    _mark("worker_abort", worker.pid)


def worker_exit(server, worker):
    _mark("worker_exit", server.pid, worker.pid)


def child_exit(server, worker):
    _mark("child_exit", worker.pid, worker.age)


def on_reload(server):
    _mark("on_reload", server.num_workers)


def on_exit(server):
    _mark("on_exit", server.pid)


def helper_that_is_not_a_hook():
    return 1
