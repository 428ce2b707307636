"""USR2: replace the running master by a new one (a new fastwsgi, Python or virtualenv) without
closing the listening sockets: nginx's and gunicorn's binary upgrade.

Theory of operation. On USR2 the master (the old one) renames its --pid file to FILE.oldbin and
`reexec()` forks a child that executes the command the master was started with (`python -m fastwsgi
ARGS`, from the start directory, with the environment fastwsgi was started with) after the
pre_exec hook. The listening sockets (and --metrics-bind's) survive the exec: their descriptors are
made inheritable in the child only, and listed in FASTWSGI_FDS as JSON, [protocol, fd, unix path or
null] each ("metrics" for the metrics socket), plus a fourth item "reserved" for a --reuse-port
address (bound with SO_REUSEPORT, never listening: each worker listens on a socket of its own,
Listener.reserved); FASTWSGI_UPGRADE_FROM holds the old master's pid. The new master `claim()`s both
before anything else, adopts those sockets instead of binding --bind (`adopt()`: a reserved one stays
reserved, so the new workers open SO_REUSEPORT sockets of their own on that address and join the old
workers' group), does not detach again under -D, writes FILE,
and boots its workers: from then on both generations accept on the same addresses. A daemon's (-D)
new master is one too (FASTWSGI_UPGRADE_DAEMON; `claim()` tells fastwsgi.daemon, `daemon.inherit`):
it runs in the old one's session, with its directory, umask, stdin and stdout (/dev/null) and its
stderr (the error log file, or /dev/null), where its `Listening at` lines go (no command waits for
them), and a HUP that changes --log-file moves its stderr along. Whether it is a daemon is the old
master's: a --daemon added or removed since changes nothing until a restart (a warning says so). How each address
is bound is kept across the upgrade, whatever the new master's --reuse-port says (as across a HUP).
The new master tells the old one once all its first workers are ready: it writes SERVING into the
old master's wakeup pipe, whose write end it inherited (FASTWSGI_UPGRADE_NOTIFY; `tell_serving()`).
The operator then sends WINCH to the old master (its workers stop gracefully; it stays, to roll back
to) and TERM or QUIT to end it; or rolls back: HUP to the old master (workers again), TERM to the new
one. When the new master exits while the old one runs, the old one renames FILE.oldbin back to FILE
(and starts workers again if WINCH had stopped them).

A UNIX socket's file stays while either master runs: a master whose sockets are shared (its new
master lives, or the old master it came from) closes them at exit without unlinking the path.
USR2 is refused in a new master whose old master still runs, while a new master already runs, and
under serve() (the application is an object in this process, not a command to run again). With
--reuse-port it works as without, with two differences. No queue is shared: between the last old
worker closing its socket and the first new worker opening one, nothing listens and connections are
refused; so a WINCH before the new master said it serves is ignored (with shared sockets the kernel
queues the connections meanwhile, and an older fastwsgi, which never says so, can be the new master),
and a TERM or QUIT to the old master should wait for it too. And the old workers that stop close their
own sockets, whose queued connections are reset unless net.ipv4.tcp_migrate_req=1 moves them to the
new workers' sockets, as on a HUP (the master warns at start).
"""

import json
import os
import sys

from .. import daemon
from ..server.listener import adopt_fd

__all__ = ["ENV_FDS", "ENV_FROM", "ENV_NOTIFY", "ENV_DAEMON", "SERVING", "claim", "adopt", "reexec", "tell_serving"]

ENV_FDS = "FASTWSGI_FDS"
ENV_FROM = "FASTWSGI_UPGRADE_FROM"
ENV_NOTIFY = "FASTWSGI_UPGRADE_NOTIFY"  # the old master's wakeup pipe (its write end's descriptor)
ENV_DAEMON = "FASTWSGI_UPGRADE_DAEMON"  # "1": the old master is a daemon (-D), and so the new one is
SERVING = b"S"  # written there by the new master once its first workers are all ready
METRICS = "metrics"  # FASTWSGI_FDS's protocol for the --metrics-bind socket
RESERVED = "reserved"  # FASTWSGI_FDS's fourth item for a --reuse-port address (Listener.reserved)


def claim(environ=None):
    """(old master's pid, [(protocol, fd, unix path or None, reserved), ...], the descriptor for
    `tell_serving` or None) if this process is a new master started by USR2, else None (a daemon's new
    master is marked a daemon here: daemon.inherit); the variables leave `environ` (os.environ: no worker, application or later re-exec sees them)."""
    environ = os.environ if environ is None else environ
    old, fds = environ.pop(ENV_FROM, None), environ.pop(ENV_FDS, None)
    notify = environ.pop(ENV_NOTIFY, None)
    detached = environ.pop(ENV_DAEMON, None) == "1"
    if not old or fds is None:
        return None
    if detached:
        daemon.inherit()
    try:
        entries = json.loads(fds)
        entries = [(str(protocol), int(fd), path, flags == [RESERVED]) for protocol, fd, path, *flags in entries]
    except (ValueError, TypeError) as exc:
        raise RuntimeError(f"invalid {ENV_FDS}={fds!r} from the old master: {exc}") from None
    notify_fd = int(notify) if notify and notify.isdigit() else None
    if notify_fd is not None:
        try:
            os.set_inheritable(notify_fd, False)  # not for a master we start by USR2 in turn
        except OSError:
            notify_fd = None
    return int(old), entries, notify_fd


def tell_serving(fd) -> None:
    """Tell the old master that we serve (its WINCH waits for it, see above); once."""
    try:
        os.write(fd, SERVING)
    except OSError:  # it has exited: nobody to tell
        pass
    finally:
        os.close(fd)


def adopt(entries, allow_from=None):
    """(the listeners, the metrics Listener or None) from claim()'s entries."""
    listeners, metrics = [], None
    for protocol, fd, path, reserved in entries:
        address = f"fd://{fd} (from the old master)"
        if protocol == METRICS:
            metrics = adopt_fd(fd, address)
        else:
            listener = adopt_fd(fd, address, protocol, allow_from, reserved)
            listener.unix_path = path  # unlinked at exit once no other master shares it
            listeners.append(listener)
    return listeners, metrics


def reexec(command, environ: dict, cwd: str, listeners, metrics_listener, before_exec, notify_fd) -> int:
    """Fork a child that executes `command` (argv) in `cwd` with `environ` plus the inherited
    sockets and `notify_fd` (our wakeup pipe's write end); returns its pid. `before_exec()` (the
    pre_exec hook) runs in the child first."""
    # (no fourth item unless reserved: a master of an older fastwsgi can take the others)
    entries = [[listener.protocol, listener.fileno(), listener.unix_path] + [RESERVED] * listener.reserved
               for listener in listeners]
    if metrics_listener is not None:
        entries.append([METRICS, metrics_listener.fileno(), None])
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        for entry in entries:
            os.set_inheritable(entry[1], True)
        os.set_inheritable(notify_fd, True)
        child_environ = dict(environ)
        child_environ[ENV_FROM] = str(os.getppid())
        child_environ[ENV_FDS] = json.dumps(entries)
        child_environ[ENV_NOTIFY] = str(notify_fd)
        if daemon.detached():
            child_environ[ENV_DAEMON] = "1"
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
