"""The server's options: one typed table drives every way of setting them.

Theory of operation: each `Option` row carries the Python keyword, the flags, a converter that turns a
value (a CLI string, a TOML value or a Python object) into the typed value or raises ValueError with a
short reason, the default and the help text. Everything else is generated from the rows:

* `build_parser()`: the argparse flags, grouped by section (flags not given are absent from the
  namespace, so a flag overrides the other sources only when it is actually used);
* `validate()`: `serve(**options)` keywords (unknown name -> TypeError with a close-match suggestion,
  or fastwsgi's name for a waitress keyword (WAITRESS_NAMES); bad value -> ValueError naming the option);
* `load_config_file()`: `-c FILE`, a Python file like gunicorn.conf.py (its lowercase public names
  that are not modules, classes or functions are options, and so are its functions named after a
  server hook; a function named like a hook but not one, e.g. `post_forks`, is an error with a
  suggestion; other functions are helpers, ignored) or a TOML file's `[tool.fastwsgi]` table (e.g.
  pyproject.toml); unknown keys are rejected with a suggestion. Both kinds take gunicorn's names
  where they differ from ours (a row's `aliases`, e.g. keepalive for keep_alive); one option set
  under two names is an error;
* `resolve()`: merges the sources, later ones winning: defaults < the environment variables gunicorn
  reads as defaults (`ENVIRONMENT_DEFAULTS`: WEB_CONCURRENCY, PORT, SCRIPT_NAME, FORWARDED_ALLOW_IPS,
  SENDFILE) < config file < the flags in FASTWSGI_CMD_ARGS < command-line flags; a bad value from the
  config file (one no flag overrides) and an exception its code raises name the file (and the line);
* `render_markdown()`: the reference table in docs/configuration.md (a unit test keeps it current).

Rows marked `refused` are gunicorn settings fastwsgi does not implement: their flags and their
config-file names exist only to stop the start with one line saying why and what to use instead (exit
status 2), rather than argparse's "unrecognized arguments" or a bare "unknown option". A config file
may still give such a row one of its `ours` values, which ask for what fastwsgi does anyway (a
leniency off, secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}): that is accepted, so a
gunicorn.conf.py setting them so runs unchanged (gunicorn's own three-header default for
secure_scheme_headers is still refused: fastwsgi honours X-Forwarded-Proto alone). Gunicorn
settings that fastwsgi honours in its own way are ordinary rows (worker_class, worker_tmp_dir,
sendfile, whose flag --no-sendfile comes from its default True).

Rows marked `cli=False` are the server hooks (fastwsgi.hooks): functions, so a config file or serve()
sets them, never a flag; --print-config shows them as comments.
Rows marked `cli_only` (-c, --check-config, --print-config) are flags about the command itself: they
are not accepted in a config file or by serve(). Rows marked `api=False` (--chdir, --pythonpath,
--env) prepare the process before the application is imported: config files take them, serve() (which
is handed an imported application) refuses them with a TypeError. Rows marked `path` name files or
directories; `anchor_paths()` makes them absolute from the start directory, so that --chdir only moves
the application, never fastwsgi's own files (pid, logs, unix sockets), as with gunicorn.
"""

import argparse
import difflib
import math
import os
import re
import shlex
import sys
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Option", "OPTIONS", "defaults", "validate", "build_parser", "UsageError", "resolve",
           "load_config_file", "render_markdown", "format_options", "anchor_paths",
           "unread_gunicorn_sources"]


class UsageError(Exception):
    """A command-line mistake: shown as one line, exit status 2."""


# -- converters: value -> typed value, or ValueError("reason") ---------------------------------

def _integer(value) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer, not a bool")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    raise ValueError(f"expected an integer, got {value!r}")


def _number(value) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number, not a bool")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
    else:
        raise ValueError(f"expected a number, got {value!r}")
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


def int_at_least(minimum: int) -> Callable[[Any], int]:
    def convert(value) -> int:
        number = _integer(value)
        if number < minimum:
            raise ValueError(f"must be >= {minimum}, got {number}")
        return number
    convert.__name__ = f"int>={minimum}"
    return convert


# --threads: the pool starts them all before listening; far more than any application could use
MAX_THREADS = 10000
INT_MAX = 2**31 - 1  # listen()'s backlog is a C int; the parser limits are C uint32_t (csrc/fastwsgi.h)


def int_between(minimum: int, maximum: int) -> Callable[[Any], int]:
    at_least = int_at_least(minimum)

    def convert(value) -> int:
        number = at_least(value)
        if number > maximum:
            raise ValueError(f"must be <= {maximum}, got {number}")
        return number
    convert.__name__ = f"int {minimum}..{maximum}"
    return convert


def positive_float(value) -> float:
    number = _number(value)
    if number <= 0:
        raise ValueError(f"must be > 0, got {value!r}")
    return number


def non_negative_float(value) -> float:
    number = _number(value)
    if number < 0:
        raise ValueError(f"must be >= 0, got {value!r}")
    return number


def boolean(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return value.lower() in ("1", "true", "yes", "on")
    raise ValueError(f"expected a bool, got {value!r}")


def choice(*choices: str) -> Callable[[Any], str]:
    """One of `choices`, in any case (gunicorn takes --log-level DEBUG): the lower-case name."""
    def convert(value) -> str:
        name = value.lower() if isinstance(value, str) else value
        if name not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}; got {value!r}")
        return name
    convert.choices = choices
    return convert


def bind_list(value) -> list:
    from .server.listener import BindError, parse_bind  # late: keep config importable alone

    addresses = [value] if isinstance(value, str) else value
    if not isinstance(addresses, (list, tuple)) or not addresses:
        raise ValueError(f"expected an address or a non-empty list of addresses, got {value!r}")
    for address in addresses:
        try:
            parse_bind(address)
        except BindError as exc:
            raise ValueError(str(exc)) from None
    return list(addresses)


def tcp_bind(value) -> str:
    """An HTTP TCP address (HOST:PORT, optionally http://HOST:PORT)."""
    from .server.listener import BindError, parse_bind, split_protocol

    try:
        protocol, rest = split_protocol(value)
        if protocol not in (None, "http") or rest.startswith(("unix:", "fd://")):
            raise BindError("")
        parse_bind(value)
    except BindError as exc:
        raise ValueError(str(exc) or f"expected HOST:PORT, got {value!r}") from None
    return value


def cert_reqs(value) -> str:
    """--cert-reqs: gunicorn's 0/1/2 (ssl.CERT_NONE/OPTIONAL/REQUIRED) or none/optional/required."""
    names = ("none", "optional", "required")
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2:
        return names[value]
    if isinstance(value, str) and value.strip().lower() in names + ("0", "1", "2"):
        text = value.strip().lower()
        return names[int(text)] if text.isdigit() else text
    raise ValueError(f"must be none, optional, required (or 0, 1, 2); got {value!r}")


cert_reqs.choices = ("none", "optional", "required")


def path_list(value) -> list:
    paths = [value] if isinstance(value, str) else value
    if not isinstance(paths, (list, tuple)) or not all(isinstance(p, str) and p for p in paths):
        raise ValueError(f"expected a path or a list of paths, got {value!r}")
    return list(paths)


def search_path(value) -> list:
    """--pythonpath: directories separated by commas ("src,lib"), or a list of them."""
    entries = value.split(",") if isinstance(value, str) else value
    if not isinstance(entries, (list, tuple)) or not all(isinstance(p, str) for p in entries):
        raise ValueError(f"expected directories separated by commas, got {value!r}")
    if any("\0" in p for p in entries):
        raise ValueError(f"NUL byte in {value!r}")
    return [entry for entry in (p.strip() for p in entries) if entry]


def env_list(value) -> list:
    """-e/--env (gunicorn's raw_env): KEY=VALUE strings."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
        raise ValueError(f"expected KEY=VALUE or a list of them, got {value!r}")
    for item in items:
        key, sep, _value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        if "\0" in item:
            raise ValueError(f"NUL byte in {item!r}")
    return list(items)


def url_prefix(value) -> str:
    """A path prefix for SCRIPT_NAME: "/app" (a trailing "/" is dropped; "" or "/": none)."""
    if not isinstance(value, str):
        raise ValueError(f"expected a path such as /app, got {value!r}")
    prefix = value.rstrip("/")
    if prefix and (not prefix.startswith("/") or any(
            char in "?#%" or not "\x21" <= char <= "\x7e" for char in prefix)):
        raise ValueError(f"expected a path such as /app (no spaces, ?, # or %), got {value!r}")
    return prefix


def directory(value) -> str:
    """An existing directory."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a directory, got {value!r}")
    if not os.path.isdir(value):
        raise ValueError(f"no such directory: {value!r}")
    return value


def writable_directory(value) -> str:
    """An existing directory this process may create files in."""
    value = directory(value)
    if not os.access(value, os.W_OK | os.X_OK):
        raise ValueError(f"cannot create files in {value!r}")
    return value


def optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """None (unset) or what `convert` accepts."""
    def convert_optional(value):
        return None if value is None else convert(value)
    convert_optional.__name__ = getattr(convert, "__name__", "value")
    return convert_optional


def text(value) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {value!r}")
    if "\0" in value:  # (no path, name or address can hold one: the OS calls would raise)
        raise ValueError(f"NUL byte in {value!r}")
    return value


def file_mode(value) -> int:
    """A umask: an int, or a string in octal ("0o22", "022") or decimal."""
    if isinstance(value, str):
        digits = value.strip().lower()
        try:
            number = int(digits[2:], 8) if digits.startswith("0o") else \
                int(digits, 8) if digits.startswith("0") else int(digits)
        except ValueError:
            raise ValueError(f"expected an octal mode such as 0o077, got {value!r}") from None
    else:
        number = _integer(value)
    if not 0 <= number <= 0o777:
        raise ValueError(f"expected a mode between 0 and 0o777, got {value!r}")
    return number


def user_id(value):
    from .privileges import user_id as convert  # late: pwd does not exist everywhere

    return convert(value)


def group_id(value):
    from .privileges import group_id as convert

    return convert(value)


def proxy_list(value) -> str:
    from .proxy import TrustedProxies  # late: keep config importable alone

    spec = ",".join(value) if isinstance(value, (list, tuple)) else value
    if not isinstance(spec, str):
        raise ValueError(f"expected addresses or networks separated by commas, got {value!r}")
    TrustedProxies.parse(spec)  # raises ValueError naming the bad entry
    return spec


def access_format(value) -> str:
    import io

    from .accesslog import AccessLogger

    value = text(value)
    AccessLogger(value, io.StringIO())  # compiles it: unknown atoms are rejected now
    return value


def _access_default_format() -> str:
    from .accesslog import DEFAULT_FORMAT

    return DEFAULT_FORMAT


_GUNICORN_WORKERS = {"sync": "sync", "gthread": "gthread",
                     "gunicorn.workers.sync.SyncWorker": "sync",
                     "gunicorn.workers.gthread.ThreadWorker": "gthread"}


def worker_class(value) -> str:
    """-k/--worker-class: gunicorn's sync and gthread (or their class paths), both served by fastwsgi's
    own worker; every other worker class is refused with the reason."""
    if isinstance(value, str) and value.strip() in _GUNICORN_WORKERS:
        return _GUNICORN_WORKERS[value.strip()]
    shown = repr(value.strip()) if isinstance(value, str) else getattr(value, "__qualname__", repr(value))
    lowered = shown.lower()
    if any(name in lowered for name in ("uvicorn", "asgi", "hypercorn")):
        why = "is an ASGI worker and fastwsgi is a WSGI (PEP 3333) server: it cannot run ASGI applications"
    elif "gevent" in lowered or "eventlet" in lowered:
        why = ("is a green-thread worker and fastwsgi has its own event loop (it never monkey-patches): "
               "for an application that blocks, use --threads N")
    elif "tornado" in lowered:
        why = "is a Tornado worker and fastwsgi serves WSGI applications on its own event loop"
    else:
        why = "is not a worker fastwsgi has: it loads no worker classes"
    raise ValueError(f"{shown} {why} (accepted: sync, gthread)")


worker_class.choices = ("sync", "gthread")


def log_config_source(value):
    """--log-config: a file (.json: dictConfig JSON; .py: defines logconfig_dict; else: a
    logging.config.fileConfig file, as gunicorn's --log-config) or, from a config file, the dict itself
    (gunicorn's logconfig_dict; a TOML table)."""
    if isinstance(value, dict):
        return value
    return text(value)


def _hook_rows():
    from .hooks import HOOKS, hook  # late: keep the table's imports light

    return tuple(Option(name, hook(*params), None,
                        f"server hook, run in the {process}: {when}; if it raises: {failure}",
                        cli=False, section="server hooks")
                 for name, params, process, when, failure in HOOKS)


# -- the table -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Option:
    name: str  # Python keyword (flag without dashes, '-' -> '_')
    convert: Callable[[Any], Any]
    default: Any
    help: str
    flags: tuple = ()  # extra spellings; "--" + name with '_' -> '-' is always a flag
    metavar: str | None = None
    repeatable: bool = False  # list option: each flag use appends
    cli_only: bool = False  # about the command itself: not in config files nor serve()
    api: bool = True  # accepted by serve(); False: it prepares the process before the app is imported
    path: bool = False  # a file or directory name: relative ones are from where fastwsgi started
    section: str = "server"  # heading in docs/configuration.md
    cli: bool = True  # False: a config file and serve() only (the server hooks: functions)
    aliases: tuple = ()  # gunicorn's settings-file names for it, accepted in config files
    refused: bool = False  # a gunicorn option fastwsgi does not implement: `help` says why (and what instead)
    # refused rows: the values that ask for what fastwsgi does anyway (gunicorn's default, mostly): a
    # config file giving one is accepted, and the setting ignored
    ours: tuple = ()

    @property
    def cli_flags(self) -> tuple:
        return self.flags + (f"--{self.name.replace('_', '-')}",)

    @property
    def is_flag(self) -> bool:
        return self.convert is boolean


def _refused(name: str, why: str, flags: tuple = (), ours: tuple = ()) -> Option:
    """A gunicorn setting fastwsgi refuses: its flags and its config-file name give `why` as a one-line
    error (exit status 2) instead of argparse's 'unrecognized arguments' or 'unknown option'; in a
    config file, a value among `ours` is accepted (what fastwsgi does anyway)."""
    return Option(name, _refuse, None, why, flags=flags, refused=True,
                  section="gunicorn options fastwsgi refuses", ours=ours)


def _asks_for_ours(option: Option, value) -> bool:
    """A refused setting's value that describes fastwsgi's own behaviour (header names in any case)."""
    if isinstance(value, dict):
        value = {str(key).upper(): item for key, item in value.items()}
    return any(type(value) is type(same) and value == same for same in option.ours)


_NO_STATSD = "fastwsgi has no StatsD client: serve Prometheus metrics with --metrics-bind HOST:PORT"
_NO_PASTE = ("fastwsgi does not read PasteDeploy files: load the application in a module "
             "(paste.deploy.loadapp) and name it as MODULE:APP")
_NO_SYSLOG = ("fastwsgi has no syslog option: give --log-config a logging config with a "
              "logging.handlers.SysLogHandler")


def _refuse(value):
    raise ValueError("refused")  # never reached: callers report the row's help first


OPTIONS = (
    Option("bind", bind_list, ["127.0.0.1:8000"],
           "address to listen on: HOST:PORT, [IPV6]:PORT or unix:PATH, optionally prefixed with the "
           "protocol it speaks (http://, uwsgi://) (repeatable)",
           flags=("-b",), metavar="ADDR", repeatable=True),
    Option("threads", int_between(0, MAX_THREADS), 0,
           "0: call the application on the event-loop thread; N: run it on a pool of N threads",
           metavar="N"),
    Option("http_parser", choice("auto", "c", "python"), "auto", "parser backend (HTTP and uwsgi)"),
    Option("header_timeout", positive_float, 10.0,
           "seconds allowed to receive one request head", metavar="S"),
    Option("read_timeout", positive_float, 30.0,
           "idle seconds allowed while reading a request body", metavar="S"),
    Option("keep_alive", non_negative_float, 5.0,
           "idle seconds a connection is kept between requests (0: no keep-alive)", metavar="S",
           aliases=("keepalive",)),
    Option("send_timeout", positive_float, 30.0,
           "seconds a response write may stall on a slow client", metavar="S"),
    Option("worker_connections", int_at_least(1), 1000,
           "maximum simultaneous connections (more wait in the backlog)", metavar="N"),
    Option("backlog", int_between(1, INT_MAX), 2048, "listen backlog", metavar="N"),
    Option("limit_request_line", int_between(1, INT_MAX), 8190,
           "maximum request-line length (longer: 414)", metavar="N"),
    Option("limit_request_fields", int_between(1, 32768), 100,
           "maximum number of header fields (more: 431; at most 32768, as gunicorn)", metavar="N"),
    Option("limit_request_field_size", int_between(1, INT_MAX), 8190,
           "maximum header field line length (longer: 431)", metavar="N",
           flags=("--limit-request-field_size",)),
    Option("limit_request_head", int_between(1, INT_MAX), 65536,
           "maximum size of the whole request head (larger: 431)", metavar="N"),
    Option("limit_request_body", int_at_least(0), 1073741824,
           "maximum request body in bytes (larger: 413 before reading); 0: no limit", metavar="N"),
    Option("allow_bare_lf", boolean, False, "accept LF without CR as a line end (lenient)"),
    Option("allow_missing_host", boolean, False, "accept HTTP/1.1 requests without Host (lenient)"),
    Option("url_scheme", choice("http", "https"), "http", "wsgi.url_scheme to report"),
    Option("log_level", choice("debug", "info", "warning", "error", "critical"), "info",
           "logging level of the fastwsgi loggers", section="logging", aliases=("loglevel",)),
    Option("request_buffering", optional(int_at_least(0)), None,
           "bytes of a request body the server receives before it calls the application, as nginx's "
           "request buffering: the first 256 KiB in memory, the rest in an unlinked temporary file in "
           "--tmp-upload-dir, so a slow upload holds no thread; a larger body's rest streams into the "
           "application's reads (unset: the whole body, up to --limit-request-body; 0: none, the "
           "application reads every body as it arrives)", metavar="BYTES"),
    Option("tmp_upload_dir", optional(writable_directory), None,
           "directory of the temporary files that hold request bodies received past 256 KiB "
           "(--request-buffering); each is unlinked as soon as it is made, so nothing is left there "
           "even after a crash (unset: the temporary directory, $TMPDIR); the workers' user must be "
           "able to write to it", metavar="DIR", path=True),
    # -- processes (fastwsgi/workers/) --
    Option("workers", optional(int_at_least(1)), None,
           "worker processes under a pre-fork master (unset: $WEB_CONCURRENCY, else one process "
           "without a master)", flags=("-w",), metavar="N", section="processes"),
    Option("timeout", non_negative_float, 30.0,
           "a worker whose event loop is silent this long is killed (SIGKILL) and replaced; 0: never",
           flags=("-t",), metavar="S", section="processes"),
    Option("graceful_timeout", positive_float, 30.0,
           "after SIGTERM/SIGHUP, seconds a worker may finish in-flight requests before it is killed",
           metavar="S", section="processes"),
    Option("max_requests", int_at_least(0), 0,
           "a worker drains once it has served this many requests, its replacement starting as the drain "
           "begins (0: never)", metavar="N", section="processes"),
    Option("max_requests_jitter", int_at_least(0), 0,
           "add a random 0..N to max_requests per worker, so workers do not restart together",
           metavar="N", section="processes"),
    Option("worker_class", worker_class, "sync",
           "gunicorn's worker class: sync and gthread (or gunicorn.workers.sync.SyncWorker, "
           "gunicorn.workers.gthread.ThreadWorker) are both served by fastwsgi's own worker, an event "
           "loop whose concurrency --threads alone sets (0: the application runs on the loop; N: on N "
           "threads); other classes (gevent, eventlet, tornado, ASGI workers) are refused",
           flags=("-k",), section="processes"),
    Option("worker_tmp_dir", optional(directory), None,
           "directory of the workers' heartbeat files, whose mtime each worker sets about once a second "
           "(unset: the temporary directory, $TMPDIR); a memory-backed one such as /dev/shm keeps that "
           "off the disk", metavar="DIR", path=True, section="processes"),
    Option("pid", optional(text), None,
           "write the PID of the process to signal (the master, else the single process) to FILE once "
           "it listens, and remove it at exit; refuse to start if FILE names a running process",
           flags=("-p",), metavar="FILE", path=True, section="processes", aliases=("pidfile",)),
    Option("daemon", boolean, False,
           "detach from the terminal (fork, setsid, fork; stdin and stdout to /dev/null) before the "
           "application is imported and the sockets bound; the command returns once the server "
           "serves (0) or failed to start (1, its error shown); afterwards stderr is --log-file FILE "
           "(else /dev/null: set one); with --pid, FILE names the daemon", flags=("-D",),
           api=False, section="processes"),
    Option("name", optional(text), None,
           "process title: 'fastwsgi: master [NAME]', 'fastwsgi: worker [NAME]' ('server' without a "
           "master) when the setproctitle package is installed (unset: the application spec, as "
           "gunicorn); without it, Linux shows NAME (its first 15 bytes) as the process name "
           "(/proc/PID/comm, ps -o comm, top)",
           flags=("-n",), metavar="NAME", section="processes", aliases=("proc_name",)),
    Option("preload", boolean, False,
           "import the application once in the master before forking (HUP then keeps the old code)",
           flags=("--preload-app",), section="processes", aliases=("preload_app",)),
    Option("user", optional(user_id), None,
           "run the workers as this user (a name or a numeric uid) once they have their sockets and "
           "before they import the application; the master stays root (it reads the TLS key, "
           "also on HUP; writes --pid; reopens the logs), and hands USER the unix: sockets and log "
           "files; implies a master (-w 1 unless set); only root can switch (none needed if already USER)",
           flags=("-u",), metavar="USER", section="processes"),
    Option("group", optional(group_id), None,
           "the workers' group (a name or a numeric gid; unset: the primary group of --user); needs "
           "--user", flags=("-g",), metavar="GROUP", section="processes"),
    Option("initgroups", boolean, False,
           "give the workers the supplementary groups of --user from the group database (unset: none)",
           section="processes"),
    Option("reuse_port", boolean, False,
           "one SO_REUSEPORT socket per worker instead of one shared socket (TCP addresses fastwsgi "
           "binds itself: an fd:// or systemd socket stays shared; Linux: elsewhere the kernel does "
           "not spread connections, so one shared socket is used)",
           section="sockets"),
    Option("defer_accept", int_between(0, 3600), 1,
           "TCP sockets: Linux holds a new connection until its first bytes arrive, for about S "
           "seconds, before handing it to accept (TCP_DEFER_ACCEPT, like nginx's `listen ... "
           "deferred`): a silent client holds no connection slot, and the read at accept finds "
           "the request; 0: accept at once", metavar="S", section="sockets"),
    Option("umask", optional(file_mode), None,
           "umask applied while creating unix: sockets (e.g. 0o007: only the owner and the group may "
           "connect); with --user they then belong to USER and GROUP; unset: the process's umask "
           "(usually 0o022: only the owner may connect, so an nginx running as another user gets "
           "'Permission denied'; gunicorn's default 0 lets every local user connect)", flags=("-m",), metavar="MODE",
           section="sockets"),
    Option("sendfile", boolean, True,
           "send a wsgi.file_wrapper over a regular file with os.sendfile (the kernel copies it); "
           "--no-sendfile (gunicorn's): read it and write the pieces instead; unset: $SENDFILE (as "
           "gunicorn: 1, y, yes, true: on; 0, n, no, false, off, empty: off), else on",
           section="sockets"),
    # -- proxy and logging --
    Option("protocol", choice("http", "uwsgi"), "http",
           "protocol of the binds written without one (and of fd:// and systemd sockets): http, or "
           "uwsgi for a front end such as nginx uwsgi_pass", section="sockets"),
    Option("uwsgi_allow_from", proxy_list, "127.0.0.1,::1",
           "peers (IPs, CIDRs, '*') that may connect to a uwsgi TCP socket; others are closed at "
           "accept with a warning (UNIX-socket peers are always allowed)", metavar="LIST",
           section="sockets"),
    Option("forwarded_allow_ips", proxy_list, "127.0.0.1,::1",
           "peers (IPs, CIDRs, '*') whose X-Forwarded-*/Forwarded headers are applied; others' are "
           "removed (HTTP sockets only: over uwsgi the front end's REMOTE_ADDR and HTTPS rule and "
           "these headers are left alone); unset: $FORWARDED_ALLOW_IPS (as gunicorn), else the "
           "default", metavar="LIST",
           section="proxy"),
    Option("forwarded_headers", choice("x-forwarded", "forwarded"), "x-forwarded",
           "the header family --forwarded-allow-ips peers set: x-forwarded (X-Forwarded-For, "
           "-Proto, -Host: nginx, AWS) or forwarded (RFC 7239 Forwarded: HAProxy option forwarded, "
           "Envoy); the other family is never read and is removed, as a proxy passes it on as the "
           "client sent it (waitress's trusted_proxy_headers)", metavar="FAMILY", section="proxy"),
    Option("url_prefix", url_prefix, "",
           "serve the application under this path prefix (e.g. /app): SCRIPT_NAME is the prefix and "
           "PATH_INFO the rest; a path outside it gets 404 (waitress's url_prefix; the SCRIPT_NAME "
           "environment variable, which gunicorn reads, sets it too)", metavar="PATH", section="proxy"),
    Option("proxy_protocol", boolean, False,
           "HTTP binds behind an L4 proxy (HAProxy send-proxy/send-proxy-v2, AWS NLB, nginx stream "
           "proxy_protocol): a connection from a --proxy-allow-from peer must begin with a PROXY "
           "protocol header (v1 or v2), whose source becomes REMOTE_ADDR/REMOTE_PORT; a missing or "
           "malformed header closes the connection (logged, rate-limited); uwsgi binds are not "
           "affected", section="proxy"),
    Option("proxy_allow_from", proxy_list, "127.0.0.1,::1",
           "peers (IPs, CIDRs, '*') that must send the PROXY header under --proxy-protocol "
           "(UNIX-socket peers always must); other peers are served as plain HTTP, where a PROXY "
           "line is a bad request (400)", metavar="LIST", section="proxy", aliases=("proxy_allow_ips",)),
    Option("access_logfile", optional(text), None,
           "write an access log line per response to this file ('-': stdout); unset: no access log",
           metavar="FILE", path=True, section="logging", aliases=("accesslog",)),
    Option("access_logformat", access_format, _access_default_format(),
           "gunicorn's access log atoms, or 'json' for one JSON object per line", metavar="FORMAT",
           section="logging", aliases=("access_log_format",)),
    Option("error_logfile", text, "-", "error log file ('-': stderr)", flags=("--log-file",),
           metavar="FILE", path=True, section="logging", aliases=("errorlog",)),
    Option("capture_output", boolean, False,
           "point stdout and stderr (file descriptors 1 and 2) of the master and the workers at "
           "--log-file FILE, so print() and an extension's writes land in the log; no effect with "
           "--log-file - (the default)", section="logging"),
    Option("log_config", optional(log_config_source), None,
           "configure logging from FILE: .json (a logging.config.dictConfig dict), .py (defining the "
           "dict logconfig_dict), anything else a logging.config.fileConfig file (gunicorn's "
           "--log-config format); a config file may give the dict itself (gunicorn's logconfig_dict; "
           "a TOML table)", flags=("--log-config-json",), metavar="FILE", path=True, section="logging",
           aliases=("logconfig", "logconfig_json", "logconfig_dict")),
    Option("wsgi_app", optional(text), None,
           "the application (MODULE:APP); the positional argument overrides it", metavar="MODULE:APP",
           section="application"),
    Option("chdir", optional(text), None,
           "change to this directory before the application is imported (it is then importable "
           "from there, and runs there); fastwsgi's own relative paths stay relative to where it "
           "started; not a serve() keyword", metavar="DIR", api=False, path=True,
           section="application"),
    Option("pythonpath", search_path, [],
           "directories (separated by commas) put in front of sys.path, in this order, before the "
           "application is imported; not a serve() keyword", metavar="LIST", api=False, path=True,
           section="application"),
    Option("env", env_list, [],
           "set an environment variable (KEY=VALUE) before the application is imported; workers "
           "inherit it (repeatable); not a serve() keyword", flags=("-e",),
           metavar="KEY=VALUE", repeatable=True, api=False, section="application", aliases=("raw_env",)),
    # -- TLS (fastwsgi/server/tls.py) --
    Option("certfile", optional(text), None,
           "serve HTTPS on the HTTP binds with this PEM certificate (chain); uwsgi binds stay plain",
           metavar="FILE", path=True, section="tls"),
    Option("keyfile", optional(text), None,
           "the certificate's private key (PEM; unset: it is in --certfile)", metavar="FILE", path=True,
           section="tls"),
    Option("ca_certs", optional(text), None,
           "CA certificates (PEM) that client certificates are verified against", metavar="FILE",
           path=True, section="tls"),
    Option("cert_reqs", cert_reqs, "none",
           "client certificates: none (not asked), optional (verified if sent), required (the "
           "handshake fails without a valid one; needs --ca-certs); gunicorn's 0/1/2 work too",
           section="tls"),
    Option("ciphers", optional(text), None,
           "OpenSSL cipher list for TLS 1.2 (unset: Python's default); TLS 1.3 suites are not "
           "affected", metavar="LIST", section="tls"),
    # -- metrics --
    Option("metrics_bind", optional(tcp_bind), None,
           "serve Prometheus metrics (all workers together) on this HOST:PORT, answered by the master; "
           "implies a master (-w 1 unless set)", metavar="ADDR", section="metrics"),
    # -- development --
    Option("reload", boolean, False,
           "restart the workers when a Python file of the application (or a --reload-extra-file) "
           "changes; implies a master (-w 1 unless set)", section="development"),
    Option("reload_extra_file", path_list, [],
           "another file whose change triggers --reload (repeatable)", metavar="FILE", repeatable=True,
           path=True, section="development", aliases=("reload_extra_files",)),
    # -- the command itself --
    Option("config", optional(text), None,
           "read options from FILE: a Python file (name = value lines) or a TOML file's "
           "[tool.fastwsgi] table (pyproject.toml)", flags=("-c",), metavar="FILE", cli_only=True,
           section="command"),
    Option("check_config", boolean, False,
           "check the options and load the application, then exit (0: fine)", cli_only=True,
           section="command"),
    Option("print_config", boolean, False,
           "print the effective options (TOML for [tool.fastwsgi]) and exit", cli_only=True,
           section="command"),
    # -- gunicorn's settings that fastwsgi refuses (each one line at start-up: why, and what instead) --
    _refused("statsd_host", _NO_STATSD, ours=(None,)),
    _refused("statsd_prefix", _NO_STATSD),
    _refused("dogstatsd_tags", _NO_STATSD),
    _refused("paste", _NO_PASTE, flags=("--paster",), ours=(None,)),
    _refused("raw_paste_global_conf", _NO_PASTE, flags=("--paste-global",)),
    _refused("spew", "fastwsgi has no line tracer: run it under python -m trace or a debugger",
             ours=(False,)),
    _refused("strip_header_spaces", "fastwsgi never strips spaces before a header's colon: a request "
             "with them is a 400, as RFC 9112 5.1 requires (accepting them lets requests be smuggled)",
             ours=(False,)),
    _refused("syslog", _NO_SYSLOG, flags=("--log-syslog",), ours=(False,)),
    _refused("syslog_addr", _NO_SYSLOG, flags=("--log-syslog-to",)),
    _refused("syslog_prefix", _NO_SYSLOG, flags=("--log-syslog-prefix",)),
    _refused("syslog_facility", _NO_SYSLOG, flags=("--log-syslog-facility",)),
    _refused("disable_redirect_access_to_syslog", _NO_SYSLOG, ours=(False,)),
    _refused("logger_class", "fastwsgi loads no logger classes: its error log is the standard logging "
             "logger 'fastwsgi' (configure it with --log-config), its access log is set by "
             "--access-logfile and --access-logformat"),
    _refused("reload_engine", "fastwsgi's --reload has one engine (it polls the files' mtimes)"),
    _refused("ssl_version", "gunicorn ignores it too (deprecated since gunicorn 21): set the TLS "
             "versions in an ssl_context(config, default_ssl_context_factory) hook"),
    _refused("do_handshake_on_connect", "fastwsgi always does the TLS handshake in its event loop, "
             "before reading the request", ours=(False,)),
    _refused("suppress_ragged_eofs", "fastwsgi handles a TLS close without close_notify itself (the "
             "connection just ends)", ours=(True,)),
    _refused("enable_stdio_inheritance", "fastwsgi does not implement gunicorn's -R", flags=("-R",),
             ours=(False,)),
    _refused("secure_scheme_headers", "fastwsgi sets wsgi.url_scheme from X-Forwarded-Proto (or "
             "Forwarded: proto= with --forwarded-headers forwarded) sent by --forwarded-allow-ips peers",
             ours=({"X-FORWARDED-PROTO": "https"},)),
    _refused("forwarder_headers", "fastwsgi takes no SCRIPT_NAME or PATH_INFO from request headers: "
             "mount the application with --url-prefix PATH"),
    _refused("casefold_http_method", "fastwsgi does not offer this leniency: methods are case-sensitive "
             "(RFC 9110 9.1)", ours=(False,)),
    _refused("permit_unconventional_http_method", "fastwsgi does not offer this leniency: a method is "
             "any RFC 9110 token", ours=(False,)),
    _refused("permit_unconventional_http_version", "fastwsgi does not offer this leniency: HTTP/1.x is "
             "served, any other version gets a 505", ours=(False,)),
    _refused("permit_obsolete_folding", "fastwsgi does not offer this leniency: an obs-fold line is a 400 "
             "(RFC 9112 5.2)", ours=(False,)),
    _refused("tolerate_dangerous_framing", "fastwsgi does not offer this leniency: ambiguous framing "
             "(Content-Length with Transfer-Encoding, ...) is a 400 (RFC 9112 6.3)", ours=(False,)),
    _refused("header_map", "fastwsgi always drops header fields whose name has '_' (gunicorn's default "
             "'drop'; they would share an environ key with '-'): remove the setting", ours=("drop",)),
) + _hook_rows()

BY_NAME = {option.name: option for option in OPTIONS}
HOOK_NAMES = tuple(option.name for option in OPTIONS if not option.cli)
ALIASES = {alias: option.name for option in OPTIONS for alias in option.aliases}  # gunicorn's names


def defaults() -> dict:
    return {option.name: (list(option.default) if isinstance(option.default, list) else option.default)
            for option in OPTIONS if not option.refused}


# waitress's serve() keywords that fastwsgi names otherwise: a waitress user's serve(app, listen=...)
# is told what to write (a close match would be wrong: trusted_proxy -> reuse_port,
# max_request_body_size -> max_requests, channel_timeout -> graceful_timeout)
WAITRESS_NAMES = {
    "listen": "bind=['HOST:PORT', ...]",
    "unix_socket": "bind=['unix:PATH']",
    "unix_socket_perms": "umask (umask=0o007 makes the socket 0770)",
    "sockets": "bind=['fd://N']",
    "trusted_proxy": "forwarded_allow_ips",
    "trusted_proxy_headers": "forwarded_headers ('x-forwarded' or 'forwarded')",
    "clear_untrusted_proxy_headers": "nothing: the proxy headers of untrusted peers are always removed",
    "channel_timeout": "keep_alive (idle between requests) and read_timeout (idle while reading a body)",
    "connection_limit": "worker_connections",
    "max_request_body_size": "limit_request_body",
    "max_request_header_size": "limit_request_head",
}


def _unknown(name: str, known) -> str:
    if name in WAITRESS_NAMES:
        return f"unknown option {name!r} (waitress's name: use {WAITRESS_NAMES[name]})"
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown option {name!r}{hint}"


def validate(options: dict, api: bool = False) -> dict:
    """Return a complete, typed option dict; TypeError for unknown names, ValueError for bad values.
    api=True (serve()) also refuses the command-only rows."""
    result = defaults()
    for name, value in options.items():
        option = BY_NAME.get(name)
        if option is None and name in ALIASES:  # config files rename them; keywords are ours only
            raise TypeError(f"unknown option {name!r} (did you mean {ALIASES[name]!r}? {name!r} is "
                            f"gunicorn's name for it)")
        if option is None or (api and option.cli_only):
            raise TypeError(_unknown(name, [o.name for o in OPTIONS if not (api and o.cli_only)]))
        if option.refused:
            raise TypeError(_refusal(option))
        if api and not option.api:
            raise TypeError(f"option {name!r} is for the command line and config files: it prepares the "
                            f"process before the application is imported, and serve() is given an "
                            f"application imported already (do it before that import)")
        try:
            result[name] = option.convert(value)
        except ValueError as exc:
            raise ValueError(f"option {name!r}: {exc}") from None
    return result


# -- command line ------------------------------------------------------------------------------------

def _refusal(option: Option, spelling: str = "") -> str:
    return f"gunicorn's {spelling or option.name!r} is not supported: {option.help}"


class _Refuse(argparse.Action):
    """A refused gunicorn flag: report it as soon as argparse meets it (later, argparse would report
    it as 'unrecognized arguments' together with the words after it)."""

    def __call__(self, parser, namespace, values, option_string=None):
        raise UsageError(_refusal(BY_NAME[self.dest], option_string))


class _Parser(argparse.ArgumentParser):
    """argparse that reports a mistake as one line (UsageError) instead of usage + exit."""

    def error(self, message):
        prefix = "unrecognized arguments: "
        flag = next((word for word in message[len(prefix):].split() if word.startswith("-")), None) \
            if message.startswith(prefix) else None
        if flag is not None:  # name the unknown flag alone: the words after it were never read
            flag = flag.partition("=")[0]
            close = difflib.get_close_matches(flag, list(self._option_string_actions), n=1)
            message = prefix + flag + (f" (did you mean {close[0]}?)" if close else "")
        raise UsageError(message)


def _cli_type(option: Option):
    def convert(text):
        try:
            value = option.convert([text] if option.repeatable else text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value[0] if option.repeatable else value
    convert.__name__ = option.name
    return convert


def _escape(help_text: str) -> str:
    return help_text.replace("%", "%%")  # argparse %-formats help strings


def build_parser(prog: str = "fastwsgi", version: str = "") -> argparse.ArgumentParser:
    # the usage line names no flag (all of them, the refused ones too, made it 40 lines long, before
    # the help itself); the flags are grouped under the sections of docs/configuration.md
    parser = _Parser(prog=prog, usage="%(prog)s [OPTIONS] [MODULE:APP]",
                     description="A fast PEP 3333 WSGI server for HTTP/1.1.",
                     allow_abbrev=False, argument_default=argparse.SUPPRESS)
    parser.add_argument("app", nargs="?", metavar="MODULE:APP", default=None,
                        help="the application: module:name, module (then `application` or `app`), "
                             "or module:factory(args); default: the built-in demo")
    groups: dict = {}
    for option in OPTIONS:
        if not option.cli:
            continue
        if option.section not in groups:
            groups[option.section] = parser.add_argument_group(option.section)
        group = groups[option.section]
        if option.refused:  # one word at most: a value, if given, goes with it
            group.add_argument(*option.cli_flags, dest=option.name, action=_Refuse, nargs="?",
                               metavar="...", help=_escape(f"refused: {option.help}"))
        elif option.is_flag and option.default is True:  # --name is the default: --no-name turns it off
            group.add_argument(*option.cli_flags[-1:], dest=option.name,
                               action=argparse.BooleanOptionalAction, help=_escape(option.help))
        elif option.is_flag:
            group.add_argument(*option.cli_flags, dest=option.name, action="store_true",
                               help=_escape(option.help))
        elif option.repeatable:
            group.add_argument(*option.cli_flags, dest=option.name, action="append",
                               type=_cli_type(option), metavar=option.metavar,
                               help=_escape(f"{option.help} (default: {' '.join(option.default) or 'none'})"))
        else:
            choices = getattr(option.convert, "choices", None)
            group.add_argument(*option.cli_flags, dest=option.name, type=_cli_type(option),
                               metavar=option.metavar or
                               ("{" + ",".join(choices) + "}" if choices else None),
                               help=_escape(f"{option.help} (default: {option.default})"))
    parser.add_argument("-v", "--version", action=_PrintVersion, version=version)
    return parser


class _PrintVersion(argparse._VersionAction):
    """--version: the line as it is (argparse's own action re-wraps it at the terminal's width,
    breaking a path in two)."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser._print_message(f"{self.version}\n", sys.stdout)
        parser.exit()


# gunicorn 24.1's --proxy-protocol takes a mode; fastwsgi's is a flag (v1 and v2 are told apart by
# their first bytes, gunicorn's auto), so argparse would take the mode for the application's name
_PROXY_PROTOCOL_MODES = ("off", "v1", "v2", "auto")


def _given_flags(argv, version: str = ""):
    """-> (app spec or None, {name: typed value} for the flags actually used); raises UsageError."""
    for flag, word in zip(argv, argv[1:]):
        if flag == "--proxy-protocol" and word.lower() in _PROXY_PROTOCOL_MODES:
            raise UsageError(f"argument --proxy-protocol: takes no mode ({word!r}): fastwsgi tells "
                             "PROXY v1 and v2 apart itself (gunicorn's auto); give --proxy-protocol "
                             "alone to turn it on, nothing to leave it off")
    namespace = build_parser(version=version).parse_args(argv)
    given = {option.name: getattr(namespace, option.name) for option in OPTIONS
             if hasattr(namespace, option.name)}
    return namespace.app, given


def parse_args(argv, version: str = ""):
    """-> (app spec or None, validated options) from flags alone; raises UsageError."""
    spec, given = _given_flags(argv, version)
    try:
        return spec, validate(given)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None


# -- config files and the environment -------------------------------------------------------------

def load_config_file(path: str) -> dict:
    """The options set by a config file (raw values, names checked); raises UsageError."""
    try:
        if path.endswith(".toml"):
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI (a dependency there)
                import tomli as tomllib

            with open(path, "rb") as file:
                document = tomllib.load(file)
            table = document.get("tool", {}).get("fastwsgi")
            if not isinstance(table, dict):
                raise UsageError(f"{path}: no [tool.fastwsgi] table")
            items, spelled = {}, {}
            for key, value in table.items():
                name = key.replace("-", "_")
                if name in items:
                    raise UsageError(f"{path}: {spelled[name]!r} and {key!r} are the same option "
                                     f"({name}); set it once")
                items[name], spelled[name] = value, key
        else:
            import runpy
            import types

            namespace = runpy.run_path(path, run_name="__fastwsgi_config__")
            items = {}
            for key, value in namespace.items():
                if key.startswith("_") or isinstance(value, types.ModuleType):
                    continue
                if isinstance(value, type) and key not in BY_NAME and key not in ALIASES:
                    continue  # a helper class; one given to an option (worker_class) is its value
                if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
                    if key in HOOK_NAMES:
                        items[key] = value
                    else:
                        _check_helper(path, key)
                elif key.islower():
                    items[key] = value
    except UsageError:
        raise
    except FileNotFoundError:
        raise UsageError(f"config file {path!r} not found") from None
    except SystemExit as exc:  # sys.exit("why") in the file: a stop with its reason, never exit 0
        raise UsageError(f"config file {path!r} called sys.exit({exc.code!r})") from None
    except Exception as exc:  # a syntax error or an exception inside the file: one line, with its line
        raise UsageError(f"cannot read config file {path!r}: {type(exc).__name__}: {exc}"
                         f"{_where(path, exc)}") from None
    return _canonical_names(path, items)


def _where(path: str, exc: Exception) -> str:
    """' (FILE, line N)': the config file's own line that raised `exc` (a SyntaxError says it already)."""
    if isinstance(exc, SyntaxError):
        return ""
    import traceback

    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__)
             if os.path.abspath(frame.filename) == os.path.abspath(path)]
    return f" ({os.path.basename(path)}, line {lines[-1]})" if lines else ""


def _canonical_names(path: str, items: dict) -> dict:
    """A config file's settings under fastwsgi's names: gunicorn's names (the rows' aliases) are
    renamed; a setting spelled twice, a refused gunicorn setting or an unknown name is a UsageError."""
    allowed = [option.name for option in OPTIONS if not option.cli_only and not option.refused]
    result, spelled = {}, {}
    for key, value in items.items():
        name = ALIASES.get(key, key)
        option = BY_NAME.get(name)
        if option is not None and option.refused:
            if _asks_for_ours(option, value):
                continue
            accepted = " or ".join(repr(same) for same in option.ours)
            raise UsageError(f"{path}: {_refusal(option)}" + (f" (a config file may set it to {accepted}, "
                                                              f"what fastwsgi does anyway)" if accepted else ""))
        if option is None or option.cli_only:
            raise UsageError(f"{path}: {_unknown(key, allowed + list(ALIASES))}")
        if name in result:
            raise UsageError(f"{path}: {spelled[name]!r} and {key!r} are the same option ({name}); "
                             f"set it once")
        result[name], spelled[name] = value, key
    return result


def _check_helper(path: str, name: str) -> None:
    """A function of a config file that is not a hook: a helper (ignored), unless its name is so
    close to a hook's that it is one misspelled (UsageError)."""
    close = difflib.get_close_matches(name.lower(), HOOK_NAMES, n=1, cutoff=0.8)
    if close:
        raise UsageError(f"{path}: {name}() is not a server hook (did you mean {close[0]!r}?); "
                         f"rename it, or start its name with _ if it is a helper")


def _port_variable(port: str) -> list:
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid port {port!r}")
    return [f"0.0.0.0:{port}"]  # as gunicorn (and Heroku-style platforms) expect


def _sendfile_variable(value: str) -> bool:
    """$SENDFILE as gunicorn reads it (Config.sendfile): 1, y, yes, true (any case) turn sendfile on,
    and every other value, "" included, turns it off. A value that reads as "on" to a person but off
    to gunicorn ("on", "enabled") is an error here rather than silently off, as is any other."""
    if value.lower() in ("1", "y", "yes", "true"):
        return True
    if value.lower() in ("", "0", "n", "no", "false", "off"):
        return False
    raise ValueError(f"expected 1, y, yes or true (on) or 0, n, no, false, off or empty (off), got {value!r}")


# gunicorn's environment variables that set an option's default: a config file or a flag overrides
# them, as in gunicorn (a platform such as Heroku sets WEB_CONCURRENCY, PORT and FORWARDED_ALLOW_IPS
# unasked; the file the user wrote wins). (variable, option, converter, whether an empty variable is a
# value): as with gunicorn, an empty FORWARDED_ALLOW_IPS trusts no TCP peer and an empty SENDFILE
# turns sendfile off; the others count as unset when empty.
ENVIRONMENT_DEFAULTS = (
    ("WEB_CONCURRENCY", "workers", BY_NAME["workers"].convert, False),
    ("PORT", "bind", _port_variable, False),
    ("SCRIPT_NAME", "url_prefix", url_prefix, False),  # gunicorn mounts the application there
    ("FORWARDED_ALLOW_IPS", "forwarded_allow_ips", proxy_list, True),
    ("SENDFILE", "sendfile", _sendfile_variable, True),
)


def _environment(environ, version: str = "") -> tuple:
    """-> (options from the ENVIRONMENT_DEFAULTS variables, app spec and options from
    FASTWSGI_CMD_ARGS)."""
    found = {}
    for variable, name, convert, empty_is_a_value in ENVIRONMENT_DEFAULTS:
        value = environ.get(variable)
        if value or (value == "" and empty_is_a_value):
            try:
                found[name] = convert(value)
            except ValueError as exc:
                raise UsageError(f"environment variable {variable}: {exc}") from None
    spec, given = None, {}
    if environ.get("FASTWSGI_CMD_ARGS"):
        try:
            words = shlex.split(environ["FASTWSGI_CMD_ARGS"])
        except ValueError as exc:
            raise UsageError(f"FASTWSGI_CMD_ARGS: {exc}") from None
        try:
            spec, given = _given_flags(words, version)
        except UsageError as exc:
            raise UsageError(f"FASTWSGI_CMD_ARGS: {exc}") from None
    return found, spec, given


def unread_gunicorn_sources(options: dict, environ, cwd: str) -> list:
    """Warnings for what gunicorn would read unasked and fastwsgi does not: ./gunicorn.conf.py when no
    -c is given, and $GUNICORN_CMD_ARGS when $FASTWSGI_CMD_ARGS is unset. Not read, because a file or
    variable meant for another program should not change this one silently; named, because a user who
    swapped the command and kept them would otherwise lose their settings (a bind, say) silently."""
    found = []
    if options.get("config") is None and os.path.isfile(os.path.join(cwd, "gunicorn.conf.py")):
        found.append("./gunicorn.conf.py is not read (gunicorn reads it by default): pass "
                     "-c gunicorn.conf.py to use it")
    if environ.get("GUNICORN_CMD_ARGS") and not environ.get("FASTWSGI_CMD_ARGS"):
        found.append("$GUNICORN_CMD_ARGS is not read: fastwsgi takes the same flags from "
                     "$FASTWSGI_CMD_ARGS")
    return found


def resolve(argv, environ=None, version: str = ""):
    """-> (app spec or None, validated options) from every source:
    defaults < environment defaults < config file < FASTWSGI_CMD_ARGS < command-line flags. Raises
    UsageError."""
    environ = os.environ if environ is None else environ
    spec, flags = _given_flags(argv, version)
    env_defaults, env_spec, env_flags = _environment(environ, version)
    path = flags.get("config") or env_flags.get("config")
    from_file = load_config_file(path) if path else {}
    merged = {**env_defaults, **from_file, **env_flags, **flags}
    try:  # a bad value the file gives (and no flag overrides) names the file, as an unknown key does
        validate({name: value for name, value in from_file.items() if name not in env_flags and name not in flags})
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    try:
        options = validate(merged)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return spec or flags.get("wsgi_app") or env_spec or options["wsgi_app"], options


def anchor_paths(options: dict, base: str) -> dict:
    """`options` with every relative path of the `path` rows and of unix: binds made absolute from
    `base` (the directory fastwsgi started in), so they keep naming the same files after --chdir."""
    from .server.listener import split_protocol

    def absolute(path):
        return path if path == "-" or os.path.isabs(path) else os.path.normpath(os.path.join(base, path))

    result = dict(options)
    for option in OPTIONS:
        value = result.get(option.name)
        if option.path and isinstance(value, (str, list)):  # log_config may be a dict
            result[option.name] = [absolute(p) for p in value] if isinstance(value, list) else absolute(value)
    binds = []
    for address in result["bind"]:
        protocol, rest = split_protocol(address)
        if rest.startswith("unix:"):
            rest = "unix:" + absolute(rest[5:])
            address = f"{protocol}://{rest}" if protocol else rest
        binds.append(address)
    result["bind"] = binds
    return result


def format_options(options: dict) -> str:
    """The effective options as TOML lines for a [tool.fastwsgi] table (--print-config)."""
    import json

    lines = ["[tool.fastwsgi]"]
    for option in OPTIONS:
        if option.cli_only or option.refused:
            continue
        value = options[option.name]
        key = option.name
        if value is None:
            lines.append(f"# {key} is unset")
        elif isinstance(value, dict):  # log_config as a dict: JSON is not a TOML inline table
            lines.append(f"# {key} = {json.dumps(value)} (a dict: set it in a Python config file or as a "
                         f"[tool.fastwsgi.{key}] table)")
        elif not option.cli:  # a function: TOML cannot hold it
            from .hooks import describe

            lines.append(f"# {key} = {describe(value)} (a function: set it in a Python config file)")
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


# a character outside the BMP as json.dumps writes it (a surrogate pair), after an even number of
# backslashes (an escaped backslash before "ud83d" is text)
_SURROGATE_PAIR = re.compile(r"(?<!\\)((?:\\\\)*)\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})")


def _toml_value(value) -> str:
    """A TOML value: JSON is TOML for what the options hold, except a surrogate pair, which TOML
    refuses: \\UXXXXXXXX instead (the output stays ASCII)."""
    import json

    return _SURROGATE_PAIR.sub(
        lambda m: m[1] + "\\U%08X" % (0x10000 + ((int(m[2], 16) - 0xD800) << 10) + int(m[3], 16) - 0xDC00),
        json.dumps(value))


# -- documentation ------------------------------------------------------------------------------------

def _type_name(option: Option) -> str:
    choices = getattr(option.convert, "choices", None)
    if choices:
        return " / ".join(choices)
    if option.is_flag:
        return "bool"
    name = getattr(option.convert, "__name__", "value")
    return {"bind_list": "list of addresses", "positive_float": "seconds > 0",
            "non_negative_float": "seconds >= 0", "text": "string", "proxy_list": "list",
            "access_format": "format", "file_mode": "octal mode", "path_list": "list of paths", "tcp_bind": "HOST:PORT",
            "search_path": "list of paths", "env_list": "list of KEY=VALUE",
            "user_id": "name or uid", "group_id": "name or gid", "directory": "directory",
            "writable_directory": "directory",
            "log_config_source": "file (or dict)"}.get(name, name)


def render_markdown() -> str:
    """The option reference of docs/configuration.md, generated from OPTIONS."""
    out = []
    sections = []
    for option in OPTIONS:
        if option.section not in sections:
            sections.append(option.section)
    for section in sections:
        out.append(f"### {section}\n")
        out.append("| flag | config key | type | default | meaning |")
        out.append("|---|---|---|---|---|")
        for option in OPTIONS:
            if option.section != section:
                continue
            spellings = option.cli_flags
            if option.is_flag and option.default is True and not option.refused:
                spellings = (spellings[-1], "--no-" + spellings[-1][2:])
            flags = ", ".join(f"`{flag}`" for flag in spellings) if option.cli else "(none)"
            key = "(command line only)" if option.cli_only else f"`{option.name}`"
            if option.aliases:
                key += " (gunicorn: " + ", ".join(f"`{alias}`" for alias in option.aliases) + ")"
            default = "unset" if option.default is None else f"`{option.default!r}`".replace("|", "\\|")
            kind = _type_name(option)
            if option.refused:
                default, kind = "-", "refused"
                if option.ours:  # (the config-file values that ask for fastwsgi's own behaviour)
                    default = "accepted: " + ", ".join(f"`{same!r}`" for same in option.ours)
            meaning = option.help.replace("|", "\\|")
            out.append(f"| {flags} | {key} | {kind} | {default} | {meaning} |")
        out.append("")
    return "\n".join(out)


DOC_BEGIN = "<!-- BEGIN OPTIONS: generated by fastwsgi.config.render_markdown(), do not edit -->"
DOC_END = "<!-- END OPTIONS -->"


def sync_markdown(document: str) -> str:
    """`document` with the text between DOC_BEGIN and DOC_END replaced by render_markdown().
    Regenerate docs/configuration.md with `python -m fastwsgi.config docs/configuration.md`."""
    head, begin, rest = document.partition(DOC_BEGIN)
    _old, end, tail = rest.partition(DOC_END)
    if not begin or not end:
        raise ValueError("the document has no generated-options markers")
    return f"{head}{DOC_BEGIN}\n\n{render_markdown()}\n{DOC_END}{tail}"


if __name__ == "__main__":
    import sys

    with open(sys.argv[1], encoding="utf-8") as file:
        current = file.read()
    with open(sys.argv[1], "w", encoding="utf-8") as file:
        file.write(sync_markdown(current))
