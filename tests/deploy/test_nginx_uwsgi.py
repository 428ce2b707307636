"""A real nginx (Debian's /usr/sbin/nginx) in front of real fastwsgi processes over the uwsgi protocol.

Theory of operation: per parser backend, the module fixture starts one `fastwsgi --protocol uwsgi`
process serving tests/functional/apps.py on a TCP socket and a UNIX socket (`uwsgi://unix:PATH`), plus
the example Django project and Flask application over uwsgi, renders tests/deploy/nginx_uwsgi.conf.in
(the configuration docs/deployment.md shows, with the distribution's stock uwsgi_params) and starts
nginx in its own prefix. Clients talk to nginx only, over HTTP/1.1, from 127.0.0.5 (so the address
nginx passes as REMOTE_ADDR is told apart from nginx's own). The applications report what reached them
(/environ: every string environ entry; /hash: size and SHA-256 of the body as read through wsgi.input).
After every test the new part of nginx's error log must hold no error about the upstream (a protocol
error, a reset, a premature close) and no fastwsgi process may have logged a traceback it was not
asked for.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import re
import subprocess
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.deploy.conftest import (DJANGO_DIR, EXAMPLES, HTTP_TIMEOUT, NginxProcess, Reply, Target,
                                   free_port, multipart, start_cli)
from tests.deploy.test_django import form_token, form_post
from tests.deploy.test_nginx import BrokenUpstream
from tests.functional.serverproc import ServerProcess, server_args

APP = "tests.functional.apps:app"
TEMPLATE = Path(__file__).with_name("nginx_uwsgi.conf.in")
UWSGI_PARAMS = Path("/etc/nginx/uwsgi_params")  # Debian's nginx packages install it
CLIENT_ADDR = "127.0.0.5"
# a line nginx logs about its upstream at [warn] or worse (reset, invalid header, premature close...)
UPSTREAM_TROUBLE = re.compile(r"\[(warn|error|crit|alert|emerg)\].*upstream")
VIAS = {"tcp": "", "unix": "/unix"}  # location prefix -> which uwsgi socket answers


def uwsgi_params() -> Path:
    if not UWSGI_PARAMS.is_file():
        pytest.fail(f"{UWSGI_PARAMS} not found (Debian: apt-get install nginx-light)")
    return UWSGI_PARAMS


class Stack:
    def __init__(self, nginx: NginxProcess, app: ServerProcess, others: dict[str, Target], ports: dict):
        self.nginx = nginx
        self.app = app
        self.others = others
        self.front = Target("nginx", "127.0.0.1", nginx.port)
        self.django = Target("nginx-django", "127.0.0.1", ports["DJANGO_LISTEN_PORT"])
        self.flask = Target("nginx-flask", "127.0.0.1", ports["FLASK_LISTEN_PORT"])
        self.log_checked_up_to = 0
        self.traceback_expected = False

    def request(self, method: str, path: str, body=None, headers=None) -> Reply:
        return self.front.request(method, path, body=body, headers=headers, source=CLIENT_ADDR)

    def environ(self, path: str, headers=()) -> dict:
        """GET `path` (an /environ URL) with `headers`, a list of (name, value): repeats allowed."""
        conn = http.client.HTTPConnection("127.0.0.1", self.nginx.port, timeout=HTTP_TIMEOUT,
                                          source_address=(CLIENT_ADDR, 0))
        try:
            conn.putrequest("GET", path, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            conn.endheaders()
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        assert resp.status == 200, (resp.status, body[:300])
        return json.loads(body)

    def upstream_trouble(self, since: int) -> list[str]:
        return [line for line in self.nginx.log_text()[since:].splitlines() if UPSTREAM_TROUBLE.search(line)]


@pytest.fixture(scope="module", params=[("c", 0), ("python", 4)], ids=["c-t0", "python-t4"])
def stack(request, tmp_path_factory, django_env):
    parser, threads = request.param
    prefix = tmp_path_factory.mktemp("nginx-uwsgi")
    socket_path = prefix / "fastwsgi.sock"
    app = nginx = None
    others: dict[str, Target] = {}
    broken = BrokenUpstream()
    try:
        app = ServerProcess(server_args(parser, threads, "--protocol", "uwsgi",
                                        "--bind", f"uwsgi://unix:{socket_path}", app=APP)).start()
        others["django"] = start_cli(DJANGO_DIR, "mysite.wsgi:application", parser, django_env,
                                     "--protocol", "uwsgi")
        others["flask"] = start_cli(EXAMPLES, "flaskapp:app", parser, {}, "--protocol", "uwsgi")
        ports = {"DJANGO_LISTEN_PORT": free_port(), "FLASK_LISTEN_PORT": free_port()}
        nginx = NginxProcess(prefix, {
            "PORT_TCP": app.port, "UNIX_SOCKET": socket_path, "PORT_BROKEN": broken.port,
            "PORT_DJANGO": others["django"].port, "PORT_FLASK": others["flask"].port,
            "UWSGI_PARAMS": uwsgi_params(), **ports}, template=TEMPLATE).start()
        yield Stack(nginx, app, others, ports)
    finally:
        if nginx is not None:
            nginx.stop()
        broken.close()
        for target in others.values():
            target.stop()
        if app is not None:
            app.stop()


@pytest.fixture(autouse=True)
def clean_logs(stack):
    stack.log_checked_up_to = len(stack.nginx.log_text())
    stack.traceback_expected = False
    marks = {name: len(proc.stderr_lines) for name, proc in processes(stack).items()}
    yield
    since = stack.log_checked_up_to
    assert stack.upstream_trouble(since) == [], stack.nginx.log_text()[since:][-3000:]
    for name, proc in processes(stack).items():
        new = "".join(proc.stderr_lines[marks[name]:])
        if not (name == "app" and stack.traceback_expected):
            assert "Traceback" not in new, f"{name}:\n{new[-3000:]}"


def processes(stack) -> dict[str, ServerProcess]:
    return {"app": stack.app, **{name: target.info["process"] for name, target in stack.others.items()}}


def test_the_servers_announce_uwsgi(stack):
    text = stack.app.stderr_text()
    assert f"Listening at: uwsgi://127.0.0.1:{stack.app.port} " in text
    assert f"Listening at: uwsgi://unix:{stack.nginx.prefix / 'fastwsgi.sock'} " in text


@pytest.mark.parametrize("via", VIAS)
def test_get_with_query_and_repeated_headers(stack, via):
    prefix = VIAS[via]
    seen = stack.environ(f"{prefix}/environ?q=a%20b&x=1", [
        ("X-Repeated", "first"), ("User-Agent", "uwsgi-test/1"), ("X-Repeated", "second, third"),
        ("Accept-Language", "fr-CH, fr;q=0.9")])
    assert seen["REQUEST_METHOD"] == "GET"
    assert seen["PATH_INFO"] == "/environ" and seen["SCRIPT_NAME"] == prefix
    assert seen["QUERY_STRING"] == "q=a%20b&x=1"
    assert seen["REQUEST_URI"] == f"{prefix}/environ?q=a%20b&x=1"
    assert seen["SERVER_PROTOCOL"] == "HTTP/1.1"
    # REMOTE_ADDR is the client as nginx saw it (no X-Forwarded-For needed)
    assert seen["REMOTE_ADDR"] == CLIENT_ADDR
    assert (seen["SERVER_NAME"], seen["SERVER_PORT"]) == ("localhost", str(stack.nginx.port))
    assert seen["HTTP_HOST"] == "127.0.0.1"
    assert seen["HTTP_X_REPEATED"] == "first,second, third"  # one var per header line, joined in order
    assert seen["HTTP_USER_AGENT"] == "uwsgi-test/1" and seen["HTTP_ACCEPT_LANGUAGE"] == "fr-CH, fr;q=0.9"
    assert seen["wsgi.url_scheme"] == "http" and seen["REQUEST_SCHEME"] == "http"


def test_https_from_the_front_end_sets_the_url_scheme(stack):
    seen = stack.environ("/tls/environ")
    assert seen["HTTPS"] == "on" and seen["wsgi.url_scheme"] == "https"


def test_uwsgi_param_overrides_after_uwsgi_params(stack):
    """`uwsgi_param REMOTE_ADDR ...` after `include uwsgi_params` makes nginx send REMOTE_ADDR twice
    (likewise SERVER_NAME, PATH_INFO): the last value wins, as in uWSGI, instead of a 400."""
    seen = stack.environ("/override/environ?x=1")
    assert seen["REMOTE_ADDR"] == "192.0.2.10" and seen["SERVER_NAME"] == "app.example"
    assert (seen["SCRIPT_NAME"], seen["PATH_INFO"]) == ("/override", "/environ")
    assert seen["QUERY_STRING"] == "x=1" and seen["REQUEST_URI"] == "/override/environ?x=1"


def test_decoded_path_reaches_the_application(stack):
    seen = stack.environ("/environ/caf%C3%A9%20x")
    assert seen["PATH_INFO"] == "/environ/caf\xc3\xa9 x"  # the UTF-8 bytes, latin-1 decoded (PEP 3333)
    assert seen["REQUEST_URI"] == "/environ/caf%C3%A9%20x"


@pytest.mark.parametrize("via", VIAS)
def test_post_form(stack, via):
    body = urlencode({"name": "Zoë & co", "text": "x" * 3000}).encode()
    reply = stack.request("POST", f"{VIAS[via]}/echo", body=body,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 200 and reply.body == body
    assert reply.header("X-Body-Length") == str(len(body))


def big_file(tmp_path, size=8 * 1024 * 1024 + 3):
    data = random.Random(size).randbytes(size)
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    return path, data


@pytest.mark.parametrize("via", VIAS)
def test_large_upload(stack, tmp_path, via):
    _, data = big_file(tmp_path)
    reply = stack.request("POST", f"{VIAS[via]}/hash", body=data,
                          headers={"Content-Type": "application/octet-stream"})
    assert reply.status == 200
    assert reply.body.decode() == f"{len(data)} {hashlib.sha256(data).hexdigest()}"


@pytest.mark.parametrize("via", VIAS)
def test_upload_the_application_does_not_read(stack, via):
    """nginx writes the whole 8 MiB before it reads the answer: fastwsgi discards the unread body
    instead of resetting the connection (which nginx would report as a 502 and a writev() error)."""
    data = random.Random(5).randbytes(8 * 1024 * 1024)
    reply = stack.request("POST", f"{VIAS[via]}/ignore-body", body=data,
                          headers={"Content-Type": "application/octet-stream"})
    assert reply.status == 200 and reply.body == b"ignored"


@pytest.mark.parametrize("location", ["", "/unix", "/stream"])
def test_chunked_upload_from_curl(stack, tmp_path, location):
    """curl sends 8 MiB chunked; nginx buffers it and passes CONTENT_LENGTH (uwsgi has no chunked
    framing), even where uwsgi_request_buffering is off."""
    path, data = big_file(tmp_path)
    out = subprocess.run(["curl", "-sS", "--max-time", "30", "-H", "Transfer-Encoding: chunked",
                          "-H", "Content-Type: application/octet-stream", "--data-binary", f"@{path}",
                          f"http://127.0.0.1:{stack.nginx.port}{location}/hash"],
                         capture_output=True, timeout=40, check=True)
    assert out.stdout.decode() == f"{len(data)} {hashlib.sha256(data).hexdigest()}"


@pytest.mark.parametrize("location", ["", "/unix", "/stream"])
def test_streaming_response(stack, location):
    """The application yields 20000 pieces without a Content-Length: fastwsgi close-delimits the response,
    nginx re-frames it for its HTTP/1.1 client (buffered, or as it arrives with uwsgi_buffering off)."""
    reply = stack.request("GET", f"{location}/chunks?n=20000")
    assert reply.status == 200
    assert reply.body == b"".join(f"piece{i};".encode() for i in range(20000))
    assert reply.header("Transfer-Encoding") == "chunked"


@pytest.mark.parametrize("location", ["", "/stream"])
def test_an_application_error_after_the_head_reaches_the_client_as_an_error(stack, location):
    """The response is close-delimited over uwsgi: after an error mid-body fastwsgi resets the
    connection instead of closing it, so nginx sees an upstream failure and cuts its chunked
    response to the client short (curl: exit 18), instead of completing a truncated body. (Over a
    UNIX socket nginx cannot tell: its end of stream is the same either way.)"""
    stack.traceback_expected = True
    mark = stack.app.stderr_mark()
    out = subprocess.run(["curl", "-sS", "--max-time", "20",
                          f"http://127.0.0.1:{stack.nginx.port}{location}/raise-after-headers?msg=cut"],
                         capture_output=True, timeout=30)
    assert out.returncode == 18, (out.returncode, out.stderr)  # (buffering on: nothing reaches it)
    if location == "/stream":
        assert out.stdout == b"partial;"
    log = stack.nginx.log_text()
    assert "reset by peer" in log[stack.log_checked_up_to:], log[-2000:]
    stack.log_checked_up_to = len(log)  # the failure this test expects
    # logged with its traceback: here, not in the next test's stderr (a thread may log it after the reset)
    assert stack.app.wait_stderr("late boom cut", since=mark) is not None


@pytest.mark.parametrize("via", VIAS)
def test_head(stack, via):
    reply = stack.request("HEAD", f"{VIAS[via]}/head")
    assert reply.status == 200 and reply.body == b""
    assert reply.header("Content-Length") == "100"


@pytest.mark.parametrize("via", VIAS)
def test_broken_application_is_a_500(stack, via):
    stack.traceback_expected = True
    mark = stack.app.stderr_mark()
    reply = stack.request("GET", f"{VIAS[via]}/raise?msg=uwsgi-{via}")
    assert reply.status == 500 and reply.body == b"500 Internal Server Error\n"
    assert stack.app.wait_stderr(f"uwsgi-{via}", since=mark) is not None  # logged with its traceback
    # the next request is served as usual
    assert stack.request("GET", f"{VIAS[via]}/hello").body == b"hello"


def test_many_requests_in_a_row(stack):
    """One upstream connection per request: fastwsgi closes each one cleanly (no reset in nginx's log)."""
    for i in range(50):
        via = "/unix" if i % 2 else ""
        reply = stack.request("GET", f"{via}/p/{i}?i={i}")
        assert reply.status == 200 and reply.body == f"GET /p/{i}?i={i}".encode()


def test_django_form_post_over_uwsgi(stack):
    cookies, token = form_token(stack.django, "/form/")
    reply = form_post(stack.django, "/form/", cookies, {"csrfmiddlewaretoken": token, "name": "Zoë & co"})
    assert reply.status == 200, reply.body[:1000]
    assert reply.json() == {"name": "Zoë & co", "method": "POST"}


def test_flask_multipart_upload_over_uwsgi(stack):
    rng = random.Random(7)
    files = {"a": ("a.bin", rng.randbytes(4 * 1024 * 1024 + 1)), "b": ("b.txt", b"small\r\n--x\r\n")}
    content_type, body = multipart({"who": "test"}, files)
    reply = stack.flask.request("POST", "/upload", body=body, headers={"Content-Type": content_type})
    assert reply.status == 200, reply.body[:500]
    result = reply.json()
    assert result["fields"] == {"who": "test"}
    for field, (name, data) in files.items():
        assert result["files"][field] == {"name": name, "size": len(data),
                                          "sha256": hashlib.sha256(data).hexdigest()}


def test_the_error_log_check_detects_a_broken_upstream(stack):
    """The clean-log check is real: an upstream that answers garbage to a uwsgi request is reported by
    nginx (then this test moves the checked offset past its own, expected, error)."""
    since = len(stack.nginx.log_text())
    reply = stack.request("GET", "/broken/info")
    assert reply.status == 502
    deadline = time.monotonic() + 5
    while not stack.upstream_trouble(since) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.upstream_trouble(since), stack.nginx.log_text()[since:]
    stack.log_checked_up_to = len(stack.nginx.log_text())
