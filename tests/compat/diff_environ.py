"""Differential test of the WSGI environ and response framing: fastwsgi against gunicorn and waitress.

Not part of the pytest run (this file is not named test_*.py and needs gunicorn and waitress, which are
not test dependencies). It answers one question for users migrating from those servers: which requests
give the application a different environ, and which application answers go out differently?

Theory of operation: `app` below is one WSGI application. For most paths it answers a JSON dump of its
environ (str values only; wsgi.* reduced to url_scheme, multithread, multiprocess, run_once, the input
read in full as latin-1 text, errors presence); on HEAD the dump travels base64-encoded in an
X-Environ response header, since a HEAD response has no body. Paths under /_r/ are response-side
probes (no Content-Length, 204/304 with a body, a header value with a trailing space, reason phrases).
The script starts four servers on their own ports, each serving `app` from this file: fastwsgi with the
C parser, fastwsgi with FASTWSGI_PUREPYTHON=1, gunicorn (one sync worker) and waitress. It sends every
request of REQUESTS as raw bytes on a fresh socket, reads one response by its framing (Content-Length,
chunked, close; none for HEAD/204/304) and then waits briefly for stray bytes or a close. It prints,
per request, the status each server gave and every compared environ key whose values differ (keys that
are server-specific by nature, SERVER_SOFTWARE, REMOTE_PORT, gunicorn.*, waitress.*, fastwsgi.*, are
ignored), then for the response probes the head (Date and Server removed), body and whether the
connection closed (a Connection header or a close alone is not a difference: gunicorn's sync worker
closes every connection).

Usage (gunicorn and waitress in any venv; fastwsgi from this checkout, built in place):

    python -m venv /tmp/compat-venv && /tmp/compat-venv/bin/pip install gunicorn waitress
    python tests/compat/diff_environ.py --peer-python /tmp/compat-venv/bin/python [--only NAME] [--raw]

--raw prints every server's full answer for each request, not only the differences. The verdicts of
the differences found on 2026-11-22 are in benchmarks/results/compat-2026-11-22.md.
"""

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# -- the application (stdlib only: it runs under every server) ------------------------------------

WSGI_KEEP = ("wsgi.url_scheme", "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once")


def environ_dump(environ) -> dict:
    out = {key: value for key, value in environ.items() if type(value) is str}
    for key in WSGI_KEEP:
        out[key] = str(environ.get(key))
    out["wsgi.input"] = environ["wsgi.input"].read().decode("latin-1")
    out["wsgi.errors"] = str("wsgi.errors" in environ)
    return out


def response_probe(name, environ, start_response):
    if name == "nolength":  # no Content-Length: chunked (HTTP/1.1) or close-delimited (HTTP/1.0)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"hello ", b"world"])
    if name == "length":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "11")])
        return [b"hello world"]
    if name in ("204", "304"):
        start_response(f"{name} {'No Content' if name == '204' else 'Not Modified'}",
                       [("Content-Length", "4")])
        return [b"body"]
    if name == "204nolength":
        start_response("204 No Content", [])
        return iter([b"body"])
    if name == "trailspace":
        start_response("200 OK", [("X-T", "v "), ("Content-Length", "2")])
        return [b"ok"]
    if name == "leadspace":
        start_response("200 OK", [("X-T", " v"), ("Content-Length", "2")])
        return [b"ok"]
    if name.startswith("status-"):  # /_r/status-599-My%20Reason -> "599 My Reason"
        status = name[len("status-"):].replace("-", " ", 1)
        start_response(status, [("Content-Length", "2")])
        return [b"ok"]
    start_response("404 Not Found", [("Content-Length", "0")])
    return []


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith("/_r/"):
        return response_probe(path[4:], environ, start_response)
    body = json.dumps(environ_dump(environ), sort_keys=True).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    if environ["REQUEST_METHOD"] == "HEAD":
        headers.append(("X-Environ", base64.b64encode(body).decode()))
    start_response("200 OK", headers)
    return [body]


# -- the requests ------------------------------------------------------------------------------------

H = b"Host: example.com\r\n"


def get(target: bytes, headers: bytes = H, method: bytes = b"GET", version: bytes = b"HTTP/1.1") -> bytes:
    return method + b" " + target + b" " + version + b"\r\n" + headers + b"\r\n"


def post(body: bytes, headers: bytes) -> bytes:
    return b"POST /p HTTP/1.1\r\n" + H + headers + b"\r\n" + body


REQUESTS = [
    ("plain", get(b"/")),
    ("pct-2F", get(b"/a%2Fb")),
    ("pct-20", get(b"/a%20b")),
    ("pct-25", get(b"/a%25b")),
    ("pct-utf8", get(b"/caf%C3%A9")),
    ("raw-utf8", get("/café".encode())),
    ("pct-invalid", get(b"/a%zzb")),
    ("pct-00", get(b"/a%00b")),
    ("pct-in-query", get(b"/q?x=%2F%20&y=%zz")),
    ("double-slash", get(b"//double//slashes")),
    ("dot-segments", get(b"/a/./b/../c")),
    ("question-alone", get(b"/x?")),
    ("query-repeat", get(b"/x?a=1&a=2")),
    ("semicolon-params", get(b"/x;p=1/y;q?z")),
    ("fragment", get(b"/x#frag")),
    ("absolute-form", get(b"http://example.com/x?y")),
    ("absolute-form-other-host", get(b"http://other.example:8080/x?y")),
    ("absolute-form-no-path", get(b"http://example.com")),
    ("options-star", get(b"*", method=b"OPTIONS")),
    ("repeated-x-a", get(b"/", H + b"X-A: 1\r\nX-A: 2\r\n")),
    ("repeated-cookie", get(b"/", H + b"Cookie: a=1\r\nCookie: b=2\r\n")),
    ("empty-value", get(b"/", H + b"X-Empty:\r\nX-Empty2: \r\n")),
    ("underscore-name", get(b"/", H + b"X_Under: 1\r\nX-Dash: 2\r\n")),
    ("host-port", get(b"/", b"Host: example.com:8080\r\n")),
    ("host-ipv6", get(b"/", b"Host: [::1]:8080\r\n")),
    ("host-ipv6-noport", get(b"/", b"Host: [::1]\r\n")),
    ("host-uppercase", get(b"/", b"Host: EXAMPLE.com\r\n")),
    ("host-empty", get(b"/", b"Host:\r\n")),
    ("http10-host", get(b"/", version=b"HTTP/1.0")),
    ("http10-nohost", get(b"/", b"", version=b"HTTP/1.0")),
    ("http11-nohost", get(b"/", b"")),
    ("head", get(b"/h", method=b"HEAD")),
    ("post-cl0", post(b"", b"Content-Length: 0\r\n")),
    ("post-body", post(b"hello", b"Content-Length: 5\r\nContent-Type: text/plain\r\n")),
    ("post-no-length", post(b"", b"")),
    ("get-cl0", get(b"/", H + b"Content-Length: 0\r\n")),
    ("chunked", post(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"Transfer-Encoding: chunked\r\n")),
    ("chunked-trailers", post(b"5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n",
                              b"Transfer-Encoding: chunked\r\nTrailer: X-Trailer\r\n")),
    ("chunked-ext", post(b"5;name=val\r\nhello\r\n0\r\n\r\n", b"Transfer-Encoding: chunked\r\n")),
    ("content-type-params", post(b"a=1", b"Content-Type: application/x-www-form-urlencoded; "
                                         b"charset=UTF-8\r\nContent-Length: 3\r\n")),
    ("x-forwarded", get(b"/", H + b"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n")),
    ("x-forwarded-chain", get(b"/", H + b"X-Forwarded-For: 198.51.100.1, 203.0.113.7\r\n")),
    ("forwarded-rfc7239", get(b"/", H + b"Forwarded: for=203.0.113.7;proto=https\r\n")),
    ("long-header", get(b"/", H + b"X-Long: " + b"v" * 7000 + b"\r\n")),
    ("obs-text", get(b"/", H + b"X-Obs: caf\xc3\xa9 \xff\r\n")),
    ("value-inner-spaces", get(b"/", H + b"X-S:  a  b \t\r\n")),
    ("header-case", get(b"/", H + b"x-lower: 1\r\nX-UPPER: 2\r\n")),
    ("connection-keepalive-10", get(b"/", H + b"Connection: keep-alive\r\n", version=b"HTTP/1.0")),
    ("expect-100", post(b"hello", b"Content-Length: 5\r\nExpect: 100-continue\r\n")),
    ("method-lower", get(b"/", method=b"get")),
    ("method-custom", get(b"/", method=b"PURGE")),
]

RESPONSE_REQUESTS = [
    ("r-nolength-11", get(b"/_r/nolength")),
    ("r-nolength-10", get(b"/_r/nolength", version=b"HTTP/1.0")),
    ("r-head-nolength", get(b"/_r/nolength", method=b"HEAD")),
    ("r-head-length", get(b"/_r/length", method=b"HEAD")),
    ("r-204-body", get(b"/_r/204")),
    ("r-204-nolength", get(b"/_r/204nolength")),
    ("r-304-body", get(b"/_r/304")),
    ("r-trailing-space", get(b"/_r/trailspace")),
    ("r-leading-space", get(b"/_r/leadspace")),
    ("r-reason-custom", get(b"/_r/status-599-My%20Reason")),
    ("r-reason-empty", get(b"/_r/status-200-")),
    ("r-reason-none", get(b"/_r/status-200")),
    ("r-reason-unknown-code", get(b"/_r/status-299-Odd")),
]

# environ keys that are server-specific by nature (compared nowhere)
IGNORED = ("SERVER_SOFTWARE", "REMOTE_PORT", "SCRIPT_FILENAME")
IGNORED_PREFIXES = ("gunicorn.", "waitress.", "fastwsgi.")

# -- the servers -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_commands(peer_python: str, port_of):
    fastwsgi = [sys.executable, "-m", "fastwsgi", "diff_environ:app", "--chdir", HERE,
                "--log-level", "warning"]
    env_c = dict(os.environ, PYTHONPATH=REPO)
    env_c.pop("FASTWSGI_PUREPYTHON", None)
    env_py = dict(env_c, FASTWSGI_PUREPYTHON="1")
    env_peer = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return {
        "fw-c": (fastwsgi + ["--bind", f"127.0.0.1:{port_of('fw-c')}"], env_c),
        "fw-py": (fastwsgi + ["--bind", f"127.0.0.1:{port_of('fw-py')}"], env_py),
        "gunicorn": ([peer_python, "-m", "gunicorn", "-w", "1", "-k", "sync", "--chdir", HERE,
                      "--log-level", "warning", "-b", f"127.0.0.1:{port_of('gunicorn')}",
                      "diff_environ:app"], env_peer),
        "waitress": ([peer_python, "-m", "waitress", f"--listen=127.0.0.1:{port_of('waitress')}",
                      "diff_environ:app"], dict(env_peer, PYTHONPATH=HERE)),
    }


def wait_listening(port: int, proc, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


# -- one exchange ------------------------------------------------------------------------------------


class Answer:
    def __init__(self):
        self.raw = b""
        self.status = None  # e.g. "200 OK", or "no response"
        self.headers = []  # [(name bytes, value bytes)]
        self.body = b""
        self.extra = b""  # bytes after the framed response
        self.closed = False


def exchange(port: int, request: bytes, linger: float) -> Answer:
    answer = Answer()
    sock = socket.create_connection(("127.0.0.1", port), timeout=3.0)
    buf = b""

    def more() -> bool:
        nonlocal buf
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return False  # still open
        except ConnectionResetError:
            data = b""
        if not data:
            answer.closed = True
            return False
        buf += data
        answer.raw += data
        return True

    try:
        sock.sendall(request)
        while b"\r\n\r\n" not in buf:
            if not more():
                answer.status = f"no response ({buf[:60]!r})" if buf else "no response"
                return answer
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        answer.status = lines[0].split(b" ", 1)[1].decode("latin-1") if b" " in lines[0] else "?"
        answer.headers = [tuple(line.split(b":", 1)) for line in lines[1:]]
        names = {name.strip().lower(): value.strip() for name, value in answer.headers}
        code = answer.status[:3]
        if request.startswith(b"HEAD ") or code in ("204", "304") or code.startswith("1"):
            pass
        elif b"content-length" in names:
            length = int(names[b"content-length"])
            while len(buf) < length and more():
                pass
            answer.body, buf = buf[:length], buf[length:]
        elif names.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = b""
            while True:
                while b"\r\n" not in buf and more():
                    pass
                line, _, buf = buf.partition(b"\r\n")
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    while b"\r\n\r\n" not in b"\r\n" + buf and more():
                        pass
                    buf = (b"\r\n" + buf).split(b"\r\n\r\n", 1)[1]
                    break
                while len(buf) < size + 2 and more():
                    pass
                body, buf = body + buf[:size], buf[size + 2:]
            answer.body = body
        else:
            while more():
                pass
            answer.body, buf = buf, b""
        if not answer.closed:
            sock.settimeout(linger)
            more()
        answer.extra = buf
    finally:
        sock.close()
    return answer


def environ_of(answer: Answer):
    if not answer.status or not answer.status.startswith("200"):
        return None
    for name, value in answer.headers:
        if name.lower() == b"x-environ":
            return json.loads(base64.b64decode(value.strip()))
    try:
        return json.loads(answer.body)
    except ValueError:
        return None


def compared(key: str) -> bool:
    return key not in IGNORED and not key.startswith(IGNORED_PREFIXES)


def normalized(env, port: int):
    """The environ as compared: the server's own port as "<port>", RAW_URI and REQUEST_URI as one key
    (gunicorn sets only RAW_URI, waitress only REQUEST_URI; the baseline shows which has which)."""
    if env is None:
        return None
    env = {key: value for key, value in env.items() if compared(key)}
    if env.get("SERVER_PORT") == str(port):
        env["SERVER_PORT"] = "<port>"
    uri = env.get("RAW_URI", env.get("REQUEST_URI"))
    if uri is not None:
        env["RAW_URI|REQUEST_URI"] = uri
    return env


def short(value, width: int = 60) -> str:
    text = "-" if value is None else repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def response_summary(answer: Answer, framing_only: bool = False) -> str:
    """Status, headers (sorted: their order carries no meaning), body and bytes after it. With
    `framing_only`, without Connection and the close: gunicorn's sync worker closes every connection."""
    drop = (b"date", b"server", b"connection") if framing_only else (b"date", b"server")
    head = sorted(f"{name.decode('latin-1')}:{value.decode('latin-1')}" for name, value in answer.headers
                  if name.strip().lower() not in drop)
    summary = f"{answer.status} | {' | '.join(head)} | body={answer.body!r} extra={answer.extra!r}"
    return summary if framing_only else f"{summary} closed={answer.closed}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peer-python", required=True, help="a python with gunicorn and waitress")
    parser.add_argument("--only", action="append", help="run only the named request (repeatable)")
    parser.add_argument("--raw", action="store_true", help="print every answer, not only differences")
    args = parser.parse_args()

    ports = {}

    def port_of(name):
        return ports.setdefault(name, free_port())

    procs = {}
    try:
        for name, (cmd, env) in server_commands(args.peer_python, port_of).items():
            procs[name] = subprocess.Popen(cmd, env=env, cwd=HERE)
        for name, proc in procs.items():
            wait_listening(ports[name], proc)
        servers = list(procs)
        print("# environ differences (servers: " + ", ".join(servers) + ")")
        print("# the first request's differences hold for every request and are not repeated")
        baseline, baseline_values = None, {}
        for label, request in REQUESTS:
            if args.only and label not in args.only:
                continue
            answers = {name: exchange(ports[name], request, 0.05) for name in servers}
            statuses = {name: answers[name].status for name in servers}
            envs = {name: normalized(environ_of(answers[name]), ports[name]) for name in servers}
            keys = sorted({key for env in envs.values() if env for key in env})
            diffs = []
            for key in keys:
                values = {name: (envs[name].get(key) if envs[name] is not None else "<no environ>")
                          for name in servers}
                differ = len({json.dumps(v) for v in values.values()}) > 1
                if baseline is None:  # the first request: its differences are printed once
                    baseline_values[key] = values
                elif baseline_values.get(key) == values or (key in ("RAW_URI", "REQUEST_URI") and
                                                            None in values.values()):
                    differ = False  # same as for the plain request (or one server lacks the key)
                if differ or args.raw:
                    diffs.append((key, values))
            baseline = label
            same_status = len(set(statuses.values())) == 1
            if diffs or not same_status or args.raw:
                print(f"\n## {label}: {request[:80]!r}")
                print("  status: " + "; ".join(f"{n}={short(s, 40)}" for n, s in statuses.items()))
                for key, values in diffs:
                    print(f"  {key}: " + "; ".join(f"{n}={short(v)}" for n, v in values.items()))
        print("\n# response differences")
        for label, request in RESPONSE_REQUESTS:
            if args.only and label not in args.only:
                continue
            answers = {name: exchange(ports[name], request, 0.3) for name in servers}
            summaries = {name: response_summary(answers[name]) for name in servers}
            framings = {response_summary(answers[name], framing_only=True) for name in servers}
            if len(framings) > 1 or args.raw:
                print(f"\n## {label}: {request[:60]!r}")
                for name, summary in summaries.items():
                    print(f"  {name}: {summary}")
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
