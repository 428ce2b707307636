"""The pre-fork master: it only spawns, reaps and signals workers (gunicorn's arbiter design).

Theory of operation: the master binds the listening sockets (or adopts fd://N and systemd's); `run()`
installs its signal handlers (and queues the HUP, USR1, USR2, TTIN and TTOU that came before, while
--preload imported the application say: the command held them, fastwsgi.cli.HeldSignals), calls
`on_ready` (the command writes --pid and announces the sockets there, so a signal sent the moment
they are known is handled), forks `num_workers` children that run
`worker.Worker`, and then loops: signal handlers only append the signal to `sig_queue` and write a
byte to a self-pipe; the loop pops one signal and dispatches it to `handle_<name>`, or, when none is
queued, sleeps on the pipe (at most 1 s) and then does its rounds: `reap` (waitpid), `murder_workers`
(heartbeat timeouts and overdue graceful stops), `finish_reload` and `manage_workers` (spawn up to
the target count; retire the oldest above it).

Heartbeat: each worker gets an unlinked temporary file; the worker sets its mtime from its event loop's
sweep, and writes "ready" into it once the application is loaded and it serves. A worker whose mtime is
older than --timeout gets SIGABRT (its handler writes the request it is serving and the stack of its
loop thread into the file), and SIGKILL about half a second later; the master logs both and a
replacement is spawned.

Signals (gunicorn's meanings):
  TERM  graceful: workers get TERM (stop accepting, finish in-flight requests, close keep-alive
        connections once idle for a second, and at --graceful-timeout cut what is left: server/loop.py);
        those still alive CUT_MARGIN after --graceful-timeout get SIGKILL; exit 0.
  INT, QUIT  fast: workers get INT (stop now), SIGKILL after 2 s; also during a graceful stop.
  HUP   reload: re-read the options (`reload_options`, which also applies --env, --pythonpath and
        --chdir to this process, so the new workers inherit them, and the error log's options are
        applied again; an error log or access log that cannot be opened stays as it was; the
        sockets and --pid stay), start
        a new set of workers (fresh application code unless --preload), and only when all of them are
        ready send TERM to the old ones, so the shared sockets are never without an accepting process
        and no request is refused (the old ones go anyway once --timeout passed, unless no new
        worker is ready then: a failed reload). A HUP during a reload starts another one when it ends (the code
        may have changed since the first began); TTIN/TTOU during a reload change the size of the new
        generation.
  TTIN / TTOU  one worker more / less (never below 1).
  USR1  reopen log files (the master's, then, once --user's user owns them again, every worker's
        via USR1).
  USR2  binary upgrade: --pid FILE becomes FILE.oldbin and a new master is executed on the same
        sockets (fastwsgi.workers.upgrade, which also says what is refused).
  WINCH while that new master runs: stop our workers gracefully (num_workers 0), those of a reload
        under way too (it is given up, whatever its new code does); we stay, to roll
        back: HUP starts workers again, and so does the new master's exit (FILE is renamed back).
        With --reuse-port, only once the new master said it serves (SERVING in the wakeup pipe).
  CHLD  reap at once (the new master too: its exit is a roll-back).

--user (fastwsgi.privileges): the master keeps its ids; `credentials` (recomputed by a HUP) is what
each new worker switches to; `_give_files` hands the unix sockets and log files to that user at
start, after a HUP and after USR1's reopen; each heartbeat file is handed over before the fork. Every worker
keeps the wakeup pipe's write end: it writes a wakeup byte once ready (so the rounds see it at once,
not up to a second later), a --reload worker asks for a reload by writing RELOAD_REQUEST there, and a
worker that reached --max-requests writes RECYCLING and its pid there, and the master starts its
replacement at once (the old one drains meanwhile; its exit then counts as a restart, as before).

systemd (fastwsgi.sdnotify, a no-op without NOTIFY_SOCKET): READY=1 once the first workers are all
ready (checked in each round, as -D's start-up is), RELOADING=1 when a HUP begins a reload and READY=1
when it ends however it ends, STOPPING=1 in `stop()`, WATCHDOG=1 from the rounds (they come at least
every half watchdog interval); across a USR2 upgrade, MAINPID= moves the service to the new master
once it serves and back to the old one if it exits first (sdnotify's docstring).

Server hooks (fastwsgi.hooks): the Arbiter is their `server`; on_starting and when_ready run in
`run()` (an exception halts with status 1), nworkers_changed from the `num_workers` setter, pre_fork
before each fork (an exception halts), child_exit for each reaped worker, on_reload in `handle_hup`,
on_exit when `run()` ends; the other hooks run in the worker.

A worker that ends on its own before it is ready (the application raised while loading: exit status
BOOT_ERROR; or it exited, or a signal other than SIGKILL ended it, while loading) is a failed boot:
during a reload the old workers keep serving; otherwise the master stops with status 1 ("Worker failed
to boot", as gunicorn), instead of respawning a worker that dies as fast as it is forked. After a failed
reload the code on disk is the broken one, so a replacement for an old worker (a crash, TTIN) fails the
same way: the master keeps serving with the workers left and retries every BOOT_RETRY seconds until a
HUP brings fixed code, or a retried replacement loads it (the failure was passing, or the code was
fixed without a HUP). From a HUP until its new code has loaded, and while it is broken, a worker
reaching --max-requests serves on (RECYCLING_HELD, worker.py): its replacement could not load.
With --reuse-port a worker reaching --max-requests serves on until the master sends it TERM, once
more workers are ready than the target (`manage_workers`; worker.py says why). A worker that was
ready is never a failed boot, whatever its status (an application may exit with 3 too).

The fork itself may fail (EAGAIN: a process limit; ENOMEM), as may making a heartbeat file: before
the first workers serve that halts; later the workers left serve on and the spawn is retried every
BOOT_RETRY seconds.
"""

import logging
import os
import re
import select
import signal
import tempfile
import time

from .. import daemon, hooks, logs, privileges, sdnotify
from . import upgrade
from .worker import BOOT_ERROR, READY, RECYCLING, RECYCLING_HELD, RELOAD_REQUEST, REPORT_SIZE, WORKER_SIGNALS, Worker

__all__ = ["Arbiter"]

log = logging.getLogger("fastwsgi")

_RECYCLING_MESSAGE = re.compile(re.escape(RECYCLING) + rb"(\d+)\n")  # worker.py
PROBE_GRACE = 0.5  # seconds between SIGABRT (report your request) and SIGKILL for a timed-out worker
FAST_STOP = 2.0  # seconds workers get after INT/QUIT before SIGKILL
# seconds past --graceful-timeout before a retiring worker gets SIGKILL: at the timeout the worker
# cuts what it still serves itself and logs it (server/loop.py); the kill is for one that cannot
CUT_MARGIN = 0.5
BOOT_RETRY = 5.0  # seconds between tries to replace a worker while the code on disk cannot load
RELOAD_WAIT = 30.0  # with --timeout 0: seconds a HUP's new workers have to become ready
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def _exit_text(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"


class HaltServer(Exception):
    def __init__(self, reason: str = "", status: int = 0):
        super().__init__(reason)
        self.reason, self.status = reason, status


class WorkerProcess:
    """The master's record of one child (the `worker` of pre_fork and child_exit: pid, age, log, cfg)."""

    __slots__ = ("pid", "age", "heartbeat", "slot", "booted", "retiring_since", "recycling", "released",
                 "probed_at", "killed", "cfg")
    log = log

    def __init__(self, pid, age: int, heartbeat, slot: int, cfg=None):
        self.pid, self.age, self.heartbeat, self.slot, self.cfg = pid, age, heartbeat, slot, cfg
        self.booted = False
        self.retiring_since = None  # TERM sent at this time
        self.recycling = False  # it reached --max-requests and drains (or, --reuse-port, serves on
        # until released): its replacement is started
        self.released = False  # --reuse-port: it serves on while recycling, until this TERM (worker.py)
        self.probed_at = None  # SIGABRT sent at this time (heartbeat timeout)
        self.killed = False

    def ready(self) -> bool:
        if not self.booted:
            self.booted = os.pread(self.heartbeat.fileno(), len(READY), 0) == READY
        return self.booted

    def silent_for(self, now: float) -> float:
        return now - os.fstat(self.heartbeat.fileno()).st_mtime

    def report(self) -> tuple:
        """(what it was doing, the stack of its loop thread) as its SIGABRT handler wrote them."""
        data = os.pread(self.heartbeat.fileno(), REPORT_SIZE, len(READY)).decode("ascii", "replace")
        doing, _, stack = data.partition("\n")
        return doing or "no report (stuck outside Python code?)", stack


class Arbiter(hooks.HookArgument):
    """Also the `server` argument of the hooks: pid, num_workers, log, cfg."""

    SIGNALS = {getattr(signal, f"SIG{name}"): name.lower()
               for name in ("HUP", "QUIT", "INT", "TERM", "TTIN", "TTOU", "USR1", "USR2", "WINCH", "CHLD")}

    def __init__(self, listeners, options: dict, load_app, app=None, reload_options=None,
                 reopen_logs=None, make_access_log=None, metrics=None, metrics_listener=None,
                 on_ready=None, ssl_context=None, pidfile=None, reexec=None, upgraded_from=None,
                 upgrade_notify=None, held_signals=None):
        self.listeners = list(listeners)
        self.options = options
        self._num_workers = options["workers"] or 1
        self.load_app = load_app
        self.app = app  # preloaded, or None: each worker imports it
        self.reload_options = reload_options
        self.reopen_logs = reopen_logs
        self.make_access_log = make_access_log
        self.metrics = metrics  # SharedMetrics, or None
        self.metrics_listener = metrics_listener  # the master answers scrapes on it
        self.on_ready = on_ready  # called once the signal handlers are set (--pid, "Listening at")
        self.ssl_context = ssl_context  # TLS: built here, inherited by every worker forked
        self.credentials = privileges.credentials(options)  # --user: what the workers switch to
        self.stopping = False
        self.workers = {}  # pid -> WorkerProcess
        self.sig_queue = []
        self.age = 0
        self.reload_from = None  # pids of the generation a HUP replaces, until the new one is ready
        self.reload_again = False  # a HUP came during a reload: the code may have changed since
        self.reload_failed = False  # the last reload's code could not load (until it loads again)
        self.failed_at_age = 0  # the age of the last worker forked before that reload failed
        self.spawn_after = 0.0  # meanwhile, a replacement that failed the same way is retried then
        self.reload_wait = RELOAD_WAIT
        self.reload_deadline = 0.0
        self.serving = False  # the first workers were all ready once (-D's command, systemd told)
        self.pidfile = pidfile  # --pid's PidFile: FILE.oldbin while a new master runs (USR2)
        self.reexec = reexec  # (argv, environ, directory) of the command that started us; None: serve()
        self.upgrade_pid = None  # the new master USR2 started, while it runs
        self.upgrade_serving = False  # ... and it said that its first workers are all ready
        self.upgraded_from = upgraded_from  # the old master's pid, if USR2 started us
        self.upgrade_notify = upgrade_notify  # where we tell it that we serve (upgrade.tell_serving)
        self.held_signals = held_signals  # () -> the signals that came before run() set its handlers
        self.pid = os.getpid()

    @property
    def num_workers(self) -> int:
        return self._num_workers

    @num_workers.setter
    def num_workers(self, value: int) -> None:
        old, self._num_workers = self._num_workers, value
        hooks.call(self.options, "nworkers_changed", self, value, old)

    # -- main loop ----------------------------------------------------------------------------------

    def run(self) -> int:
        # os.pipe, not pipe2 (Linux and the BSDs only, not macOS): it is close-on-exec already (PEP 446)
        self._pipe_r, self._pipe_w = os.pipe()
        os.set_blocking(self._pipe_r, False)
        os.set_blocking(self._pipe_w, False)
        previous = {signum: signal.signal(signum, self._enqueue) for signum in self.SIGNALS}
        for signum in self.held_signals() if self.held_signals is not None else ():
            self._enqueue(signum, None)  # (came during a --preload import, say): handled first
        log.info("Master %d: %d worker(s), timeout %s s", self.pid, self.num_workers,
                 self.options["timeout"])
        status = 0
        started = False
        try:
            self._give_files()
            self._halting_hook("on_starting", self)
            started = True
            hooks.call(self.options, "nworkers_changed", self, self._num_workers, None)
            if self.on_ready is not None:
                self.on_ready()
            self._halting_hook("when_ready", self)
            self.manage_workers()
            while True:
                signum = self.sig_queue.pop(0) if self.sig_queue else None
                if signum is None:
                    self.sleep()
                    self.reap()
                    self.murder_workers()
                    self.finish_reload()
                    self._check_code_loads()
                    self.manage_workers()
                    sdnotify.watchdog()
                    if not self.serving and self.workers and all(w.ready() for w in self.workers.values()):
                        self.serving = True
                        daemon.started()  # -D: every first worker serves; the command returns 0
                        # a new master (USR2) takes the service over from the old one (sdnotify)
                        sdnotify.ready(self._status(), os.getpid() if self.old_master_alive() else 0)
                        if self.upgrade_notify is not None:  # ... whose WINCH waits for this
                            upgrade.tell_serving(self.upgrade_notify)
                            self.upgrade_notify = None
                    continue
                name = self.SIGNALS[signum]
                if name != "chld":
                    log.info("Handling signal: %s", name)
                getattr(self, f"handle_{name}")()
        except HaltServer as halt:
            if halt.reason:
                log.error("%s", halt.reason)
            status = halt.status
        except KeyboardInterrupt:
            self.stop(graceful=False)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            os.close(self._pipe_r)
            os.close(self._pipe_w)
            for listener in self.listeners:
                listener.close(unlink=not self.sockets_shared())
            if self.metrics_listener is not None:
                self.metrics_listener.close()
            if started and not hooks.call(self.options, "on_exit", self):
                status = status or 1
        return status

    def _status(self, state: str = "serving") -> str:
        """systemd's STATUS= line."""
        return f"{state}, {self.num_workers} worker(s)"

    def _halting_hook(self, name: str, *args) -> None:
        """Run a hook whose exception stops the master (on_starting, when_ready, pre_fork)."""
        try:
            hooks.call(self.options, name, *args, fatal=True)
        except hooks.HookError as exc:
            self.stop(graceful=False)  # any workers (none before the first fork) stop at once
            raise HaltServer(str(exc), 1) from None

    def _enqueue(self, signum, _frame) -> None:
        # at most 5 queued (gunicorn's bound: a signal storm is not replayed), but one queued CHLD
        # reaps every child that ended, and a stop is never dropped (CHLDs of workers dying at boot
        # filled the queue, and a TERM then was lost)
        if signum == signal.SIGCHLD and signum in self.sig_queue:
            pass
        elif len(self.sig_queue) < 5 or signum in STOP_SIGNALS:
            self.sig_queue.append(signum)
        try:
            os.write(self._pipe_w, b".")
        except OSError:
            pass

    def sleep(self) -> None:
        timeout = self.options["timeout"]
        wait = min(1.0, timeout / 4) if timeout else 1.0
        if any(w.probed_at is not None for w in self.workers.values()):
            wait = min(wait, PROBE_GRACE / 2)
        if sdnotify.watchdog_interval():
            wait = min(wait, sdnotify.watchdog_interval() / 2)
        watched = [self._pipe_r]
        if self.metrics_listener is not None:
            watched.append(self.metrics_listener.sock)
        try:
            ready, _, _ = select.select(watched, [], [], wait)
        except InterruptedError:
            ready = []
        if self._pipe_r in ready:
            data = self._read_wakeups()
            if RELOAD_REQUEST in data and signal.SIGHUP not in self.sig_queue:
                self.sig_queue.append(signal.SIGHUP)  # a --reload worker saw a change
            if upgrade.SERVING in data and self.upgrade_pid is not None and not self.upgrade_serving:
                self.upgrade_serving = True
                log.info("The new master (pid:%d) serves", self.upgrade_pid)
            for pid in _RECYCLING_MESSAGE.findall(data):
                worker = self.workers.get(int(pid))
                if worker is not None:
                    worker.recycling = True  # manage_workers starts its replacement
        if self.metrics_listener is not None and self.metrics_listener.sock in ready:
            from ..metrics import serve_scrape

            self.metrics.workers = len(self.workers)
            serve_scrape(self.metrics_listener.sock,
                         lambda: self.metrics.render([w.slot for w in self.workers.values()]))

    def _read_wakeups(self) -> bytes:
        """Everything waiting in the wakeup pipe: a "." per signal, and the workers' messages."""
        data = b""
        try:
            while chunk := os.read(self._pipe_r, 4096):
                data += chunk
        except (BlockingIOError, InterruptedError):
            pass
        return data

    # -- signals ----------------------------------------------------------------------------------------

    def handle_chld(self) -> None:
        self.reap()

    def handle_term(self) -> None:
        self.stop(graceful=True)
        raise HaltServer()

    def handle_int(self) -> None:
        self.stop(graceful=False)
        raise HaltServer()

    handle_quit = handle_int

    def handle_hup(self) -> None:
        if self.reload_from is not None:
            log.info("A reload is in progress: another one will follow it")
            self.reload_again = True
            return
        sdnotify.reloading()
        if self.reload_options is not None:
            try:
                options = self.reload_options()
                credentials = privileges.credentials(options)
            except Exception as exc:  # a broken config file: keep running as we are
                log.error("Reload aborted: %s", exc)
                sdnotify.ready(self._status())
                return
            if credentials is not None:  # a HUP that adds --user: before the log files are opened
                privileges.guard_log_files()
            options["bind"] = self.options["bind"]  # the sockets stay (they are bound already)
            if options["reuse_port"] != self.options["reuse_port"]:  # ... and so does how: shared,
                # or reserved for workers that open their own (they would fail with EADDRINUSE)
                log.warning("Reload: --reuse-port cannot change without a restart; keeping %s",
                            self.options["reuse_port"])
                options["reuse_port"] = self.options["reuse_port"]
            if any(options[key] != self.options[key] for key in logs.LOGGING_OPTIONS):
                try:  # (gunicorn's reload builds its logger again from the reread config too)
                    logs.configure(options, replace=True)
                except logs.LogConfigError as exc:
                    log.error("Reload: the error log stays as it was: %s", exc)
                    for key in logs.LOGGING_OPTIONS:  # as applied: a later HUP tries the new ones again
                        options[key] = self.options[key]
            try:  # each new worker opens it: one that cannot would fail to boot, the reload with it
                logs.check_access_log(options)
            except logs.LogConfigError as exc:
                log.error("Reload: the access log stays as it was: %s", exc)
                for key in ("access_logfile", "access_logformat"):
                    options[key] = self.options[key]
            self.options = options
            self.credentials = credentials
            self.num_workers = options["workers"] or 1
            self._give_files()
        self._restore_workers()  # after WINCH (an upgrade), a HUP is the roll-back
        self._reload_tls()
        hooks.call(self.options, "on_reload", self)
        log.info("Reloading: starting %d new worker(s)", self.num_workers)
        self.spawn_after = 0.0
        self.reload_from = {pid for pid, w in self.workers.items() if w.retiring_since is None}
        # until the new code has loaded, an old worker reaching --max-requests serves on: should the
        # reload fail, its replacement could not load either (and during it none is started)
        self._hold_recycling(self.reload_from, True)
        # a worker still loading after --timeout is killed anyway (murder_workers)
        self.reload_wait = self.options["timeout"] or RELOAD_WAIT
        self.reload_deadline = time.monotonic() + self.reload_wait
        self.manage_workers()

    def _reload_tls(self) -> None:
        """Read the certificate files again for the new workers (a renewed certificate); if they do
        not load, the new workers keep the context the old ones have."""
        from ..server.tls import TLSError, make_context

        try:
            context = make_context(self.options)
        except TLSError as exc:
            log.error("Reload: keeping the previous TLS certificate: %s", exc)
            return
        self.ssl_context = context

    def handle_ttin(self) -> None:
        self.num_workers += 1
        self.manage_workers()

    def handle_ttou(self) -> None:
        if self.num_workers > 1:
            self.num_workers -= 1
        self.manage_workers()

    def handle_usr1(self) -> None:
        if self.reopen_logs is not None:
            self.reopen_logs()
        self._give_files()  # a file logrotate moved away was created again just now, by root
        self.signal_all(signal.SIGUSR1)

    def handle_usr2(self) -> None:
        """Start a new master from the command that started this one, on the same sockets
        (fastwsgi.workers.upgrade)."""
        refusal = None
        if self.reexec is None:
            refusal = "fastwsgi.serve() serves an object of this process: there is no command to run again"
        elif self.upgrade_pid is not None:
            refusal = f"the new master (pid:{self.upgrade_pid}) still runs"
        elif self.old_master_alive():
            refusal = f"the old master (pid:{self.upgraded_from}) still runs: stop it first (TERM)"
        if refusal is not None:
            log.warning("USR2 ignored: %s", refusal)
            return
        if self.pidfile is not None:
            self.pidfile.rename(self.pidfile.path + ".oldbin")
        command, environ, directory = self.reexec
        environ = {**environ, **sdnotify.handover()}  # the new master is to become systemd's main process
        self.upgrade_serving = False
        try:
            self.upgrade_pid = upgrade.reexec(command, environ, directory, self.listeners,
                                              self.metrics_listener,
                                              lambda: hooks.call(self.options, "pre_exec", self), self._pipe_w)
        except OSError as exc:  # fork: EAGAIN (a pids limit), ENOMEM; we serve on as we were
            log.error("USR2 failed: cannot start the new master: %s", exc.strerror or exc)
            self._pidfile_back()
            return
        log.info("Upgrading: new master (pid:%d) started on the same sockets; WINCH stops this "
                 "master's workers, TERM stops this master", self.upgrade_pid)

    def handle_winch(self) -> None:
        if self.upgrade_pid is None:  # (gunicorn: only when daemonized) here: only beside a new master
            log.warning("WINCH ignored: it stops the workers while a new master (USR2) serves")
            return
        reserved = [listener for listener in self.listeners if listener.reserved]
        if reserved and not self.upgrade_serving:  # (upgrade.py: nothing would listen meanwhile)
            log.warning("WINCH ignored: the new master (pid:%d) does not serve yet, and with --reuse-port "
                        "nothing would accept on %s meanwhile", self.upgrade_pid, reserved[0].url)
            return
        log.info("Stopping this master's workers gracefully: the new master (pid:%d) serves",
                 self.upgrade_pid)
        if self.reload_from is not None:  # (a HUP's roll-back under way): no worker is wanted now,
            # of either generation, whatever the new code does (a failed reload used to bring the
            # old generation's count back)
            log.info("The reload under way is given up: WINCH stops every worker")
            self.reload_from = None
            self.reload_again = False
            sdnotify.ready(self._status())
        self.num_workers = 0
        self.manage_workers()

    def _upgrade_ended(self, status: int) -> None:
        """The new master exited while we run: we are the master again (a roll-back)."""
        log.warning("The new master (pid:%d) exited (%s): this master serves on", self.upgrade_pid,
                    _exit_text(status))
        self.upgrade_pid = None
        sdnotify.main_pid(os.getpid())  # (the new master said so before it exited, unless it was killed)
        self._pidfile_back()
        if not self.stopping:
            self._restore_workers()

    def _pidfile_back(self) -> None:
        """FILE.oldbin becomes FILE again: no new master runs."""
        if self.pidfile is not None and self.pidfile.path.endswith(".oldbin"):
            self.pidfile.rename(self.pidfile.path[:-len(".oldbin")])

    def _restore_workers(self) -> None:
        """WINCH stopped our workers (num_workers 0): back to the configured count."""
        if self.num_workers == 0:
            self.num_workers = self.options["workers"] or 1

    def old_master_alive(self) -> bool:
        """USR2 started us and the master that did still runs (it is our parent until it exits)."""
        return self.upgraded_from is not None and os.getppid() == self.upgraded_from

    def sockets_shared(self) -> bool:
        """Another master listens on our sockets (a UNIX socket's file must stay)."""
        return self.upgrade_pid is not None or self.old_master_alive()

    def _give_files(self) -> None:
        """--user: the unix sockets and log files go to the workers' user (fastwsgi.privileges)."""
        if self.credentials is not None:
            privileges.give(self.credentials, logs.log_files(self.options),
                            [listener.unix_path for listener in self.listeners if listener.unix_path])

    # -- workers ------------------------------------------------------------------------------------------

    def spawn_worker(self) -> bool:
        """Fork a worker; False when its heartbeat file cannot be made (a full disk, no descriptor
        left, --worker-tmp-dir removed) or the fork fails (EAGAIN: a process limit; ENOMEM): at start
        that halts, later the workers left serve on and the spawn is tried again BOOT_RETRY seconds
        later."""
        try:
            heartbeat = tempfile.TemporaryFile(prefix="fastwsgi-heartbeat-", dir=self.options["worker_tmp_dir"])
        except OSError as exc:
            where = self.options["worker_tmp_dir"] or tempfile.gettempdir()
            return self._spawn_failed(f"no heartbeat file in {where}: {exc.strerror or exc}")
        self.age += 1
        if self.credentials is not None:  # the worker sets its mtime once it is USER
            os.fchown(heartbeat.fileno(), self.credentials.uid, self.credentials.gid)
        if self.reload_failed:
            self._mark_heartbeat(heartbeat, True)
        slot = self.metrics.free_slot({w.slot for w in self.workers.values()}) if self.metrics else -1
        record = WorkerProcess(None, self.age, heartbeat, slot, self.cfg)
        try:
            self._halting_hook("pre_fork", self, record)
        except HaltServer:
            heartbeat.close()
            raise
        # signals meant for the new worker wait (blocked) until it has installed its own handlers
        signal.pthread_sigmask(signal.SIG_BLOCK, WORKER_SIGNALS)
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)
            heartbeat.close()
            return self._spawn_failed(f"fork failed: {exc.strerror or exc}")
        if pid:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)
            record.pid = pid
            self.workers[pid] = record
            return True
        status = 1  # the child: never return into the master's code
        worker = None
        try:
            os.close(self._pipe_r)
            for other in self.workers.values():
                other.heartbeat.close()
            if self.metrics_listener is not None:
                self.metrics_listener.sock.close()
                self.metrics.slot = slot
            worker = Worker(self.age, self.pid, self.listeners, self.options, heartbeat.fileno(),
                            self.load_app, self.app, self.reopen_logs, self.make_access_log,
                            self.metrics, self.ssl_context, server=self, credentials=self.credentials,
                            master_fd=self._pipe_w)  # ready, RECYCLING and RELOAD_REQUEST go there
            status = worker.run()
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            log.exception("Worker %d crashed", os.getpid())
        finally:
            try:
                if worker is not None:
                    hooks.call(worker.options, "worker_exit", self, worker)
                logging.shutdown()
            finally:
                os._exit(status)

    def _spawn_failed(self, reason: str) -> bool:
        if not self.serving:
            self.stop(graceful=False)
            raise HaltServer(f"Cannot start a worker: {reason}", 1)
        log.error("Cannot start a worker: %s; retrying in %g s", reason, BOOT_RETRY)
        self.spawn_after = time.monotonic() + BOOT_RETRY
        return False

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                return
            if pid == self.upgrade_pid:
                self._upgrade_ended(status)
                continue
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            loaded = worker.ready()  # read before its heartbeat file goes
            worker.heartbeat.close()
            hooks.call(self.options, "child_exit", self, worker)
            retired = worker.retiring_since is not None or self.stopping  # TTOU, a reload, a stop
            if self.metrics is not None:  # a restart: it ended unasked (or timed out) and is replaced
                self.metrics.retire(worker.slot, replaced=not retired)
            code = os.waitstatus_to_exitcode(status)
            asked = retired or worker.killed
            booting_failed = code == BOOT_ERROR and not loaded  # (a serving worker may exit with 3 too)
            if booting_failed:
                if asked:  # the rest of a failed reload, a stopping master: its error is on stderr
                    continue
            elif code < 0 and not worker.killed:
                log.error("Worker (pid:%d) was killed by signal %s%s", pid, signal.Signals(-code).name,
                          "" if loaded else " while loading the application")
            elif code > 0:
                log.error("Worker (pid:%d) exited with code %d%s", pid, code,
                          "" if loaded else " while loading the application")
            elif not asked:
                log.info("Worker (pid:%d) exited%s", pid, "" if loaded else " while loading the application")
            # a worker that ended on its own before serving would do so again in its replacement:
            # respawning it forks as fast as it dies, at 100% CPU and a log line each time (SIGKILL
            # is from outside: the OOM killer, an operator)
            if booting_failed or not (loaded or asked or code == -signal.SIGKILL):
                self._boot_failed(worker)

    def _boot_failed(self, worker) -> None:
        if self.reload_from is not None:  # the new code is broken: keep serving with the old workers
            log.error("Reload failed: worker (pid:%d) could not load the application (or its "
                      "post_fork/post_worker_init hook raised)", worker.pid)
            for pid, other in self.workers.items():
                if pid not in self.reload_from and other.retiring_since is None:
                    self.retire(other)  # one that did load may be serving: let it finish
            self._abandon_reload()
            return
        if self.reload_failed:  # the code on disk is the broken one: the workers left keep serving
            self.spawn_after = time.monotonic() + BOOT_RETRY
            log.error("Worker (pid:%d) could not load the application, broken since the last reload "
                      "failed: retrying in %g s (send HUP once the code is fixed)", worker.pid, BOOT_RETRY)
            return
        self.stop(graceful=False)
        raise HaltServer("Worker failed to boot: the application could not be loaded (or a "
                         "post_fork/post_worker_init hook raised: see above)", 1)

    def murder_workers(self) -> None:
        timeout = self.options["timeout"]
        now_wall, now = time.time(), time.monotonic()
        for worker in list(self.workers.values()):
            if worker.killed:
                continue
            if worker.retiring_since is not None:
                if now - worker.retiring_since > self.options["graceful_timeout"] + CUT_MARGIN:
                    log.warning("Worker (pid:%d) did not finish within the graceful timeout: SIGKILL",
                                worker.pid)
                    self.kill(worker, signal.SIGKILL)
                continue
            if not timeout:
                continue
            if worker.probed_at is not None:
                if now - worker.probed_at >= PROBE_GRACE:
                    doing, stack = worker.report()
                    if worker.ready():
                        what = f"event loop silent for more than {timeout} s while serving: {doing}"
                    else:
                        what = f"still loading the application after more than {timeout} s (see --timeout)"
                    if stack:
                        stack = "\nStack of the stuck thread (innermost last):\n" + stack.rstrip("\n")
                    log.error("WORKER TIMEOUT (pid:%d): %s; killed with SIGKILL%s", worker.pid, what, stack)
                    self.kill(worker, signal.SIGKILL)
            elif worker.silent_for(now_wall) > timeout:
                worker.probed_at = now
                self.kill(worker, signal.SIGABRT, mark=False)

    def manage_workers(self) -> None:
        # a replacement that could not load the broken code is not forked again at once (retiring
        # goes on meanwhile: a WINCH or TTOU is not put off)
        spawning = time.monotonic() >= self.spawn_after
        live = [w for w in self.workers.values() if w.retiring_since is None and not w.killed]
        active = sorted((w for w in live if not w.recycling), key=lambda w: w.age)
        if self.reload_from is not None:
            # the new generation grows to the target (TTIN, a death); finish_reload retires the old one
            active = [w for w in active if w.pid not in self.reload_from]
            for _ in range(self.num_workers - len(active) if spawning else 0):
                if not self.spawn_worker():
                    break
            return
        # a worker recycling after --max-requests is replaced as its drain begins, while the processes
        # serving or draining stay within twice the target (a low --max-requests piles up no drains)
        wanted = min(self.num_workers - len(active), 2 * self.num_workers - len(live))
        for _ in range(wanted if spawning else 0):
            if not self.spawn_worker():
                break
        for worker in active[:max(0, len(active) - self.num_workers)]:  # the oldest go first
            self.retire(worker)
        if any(listener.reserved for listener in self.listeners):
            # --reuse-port: a recycling worker serves on until enough others are ready (the oldest
            # go first; its replacement may be recycling already, with a low --max-requests)
            serving = sorted((w for w in live if not w.released and w.ready()), key=lambda w: w.age)
            held = [w for w in serving if w.recycling]
            for worker in held[:max(0, len(serving) - self.num_workers)]:
                worker.released = True
                self.kill(worker, signal.SIGTERM, mark=False)  # (its exit still counts as a restart)

    def finish_reload(self) -> None:
        if self.reload_from is None:
            return
        new = [w for pid, w in self.workers.items() if pid not in self.reload_from and not w.killed]
        ready = sum(1 for w in new if w.ready())
        if ready < self.num_workers and time.monotonic() < self.reload_deadline:
            return
        if not ready:  # the new code hangs while loading: the old workers keep serving
            log.error("Reload failed: no new worker was ready within %g s (the application hangs "
                      "while loading?); killing them, the old workers keep serving", self.reload_wait)
            for worker in new:
                self.kill(worker, signal.SIGKILL)
            self._abandon_reload()
            return
        if ready < self.num_workers:
            log.warning("Reload: only %d of %d new workers ready in time", ready, self.num_workers)
        for pid in self.reload_from:
            worker = self.workers.get(pid)
            if worker is not None and worker.retiring_since is None:
                self.retire(worker)
        self.reload_from = None
        self._set_reload_failed(False)
        log.info("Reload complete")
        sdnotify.ready(self._status())
        self._reload_again()

    def _abandon_reload(self) -> None:
        """The new code cannot serve: the old generation stays, and so does the code on disk (see
        _boot_failed)."""
        self.num_workers = len(self.reload_from)
        self.reload_from = None
        self._set_reload_failed(True)
        sdnotify.ready(self._status("serving; the last reload failed"))
        self._reload_again()  # a later HUP may bring fixed code

    def _set_reload_failed(self, failed: bool) -> None:
        """While the code on disk cannot load, workers reaching --max-requests serve on (worker.py)."""
        self.reload_failed = failed
        self.failed_at_age = self.age  # a worker forked after this that becomes ready loads the code
        self._hold_recycling(self.workers, failed)

    def _hold_recycling(self, pids, held: bool) -> None:
        for pid in pids:
            self._mark_heartbeat(self.workers[pid].heartbeat, held)

    def _mark_heartbeat(self, heartbeat, held: bool) -> None:
        try:  # (best effort: a worker that misses the mark recycles, as it would without a reload)
            os.fchmod(heartbeat.fileno(), 0o600 | (RECYCLING_HELD if held else 0))
        except OSError as exc:
            log.warning("Cannot mark a worker's heartbeat file: %s", exc.strerror or exc)

    def _check_code_loads(self) -> None:
        """After a failed reload: a worker forked since then that became ready (a replacement retried
        once the code on disk was fixed) shows the code loads again: workers recycle again."""
        if self.reload_failed and self.reload_from is None and any(
                w.age > self.failed_at_age and w.ready() for w in self.workers.values()):
            log.info("A new worker loaded the application: workers recycle after --max-requests again")
            self._set_reload_failed(False)

    def _reload_again(self) -> None:
        if self.reload_again:
            self.reload_again = False
            self.handle_hup()

    def retire(self, worker) -> None:
        worker.retiring_since = time.monotonic()
        self.kill(worker, signal.SIGTERM, mark=False)

    def kill(self, worker, signum, mark: bool = True) -> None:
        if mark and signum == signal.SIGKILL:
            worker.killed = True
        try:
            os.kill(worker.pid, signum)
        except ProcessLookupError:
            pass

    def signal_all(self, signum) -> None:
        for worker in list(self.workers.values()):
            self.kill(worker, signum, mark=False)

    def stop(self, graceful: bool = True) -> None:
        """Stop every worker (TERM and wait up to graceful_timeout, or INT and wait FAST_STOP), then
        SIGKILL what is left and reap it."""
        self.stopping = True
        if self.old_master_alive():  # a roll-back: the old master is the service again
            sdnotify.main_pid(self.upgraded_from)
        elif self.upgrade_pid is None:  # (beside a new master, our exit is not the service's)
            sdnotify.stopping()
        for listener in self.listeners:  # no new connections queue up behind us
            listener.close(unlink=not self.sockets_shared())
        self.listeners = []
        self.signal_all(signal.SIGTERM if graceful else signal.SIGINT)
        limit = time.monotonic() + (self.options["graceful_timeout"] + CUT_MARGIN if graceful else FAST_STOP)
        while self.workers and time.monotonic() < limit:
            self.reap()
            if graceful and {signal.SIGINT, signal.SIGQUIT} & set(self.sig_queue):
                log.info("Handling signal: %s during the graceful stop: stopping now",
                         "int" if signal.SIGINT in self.sig_queue else "quit")
                graceful = False  # the operator escalates: INT/QUIT mean fast, now too
                self.signal_all(signal.SIGINT)
                limit = min(limit, time.monotonic() + FAST_STOP)
            time.sleep(0.05)
        for worker in list(self.workers.values()):
            log.warning("Worker (pid:%d) did not finish within the %s timeout: SIGKILL", worker.pid,
                        "graceful" if graceful else "fast-stop")
            self.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while self.workers and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.02)
