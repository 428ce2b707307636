"""The in-process API: fastwsgi.make_server as a drop-in for wsgiref.simple_server.make_server (the same
test body runs against both), and serve()'s option validation."""

import http.client
import socket
import threading
import time
import wsgiref.simple_server

import pytest

import fastwsgi


def hello_app(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)) or b"hello"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


def wsgiref_make_server(host, port, app):
    return wsgiref.simple_server.make_server(host, port, app, handler_class=QuietHandler)


def fastwsgi_make_server(host, port, app):
    return fastwsgi.make_server(host, port, app)


MAKERS = {"wsgiref": wsgiref_make_server, "fastwsgi": fastwsgi_make_server}


def fetch(port: int, method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, "/", body=body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("maker", list(MAKERS))
def test_serve_forever_shutdown_server_close(maker):
    """The seed's code path: make_server, serve_forever in a thread, shutdown from another thread."""
    server = MAKERS[maker]("127.0.0.1", 0, hello_app)
    host, port = server.server_address[:2]
    assert host == "127.0.0.1" and isinstance(port, int) and port > 0
    assert server.server_port == port
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        assert fetch(port) == (200, b"hello")
        assert fetch(port, "POST", b"posted body") == (200, b"posted body")
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()
    assert not thread.is_alive(), "serve_forever did not return after shutdown()"
    with pytest.raises(OSError):
        fetch(port)


@pytest.mark.parametrize("maker", list(MAKERS))
def test_handle_request_serves_one_request(maker):
    server = MAKERS[maker]("127.0.0.1", 0, hello_app)
    try:
        port = server.server_port
        thread = threading.Thread(target=server.handle_request)
        thread.start()
        assert fetch(port) == (200, b"hello")
        thread.join(5)
        assert not thread.is_alive(), "handle_request did not return after one request"
    finally:
        server.server_close()


def big_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(8 << 20))])
    return [b"x" * (8 << 20)]


@pytest.mark.parametrize("maker", list(MAKERS))
def test_handle_request_returns_once_the_response_is_sent(maker):
    """wsgiref's handle_request() writes the whole response before it returns: 8 MiB do not fit
    the socket buffers, and nothing sends the rest once it has returned (fastwsgi's used to return
    once the response was queued: the client then waited for ever after about 4 MiB)."""
    server = MAKERS[maker]("127.0.0.1", 0, big_app)
    thread = threading.Thread(target=server.handle_request)
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
        conn.request("GET", "/")
        assert len(conn.getresponse().read()) == 8 << 20
        conn.close()
    finally:
        thread.join(10)
        server.server_close()
    assert not thread.is_alive()


@pytest.mark.parametrize("maker", list(MAKERS))
def test_handle_request_returns_after_its_timeout(maker):
    server = MAKERS[maker]("127.0.0.1", 0, hello_app)
    try:
        server.timeout = 0.1
        thread = threading.Thread(target=server.handle_request)
        thread.start()
        thread.join(0.8)  # (fastwsgi's used to poll a whole second)
        assert not thread.is_alive(), "handle_request overstayed its timeout of 0.1 s"
    finally:
        thread.join(5)
        server.server_close()


def other_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"other"]


@pytest.mark.parametrize("maker", list(MAKERS))
def test_socketserver_attributes_and_set_app(maker):
    """What code written for wsgiref reaches for: the listening socket and its fileno() (for
    select() or a selector), server_name, and get_app()/set_app() swapping the application."""
    server = MAKERS[maker]("127.0.0.1", 0, hello_app)
    try:
        assert server.socket.getsockname()[:2] == server.server_address[:2]
        assert server.fileno() == server.socket.fileno() and server.fileno() >= 0
        assert isinstance(server.server_name, str) and server.server_name
        assert server.get_app() is hello_app
        server.set_app(other_app)
        assert server.get_app() is other_app
        thread = threading.Thread(target=server.handle_request)
        thread.start()
        assert fetch(server.server_port) == (200, b"other")
        thread.join(5)
        assert not thread.is_alive()
    finally:
        server.server_close()


@pytest.mark.parametrize("maker", list(MAKERS))
def test_a_port_in_use_is_an_oserror(maker):
    with MAKERS[maker]("127.0.0.1", 0, hello_app) as server:
        with pytest.raises(OSError):
            MAKERS[maker]("127.0.0.1", server.server_port, hello_app)


def test_serve_forever_again_after_shutdown_keeps_connections_alive():
    server = fastwsgi.make_server("127.0.0.1", 0, hello_app)
    try:
        for _ in range(2):
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
            thread.start()
            conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=5)
            conn.request("GET", "/")
            resp = conn.getresponse()
            assert resp.read() == b"hello" and not resp.will_close
            conn.close()
            server.shutdown()
            thread.join(5)
    finally:
        server.server_close()


@pytest.mark.parametrize("maker", list(MAKERS))
def test_context_manager_closes_the_socket(maker):
    with MAKERS[maker]("127.0.0.1", 0, hello_app) as server:
        port = server.server_port
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
        thread.start()
        assert fetch(port) == (200, b"hello")
        server.shutdown()
        thread.join(5)
    with pytest.raises(OSError):
        fetch(port)


def test_make_server_keeps_connections_alive():
    server = fastwsgi.make_server("127.0.0.1", 0, hello_app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=5)
        for i in range(3):
            conn.request("POST", "/", body=b"n%d" % i)
            resp = conn.getresponse()
            assert resp.read() == b"n%d" % i
            assert not resp.will_close
        conn.close()
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def test_make_server_reports_app_errors_as_500(capsys):
    def broken(environ, start_response):
        raise RuntimeError("in-process failure")

    server = fastwsgi.make_server("127.0.0.1", 0, broken)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        status, _ = fetch(server.server_port)
        assert status == 500
        assert fetch(server.server_port)[0] == 500  # and it keeps serving
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def test_module_attributes():
    assert fastwsgi.BACKEND in ("c", "python")
    assert isinstance(fastwsgi.__version__, str)


def test_serve_rejects_an_unknown_option_with_a_suggestion():
    with pytest.raises(TypeError) as info:
        fastwsgi.serve(hello_app, host="127.0.0.1", port=0, treads=4)
    assert "treads" in str(info.value) and "threads" in str(info.value)


@pytest.mark.parametrize("keyword, hint", [
    ("listen", "use bind="), ("trusted_proxy", "use forwarded_allow_ips"),
    ("max_request_body_size", "use limit_request_body"), ("channel_timeout", "use keep_alive"),
    ("connection_limit", "use worker_connections"), ("unix_socket", "use bind=['unix:PATH']"),
])
def test_serve_names_fastwsgi_s_option_for_a_waitress_keyword(keyword, hint):
    """waitress.serve(app, listen=..., trusted_proxy=...) swapped for fastwsgi.serve: the close match
    was wrong (trusted_proxy -> reuse_port, max_request_body_size -> max_requests)."""
    with pytest.raises(TypeError) as info:
        fastwsgi.serve(hello_app, host="127.0.0.1", port=0, **{keyword: "x"})
    assert f"unknown option {keyword!r} (waitress's name: {hint}" in str(info.value), info.value
    assert "did you mean" not in str(info.value)


@pytest.mark.parametrize("option", [{"threads": -1}, {"keep_alive": -2.0}, {"http_parser": "rust"},
                                    {"limit_request_line": 0}, {"read_timeout": 0}, {"backlog": 2**31},
                                    {"limit_request_line": 2**32}, {"limit_request_fields": 10**9},
                                    {"host": None}])
def test_serve_rejects_a_bad_value(option):
    with pytest.raises(ValueError):
        fastwsgi.serve(hello_app, **{"host": "127.0.0.1", "port": 0, **option})


def test_a_stop_before_serve_forever_is_not_lost():
    """A signal handler may call stop() between being installed and serve_forever(): serve_forever
    must then return at once (as socketserver's does), and serve again when called again."""
    server = fastwsgi.make_server("127.0.0.1", 0, hello_app)
    try:
        server.stop()
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
        thread.start()
        thread.join(5)
        assert not thread.is_alive(), "serve_forever ignored the stop() that came before it"
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
        thread.start()
        assert fetch(server.server_port) == (200, b"hello")
        server.shutdown()
        thread.join(5)
        assert not thread.is_alive()
    finally:
        server.server_close()


@pytest.mark.parametrize("connected", ["before", "while-busy"])
def test_no_request_begins_after_a_stop(connected):
    """stop() from an application (or a signal handler) ends serve_forever before any other request
    the loop already knows of begins. Two clients send their requests while the loop thread runs a
    slow application, so both are there when it returns: on connections accepted before, one poll
    reports both; on connections made meanwhile, one accept takes both (and reads each at once). The
    first application called stops the server; the other is never called."""
    started, release, calls = threading.Event(), threading.Event(), []

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/busy":
            started.set()
            release.wait(10)
        else:
            calls.append(environ["PATH_INFO"])
            server.stop()
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    server = fastwsgi.make_server("127.0.0.1", 0, app)  # threads 0: the loop thread runs the app
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    address = ("127.0.0.1", server.server_port)
    clients = []
    try:
        if connected == "before":
            clients += [socket.create_connection(address, timeout=5) for _ in range(2)]
            deadline = time.monotonic() + 5
            while len(server.connections) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(server.connections) == 2
        busy = socket.create_connection(address, timeout=5)
        busy.sendall(b"GET /busy HTTP/1.1\r\nHost: t\r\n\r\n")
        assert started.wait(5)
        if connected == "while-busy":
            clients += [socket.create_connection(address, timeout=5) for _ in range(2)]
        for index, client in enumerate(clients):
            client.sendall(b"GET /stop%d HTTP/1.1\r\nHost: t\r\n\r\n" % index)
        time.sleep(0.2)  # both requests are in the server's socket buffers before the loop polls again
        release.set()
        thread.join(5)
        assert not thread.is_alive()
        assert len(calls) == 1, calls
        assert busy.recv(1024).startswith(b"HTTP/1.1 200 OK")
        busy.close()
    finally:
        release.set()
        if thread.is_alive():
            server.shutdown()
        for client in clients:
            client.close()
        server.server_close()


def test_serve_from_another_thread_needs_the_main_thread_only_for_workers(caplog):
    """A master needs signal handlers, which only the main thread can install: serve(workers=2) from
    another thread is a clear RuntimeError (it was "signal only works in main thread"). A single
    process serves there (test fixtures do that), with a warning that signals end it at once."""
    caught = []

    def call(**options):
        try:
            fastwsgi.serve(hello_app, port=0, **options)
        except RuntimeError as exc:
            caught.append(exc)

    thread = threading.Thread(target=call, kwargs={"workers": 2})
    thread.start()
    thread.join(5)
    assert not thread.is_alive() and caught and "main thread" in str(caught[0])

    started = threading.Thread(target=call, daemon=True)
    with caplog.at_level("WARNING", logger="fastwsgi"):
        started.start()
        deadline = time.monotonic() + 5
        while "outside the main thread" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.02)
    assert "outside the main thread" in caplog.text and started.is_alive() and len(caught) == 1


def test_backend_follows_fastwsgi_purepython_set_after_import(monkeypatch):
    """fastwsgi -e FASTWSGI_PUREPYTHON=1 app: the variable is set after fastwsgi is imported, and the
    server it starts parses with Python; BACKEND said "c" all the same."""
    monkeypatch.setenv("FASTWSGI_PUREPYTHON", "1")
    assert fastwsgi.BACKEND == "python"
    from fastwsgi import BACKEND
    assert BACKEND == "python"
    with fastwsgi.make_server("127.0.0.1", 0, hello_app) as server:
        assert server.backend.NAME == "python"
