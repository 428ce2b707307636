"""USR2: replace the running master by a new one (a new fastwsgi, Python or virtualenv) without
closing the listening sockets: nginx's and gunicorn's binary upgrade.

Theory of operation. On USR2 the master (the old one) renames its --pid file to FILE.oldbin and
`reexec()` forks a child that executes the command the master was started with (`python -m fastwsgi
ARGS`, from the start directory, with the environment fastwsgi was started with) after the
pre_exec hook. The listening sockets (and --metrics-bind's) survive the exec: their descriptors are
made inheritable in the child only, and listed in FASTWSGI_FDS as JSON, [protocol, fd, unix path or
null] each ("metrics" for the metrics socket); FASTWSGI_UPGRADE_FROM holds the old master's pid. The
new master `claim()`s both before anything else, adopts those sockets instead of binding --bind
(`adopt()`), does not detach again under -D (the old master is a daemon already), writes FILE, and
boots its workers: from then on both generations accept on the same sockets. The operator then
sends WINCH to the old master (its workers stop gracefully; it stays, to roll back to) and TERM or
QUIT to end it; or rolls back: HUP to the old master (workers again), TERM to the new one. When the
new master exits while the old one runs, the old one renames FILE.oldbin back to FILE (and starts
workers again if WINCH had stopped them).

A UNIX socket's file stays while either master runs: a master whose sockets are shared (its new
master lives, or the old master it came from) closes them at exit without unlinking the path.
USR2 is refused in a new master whose old master still runs, while a new master already runs,
with --reuse-port (each worker binds its own socket: nothing to hand over) and under serve() (the
application is an object in this process, not a command to run again).
"""

import json
import os
import sys

from ..server.listener import adopt_fd

__all__ = ["ENV_FDS", "ENV_FROM", "claim", "adopt", "reexec"]

ENV_FDS = "FASTWSGI_FDS"
ENV_FROM = "FASTWSGI_UPGRADE_FROM"
METRICS = "metrics"  # FASTWSGI_FDS's protocol for the --metrics-bind socket


def claim(environ=None):
    """(old master's pid, [[protocol, fd, unix path or None], ...]) if this process is a new master
    started by USR2, else None; the variables leave `environ` (os.environ: no worker, application or
    later re-exec sees them)."""
    environ = os.environ if environ is None else environ
    old, fds = environ.pop(ENV_FROM, None), environ.pop(ENV_FDS, None)
    if not old or fds is None:
        return None
    try:
        entries = json.loads(fds)
        return int(old), [(str(protocol), int(fd), path) for protocol, fd, path in entries]
    except (ValueError, TypeError) as exc:
        raise RuntimeError(f"invalid {ENV_FDS}={fds!r} from the old master: {exc}") from None


def adopt(entries, allow_from=None):
    """(the listeners, the metrics Listener or None) from claim()'s entries."""
    listeners, metrics = [], None
    for protocol, fd, path in entries:
        address = f"fd://{fd} (from the old master)"
        if protocol == METRICS:
            metrics = adopt_fd(fd, address)
        else:
            listener = adopt_fd(fd, address, protocol, allow_from)
            listener.unix_path = path  # unlinked at exit once no other master shares it
            listeners.append(listener)
    return listeners, metrics


def reexec(command, environ: dict, cwd: str, listeners, metrics_listener, before_exec) -> int:
    """Fork a child that executes `command` (argv) in `cwd` with `environ` plus the inherited
    sockets; returns its pid. `before_exec()` (the pre_exec hook) runs in the child first."""
    entries = [[listener.protocol, listener.fileno(), listener.unix_path] for listener in listeners]
    if metrics_listener is not None:
        entries.append([METRICS, metrics_listener.fileno(), None])
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        for _protocol, fd, _path in entries:
            os.set_inheritable(fd, True)
        child_environ = dict(environ)
        child_environ[ENV_FROM] = str(os.getppid())
        child_environ[ENV_FDS] = json.dumps(entries)
        os.chdir(cwd)
        before_exec()
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(command[0], command, child_environ)
    except BaseException as exc:  # the exec failed: the old master reaps us and serves on
        try:
            sys.stderr.write(f"fastwsgi: error: cannot execute the new master {command!r}: {exc}\n")
            sys.stderr.flush()
        finally:
            os._exit(status)
    os._exit(status)  # never reached: execve does not return
