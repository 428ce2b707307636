"""Server-side instructions of one uwsgi request, for callgrind (benchmarks/results/uwsgi-path-2026-11-22.md).

A real fastwsgi Server with one uwsgi listener on a UNIX socket, driven in-process: for each request
the client connects and sends the packet nginx sends for wrk's `GET /` (Debian's uwsgi_params plus
HTTP_HOST), the listener's accept handler runs (accept, then the read at accept: recv, parse,
Exchange, the hello app, send, close; before 900f761 a UNIX uwsgi listener waited for one epoll step
instead, which the loop below still drives for such trees), and the client reads the
response to EOF and closes. `--accept-only`: the server side only calls accept(2) and close(2), the
baseline that leaves the client's own work out.

    PYTHONHASHSEED=0 valgrind --tool=callgrind python benchmarks/uwsgi_callgrind.py N [--accept-only]
        [--backend c|python]

Count two values of N (e.g. 500 and 1500) and divide the difference by the difference of the Ns:
start-up cancels out. Server side = full path minus --accept-only.
"""
import os
import socket
import struct
import sys
import tempfile

from fastwsgi.config import defaults
from fastwsgi.server.listener import open_listener
from fastwsgi.server.loop import Server

HELLO = b"Hello, World!"


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))])
    return [HELLO]


def packet(pairs):
    block = b"".join(struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
                     for k, v in ((k.encode(), v.encode()) for k, v in pairs))
    return struct.pack("<BHB", 0, len(block), 0) + block


NGINX_GET = packet([("QUERY_STRING", ""), ("REQUEST_METHOD", "GET"), ("CONTENT_TYPE", ""),
                    ("CONTENT_LENGTH", ""), ("REQUEST_URI", "/"), ("PATH_INFO", "/"),
                    ("DOCUMENT_ROOT", "/usr/share/nginx/html"), ("SERVER_PROTOCOL", "HTTP/1.1"),
                    ("REQUEST_SCHEME", "http"), ("REMOTE_ADDR", "127.0.0.1"), ("REMOTE_PORT", "41234"),
                    ("SERVER_PORT", "8080"), ("SERVER_NAME", "localhost"),
                    ("HTTP_HOST", "127.0.0.1:8080")])


def main():
    count = int(sys.argv[1])
    accept_only = "--accept-only" in sys.argv
    backend = sys.argv[sys.argv.index("--backend") + 1] if "--backend" in sys.argv else "c"
    path = os.path.join(tempfile.mkdtemp(), "app.sock")
    options = defaults()
    options["http_parser"] = backend
    listener = open_listener(f"uwsgi://unix:{path}", 128)
    server = Server(hello, [listener], options)
    on_accept = server.handlers[listener.fileno()]
    for _ in range(count):
        client = socket.socket(socket.AF_UNIX)
        client.connect(path)
        client.sendall(NGINX_GET)
        if accept_only:
            fd, _addr = listener.sock._accept()  # the bare system calls: no socket object
            os.close(fd)
        else:
            on_accept(0)
            while server.connections:  # trees before 900f761: the read came after an epoll step
                server._step(0)
        data = b""
        try:
            while chunk := client.recv(65536):
                data += chunk
        except ConnectionResetError:  # --accept-only: closed with the packet unread
            pass
        client.close()
        assert accept_only or data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(HELLO), data
    listener.close()


main()
