"""Server hooks: gunicorn's config-file callbacks (post_fork, child_exit, when_ready, ...).

Theory of operation: each hook is a row of the option table (fastwsgi.config), whose converter
`hook(...)` checks at startup that the value is callable and accepts the hook's arguments. The code
that reaches each moment calls `call(options, name, *args)`: nothing happens when the hook is unset;
an exception is logged with its traceback on the "fastwsgi" logger and `call` returns False, or, with
`fatal=True`, raises HookError (a RuntimeError: the command prints one line and exits 1). Where each
hook runs and what an exception in it does is in the HOOKS table below, which also feeds the
documentation.

The `server` and `worker` arguments are fastwsgi's own objects, not gunicorn's: what they promise is
`pid`, `age`, `log` (the "fastwsgi" logging.Logger) and `cfg` (the options, read as attributes:
`cfg.workers`, `cfg.bind`), plus `num_workers` on the server and `ppid` on a worker object in a worker
process; anything else on them is internal.

pre_request/post_request cost nothing when unset: `wrap_app` puts a small middleware around the
application only when one of them is set, so the server's per-request path has no hook check.
post_request's `resp.sent` is the body-byte count the server keeps for the access log: with the hook
set, the server's exchange (server/instrumented.py HookedExchange) puts a callable returning it in
the environ as "fastwsgi.body_sent", and the middleware calls it when the response is over, so
HEAD, cut-off and sendfile responses are counted as sent, and nothing is counted twice.
"""

import inspect
import logging
import os

__all__ = ["HOOKS", "HookError", "hook", "call", "Cfg", "HookArgument", "ProcessInfo", "wrap_app",
           "Request", "Response"]

log = logging.getLogger("fastwsgi")

# name, arguments, process, when it runs, what an exception in it does
HOOKS = (
    ("on_starting", ("server",), "master (single process: the process)",
     "the options are read and the sockets bound, before the pid file and `Listening at`",
     "startup stops: traceback, exit 1"),
    ("nworkers_changed", ("server", "new_value", "old_value"), "master",
     "the target number of workers was set: at startup after on_starting (old_value None), on "
     "TTIN/TTOU, on HUP (from the reread options)", "logged; the master goes on"),
    ("when_ready", ("server",), "master (single process: the process)",
     "after `Listening at`, before the first worker is forked", "startup stops: traceback, exit 1"),
    ("pre_fork", ("server", "worker"), "master",
     "just before a worker is forked (worker.pid is None, worker.age is set)",
     "no fork; the master stops workers and exits 1 (gunicorn's master dies too)"),
    ("post_fork", ("server", "worker"), "worker",
     "first thing in the new worker, before the application is loaded (and, with --user, before "
     "the worker switches: as root, as in gunicorn)",
     "the worker fails to boot: the master stops with `Worker failed to boot` (a reload keeps the "
     "old workers)"),
    ("post_worker_init", ("worker",), "worker (single process: the process)",
     "the application is loaded, before the worker serves", "as post_fork (single process: exit 1)"),
    ("pre_request", ("worker", "req"), "worker (single process: the process)",
     "before the application is called, on the thread that calls it",
     "as the application raising: a 500 response"),
    ("post_request", ("worker", "req", "environ", "resp"), "worker (single process: the process)",
     "once the response is sent (its iterable closed), also when the application raised",
     "logged; the response is unaffected"),
    ("worker_int", ("worker",), "worker (single process: the process)",
     "on SIGINT or SIGQUIT (the fast stop), in the signal handler", "logged; the stop goes on"),
    ("worker_abort", ("worker",), "worker",
     "on SIGABRT, sent by the master to a worker silent for --timeout, just before its SIGKILL",
     "logged"),
    ("worker_exit", ("server", "worker"), "worker (single process: the process)",
     "when the worker has stopped serving (also after a failed boot), before it exits",
     "logged; the exit status is unchanged"),
    ("child_exit", ("server", "worker"), "master",
     "once for every worker the master reaps (whatever ended it: a stop, TTOU, a crash, kill -9)",
     "logged; the master goes on"),
    ("on_reload", ("server",), "master",
     "on HUP, once the options are reread (the new on_reload), before the new workers are forked",
     "logged; the reload goes on"),
    ("pre_exec", ("server",), "master (in the child USR2 forks)",
     "on USR2, in the forked child, just before it executes the new master (fastwsgi.workers.upgrade)",
     "logged; the new master starts anyway"),
    ("on_exit", ("server",), "master (single process: the process)",
     "the workers have exited and the sockets are closed, just before the process exits",
     "logged; exit status 1"),
    ("ssl_context", ("config", "default_ssl_context_factory"), "master (single process: the process)",
     "with --certfile, when the TLS context is built (startup, --check-config, HUP): returns the "
     "ssl.SSLContext to serve with; `default_ssl_context_factory()` builds fastwsgi's own from the "
     "TLS options, `config` is the options as attributes",
     "startup stops with one line (exit 1); on HUP the workers keep the previous context"),
)

HOOK_NAMES = tuple(name for name, *_ in HOOKS)


class HookError(RuntimeError):
    """A hook whose exception stops the server (its traceback is logged already)."""


def hook(*params: str):
    """The converter of a hook row: None (unset) or a callable accepting `params` positionally."""
    def convert(value):
        if value is None:
            return None
        if not callable(value):
            raise ValueError(f"expected a function ({', '.join(params)}), got {value!r}")
        try:
            signature = inspect.signature(value)
        except (TypeError, ValueError):  # some builtins have none: trust them
            return value
        try:
            signature.bind(*params)
        except TypeError:
            raise ValueError(f"{describe(value)} must accept {len(params)} argument(s) "
                             f"({', '.join(params)}); its signature is {signature}") from None
        return value
    convert.__name__ = f"function({', '.join(params)})"
    convert.params = params
    return convert


def describe(value) -> str:
    """module.qualname of a callable (for --print-config and errors)."""
    module = getattr(value, "__module__", None)
    name = getattr(value, "__qualname__", None) or type(value).__name__
    return f"{module}.{name}" if module and module != "__fastwsgi_config__" else name


def call(options: dict, name: str, *args, fatal: bool = False) -> bool:
    """Run hook `name` if set; True unless it raised (logged; HookError when `fatal`)."""
    function = options.get(name)
    if function is None:
        return True
    try:
        function(*args)
    except Exception as exc:
        log.exception("Exception in the %s hook", name)
        if fatal:
            raise HookError(f"the {name} hook raised {type(exc).__name__}: {exc}") from None
        return False
    return True


class Cfg:
    """The options, read as attributes (server.cfg.workers); read-only."""

    __slots__ = ("_options",)

    def __init__(self, options: dict):
        object.__setattr__(self, "_options", options)

    def __getattr__(self, name):
        try:
            return self._options[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        raise AttributeError("server.cfg is read-only")


class HookArgument:
    """What the hooks read off their `server` and `worker` objects besides pid and age: `log` (the
    "fastwsgi" logger) and `cfg` (the object's current `options`, as attributes). The Arbiter, the
    Worker and ProcessInfo inherit it."""

    log = log

    @property
    def cfg(self) -> Cfg:
        return Cfg(self.options)


class ProcessInfo(HookArgument):
    """The `server` and `worker` of the hooks in single-process mode: one object, this process."""

    def __init__(self, options: dict):
        self.pid = os.getpid()
        self.ppid = os.getppid()
        self.age = 1
        self.num_workers = 1
        self.options = options


# -- pre_request / post_request ---------------------------------------------------------------------

class Request:
    """pre_request/post_request's `req`: the request as gunicorn's hooks read it."""

    __slots__ = ("environ",)

    def __init__(self, environ):
        self.environ = environ

    method = property(lambda self: self.environ["REQUEST_METHOD"])
    uri = property(lambda self: self.environ.get("RAW_URI", ""))
    path = property(lambda self: self.uri.partition("?")[0])
    query = property(lambda self: self.uri.partition("?")[2])
    remote_addr = property(lambda self: self.environ.get("REMOTE_ADDR"))

    @property
    def version(self) -> tuple:
        protocol = self.environ.get("SERVER_PROTOCOL", "HTTP/1.1")
        major, _, minor = protocol[5:].partition(".")
        return int(major or 1), int(minor or 0)

    @property
    def headers(self) -> list:
        """(NAME, value) pairs, names upper-case as gunicorn gives them (from the environ)."""
        pairs = [(key[5:].replace("_", "-"), value) for key, value in self.environ.items()
                 if key.startswith("HTTP_")]
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if key in self.environ:
                pairs.append((key.replace("_", "-"), self.environ[key]))
        return pairs


class Response:
    """post_request's `resp`: what the application answered (status and headers None before
    start_response), and as gunicorn's: `sent`, the body bytes sent (what the access log writes as
    %(b)s; 0 for HEAD, 204 and 304, whose body is never sent), and `response_length`, the
    Content-Length the application set (an int, or None)."""

    __slots__ = ("status", "headers", "sent")

    def __init__(self):
        self.status = None  # "200 OK"
        self.headers = None  # [(name, value)]
        self.sent = 0

    @property
    def status_code(self):
        return int(self.status[:3]) if self.status and self.status[:3].isdigit() else None

    @property
    def response_length(self):
        for name, value in self.headers or ():
            if name.lower() == "content-length":
                return int(value) if value.isdigit() else None
        return None


class _Finished:
    """The application's iterable, whose close() (called by the server once the response is sent,
    or abandoned) also runs post_request."""

    __slots__ = ("_iterable", "_done")

    def __init__(self, iterable, done):
        self._iterable, self._done = iterable, done

    def __iter__(self):
        return iter(self._iterable)

    def close(self):
        try:
            close = getattr(self._iterable, "close", None)
            if close is not None:
                close()
        finally:
            self._done()


def wrap_app(app, options: dict, worker):
    """`app` itself when neither pre_request nor post_request is set, else a middleware calling them."""
    pre, post = options.get("pre_request"), options.get("post_request")
    if pre is None and post is None:
        return app
    from .server.filewrapper import FileWrapper

    if post is None:
        def with_pre(environ, start_response):
            pre(worker, Request(environ))
            return app(environ, start_response)
        return with_pre

    def with_hooks(environ, start_response):
        req = Request(environ)
        resp = Response()
        called = []
        # the server's count of the body bytes sent (fastwsgi.server.instrumented.HookedExchange)
        body_sent = environ.get("fastwsgi.body_sent")

        def done():
            if not called:
                called.append(1)
                if body_sent is not None:
                    resp.sent = body_sent()
                try:
                    post(worker, req, environ, resp)
                except Exception:
                    log.exception("Exception in the post_request hook")

        def start(status, headers, exc_info=None):
            write = start_response(status, headers, exc_info)
            resp.status, resp.headers = status, headers
            return write

        try:
            if pre is not None:
                pre(worker, req)
            result = app(environ, start)
        except BaseException:
            done()
            raise
        if type(result) is FileWrapper:  # keep the exact type: the server sends it with sendfile
            close = getattr(result, "close", None)

            def close_then_done():
                try:
                    if close is not None:
                        close()
                finally:
                    done()
            result.close = close_then_done
            return result
        # a list is framed as any iterable (its Content-Length, else chunked): the same bytes leave
        return _Finished(result, done)

    return with_hooks
