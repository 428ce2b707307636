"""Starts a server that has no command line of its own: `python serve_runner.py SERVER MODULE:APP PORT`.

Theory of operation: run by the server's own venv Python (so only the stdlib and that server are
importable), with the benchmark apps on PYTHONPATH. It imports the application, then hands it to the
server's documented Python entry point, bound to 127.0.0.1:PORT, one process, one thread:
- wsgiref: `wsgiref.simple_server.make_server` with request logging silenced (it logs every request to
  stderr by default, which would be timed too);
- bjoern: `bjoern.run(app, host, port)`;
- meinheld: `meinheld.server.listen` + `run`, with keep-alive switched on (`set_keepalive(10)`: meinheld
  ships with keep-alive off, which would turn every scenario into a connection-per-request one) and its
  per-request access log switched off (`set_access_logger(None)`), like every other server here.
SIGTERM ends it (default action), which is how the harness stops every server.
"""

import importlib
import sys

HOST = "127.0.0.1"


def load(target: str):
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr or "application")


def serve_wsgiref(app, port: int) -> None:
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 (the stdlib's parameter name)
            pass

    with make_server(HOST, port, app, handler_class=QuietHandler) as server:
        server.serve_forever()


def serve_bjoern(app, port: int) -> None:
    import bjoern

    bjoern.run(app, HOST, port)


def serve_meinheld(app, port: int) -> None:
    import meinheld.server

    meinheld.server.set_keepalive(10)
    meinheld.server.set_access_logger(None)  # it logs every request to stdout by default
    meinheld.server.listen((HOST, port))
    meinheld.server.run(app)


SERVERS = {"wsgiref": serve_wsgiref, "bjoern": serve_bjoern, "meinheld": serve_meinheld}


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in SERVERS:
        print(f"usage: serve_runner.py {{{','.join(SERVERS)}}} MODULE:APP PORT", file=sys.stderr)
        return 2
    name, target, port = argv
    SERVERS[name](load(target), int(port))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
