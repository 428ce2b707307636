"""-D/--daemon: detach from the terminal as gunicorn does, and tell the terminal how the start went.

Theory of operation: `detach(options)` runs in the command once the options are read and checked (a
bad flag, --chdir, --user, a --pid naming a running process still fail in the foreground, as one
line), and, as in gunicorn, before the application is imported and before any socket is bound, so
the imports, the threads they start and the sockets belong to the daemon. It forks; the child calls
setsid() (a new session and process group, no controlling terminal) and forks again, so the daemon
(the grandchild) is no session leader and can never acquire a terminal; it returns into the command,
which goes on as in the foreground and writes --pid itself (the PID operators signal). Its stdin and
stdout become /dev/null (stdout: the error log under --capture-output, fastwsgi.logs; --access-logfile -
then gets a warning, as does starting without --log-file FILE). The umask and
the working directory are kept (gunicorn sets umask 0o22; fastwsgi leaves the caller's: --umask
covers the unix sockets).

Socket activation (systemd's Type=forking): LISTEN_PID names the command, so the daemon, a
grandchild, rewrites it to its own PID and adopts the passed sockets as the command would have
(sd_listen_fds(3) takes them only in the process LISTEN_PID names), instead of falling back to --bind.

Unlike gunicorn, whose command exits 0 as soon as it forked, the original process waits to learn how
the start went (daemon(7): "notify the original process ... that initialization is complete"):
until the daemon serves, the daemon's stderr is a pipe whose bytes the original process copies to its
own stderr, so the `Listening at:` lines and a start-up error (address in use, an application that
cannot be imported, a worker failing to boot, a bad log file) reach the terminal as in the
foreground. `started()`, called once the daemon serves (the single process just before its event
loop; the master once its first workers are all ready), moves stderr to where it stays (the error log
file, --log-file FILE, else /dev/null; a HUP that changes --log-file moves it along, fastwsgi.logs) and then writes one NUL byte down the pipe. A worker calls
`started()` too, before it reports ready: it only moves its own stderr. The original process exits 0
at the NUL byte, and 1 when the pipe closes without it (the daemon exited: its error was copied).
After that the daemon's errors are in the error log file only, which is why starting without one
prints a warning.

Ctrl-C while the original process waits: the daemon, in a session of its own, never gets the SIGINT
and goes on starting; the original process exits 1 and the pipe then refuses every write (EPIPE). The
daemon's sys.stderr (`_StartupStderr`, unbuffered) turns the first refused write, in the daemon or in
any of its workers, into that process's `started()` and writes the text to the error log instead, so
the `Listening at` lines and a worker's boot error land there, once, and nothing dies of the
BrokenPipeError.

USR2 (fastwsgi.workers.upgrade): the new master the daemon executes is detached already (its child, in
its session) and does not detach again; `inherit()` makes it a daemon all the same.
"""

import io
import os
import sys

__all__ = ["detach", "started", "pending", "tell", "detached", "inherit", "stderr_path"]

_pending = None  # in the daemon and its workers until they serve: (daemon pid, final stderr path)
_detached = False  # in the daemon and its workers


def detach(options: dict):
    """Detach. Returns None in the daemon; in the original process, once the daemon serves or died,
    its exit status (0 or 1)."""
    sys.stdout.flush()
    sys.stderr.flush()
    activated = os.environ.get("LISTEN_PID") == str(os.getpid())
    read_end, write_end = os.pipe()
    child = os.fork()
    if child:
        os.close(write_end)
        return _wait_for_daemon(read_end, child)
    status = 1
    try:
        os.close(read_end)
        os.setsid()
        if os.fork():
            status = 0
            return None  # never reached: the finally exits
        global _pending, _detached
        if activated:
            os.environ["LISTEN_PID"] = str(os.getpid())
        logfile = options["error_logfile"]
        _pending = (os.getpid(), stderr_path(options))
        _detached = True
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.close(null)
        os.dup2(write_end, 2)
        os.close(write_end)
        sys.stderr = io.TextIOWrapper(_StartupStderr(), encoding=sys.stderr.encoding,
                                      errors="backslashreplace", line_buffering=True, write_through=True)
        if logfile == "-" and not options["log_config"]:
            sys.stderr.write("fastwsgi: warning: --daemon without --log-file FILE: what the server logs "
                             "once it serves goes to /dev/null\n")
        if options["access_logfile"] == "-" and not (options["capture_output"] and logfile != "-"):
            sys.stderr.write("fastwsgi: warning: --daemon with --access-logfile -: the access log goes to "
                             "stdout, which is /dev/null (give it a FILE)\n")
        return None
    finally:
        if _pending is None:  # the intermediate child (or a failed setsid/fork): gone at once
            os._exit(status)


def _wait_for_daemon(read_end: int, child: int) -> int:
    ready = False
    try:
        os.waitpid(child, 0)  # the intermediate child exits right after its fork
        with open(read_end, "rb", buffering=0) as pipe:
            while True:
                data = pipe.read(65536)
                if not data:
                    break
                text, nul, _rest = data.partition(b"\0")
                sys.stderr.buffer.write(text)
                sys.stderr.flush()
                if nul:
                    ready = True
                    break
    except KeyboardInterrupt:  # the daemon is in a session of its own: Ctrl-C never reached it
        sys.stderr.write("fastwsgi: interrupted: the daemon goes on starting (its errors go to "
                         "--log-file)\n")
        return 1
    return 0 if ready else 1


def tell(text: str) -> None:
    """Write `text` to stderr now: in a starting daemon, to the original process (or, once that is
    gone, to where stderr goes once serving: `_StartupStderr`)."""
    sys.stderr.write(text)
    sys.stderr.flush()


class _StartupStderr(io.RawIOBase):
    """sys.stderr's file in a daemon (and its workers) while descriptor 2 is the start-up pipe.

    Once the original process is gone (interrupted while it waited), the pipe refuses every write
    (EPIPE). A buffered stderr would keep the refused bytes and raise BrokenPipeError at each later
    write and flush: the `Listening at` line, a worker's "cannot load the application", the error
    that stops the daemon would kill the writer or be lost. Here the write that meets EPIPE moves
    this process's stderr to where it goes once serving (`started()`) and is written there, whole,
    once; unbuffered, nothing refused is kept to be written again."""

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return 2

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        while view:
            try:
                view = view[os.write(2, view):]
            except BrokenPipeError:
                if not pending():  # (moved already: not the start-up pipe)
                    raise
                started()
        return len(data)


def started() -> None:
    """This process serves: the daemon tells the original process, and stderr leaves the pipe for the
    error log file (or /dev/null). Does nothing outside a daemon, or a second time."""
    global _pending
    if _pending is None:
        return
    daemon_pid, path = _pending
    _pending = None
    sys.stderr.flush()  # (_StartupStderr: where it goes, even if the original process is gone)
    # stderr moves first and the NUL byte goes down a duplicate of the pipe after: when the original
    # process exits, nothing the daemon writes can still go to the pipe (and be lost on it)
    pipe = os.dup(2) if os.getpid() == daemon_pid else -1
    from . import logs

    try:
        logs.redirect_stdio(path, (2,))
    except OSError:
        logs.redirect_stdio(os.devnull, (2,))
    if pipe >= 0:
        try:
            os.write(pipe, b"\0")
        except OSError:  # the original process is gone (killed): nobody to tell
            pass
        os.close(pipe)


def inherit() -> None:
    """This process is a new master a daemon started by USR2 (fastwsgi.workers.upgrade): a daemon
    too, detached already, its stderr where the old one's went once serving; no command waits."""
    global _detached
    _detached = True


def stderr_path(options: dict) -> str:
    """Where a daemon's stderr goes once it serves: --log-file FILE, else /dev/null (at a HUP that
    changes --log-file too: fastwsgi.logs)."""
    logfile = options["error_logfile"]
    return os.devnull if logfile == "-" else logfile


def detached() -> bool:
    """True in a daemon (-D) and its workers."""
    return _detached


def pending() -> bool:
    """True in a daemon (or its worker) whose stderr is still the pipe to the original process."""
    return _pending is not None
