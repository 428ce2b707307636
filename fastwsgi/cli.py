"""The `fastwsgi` command: gather the options, load the application, serve until stopped.

Theory of operation: `main(argv)` returns an exit status and never lets a traceback escape for a user
mistake: usage errors print one `fastwsgi: error: ...` line and return 2, failures to load the
application or to listen return 1. The options come from `config.resolve` (defaults < the variables
gunicorn reads as defaults, config.ENVIRONMENT_DEFAULTS < config file < FASTWSGI_CMD_ARGS < flags);
--print-config stops there. Then, before anything is imported, as gunicorn: `prepare_process` sets the
--env variables, puts the --pythonpath directories in front of sys.path and changes to --chdir DIR
(fastwsgi's own relative paths, such as --pid or log files, are first anchored at the start
directory). --check-config stops after loading the application. `load_app` resolves `module:name`,
`module` (then `application`, else `app`) or a factory call `module:create_app("x", 3)` whose
arguments are literals parsed with ast (never eval), with the current directory on sys.path.

-D/--daemon (fastwsgi.daemon): once the options are checked (and --pid's file), the command detaches
before the application is imported or anything binds, as gunicorn, and the original process exits
when the daemon serves (0) or failed to start (1, having copied its error). --name: process titles
(fastwsgi.proctitle). --capture-output: fastwsgi.logs.

--pid FILE (fastwsgi.pidfile): checked before the application is imported (a file naming a running
process stops the start), written by the process users signal once its sockets listen and its signal
handlers are set (`run`, or the Arbiter's `on_ready` in `run_master`), just before `Listening at:`,
and removed when that process leaves them, however it stops.

Process model: when `workers` is set (-w, a config file, $WEB_CONCURRENCY; `-w 1` included, as with
gunicorn; --reload, --metrics-bind and a --user that switches users set `-w 1`) a pre-fork master
(fastwsgi.workers.Arbiter) binds the sockets and runs the workers, and --timeout, --max-requests,
--preload, HUP/TTIN/TTOU apply; a HUP reads the options again with `reread_options` (from the start
directory and environment) and applies --env, --pythonpath and --chdir to the master before it forks the
new workers. --user/--group are checked before anything listens (fastwsgi.privileges); the workers
switch, the master stays root. Otherwise one process serves (`run`, shared with `fastwsgi.serve()`):
SIGTERM drains gracefully (bounded by --graceful-timeout), SIGINT/SIGQUIT stop at once, SIGUSR1 reopens
the log files, SIGHUP, SIGUSR2, SIGTTIN and SIGTTOU are ignored.

Signals before the handlers are set (`HeldSignals`, from the start of `main`): while the application
is imported (slowly: a large Django project) a logrotate USR1, a `systemctl reload` HUP, a USR2 or a
TTIN/TTOU must not take their default action (ending or stopping the process). They are remembered: the
single process then reopens its logs if a USR1 came after they were opened (one before needs nothing)
and ignores the others, as it does while serving; the master handles each one held, in order, once its
loop runs (a HUP reloads, TTIN/TTOU resize, USR2 upgrades). TERM, INT and QUIT keep their default
action until then: they stop the process at once. Either way each listening socket is announced on stderr as
`Listening at: URL` (its scheme names the protocol: http://, uwsgi://; `unix:PATH` is HTTP over a UNIX
socket; with --error-logfile FILE the line is logged there too, as gunicorn's), and systemd socket
activation (LISTEN_FDS) replaces --bind. Under a systemd Type=notify
unit, fastwsgi.sdnotify takes NOTIFY_SOCKET before the application is imported, and the serving
process (the master, or the single process) reports READY/RELOADING/STOPPING and feeds the watchdog.
"""

import ast
import importlib
import logging
import os
import signal
import sys
import threading
import traceback

from . import __version__
from . import daemon
from . import hooks
from . import logs
from . import privileges
from . import proctitle
from . import sdnotify
from .config import UsageError, anchor_paths, format_options, resolve, unread_gunicorn_sources
from .pidfile import PidFile
from .server import BindError, Server, open_listener
from .server.listener import (ACTIVATION_VARIABLES, REUSE_PORT_BALANCES, queued_connections_move, split_protocol,
                              systemd_sockets)
from .server.poller import poller_class
from .server.tls import make_context
from .server.wsgi import StopNow, interrupt_application
from .workers import upgrade

__all__ = ["main", "load_app", "run", "AppLoadError"]

log = logging.getLogger("fastwsgi")


class AppLoadError(Exception):
    """The application spec cannot be resolved (the message is shown to the user)."""


class AppCodeError(AppLoadError):
    """The application's own code raised while its module was imported or its factory called; the
    exception it raised is the __cause__, whose traceback `load_error_text` shows."""


def load_error_text(exc: BaseException) -> str:
    """What the operator sees when the application cannot be loaded: one line, after the traceback
    of the application's own exception when its code raised (or of anything unexpected)."""
    cause = exc.__cause__ if isinstance(exc, AppCodeError) else None if isinstance(exc, AppLoadError) else exc
    trace = ""
    if cause is not None:
        frames = cause.__traceback__  # from the application's first frame: not ours, not importlib's
        while frames is not None and frames.tb_next is not None and _is_loader_frame(frames):
            frames = frames.tb_next
        trace = "".join(traceback.format_exception(type(cause), cause, frames))
    return f"{trace}fastwsgi: error: {exc}\n"


def _is_loader_frame(frames) -> bool:
    filename = frames.tb_frame.f_code.co_filename
    return (filename == __file__ or filename.startswith("<frozen importlib")
            or filename == importlib.__file__)


def _how_to_build(package=os.path.dirname(os.path.abspath(__file__))) -> str:
    """What to do about a missing C extension: in a source tree (`python -m fastwsgi` run in a clone
    imports the clone's fastwsgi/, not the installed package), building it there or running elsewhere;
    else installing again with a compiler."""
    if os.path.isdir(os.path.join(os.path.dirname(package), "csrc")):
        return (f"{package} is a source tree: build it there (pip install -e ., with a C compiler) "
                f"or run from another directory")
    return "reinstall with a C compiler"


def version_string() -> str:
    from . import parser

    missing = "" if parser.c_available() else f"; the C extension is not built: {_how_to_build()}"
    try:
        backend = parser.BACKEND
    except RuntimeError as exc:  # (serving then stops with this line)
        backend = f"unknown: {exc}"
    return f"fastwsgi {__version__} (parser: {backend}{missing})"


def _file_hint(spec: str) -> str:
    """'name the module, not the file: pkg.mod:app' when `spec` names a file (pkg/mod.py:app), else ''."""
    path, colon, rest = spec.partition(":")
    if not path.endswith(".py") and "/" not in path:
        return ""
    module = path.removesuffix(".py").removeprefix("./").replace("/", ".")
    if not all(part.isidentifier() for part in module.split(".")):
        return ""
    return f"name the module, not the file: {module}{colon}{rest}"


def _parse_spec(spec: str):
    """'mod.sub:expr' -> (module name, [attribute names], call args or None, call kwargs)."""
    module_name, _, expression = spec.partition(":")
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        hint = _file_hint(spec)
        raise AppLoadError(f"invalid application spec {spec!r} (expected MODULE:APP{'; ' + hint if hint else ''})")
    if not expression:
        return module_name, None, None, None
    try:
        tree = ast.parse(expression.strip(), mode="eval").body
    except SyntaxError:
        raise AppLoadError(f"invalid application spec {spec!r}") from None
    args = kwargs = None
    if isinstance(tree, ast.Call):
        try:
            args = [ast.literal_eval(arg) for arg in tree.args]
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in tree.keywords}
        except (ValueError, TypeError, MemoryError, RecursionError):  # ({[]: 1}: TypeError)
            raise AppLoadError(f"factory arguments in {spec!r} must be literals") from None
        if any(name is None for name in kwargs):
            raise AppLoadError(f"factory arguments in {spec!r} must be literals")
        tree = tree.func
    names = []
    while isinstance(tree, ast.Attribute):
        names.append(tree.attr)
        tree = tree.value
    if not isinstance(tree, ast.Name):
        raise AppLoadError(f"invalid application spec {spec!r} (expected MODULE:NAME or MODULE:FACTORY())")
    names.append(tree.id)
    return module_name, names[::-1], args, kwargs


def load_app(spec: str):
    """Import and return the WSGI application named by `spec` (the cwd is put on sys.path)."""
    module_name, names, args, kwargs = _parse_spec(spec)
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            hint = _file_hint(spec)
            raise AppLoadError(f"no module named {exc.name!r}{' (' + hint + ')' if hint else ''}") from None
        # the module exists and its own code (or a settings module it loads) imports something
        # missing: a bug in the application, whose traceback says which line, as any other exception
        raise AppCodeError(f"importing {module_name!r} raised {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise AppCodeError(f"importing {module_name!r} raised {type(exc).__name__}: {exc}") from exc
    if names is None:
        for name in ("application", "app"):
            if hasattr(module, name):
                names = [name]
                break
        else:
            raise AppLoadError(f"module {module_name!r} has no 'application' or 'app' "
                               f"(name one: {module_name}:NAME)")
    target = module
    for name in names:
        try:
            target = getattr(target, name)
        except AttributeError:
            raise AppLoadError(f"{module_name!r} has no attribute {'.'.join(names)!r}") from None
    if args is not None:
        if not callable(target):
            raise AppLoadError(f"{module_name}:{'.'.join(names)} is not callable")
        try:
            target = target(*args, **kwargs)
        except TypeError as exc:
            if exc.__traceback__.tb_next is not None:  # raised inside the factory: its bug, its traceback
                raise AppCodeError(f"the factory {spec!r} raised {type(exc).__name__}: {exc}") from exc
            # the call itself failed (wrong arguments; the application itself named with '()'): the
            # spec's mistake, one line, no traceback of ours
            hint = "" if args or kwargs else f" (if it is the application, not a factory: {module_name}:{'.'.join(names)})"
            raise AppLoadError(f"cannot call {module_name}:{'.'.join(names)} as written in {spec!r}: "
                               f"{exc}{hint}") from None
        except Exception as exc:
            raise AppCodeError(f"the factory {spec!r} raised {type(exc).__name__}: {exc}") from exc
    if not callable(target):
        raise AppLoadError(f"{spec!r} is not a WSGI application (not callable)")
    return target


def prepare_process(options: dict, start: str) -> dict:
    """Apply --env, --pythonpath and --chdir to this process before the application is imported (the
    workers inherit them); returns the options with their relative paths anchored at `start`, the
    directory fastwsgi started in. Raises RuntimeError, having changed nothing, if DIR cannot be
    entered."""
    if options["chdir"]:
        options = anchor_paths(options, start)
    target = options["chdir"] or start
    try:
        os.chdir(target)
    except OSError as exc:
        raise RuntimeError(f"cannot change to --chdir {target!r}: {exc.strerror or exc}") from None
    for item in options["env"]:
        key, _, value = item.partition("=")
        os.environ[key] = value
    entries = [os.path.normpath(os.path.join(start, path)) for path in options["pythonpath"]]
    sys.path[:] = entries + [path for path in sys.path if path not in entries]
    return options


def open_listeners(options: dict, master: bool = False) -> list:
    """systemd's sockets if we were socket-activated, else one per --bind. With --reuse-port a master
    only binds TCP addresses (reserving them); each worker listens on a socket of its own. A bind
    without a protocol prefix (and a systemd socket) speaks --protocol. Where SO_REUSEPORT does not
    spread connections (not Linux) --reuse-port is turned off here, before any worker reads it."""
    if options["reuse_port"] and not REUSE_PORT_BALANCES:
        log.warning("--reuse-port: SO_REUSEPORT spreads connections only on Linux; using one shared "
                    "socket per address instead")
        options["reuse_port"] = False
    if options["reuse_port"] and master and queued_connections_move() is False:
        log.warning("--reuse-port: connections waiting in the queue of a worker that stops (reload, "
                    "TERM, --max-requests) are reset; sysctl net.ipv4.tcp_migrate_req=1 moves them "
                    "to the other workers")
    protocol, allow_from = options["protocol"], options["uwsgi_allow_from"]
    listeners = systemd_sockets(protocol=protocol, allow_from=allow_from)
    if listeners:
        return listeners
    try:
        for address in options["bind"]:
            tcp = not split_protocol(address)[1].startswith(("unix:", "fd://"))
            listeners.append(open_listener(address, options["backlog"], reuse_port=options["reuse_port"],
                                           umask=options["umask"],
                                           listen=not (master and options["reuse_port"] and tcp),
                                           protocol=protocol, allow_from=allow_from))
    except BindError:
        for listener in listeners:
            listener.close()
        raise
    return listeners


def _announce(listeners, backend_name: str, poller_name: str, options: dict) -> None:
    workers = f", workers: {options['workers']}" if options.get("workers") else ""
    for listener in listeners:
        url = listener.url
        if options.get("certfile") and listener.protocol == "http":  # https://HOST:PORT, https://unix:PATH
            url = f"https://{url[len('http://'):] if url.startswith('http://') else url}"
        line = (f"Listening at: {url} (fastwsgi {__version__}, parser: {backend_name}, "
                f"poller: {poller_name}, threads: {options['threads']}{workers})")
        daemon.tell(line + "\n")
        if logs.stderr_is_elsewhere(options):
            log.info("%s", line)  # in --error-logfile FILE too, as gunicorn's


def run(app, options: dict, held=None) -> None:
    """Listen and serve `app` in this process until a signal (or stop()); `held()` gives the signals
    HeldSignals kept until then (a USR1 among them reopens the logs once serving). Raises BindError, and
    UnsupportedPlatform (a RuntimeError) where there is no poller (Windows), and HookError (a
    RuntimeError) when on_starting, post_worker_init, when_ready or on_exit raised. The caller has set
    up the error log (logs.configure): the command does before it imports the application.

    Server hooks without a master: this process is both `server` and `worker` (one ProcessInfo);
    on_starting, post_worker_init, when_ready, pre_request, post_request, worker_int (SIGINT/SIGQUIT),
    worker_exit and on_exit run; the hooks about forking, reaping and reloading workers do not."""
    poller_class()  # before anything is opened
    sdnotify.claim()
    proctitle.set_title("server", options)
    process = hooks.ProcessInfo(options)
    hooks.call(options, "on_starting", process, fatal=True)
    try:
        _serve(hooks.wrap_app(app, options, process), options, process, held)
    finally:
        exited = hooks.call(options, "on_exit", process)
    if not exited:
        raise hooks.HookError("the on_exit hook raised (see above)")


def _serve(app, options: dict, process, held=None) -> None:
    hooks.call(options, "post_worker_init", process, fatal=True)
    access_log = logs.access_log(options)
    ssl_context = make_context(options)  # a bad certificate stops us before we listen
    listeners = open_listeners(options)
    try:
        server = Server(app, listeners, options, access_log=access_log, ssl_context=ssl_context)
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    pidfile = PidFile(options["pid"]) if options["pid"] else None
    reopen = []

    def on_sweep():
        sdnotify.watchdog()
        if reopen:
            reopen.clear()
            logs.reopen()
            if access_log is not None:
                access_log.reopen()

    server.on_sweep = on_sweep
    if sdnotify.watchdog_interval():
        server.sweep_every(sdnotify.watchdog_interval() / 2)

    def drain(_signum, frame):
        sdnotify.stopping()
        server.drain()
        if server.drain_overdue():  # (the drain timer's signal, or a TERM after the timeout)
            interrupt_application(frame)

    def stop_now(_signum, frame):
        sdnotify.stopping()
        hooks.call(options, "worker_int", process)
        server.stop()
        interrupt_application(frame)  # an application on the loop thread: Ctrl-C stops it too

    previous = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {signal.SIGTERM: drain, signal.SIGINT: stop_now,
                    signal.SIGQUIT: stop_now, signal.SIGUSR1: lambda *_: reopen.append(1),
                    # no master: nothing to reload, upgrade or resize, and these signals would
                    # kill the process (HUP, USR2: leaving --pid and unix: files) or stop it (TTIN,
                    # TTOU, in a shell's background job) by default
                    signal.SIGHUP: signal.SIG_IGN, signal.SIGUSR2: signal.SIG_IGN,
                    signal.SIGTTIN: signal.SIG_IGN, signal.SIGTTOU: signal.SIG_IGN}
        for signum, handler in handlers.items():
            previous[signum] = signal.signal(signum, handler)
        server.signal_when_overdue()
    if held is not None and signal.SIGUSR1 in held():  # came while the application was imported
        logs.reopen()  # (the access log was opened since)
    try:  # the handlers are in place before anyone learns our PID or address
        if pidfile is not None:
            pidfile.create()
        _announce(listeners, server.backend.NAME, server.poller.NAME, options)
        hooks.call(options, "when_ready", process, fatal=True)
        daemon.started()  # -D: the command that started us returns 0 now
        sdnotify.ready()
        server.serve_forever()
    except StopNow as stop:
        log.warning("Stopping at once: cut %s", stop.args[0].describe())
    except (SystemExit, KeyboardInterrupt) as exc:  # from the application: our signals call stop()
        log.error("Stopping: the application raised %r on the event-loop thread", exc)
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        hooks.call(options, "worker_exit", process, process)
        try:
            server.server_close()
            if access_log is not None:
                access_log.close()
        finally:
            if pidfile is not None:
                pidfile.remove()


def implied_workers(options: dict, switches_user: bool):
    """The worker count: -w as given; else 1 when an option needs a master (--reload replaces
    workers, --metrics-bind aggregates their counts, a --user to switch to keeps the master root);
    else None: one process, no master. The command and serve() both decide here."""
    if options["workers"] is None and (options["reload"] or options["metrics_bind"] or switches_user):
        return 1
    return options["workers"]


def run_master(spec, options: dict, reload_options=None, app=None, reexec=None, inherited=None,
               held=None) -> int:
    """Serve under a pre-fork master; returns the exit status. An `app` object (serve()) is used as
    preloaded; a `spec` is imported by each worker unless --preload. `reload_options()` gives the
    options a HUP applies (None: HUP keeps them); `reexec` is (argv, environ, directory) of the
    command, for USR2 (None: serve(), no USR2); `inherited` what upgrade.claim() found (a master
    started by USR2 adopts the old master's sockets); `held()` the signals HeldSignals kept until
    the Arbiter's handlers are set, which it then handles. The caller has set up the error log
    (logs.configure), as for `run`."""
    from .parser import get_backend

    poller = poller_class()  # fail here, not in every worker (and before importing fork and signals)
    from .workers import Arbiter

    sdnotify.claim()  # the master speaks to systemd; the workers it forks never can
    proctitle.set_title("master", options)
    backend = get_backend(options["http_parser"])  # fail here, not in every worker
    logs.check_access_log(options)  # the file can be opened (each worker opens its own)

    def loader():
        if spec is None:
            from .demo import application
            return application
        return load_app(spec)

    if app is None and options["preload"]:
        app = loader()
    ssl_context = make_context(options)  # built once, inherited by the workers; a HUP builds another
    metrics = metrics_listener = None
    if inherited is not None:  # USR2 started us: the old master's sockets, not --bind
        listeners, metrics_listener = upgrade.adopt(inherited[1], options["uwsgi_allow_from"])
        # how the old master bound its TCP addresses stays, as across a HUP (on UNIX sockets the
        # option changes nothing)
        reserved = any(listener.reserved for listener in listeners)
        tcp = any(listener.is_tcp for listener in listeners)
        if options["reuse_port"] != reserved and (reserved or tcp):
            log.warning("--reuse-port cannot change across USR2; keeping %s (as the old master "
                        "bound its sockets)", reserved)
            options["reuse_port"] = reserved
        if metrics_listener is not None and not options["metrics_bind"]:
            metrics_listener.close()
            metrics_listener = None
    else:
        listeners = open_listeners(options, master=True)
    if options["metrics_bind"]:
        from .metrics import SharedMetrics

        try:
            if metrics_listener is None:
                metrics_listener = open_listener(options["metrics_bind"], 64)
        except BindError:
            for listener in listeners:
                listener.close(unlink=inherited is None)
            raise
        metrics = SharedMetrics()
    pidfile = PidFile(options["pid"]) if options["pid"] else None

    def on_ready():  # the master's signal handlers are in place: tell the world
        if pidfile is not None:
            pidfile.create()
        if metrics_listener is not None:
            daemon.tell(f"Metrics at: {metrics_listener.url}/metrics\n")
        _announce(listeners, backend.NAME, poller.NAME, options)

    old_master, notify_fd = (inherited[0], inherited[2]) if inherited is not None else (None, None)
    arbiter = Arbiter(listeners, options, loader, app, reload_options, logs.reopen, logs.access_log,
                      metrics, metrics_listener, on_ready, ssl_context, pidfile, reexec,
                      upgraded_from=old_master, upgrade_notify=notify_fd, held_signals=held)
    try:
        return arbiter.run()
    finally:
        if pidfile is not None:
            pidfile.remove()


class HeldSignals:
    """From the start of `main` until the serving process sets its own handlers (the single process
    in `_serve`, the master in `Arbiter.run`), the signals that ask a serving process to act are
    remembered instead of taking their default action (HUP, USR1, USR2: the end of the process; TTIN,
    TTOU: stopped), which killed a server whose application was slow to import. WINCH's default is
    to ignore it; TERM, INT and QUIT keep theirs: they stop the process, at once, as before."""

    SIGNALS = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTTIN, signal.SIGTTOU)
    LIMIT = 5  # as the Arbiter's queue: a signal storm is not replayed

    def __init__(self):
        self.received = []
        self.previous = {}

    def __enter__(self) -> "HeldSignals":
        if threading.current_thread() is threading.main_thread():  # (main() called from a thread)
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._remember)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _remember(self, signum, _frame) -> None:
        if len(self.received) < self.LIMIT:
            self.received.append(signum)

    def discard(self, signum) -> None:
        self.received = [held for held in self.received if held != signum]

    def take(self) -> list:
        """The signals held so far, in order (and no longer held)."""
        taken, self.received = self.received, []
        return taken


# what systemd gave the process it started: not for a master that USR2 starts (fastwsgi.sdnotify)
_SERVICE_VARIABLES = sdnotify.VARIABLES + ACTIVATION_VARIABLES


def _exec_environ(environ: dict) -> dict:
    """The environment for the command USR2 runs again: the one fastwsgi was started with, without
    systemd's per-process variables."""
    return {name: value for name, value in environ.items() if name not in _SERVICE_VARIABLES}


def reread_options(argv, environ, start: str) -> dict:
    """The options for a HUP: the same sources read again as at startup (in the start directory, with
    the environment fastwsgi was started with), then applied to the master, whose new workers inherit
    its environment, sys.path and directory."""
    here = os.getcwd()
    os.chdir(start)
    try:
        options = resolve(argv, environ)[1]
    finally:
        os.chdir(here)
    return prepare_process(options, start)


def main(argv=None) -> int:
    with HeldSignals() as held:
        return _main(sys.argv[1:] if argv is None else list(argv), held)


def _main(argv: list, held: "HeldSignals") -> int:
    try:
        inherited = upgrade.claim()  # a new master started by USR2: the old master's sockets
    except RuntimeError as exc:
        sys.stderr.write(f"fastwsgi: error: {exc}\n")
        return 1
    environ = dict(os.environ)  # as started: a HUP reads these sources again, not what --env added
    start = os.getcwd()
    try:
        spec, options = resolve(argv, environ, version=version_string())
    except UsageError as exc:
        sys.stderr.write(f"fastwsgi: error: {exc}\n")
        return 2
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    for warning in unread_gunicorn_sources(options, environ, start):
        sys.stderr.write(f"fastwsgi: warning: {warning}\n")
    if options["print_config"]:
        sys.stdout.write(format_options({**options, "wsgi_app": spec}))  # the application that would load
        return 0
    try:
        options = prepare_process(options, start)  # --env, --pythonpath, --chdir: before any import
        switches_user = privileges.credentials(options) is not None  # --user: checked before we listen
        if switches_user:  # root opens the log files in a directory USER may write to
            privileges.guard_log_files()
        if options["check_config"]:
            logs.check(options)
            make_context(options)
            if spec is not None:
                load_app(spec)
            sys.stdout.write("fastwsgi: configuration OK\n")
            return 0
        if options["pid"]:
            PidFile(options["pid"]).check()  # a second instance stops before it imports or binds
        options["workers"] = implied_workers(options, switches_user)
        proctitle.DEFAULT_NAME = spec or "fastwsgi.demo"
        if inherited is not None and options["workers"] is None:
            options["workers"] = 1  # the old master's sockets are handed to a master
        if inherited is not None and bool(options["daemon"]) != daemon.detached():
            sys.stderr.write(f"fastwsgi: warning: --daemon cannot change across USR2: this master "
                             f"{'is' if daemon.detached() else 'is not'} a daemon, as the old one\n")
        if options["daemon"] and inherited is None:  # (a new master from USR2 is detached already)
            status = daemon.detach(options)  # the original process: how the daemon's start went
            if status is not None:
                return status
            held.take()  # (the daemon: those were the command's)
        sdnotify.claim()  # before the application is imported: it never sees NOTIFY_SOCKET
        logs.configure(options)  # before the import: an application configuring logging finds ours
        held.discard(signal.SIGUSR1)  # the logs were opened just now: nothing to reopen yet
        if options["workers"] is not None:
            return run_master(spec, options, lambda: reread_options(argv, environ, start),
                              reexec=([sys.executable, "-m", "fastwsgi", *argv], _exec_environ(environ), start),
                              inherited=inherited, held=held.take)
        if spec is None:
            from .demo import application as app
        else:
            app = load_app(spec)
        run(app, options, held=held.take)
    except AppLoadError as exc:
        sys.stderr.write(load_error_text(exc))
        return 1
    except (BindError, RuntimeError, logs.LogConfigError) as exc:
        sys.stderr.write(f"fastwsgi: error: {exc}\n")
        return 1
    return 0
