"""Error-log and access-log setup from the options (--log-level, --error-logfile, --log-config,
--access-logfile, --access-logformat), and reopening log files after rotation (SIGUSR1).

Theory of operation: `configure(options)` runs in the process that parses the options (the master,
or the only process, before it imports the application), and again with `replace` when a HUP changes
one of LOGGING_OPTIONS. With --log-config (a dictConfig dict, .json or .py file, or a fileConfig file)
that configuration owns every logger; otherwise the "fastwsgi" logger (and its children,
"fastwsgi.error" among them) writes `[time] [pid] [LEVEL] message` lines to stderr or to
--error-logfile through one handler of ours (`_own`). As gunicorn's error log, that logger then does
not propagate: an application that configures the root logger does not print our lines twice. A
reconfiguration replaces (and closes) only that handler, or removes it for a --log-config: a handler
a hook, the application or an embedding program put on "fastwsgi" stays. A HUP that drops --log-config
does not undo what the config set up (as gunicorn: restart for that). A config that gives handlers to
gunicorn's loggers (gunicorn.error, gunicorn.access) gets a warning: nothing reaches them. `reopen()`
closes and reopens every FileHandler in place (logrotate's copy-less rotation, signalled with SIGUSR1).
Our files (--error-logfile, --capture-output's, the access log) are opened by privileges.open_log,
which under --user does not follow a link planted where a file was (fastwsgi.privileges).

--capture-output (gunicorn's capture_output): `configure` points file descriptors 1 and 2 at
--error-logfile FILE with dup2, as gunicorn does, so print(), a traceback Python writes to stderr and a
C extension's write(2, ...) land in the log, in the master and in every worker (they inherit the
descriptors). With --error-logfile - it does nothing (stdout and stderr stay where they are). A daemon
(fastwsgi.daemon) keeps fd 2 on its start-up pipe until it serves, then moves it to the same file
(--capture-output or not); a HUP that changes --error-logfile moves a daemon's fd 2 along.
`redirect_stdio` records each redirected descriptor, and `reopen()` points it at the reopened file. `access_log(options)`
builds the AccessLogger each serving process uses, or None: with no access log the server chooses an
exchange class that does no per-request logging work at all. `Throttled` rate-limits a warning that a
peer can trigger at will (a refused client reconnecting in a loop), so it cannot flood the log.
"""

import copy
import json
import logging
import logging.config
import os
import runpy
import sys
import time

from .privileges import open_log

__all__ = ["configure", "check", "reopen", "access_log", "log_files", "LogConfigError", "Throttled",
           "redirect_stdio", "LOGGING_OPTIONS", "check_access_log", "stderr_is_elsewhere"]

FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"

_redirected = {}  # descriptor (1, 2) -> the file it was pointed at: reopen() points it again
_own = None  # the handler configure() put on the "fastwsgi" logger: the only one it ever removes
# the options configure() applies (a HUP that changes one sets the error log up again)
LOGGING_OPTIONS = ("error_logfile", "log_level", "log_config", "capture_output")


class LogConfigError(Exception):
    """--log-config or --error-logfile cannot be used (the message is shown to the user)."""


def configure(options: dict, replace: bool = False) -> None:
    """Set up the error log from the options; `replace` (a HUP's reread options): in place of the
    handlers set up before, which stay if the new ones cannot be made."""
    _configure_logging(options, replace)
    from . import daemon

    target = options.get("error_logfile", "-")
    if options.get("capture_output") and target != "-":
        # a daemon's stderr is still its start-up pipe: daemon.started() moves it here
        path, fds = target, (1,) if daemon.pending() else (1, 2)
    elif replace and daemon.detached() and not daemon.pending():
        path, fds = daemon.stderr_path(options), (2,)  # a daemon's stderr follows its error log
    else:
        return
    try:
        redirect_stdio(path, fds)
    except OSError as exc:
        raise LogConfigError(f"cannot open the error log {path!r}: {exc.strerror or exc}") from None


def check(options: dict) -> None:
    """--check-config: what configure() and access_log() would do, without pointing stdout and
    stderr at the error log; raises LogConfigError."""
    _configure_logging(options)
    check_access_log(options)


def check_access_log(options: dict) -> None:
    """Raise LogConfigError if --access-logfile cannot be opened: the master's check, at start and at
    a HUP, before its workers open their own. What it opened is closed again (kept, the master and
    every worker it forks would hold the file for good, even once logrotate deleted it)."""
    logger = access_log(options)
    if logger is not None:
        logger.close()


def redirect_stdio(path: str, fds=(1, 2)) -> None:
    """Point the descriptors `fds` at `path` (opened to append, created 0644) with dup2; raises
    OSError."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = open_log(path)
    try:
        for target in fds:
            os.dup2(fd, target)
            _redirected[target] = path
    finally:
        os.close(fd)
    if 1 in fds and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # a file: print() would wait for 8 KiB otherwise


def _configure_logging(options: dict, replace: bool = False) -> None:
    logger = logging.getLogger("fastwsgi")
    path = options.get("log_config")
    if isinstance(path, dict) or path:
        # the "fastwsgi" logger as a log config expects to find it (as at a start with one): ours
        # set its level and stopped its propagation, which a config that names it may set again
        before = logger.level, logger.propagate
        if _own is not None:
            logger.setLevel(logging.NOTSET)
            logger.propagate = True
        try:
            _apply_log_config(path)
        except LogConfigError:
            logger.setLevel(before[0])
            logger.propagate = before[1]
            raise
        _install(None)  # the config owns the logging now
        _warn_gunicorn_loggers()
        return
    logger.setLevel(options["log_level"].upper())
    target = options.get("error_logfile", "-")
    if target == "-":
        if not replace and (logger.handlers or logging.getLogger().handlers):
            return  # the embedding program configured logging already
        handler = logging.StreamHandler(sys.stderr)
    else:
        try:
            handler = _LogFile(target, encoding="utf-8")
        except OSError as exc:
            raise LogConfigError(f"cannot open the error log {target!r}: {exc.strerror or exc}") from None
    handler.setFormatter(logging.Formatter(FORMAT))
    _install(handler)


class _LogFile(logging.FileHandler):
    """--error-logfile FILE: a FileHandler whose file (at start, and again on USR1) is opened by
    privileges.open_log, which does not follow a planted link in a master whose workers switch user."""

    def _open(self):
        return os.fdopen(open_log(self.baseFilename), self.mode, encoding=self.encoding, errors=self.errors)


def _apply_log_config(path) -> None:
    """dictConfig or fileConfig from --log-config; raises LogConfigError."""
    shown = "the logconfig_dict" if isinstance(path, dict) else repr(path)
    try:
        if isinstance(path, dict):  # given as a dict by a config file (gunicorn's logconfig_dict)
            config = copy.deepcopy(path)
        elif path.endswith(".json"):
            with open(path, encoding="utf-8") as file:
                config = json.load(file)
        elif path.endswith(".py"):
            config = runpy.run_path(path).get("logconfig_dict")
            if not isinstance(config, dict):
                raise ValueError("a Python log config file must define the dict logconfig_dict")
        else:  # gunicorn's --log-config format
            if not os.path.isfile(path):
                raise ValueError("no such file")
            logging.config.fileConfig(path, disable_existing_loggers=False)
            return
        config.setdefault("version", 1)
        config.setdefault("disable_existing_loggers", False)
        logging.config.dictConfig(config)
    except (Exception, SystemExit) as exc:  # (SystemExit: sys.exit() in a .py file)
        raise LogConfigError(f"cannot use --log-config {shown}: {type(exc).__name__}: {exc}") from None


# gunicorn's loggers, which a log config written for gunicorn (its example logging.conf) routes
_GUNICORN_LOGGERS = {
    "gunicorn.error": "fastwsgi's error log is the logger 'fastwsgi'",
    "gunicorn.access": "fastwsgi's access log is --access-logfile (with --access-logformat) and goes "
                       "through no logger",
}


def _warn_gunicorn_loggers() -> None:
    """A log config written for gunicorn gives handlers to gunicorn's loggers, which no fastwsgi line
    ever reaches: say so, instead of leaving those handlers' files empty (and without an access log)."""
    for name, ours in _GUNICORN_LOGGERS.items():
        configured = logging.root.manager.loggerDict.get(name)
        if isinstance(configured, logging.Logger) and configured.handlers:
            logging.getLogger("fastwsgi").warning("--log-config gives handlers to the logger %r, which "
                                                  "fastwsgi never logs to: %s", name, ours)


def _install(handler) -> None:
    """Make `handler` (None: none) the one handler of ours on the "fastwsgi" logger, in place of the
    one installed before, which is closed. Handlers others put there (a hook, the application, an
    embedding program, a log config) stay. While ours is there the logger does not propagate, as
    gunicorn's error log: an application that configures the root logger (logging.basicConfig(),
    Django's LOGGING) would otherwise print each of our lines a second time."""
    global _own
    logger = logging.getLogger("fastwsgi")
    old, _own = _own, handler
    if old is not None:
        logger.removeHandler(old)
        old.close()
    if handler is not None:
        logger.addHandler(handler)
        logger.propagate = False


def _file_handlers() -> list:
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in logging.root.manager.loggerDict]
    return [handler for logger in loggers for handler in getattr(logger, "handlers", ())
            if isinstance(handler, logging.FileHandler)]


def reopen() -> None:
    """Reopen every log file of every logger (after logrotate moved them). A file that cannot be
    opened (a --user worker denied it) is reported, and the handler keeps the file it had."""
    for handler in _file_handlers():
        handler.acquire()
        try:
            fresh = handler._open()
        except OSError as exc:
            fresh = None
            failure = f"cannot reopen the log file {handler.baseFilename!r}: {exc.strerror or exc}"
        else:
            if handler.stream is not None:
                handler.stream.close()
            handler.stream = fresh
        finally:
            handler.release()
        if fresh is None:
            logging.getLogger("fastwsgi").error("%s; still writing to the file it had", failure)
    for fd, path in list(_redirected.items()):
        try:
            redirect_stdio(path, (fd,))
        except OSError as exc:
            logging.getLogger("fastwsgi").error("cannot reopen %r for %s: %s; still writing to the file "
                                                "it had", path, "stdout" if fd == 1 else "stderr",
                                                exc.strerror or exc)


def stderr_is_elsewhere(options: dict) -> bool:
    """True when the error log is a file (--error-logfile FILE, no --log-config) that stderr is not:
    what a process writes to stderr alone (a worker's "cannot load the application") is then
    missing from that file."""
    target = options.get("error_logfile", "-")
    if options.get("log_config") or target == "-":
        return False
    try:
        stderr, logfile = os.fstat(2), os.stat(target)
    except OSError:
        return True
    return (stderr.st_dev, stderr.st_ino) != (logfile.st_dev, logfile.st_ino)


def log_files(options: dict) -> list:
    """The paths of the log files named by options: --error-logfile (unless --log-config owns the
    logging and no descriptor goes there either: --capture-output, a daemon's stderr) and
    --access-logfile. A --log-config's own files are the operator's to arrange."""
    paths = []
    stdio = options.get("capture_output") or options.get("daemon")
    for target in (None if options.get("log_config") and not stdio else options.get("error_logfile"),
                   options.get("access_logfile")):
        if target and target != "-":
            paths.append(os.path.abspath(target))
    return paths


def access_log(options: dict):
    """The AccessLogger for --access-logfile, or None."""
    target = options.get("access_logfile")
    if not target:
        return None
    from .accesslog import AccessLogger

    try:
        return AccessLogger(options["access_logformat"], target)
    except OSError as exc:
        raise LogConfigError(f"cannot open the access log {target!r}: {exc.strerror or exc}") from None


class Throttled:
    """One warning that may repeat without bound, logged at most once per `interval` seconds.

    `warn(message, *args)` logs the first occurrence at once. Later ones within `interval` of the last
    line are only counted; the next one logged after that carries the count, e.g.
    "... and 137 more refused connections since the last warning" (`what` names them). `flush()`,
    called periodically (the event loop's sweep), logs a count still held back once the interval has
    passed, "137 more refused connections since the last warning", so a burst that stops is
    reported within about `interval` too, and every occurrence is accounted for by a line or a count.
    Not thread-safe: meant for the event loop thread."""

    __slots__ = ("logger", "what", "interval", "clock", "next_line_at", "held_back")

    def __init__(self, logger: logging.Logger, what: str, interval: float, clock=time.monotonic):
        self.logger = logger
        self.what = what  # plural noun for the count: "refused connections"
        self.interval = interval
        self.clock = clock
        self.next_line_at = float("-inf")
        self.held_back = 0  # occurrences counted but not logged since the last line

    def warn(self, message: str, *args) -> None:
        now = self.clock()
        if now < self.next_line_at:
            self.held_back += 1
            return
        self.next_line_at = now + self.interval
        if self.held_back:
            message = f"{message} ... and %d more {self.what} since the last warning"
            args += (self.held_back,)
            self.held_back = 0
        self.logger.warning(message, *args)

    def flush(self) -> None:
        """Log the held-back count if the interval since the last line has passed."""
        if not self.held_back:
            return
        now = self.clock()
        if now >= self.next_line_at:
            self.next_line_at = now + self.interval
            count, self.held_back = self.held_back, 0
            self.logger.warning(f"%d more {self.what} since the last warning", count)
