"""fastwsgi: a fast, strict PEP 3333 WSGI server for HTTP/1.1.

The hot path (request parser, chunked decoder, response-head serializer) is C bound through cffi, with
a pure-Python twin used when the extension is not built; `BACKEND` names the one in use ("c" or
"python"). See fastwsgi.parser for choosing a backend explicitly.
"""

import logging
import threading

__all__ = ["__version__", "BACKEND", "make_server", "serve"]

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "BACKEND":  # the parser "auto" picks now (fastwsgi.parser)
        from . import parser

        return parser.BACKEND
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _bind_address(host: str, port: int) -> str:
    if not isinstance(host, str):
        raise ValueError(f"invalid host {host!r}")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValueError(f"invalid port {port!r}")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def make_server(host, port, app, server_class=None, handler_class=None):
    """A drop-in for wsgiref.simple_server.make_server with the default options.

    Returns a server with serve_forever(), handle_request(), shutdown() (from another thread),
    server_close(), server_address, server_port, server_name, socket, fileno(), get_app() and
    set_app(); it is also a context manager.
    server_class and handler_class are accepted for compatibility and ignored.
    """
    from .config import defaults
    from .server import Server, open_listener

    options = defaults()
    options["bind"] = [_bind_address(host, port)]
    listener = open_listener(options["bind"][0], options["backlog"])
    try:
        return Server(app, [listener], options)
    except BaseException:
        listener.close()
        raise


def serve(app, host="127.0.0.1", port=8000, **options):
    """Serve `app` until SIGTERM/SIGINT. Options are the command-line flags as keywords
    (fastwsgi.config.OPTIONS); an unknown one raises TypeError, a bad value ValueError.
    workers=N forks N worker processes under a master (the app object is inherited, as --preload);
    user="www-data" (started as root) serves from workers running as that user, under a master that
    stays root (workers=1 unless set; PrivilegeError, a RuntimeError, if it cannot switch);
    metrics_bind="127.0.0.1:9100" serves Prometheus metrics from a master (workers=1 unless set);
    reload is refused (ValueError): only the command can re-import the application;
    protocol="uwsgi" serves nginx `uwsgi_pass` instead of HTTP."""
    from . import logs
    from .cli import implied_workers, run, run_master
    from .config import validate
    from .privileges import credentials, guard_log_files

    if "bind" not in options:
        options["bind"] = [_bind_address(host, port)]
    options = validate(options, api=True)
    if options["reload"] or options["reload_extra_file"]:
        raise ValueError("option 'reload': serve() is handed an application imported already, which "
                         "restarted workers could not import again; use the fastwsgi command for --reload")
    switches_user = credentials(options) is not None
    if switches_user:  # root opens the log files in a directory USER may write to (fastwsgi.privileges)
        guard_log_files()
    options["workers"] = implied_workers(options, switches_user)
    if threading.current_thread() is not threading.main_thread():
        if options["workers"] is not None:
            raise RuntimeError("serve() with workers runs a master, which needs the signal handlers "
                               "only the main thread can install: call it from the main thread")
        logging.getLogger("fastwsgi").warning(
            "serve() outside the main thread: no signal handlers, so SIGTERM and SIGINT end the "
            "process at once (no graceful stop, no on_exit); make_server() and shutdown() stop a "
            "server in a thread")
    logs.configure(options)
    if options["workers"] is not None:  # a pre-fork master with `app` preloaded
        status = run_master(None, options, app=app)
        if status:
            raise RuntimeError("the workers could not be started (see the log)")
        return
    run(app, options)
