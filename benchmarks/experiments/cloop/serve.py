"""The C-loop prototype's Python half and entry point:
`python benchmarks/experiments/cloop/serve.py --bind 127.0.0.1:PORT [MODULE:APP]` (default wsgi_apps:hello).

Theory of operation: Python binds the listening socket and hands its descriptor to the C loop
(cloop.c), which runs until the process is killed (SIGTERM/SIGINT keep their default actions: the
loop never returns to Python between requests, so a Python signal handler would never run).
C calls `cloop_on_request` once per complete head, with fw_parse_head's result and the packed head
(csrc/fw_binding.h), which this module turns into the environ the way fastwsgi/parser/_cffi.py turns
it into a Head: one decode, one split, the keys from the per-memo-slot tuple cache. The environ is
built as fastwsgi/server does it (a per-connection copy of the listener's base with REMOTE_ADDR and
REMOTE_PORT, copied per request, updated with the header items and the request keys, then
fastwsgi.proxy.apply_forwarded). The application is called with a `start_response` that makes the
real server's PEP 3333 checks; its body is joined, and one `cloop_respond` call hands status,
headers and body to C, which validates and serializes the head (fw_serialize_head), frames the body
and sends. Any failure before that answers 500 and closes the connection.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import build_cloop  # noqa: E402

# an installed fastwsgi (the harness's venv, built from this tree) first, else this tree; the apps
sys.path += [build_cloop.ROOT, os.path.join(build_cloop.ROOT, "benchmarks", "apps")]

sys.path.insert(0, build_cloop.ensure_built())
from _cloop import ffi, lib  # noqa: E402

from fastwsgi._cparser import lib as fw  # noqa: E402  (the FW_HEAD_* constants of fw_binding.h)
from fastwsgi.proxy import TrustedProxies, apply_forwarded  # noqa: E402
from fastwsgi.server.body import EMPTY_BODY  # noqa: E402
from fastwsgi.server.filewrapper import FileWrapper  # noqa: E402
from fastwsgi.server.wsgi import Exchange  # noqa: E402

error_log = logging.getLogger("fastwsgi.error")

_KEYS_SHIFT = fw.FW_HEAD_KEYS_SHIFT
_STORED = fw.FW_HEAD_STORED  # keys state: < _STORED found in memo slot, < _NEW stored in slot - 8
_NEW = fw.FW_HEAD_NEW
_string = ffi.string
_respond = lib.cloop_respond
_join_pair = "\0".join
_ERROR_500 = b"500 Internal Server Error\0Content-Type\0text/plain\0Content-Length\0" + b"0"


class Reply:
    """start_response and write() for one request (the checks of fastwsgi.server.wsgi.Exchange)."""

    __slots__ = ("status", "headers", "written")

    def __init__(self):
        self.status = None
        self.headers = None
        self.written = None

    # the server's own start_response (its PEP 3333 checks), so the prototype measures the same code;
    # "headers sent" here means body bytes already left through write()
    start_response = Exchange.start_response
    headers_sent = property(lambda self: self.written is not None)

    def write(self, data):
        """The legacy write(): kept until the body is complete (the prototype sends once)."""
        if self.status is None:
            raise AssertionError("write() called before start_response()")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"write() takes bytes, not {type(data).__name__}")
        if self.written is None:
            self.written = []
        self.written.append(bytes(data))


def make_handler(app, base: dict, trusted: TrustedProxies):
    """Defines (and returns) the cffi callback for `app`.

    Costs trimmed after measuring (README.md, "Tuning"): the base environ already holds the six
    request keys, so each copy has its final size and the stores replace values; one Reply serves
    every request (requests are handled one at a time, and the body is complete before the next
    one starts); the head is packed with str.join, without a comprehension."""
    slot_keys = [()] * fw.FW_MEMO_SLOTS  # the environ keys of each memo slot of the C scratch
    bases = {}  # fd -> the connection's base environ (with REMOTE_ADDR, REMOTE_PORT)
    reply = Reply()
    start_response = reply.start_response

    @ffi.def_extern()
    def cloop_on_request(conn, fd, first, peer, head, packed):
        environ = None
        try:
            # value 1..n, method, target, version, query, path[, key 1..n], \x01-separated
            items = _string(packed).decode("latin-1").split("\x01")
            keys_state = head >> _KEYS_SHIFT  # FW_HEAD_SLOW never reaches Python
            if keys_state < _STORED:
                keys = slot_keys[keys_state]
            else:
                keys = tuple(items[(len(items) + 5) >> 1:])  # n values, 5 fields, n keys
                if keys_state < _NEW:
                    slot_keys[keys_state - _STORED] = keys
            count = len(keys)
            method, target, version, query, path = items[count:count + 5]
            if first:
                connection_base = bases[fd] = base.copy()
                connection_base["REMOTE_ADDR"], connection_base["REMOTE_PORT"] = \
                    _string(peer).decode("latin-1").split(" ")
            else:
                connection_base = bases[fd]
            environ = connection_base.copy()
            environ.update(zip(keys, items))  # zip stops after the values
            environ["REQUEST_METHOD"] = method
            environ["PATH_INFO"] = path
            environ["QUERY_STRING"] = query
            environ["RAW_URI"] = environ["REQUEST_URI"] = target
            environ["SERVER_PROTOCOL"] = version
            apply_forwarded(environ, trusted)

            reply.status = reply.headers = reply.written = None
            result = app(environ, start_response)
            if type(result) is list:
                body = b"".join(result)
            else:
                try:
                    body = b"".join(result)  # the prototype sends whole bodies only
                finally:
                    if hasattr(result, "close"):
                        result.close()
            status, headers = reply.status, reply.headers
            if status is None:
                raise RuntimeError("the application returned without calling start_response()")
            if reply.written is not None:
                body = b"".join(reply.written) + body
            # status \0 name \0 value ...: a pair that is not two str fails here or in C (500)
            packed_head = (status + "\0" + "\0".join(map(_join_pair, headers))).encode("latin-1")
            if _respond(conn, packed_head, len(packed_head), len(headers), body, len(body), 0) == 0:
                return 0
            raise ValueError(f"invalid response head: {status!r} {headers!r}")
        except Exception as exc:
            error_log.error("Error handling request %s", environ and environ.get("RAW_URI"),
                            exc_info=exc)
            _respond(conn, _ERROR_500, len(_ERROR_500), 2, b"", 0, 1)
            return 0

    return cloop_on_request


_CANNED_HEAD = b"200 OK\0Content-Type\0text/plain\0Content-Length\0" + b"13"


def make_canned_handler():
    """--canned: the floor of this design, a callback that only answers a constant response
    (no environ, no application): C loop + parser + one crossing each way + serializer."""

    @ffi.def_extern(name="cloop_on_request")
    def canned(conn, fd, first, peer, head, packed):
        return _respond(conn, _CANNED_HEAD, len(_CANNED_HEAD), 2, b"Hello, World!", 13, 0)

    return canned


def base_environ(host: str, port: int) -> dict:
    """The listener's base environ, as fastwsgi.server.loop builds it (threads = 0, one process)."""
    return {
        "SCRIPT_NAME": "",
        "SERVER_NAME": host,
        "SERVER_PORT": str(port),
        "REMOTE_ADDR": "",
        "REMOTE_PORT": "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
        "wsgi.input": EMPTY_BODY,  # no request bodies in the prototype
        # set per request: present here so that a copy already has the environ's final size
        "REQUEST_METHOD": "", "PATH_INFO": "", "QUERY_STRING": "", "RAW_URI": "", "REQUEST_URI": "",
        "SERVER_PROTOCOL": "",
    }


def load_app(target: str):
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr or "application")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bind", required=True, help="HOST:PORT")
    parser.add_argument("app", nargs="?", default="wsgi_apps:hello", help="MODULE:APP")
    parser.add_argument("--canned", action="store_true",
                        help="measure the floor: answer Hello, World! without environ or application")
    parser.add_argument("--capi", action="store_true",
                        help="the same work in C through the CPython API (capi.c), no callback")
    args = parser.parse_args(argv)
    host, _, port = args.bind.rpartition(":")
    logging.basicConfig(level=logging.WARNING)
    app, base, trusted = load_app(args.app), base_environ(host, int(port)), TrustedProxies.parse()
    if args.capi:  # capi.c reads these from __main__
        main_module = sys.modules["__main__"]
        main_module.CLOOP_APP, main_module.CLOOP_BASE = app, base
        main_module.CLOOP_APPLY_FORWARDED = lambda environ: apply_forwarded(environ, trusted)
    elif args.canned:
        make_canned_handler()
    else:
        make_handler(app, base, trusted)
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, int(port)))
    listener.listen(1024)
    listener.setblocking(False)
    loop = lib.cloop_new(listener.fileno())
    if loop == ffi.NULL:
        raise OSError("cloop_new failed")
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # the loop never returns to Python's handlers
    return -(lib.cloop_capi_run(loop) if args.capi else lib.cloop_run(loop))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
