"""Instructions of one keep-alive hello request through Connection.on_event, in process (callgrind).

Usage (PY: the real interpreter binary, not a pyenv shim; TREE: the fastwsgi tree to measure):
    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        --toggle-collect=consume_iterator $PY inproc_request.py TREE 2000
then divide "Collected" by 2,000 (FASTWSGI_PUREPYTHON=1 for the Python parser). The connection's socket
is a stand-in whose recv() returns wrk's 2-field GET and whose send() takes everything: no system call,
no epoll, so this is the server's Python per request (on_event, parse, environ, the application,
start_response, framing, settle), without the loop. A quick way to try a change before the real
server's app_callgrind.py (whose figures include epoll and the socket calls).
"""
import collections
import socket
import sys
from pathlib import Path

sys.path[:0] = [sys.argv[1], str(Path(__file__).resolve().parents[2] / "apps")]
import fastwsgi  # noqa: E402
from fastwsgi.server.connection import Connection  # noqa: E402
from fastwsgi.server.poller import IN  # noqa: E402
from wsgi_apps import hello  # noqa: E402

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"
real, _peer = socket.socketpair()  # a descriptor the poller can register


class StandInSocket:
    def __init__(self):
        self.sent = 0

    def fileno(self):
        return real.fileno()

    def recv(self, size):
        return REQUEST

    def send(self, data):
        self.sent += 1
        return len(data)


server = fastwsgi.make_server("127.0.0.1", 0, hello)
base = server._environ_bases[server.listeners[0]].copy()
base["REMOTE_ADDR"], base["REMOTE_PORT"] = "127.0.0.1", "5555"
conn = Connection(server, StandInSocket(), base)
server.connections[conn.fd] = conn
on_event = conn.on_event
for _ in range(300):
    on_event(IN)
count = int(sys.argv[2])
collections.deque(map(lambda _: on_event(IN), range(count)), maxlen=0)
assert conn.sock.sent == 300 + count, conn.sock.sent  # every request was answered
