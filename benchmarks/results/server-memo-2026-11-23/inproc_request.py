"""Instructions of one keep-alive hello request through Connection.on_event, in process (callgrind).

Usage (PY: the real interpreter binary, not a pyenv shim; TREE: the fastwsgi tree to measure):
    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        --toggle-collect=consume_iterator $PY inproc_request.py TREE 2000
then divide "Collected" by 2,000 (FASTWSGI_PUREPYTHON=1 for the Python parser). Optional, after COUNT:
`nginx` sends the head nginx sends with the README's proxy configuration (Host, X-Forwarded-For,
X-Forwarded-Proto, User-Agent, Accept; the peer is 127.0.0.1, a trusted proxy), `access-log` serves
with the default --access-logfile format into a file under /tmp, and `post` sends a small form POST
(Content-Length 27, the body in the same recv() as the head) to the `upload` app, which reads it. The connection's socket
is a stand-in whose recv() returns wrk's 2-field GET and whose send() takes everything: no system call,
no epoll, so this is the server's Python per request (on_event, parse, environ, the application,
start_response, framing, settle), without the loop. A quick way to try a change before the real
server's app_callgrind.py (whose figures include epoll and the socket calls).
"""
import collections
import socket
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [sys.argv[1], str(Path(__file__).resolve().parents[2] / "apps")]
from fastwsgi.accesslog import AccessLogger  # noqa: E402
from fastwsgi.config import defaults  # noqa: E402
from fastwsgi.server import Server, open_listener  # noqa: E402
from fastwsgi.server.connection import Connection  # noqa: E402
from fastwsgi.server.poller import IN  # noqa: E402
from wsgi_apps import hello, upload  # noqa: E402

EXTRAS = set(sys.argv[3:])
assert EXTRAS <= {"nginx", "access-log", "post"}, EXTRAS
APP = hello
if "post" in EXTRAS:
    REQUEST = (b"POST /form HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
               b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 27\r\n\r\n"
               b"name=fastwsgi&answer=42&x=y")
    APP = upload
elif "nginx" in EXTRAS:
    REQUEST = (b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 203.0.113.7\r\n"
               b"X-Forwarded-Proto: https\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n")
else:
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


options = defaults()
options["bind"] = ["127.0.0.1:0"]
access_log = None
if "access-log" in EXTRAS:
    access_log = AccessLogger(target=tempfile.NamedTemporaryFile(prefix="inproc-access-", delete=False).name)
server = Server(APP, [open_listener(options["bind"][0], options["backlog"])], options, access_log=access_log)
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
