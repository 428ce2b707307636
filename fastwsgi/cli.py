"""The `fastwsgi` command: parse flags, load the application, serve until SIGTERM/SIGINT.

Theory of operation: `main(argv)` returns an exit status and never lets a traceback escape for a
user mistake: usage errors print one `fastwsgi: error: ...` line and return 2, failures to load the
application or to listen return 1. `load_app` resolves `module:name`, `module` (then `application`,
else `app`) or a factory call `module:create_app("x", 3)` whose arguments are literals parsed with
ast (never eval). `run` is shared with `fastwsgi.serve()`: it opens the listeners, announces each as
`Listening at: URL` on stderr, and serves until stopped; SIGTERM and SIGINT stop it cleanly.
"""

import ast
import importlib
import logging
import os
import signal
import sys
import threading

from . import __version__
from .config import UsageError, parse_args
from .server import BindError, Server, open_listener

__all__ = ["main", "load_app", "run", "AppLoadError"]

log = logging.getLogger("fastwsgi")


class AppLoadError(Exception):
    """The application spec cannot be resolved (the message is shown to the user)."""


def version_string() -> str:
    from .parser import BACKEND

    return f"fastwsgi {__version__} (parser: {BACKEND})"


def _parse_spec(spec: str):
    """'mod.sub:expr' -> (module name, [attribute names], call args or None, call kwargs)."""
    module_name, _, expression = spec.partition(":")
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise AppLoadError(f"invalid application spec {spec!r} (expected MODULE:APP)")
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
        except ValueError:
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
            raise AppLoadError(f"no module named {exc.name!r}") from None
        raise AppLoadError(f"cannot import {module_name!r}: {exc}") from None
    except ImportError as exc:
        raise AppLoadError(f"cannot import {module_name!r}: {exc}") from None
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
        target = target(*args, **kwargs)
    if not callable(target):
        raise AppLoadError(f"{spec!r} is not a WSGI application (not callable)")
    return target


def _configure_logging(level: str) -> None:
    logger = logging.getLogger("fastwsgi")
    logger.setLevel(level.upper())
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"))
        logger.addHandler(handler)


def run(app, options: dict) -> None:
    """Listen on options["bind"] and serve `app` until SIGTERM/SIGINT (or stop()). Raises BindError."""
    _configure_logging(options["log_level"])
    listeners = []
    try:
        for address in options["bind"]:
            listeners.append(open_listener(address, options["backlog"]))
    except BindError:
        for listener in listeners:
            listener.close()
        raise
    server = Server(app, listeners, options)
    for listener in listeners:
        sys.stderr.write(f"Listening at: {listener.url} (fastwsgi {__version__}, "
                         f"parser: {server.backend.NAME}, threads: {options['threads']})\n")
    sys.stderr.flush()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: server.stop())
    try:
        server.serve_forever()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        server.server_close()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        spec, options = parse_args(argv, version=version_string())
    except UsageError as exc:
        sys.stderr.write(f"fastwsgi: error: {exc}\n")
        return 2
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    try:
        if spec is None:
            from .demo import application as app
        else:
            app = load_app(spec)
        run(app, options)
    except (AppLoadError, BindError, RuntimeError) as exc:
        sys.stderr.write(f"fastwsgi: error: {exc}\n")
        return 1
    return 0
