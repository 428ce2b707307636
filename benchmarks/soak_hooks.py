"""Server hooks for `benchmarks/soak.py --hooks`: a gunicorn-style config file given with `-c`.

Theory of operation: the hooks do real work on every request and leave traces the soak client checks.
pre_request counts every request of the process and puts "PID SEQ" into the environ as SOAK_HOOK_PRE
(SEQ: this process's count, 1, 2, ...), so the application (tests.functional.apps /environ) reports it;
post_request counts too and, for a request carrying an `X-Soak-Id` header (the soak's `hooks`
scenario), appends "post PID ID STATUS SENT" to $SOAK_HOOKS_DIR/hooks.log with one O_APPEND write.
Every process writes "counts PID PRE POST" to the same file when it stops serving (worker_exit: a
worker, recycled by --max-requests or stopped, or the single process), so the client can check that
every request that got pre_request also got post_request. post_fork, post_worker_init and child_exit
append "fork PID", "init PID" and "reaped PID" lines, the processes the client saw come and go.

$SOAK_HOOK_FAULT names a hook that raises instead (for the control run that proves the checks can
fail): "pre_request" (a 500 for each X-Soak-Id request) or "post_request" (logged by the server; the
post line is missing).
"""

import os
import threading

_DIR = os.environ.get("SOAK_HOOKS_DIR", "")
_LOG = os.path.join(_DIR, "hooks.log") if _DIR else os.devnull
_FAULT = os.environ.get("SOAK_HOOK_FAULT", "")
_lock = threading.Lock()  # --threads: pre/post_request run on the application's threads
_counts = {"pre": 0, "post": 0}


def _append(*parts) -> None:
    line = (" ".join(str(part) for part in parts) + "\n").encode()
    fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def post_fork(server, worker):
    _append("fork", os.getpid())


def post_worker_init(worker):
    _append("init", os.getpid())


def pre_request(worker, req):
    with _lock:
        _counts["pre"] += 1
        seq = _counts["pre"]
    req.environ["SOAK_HOOK_PRE"] = f"{os.getpid()} {seq}"
    if _FAULT == "pre_request" and "HTTP_X_SOAK_ID" in req.environ:
        raise RuntimeError("soak fault in pre_request")


def post_request(worker, req, environ, resp):
    with _lock:
        _counts["post"] += 1
    soak_id = environ.get("HTTP_X_SOAK_ID")
    if soak_id is not None:
        if _FAULT == "post_request":
            raise RuntimeError("soak fault in post_request")
        _append("post", os.getpid(), soak_id, resp.status_code, resp.sent)


def worker_exit(server, worker):
    with _lock:
        _append("counts", os.getpid(), _counts["pre"], _counts["post"])


def child_exit(server, worker):
    _append("reaped", worker.pid)
