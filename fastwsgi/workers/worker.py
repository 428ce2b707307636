"""One pre-fork worker: a child process running fastwsgi.server.Server on sockets its master bound.

Theory of operation: the master forks, and the child calls `Worker.run()`, which never returns to the
master's code (the caller `os._exit`s with its result). The worker resets the master's signal
handling, binds its own SO_REUSEPORT socket when --reuse-port is set (shared sockets otherwise), loads
the application unless the master preloaded it (a failure exits with BOOT_ERROR, which tells the
master not to respawn in a loop; the reason goes to stderr, and to --error-logfile FILE too when
stderr is not that file), only then listens on that socket (listening, it joins the address's group
and the kernel queues a share of the new connections there: while the application loads, for
seconds, or fails to, they would wait or be reset), builds the Server and writes "ready" into its
heartbeat file.

Heartbeat: the Server calls `on_sweep` from its periodic sweep (about once a second, and at least four
times per --timeout; never on the per-request path); it sets the heartbeat file's mtime, so the master
sees a worker whose event loop stopped (a hung application on the loop thread, a deadlock) as a stale
mtime. The same hook notices an orphaning (the master died: stop) and reopens log files after
SIGUSR1. --max-requests is counted per request: the Server calls `_reached_max_requests` right after
the request that reaches it, and the worker drains (a request already in flight on another connection
or thread still completes, so it may serve a few more, never a sweep's worth) and writes RECYCLING and
its pid into the master's wakeup pipe, so its replacement starts while it drains: with -w 1 the new
connections are not left in the listen queue until the drain ends (a slow request, a proxy's idle
keep-alive connections kept for a second: server/loop.py). With --reuse-port it writes RECYCLING but
serves on until the master's TERM, sent once a replacement is ready: its drain closes its socket at
once, and with every socket of the address closed (-w 1, or workers recycling together) the kernel
refuses connections until a replacement listens. Not while the code on disk may not load (a reload
under way, or failed): the master marks the heartbeat file (RECYCLING_HELD), as a replacement could
not load it, and the worker serves on; the sweep checks the mark again, so it recycles once the
master lifts it (the reload done, or a replacement that did load).

--reload (development): after loading the application the worker notes the mtime of every loaded
module's file and of each --reload-extra-file; the sweep hook compares them at most once a second and,
on a change, asks the master once to reload, by writing RELOAD_REQUEST into the master's wakeup pipe
(a signal would not reach a master that stayed root from a worker running as --user): the master's
reload, the one SIGHUP starts, starts new workers (which import the new code) before this generation
drains, so even a reload refuses no request.

--user (fastwsgi.privileges): the worker switches to the user and group right after it has its
sockets (with --reuse-port it binds its own, as root, which a port below 1024 needs) and before it
imports the application; post_fork runs before, as root, as in gunicorn. A failed switch exits with
BOOT_ERROR.

Server hooks (fastwsgi.hooks): the Worker is their `worker` here. post_fork runs once the signal
handlers are set, post_worker_init once the application is loaded (an exception in either exits with
BOOT_ERROR: a failed boot), worker_int in the INT/QUIT handler, worker_abort after the SIGABRT report,
worker_exit (called by the Arbiter's fork code) once `run()` returns; pre_request/post_request wrap
the application only when set.

Signals (handlers only set flags or wake the loop, and run the worker_int/worker_abort hooks): TERM
graceful drain (Server.drain), INT/QUIT stop now (and raise StopNow into an application found
running on the loop thread, which would hold the stop), USR1 reopen logs at the next sweep, the master's HUP,
USR2, TTIN, TTOU and WINCH do nothing (`systemctl kill` sends a signal to every process), ABRT (sent by the
master when the heartbeat is stale, just before SIGKILL) writes the request being served (or "loading
the application") and the stack of the stuck loop thread into the heartbeat file, after its READY mark,
so the master can log them.
"""

import logging
import os
import random
import signal
import stat
import sys
import threading
import traceback

from .. import daemon, hooks, logs, proctitle
from ..server import Server, open_listener
from ..server.wsgi import StopNow, exchange_on_stack, interrupt_application

__all__ = ["Worker", "BOOT_ERROR", "READY", "RECYCLING", "RECYCLING_HELD", "RELOAD_REQUEST", "REPORT_SIZE"]

BOOT_ERROR = 3  # exit status: the application could not be loaded (or post_fork/post_worker_init raised)
READY = b"ready\n"
RELOAD_REQUEST = b"H"  # written by a --reload worker into the master's wakeup pipe: reload, as on HUP
WAKEUP = b"."  # written into the master's wakeup pipe once ready (a signal's wakeup byte, too)
# written by a worker that reached --max-requests, then its pid and a newline: it drains, and the
# master starts its replacement now rather than once it has exited
RECYCLING = b"R"
# a mode bit the master sets on the heartbeat file while the code on disk cannot load (a failed
# reload): a worker reaching --max-requests then serves on, as its replacement would fail to load
RECYCLING_HELD = stat.S_IXUSR
REPORT_SIZE = 16384  # bytes of a timed-out worker's report (its request line and stack)
STACK_FRAMES = 40  # innermost frames of the stuck loop thread in that report
# blocked by the master across fork, unblocked once the worker's handlers are in place
WORKER_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGABRT}

log = logging.getLogger("fastwsgi")


class Worker(hooks.HookArgument):
    """Also the `worker` argument of the hooks in a worker process: pid, ppid, age, log, cfg."""

    def __init__(self, age: int, master_pid: int, listeners, options: dict, heartbeat_fd: int,
                 load_app, app=None, reopen_logs=None, make_access_log=None, metrics=None,
                 ssl_context=None, server=None, credentials=None, *, master_fd: int):
        self.age = age
        self.pid = os.getpid()
        self.ppid = self.master_pid = master_pid
        self.arbiter = server  # the hooks' `server`
        self.listeners = list(listeners)
        self.options = options
        self.heartbeat_fd = heartbeat_fd
        self.load_app = load_app
        self.app = app
        self.reopen_logs = reopen_logs
        self.make_access_log = make_access_log
        self.metrics = metrics
        self.ssl_context = ssl_context  # the master's (TLS), or None
        self.credentials = credentials  # --user: switch to them before loading the application
        # the master's wakeup pipe: ready, RECYCLING, RELOAD_REQUEST (a signal would need its uid)
        self.master_fd = master_fd
        self.server = None
        self.max_requests = 0
        if options["max_requests"] > 0:
            self.max_requests = options["max_requests"] + random.randint(0, options["max_requests_jitter"])
        self._reopen_requested = False
        self._recycling = False
        self._held = False  # it reached --max-requests while RECYCLING_HELD: the sweep checks again
        self._orphaned = False  # the sweep saw the master gone
        self._pending = None  # "drain" or "stop" asked by a signal
        self._watched = None  # --reload: {path: mtime}
        self._next_watch = 0.0

    def run(self) -> int:
        proctitle.set_title("worker", self.options)
        self._init_signals()
        if not hooks.call(self.options, "post_fork", self.arbiter, self):
            return BOOT_ERROR
        listeners = self._own_listeners()  # as root: --reuse-port binds here (ports < 1024)
        if self.credentials is not None:
            from ..privileges import PrivilegeError

            try:
                self.credentials.drop()
            except PrivilegeError as exc:
                return self._boot_error(f"fastwsgi: error: {exc}\n")
            _die_with_master()  # Linux clears PR_SET_PDEATHSIG when the ids change
        if self.app is None:
            try:
                self.app = self.load_app()
            except Exception as exc:
                from ..cli import load_error_text  # loaded by the master already

                return self._boot_error(load_error_text(exc))
        self.app = hooks.wrap_app(self.app, self.options, self)
        if not hooks.call(self.options, "post_worker_init", self):
            return BOOT_ERROR
        for listener in listeners:
            if listener.reserved:  # ours, bound by _own_listeners: connections come from now on
                listener.listen(self.options["backlog"])
        access_log = self.make_access_log(self.options) if self.make_access_log else None
        self.server = server = Server(self.app, listeners, self.options, access_log=access_log,
                                      multiprocess=True, metrics=self.metrics,
                                      ssl_context=self.ssl_context)
        server.on_sweep = self._on_sweep
        server.signal_when_overdue()
        if self.max_requests:
            server.requests_limit = self.max_requests
            server.on_requests_limit = self._reached_max_requests
        if self.options["timeout"]:  # four beats per --timeout: one late sweep is not a hung loop
            server.sweep_every(self.options["timeout"] / 4)
        if self._pending is not None:  # a signal came while we were booting
            server.stop() if self._pending == "stop" else server.drain()
        if self.options["reload"]:
            self._watched = _file_times(self.options["reload_extra_file"])
            self._next_watch = 0.0
        daemon.started()  # -D: stderr leaves the start-up pipe before the master can see us ready
        os.pwrite(self.heartbeat_fd, READY, 0)
        self._wake_master()
        log.info("Booting worker with pid: %d", os.getpid())
        try:
            server.serve_forever()
        except StopNow as stop:
            log.warning("Worker %d stopping at once: cut %s", os.getpid(), stop.args[0].describe())
        finally:
            server.server_close()
            if access_log is not None:
                access_log.close()
        return 0

    def _boot_error(self, text: str) -> int:
        """Say why this worker cannot serve, and return BOOT_ERROR. On stderr, as the command says it
        (the terminal, a starting daemon's pipe); and, when stderr is not the error log file, in that
        file too (gunicorn logs it there): the master's "Worker failed to boot ... see above" is there."""
        sys.stderr.write(text)
        sys.stderr.flush()
        if logs.stderr_is_elsewhere(self.options):
            log.error("Worker (pid:%d) cannot serve:\n%s", os.getpid(), text.rstrip("\n"))
        return BOOT_ERROR

    def _wake_master(self) -> None:
        """Wake the master now that we are ready, so that it reads our READY mark at once, not at its
        next round (up to a second later): -D's command returns, systemd hears READY=1 and a reload
        retires the old workers that much sooner."""
        try:
            os.write(self.master_fd, WAKEUP)
        except OSError:  # a full pipe wakes it anyway; no master: nobody to wake
            pass

    def _own_listeners(self):
        """Shared sockets as inherited; with --reuse-port, a socket of our own per TCP address the
        master reserved (one it was handed, fd:// or systemd's, stays shared), bound, not listening
        yet (run() listens once the application is loaded). Each keeps its protocol;
        a uwsgi socket takes this generation's --uwsgi-allow-from (HUP rereads it)."""
        own = []
        allow_from = self.options["uwsgi_allow_from"]
        for listener in self.listeners:
            listener.unix_path = None  # the master removes unix socket files, not us
            if listener.reserved:
                host = f"[{listener.host}]" if ":" in listener.host else listener.host
                own.append(open_listener(f"{host}:{listener.port}", self.options["backlog"],
                                         reuse_port=True, listen=False, protocol=listener.protocol,
                                         allow_from=allow_from))
                listener.sock.close()
            else:
                listener.use_protocol(listener.protocol, allow_from)
                own.append(listener)
        return own

    # -- signals ----------------------------------------------------------------------------------

    def _init_signals(self) -> None:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the master's (the Arbiter's SIGNALS), not ours
        # the master's too, and sent to every process of a service by `systemctl kill -s SIG` (and
        # to a whole process group): HUP, USR2 would end a worker, TTIN, TTOU stop it. A handler that
        # does nothing, not SIG_IGN, which processes the application executes would inherit
        for signum in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR2, signal.SIGWINCH):
            signal.signal(signum, _ignore)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_int)
        signal.signal(signal.SIGQUIT, self._on_int)
        signal.signal(signal.SIGUSR1, self._on_usr1)
        signal.signal(signal.SIGABRT, self._on_abort)
        _die_with_master()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)

    def _request(self, how: str) -> None:
        """TERM (drain) or INT/QUIT (stop); before the Server exists it is remembered for later."""
        if self._pending != "stop":
            self._pending = how
        if self.server is not None:
            self.server.stop() if how == "stop" else self.server.drain()

    def _on_term(self, _signum, frame):
        """TERM: drain. Sent again by the drain timer once --graceful-timeout has passed
        (Server.on_overdue): an application still running on the loop thread is then interrupted,
        so the worker logs what it cut and exits before the master's SIGKILL (CUT_MARGIN later)."""
        self._request("drain")
        if self.server is not None and self.server.drain_overdue():
            interrupt_application(frame)

    def _on_int(self, _signum, frame):
        """INT/QUIT: stop now; the worker_int hook runs here, where a stack dump shows the live threads.
        An application running on the loop thread (--threads 0) is interrupted (StopNow), as
        gunicorn's workers exit from this handler: the master would SIGKILL us FAST_STOP later."""
        hooks.call(self.options, "worker_int", self)
        self._request("stop")
        interrupt_application(frame)

    def _on_usr1(self, *_):
        self._reopen_requested = True

    def _on_abort(self, _signum, frame):
        """The master found our heartbeat stale: say which request we were serving and where the loop
        thread was stuck (it then kills us). The report goes after the READY mark, which stays as it is:
        a worker still loading the application has not written it."""
        report = "no request in progress" if self.server is not None else "loading the application"
        for top in [frame, *sys._current_frames().values()]:
            exchange = exchange_on_stack(top)
            if exchange is not None:
                report = exchange.describe()
                break
        stack = "".join(traceback.format_stack(frame, limit=STACK_FRAMES))
        data = f"{report[:1000]}\n{stack}".encode("ascii", "backslashreplace")[:REPORT_SIZE]
        os.pwrite(self.heartbeat_fd, data, len(READY))
        os.ftruncate(self.heartbeat_fd, len(READY) + len(data))
        hooks.call(self.options, "worker_abort", self)

    # -- the sweep hook -----------------------------------------------------------------------------

    def _reached_max_requests(self) -> None:
        """--max-requests: called right after the request that reached it (any thread): drain, once."""
        server = self.server
        server.requests_limit = sys.maxsize
        if os.fstat(self.heartbeat_fd).st_mode & RECYCLING_HELD:
            if not self._held:
                self._held = True
                log.warning("Worker %d reached max requests (%d), but a reload is under way or the "
                            "last one failed: serving on until the code loads again", os.getpid(),
                            self.max_requests)
            return
        self._held = False
        if not self._recycling:
            self._recycling = True
            # --reuse-port: our socket closes as the drain begins, and no queue is shared; if every
            # worker did so before a replacement listens, the port would refuse connections
            own_queue = any(listener.queue_of_its_own for listener in server.listeners)
            if own_queue:
                log.info("Worker %d reached max requests (%d): restarting once the master has a "
                         "replacement ready", os.getpid(), self.max_requests)
            else:
                log.info("Worker %d reached max requests (%d): restarting", os.getpid(), self.max_requests)
                server.drain()
            try:  # one write of a few bytes: atomic on a pipe
                os.write(self.master_fd, RECYCLING + b"%d\n" % os.getpid())
            except OSError as exc:  # the master then replaces this worker once it has exited
                log.error("Worker %d: cannot tell the master it is recycling: %s", os.getpid(), exc)
                if own_queue:  # (nobody would release us)
                    server.drain()

    def _on_sweep(self) -> None:
        os.utime(self.heartbeat_fd)  # the heartbeat: the master compares the mtime with --timeout
        server = self.server
        if self._held:  # the master lifts the mark once the code loads again (a reload, a replacement)
            self._reached_max_requests()
        if self.metrics is not None:
            self.metrics.set_active(len(server.connections))
        if not self._orphaned and os.getppid() != self.master_pid:
            # once: the sweeps of the drain would say it again (on Linux PR_SET_PDEATHSIG's SIGTERM
            # has usually begun the drain already; this line says why)
            self._orphaned = True
            log.warning("Worker %d: the master died; stopping", os.getpid())
            server.drain()
        if self.options["reload"] and self._watched is not None and server.now >= self._next_watch:
            self._next_watch = server.now + 1.0
            changed = _changed(self._watched, _file_times(self.options["reload_extra_file"]))
            if changed:
                log.info("Worker %d: %s changed; asking the master to reload", os.getpid(), changed)
                self._watched = None  # once: this generation is about to be replaced
                try:
                    os.write(self.master_fd, RELOAD_REQUEST)
                except OSError as exc:
                    log.error("Worker %d: cannot ask the master to reload: %s", os.getpid(), exc)
        if self._reopen_requested:
            self._reopen_requested = False
            if self.reopen_logs is not None:
                self.reopen_logs()
            if server.access_log is not None:
                try:
                    server.access_log.reopen()
                except OSError as exc:  # it keeps writing to the file it has
                    log.error("Worker %d: cannot reopen the access log: %s", os.getpid(),
                              exc.strerror or exc)


def _ignore(_signum, _frame) -> None:
    """The master's signals, in a worker (see _init_signals)."""


def _file_times(extra_files) -> dict:
    """{path: mtime} of every loaded module's source file and the extra files (missing: None)."""
    paths = {getattr(module, "__file__", None) for module in list(sys.modules.values())}
    paths.discard(None)
    paths.update(extra_files)
    times = {}
    for path in paths:
        try:
            times[path] = os.stat(path).st_mtime
        except OSError:
            times[path] = None
    return times


def _changed(before: dict, now: dict):
    """The first path whose mtime differs (new modules imported since are not a change), or None."""
    for path, mtime in before.items():
        if now.get(path) != mtime:
            return path
    return None


def _die_with_master() -> None:
    """Ask Linux to send us SIGTERM (a graceful drain) if the master dies (PR_SET_PDEATHSIG); the sweep
    also checks getppid(), which covers other systems and a master that died before this call."""
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
