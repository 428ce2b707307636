"""--url-prefix (and gunicorn's SCRIPT_NAME environment variable): the application mounted under a
path prefix, as behind `location /app/ { proxy_pass http://backend; }` without a rewrite."""

import pytest

from tests.functional.client import Conn
from tests.functional.conftest import BACKENDS, server_fixture
from tests.functional.serverproc import DEFAULT_APP, ServerProcess
from tests.functional.test_cli import assert_one_error_line, run_cli
from tests.functional.test_environ import environ_of

mounted_server = server_fixture("--url-prefix", "/app/", matrix=BACKENDS)  # the trailing / is dropped


def test_prefix_moves_from_path_info_to_script_name(mounted_server):
    env, _port = environ_of(mounted_server.port, "/app/environ?x=%2F1")
    assert env["SCRIPT_NAME"] == "/app"
    assert env["PATH_INFO"] == "/environ"
    assert env["QUERY_STRING"] == "x=%2F1"
    assert env["RAW_URI"] == env["REQUEST_URI"] == "/app/environ?x=%2F1"  # the target as sent


def test_the_prefix_itself_is_the_application_root(mounted_server):
    with Conn(mounted_server.port) as conn:
        conn.request("GET", "/app")
        reply = conn.read_response()
    # reached the application with PATH_INFO "" (the test app has no route for it: its own 404)
    assert reply.status == 404 and reply.body == b"no route "


@pytest.mark.parametrize("target", ["/", "/environ", "/application/environ", "/ap", "/APP/environ",
                                    "/xapp/environ"])
def test_paths_outside_the_prefix_get_404_and_the_connection_stays(mounted_server, target):
    with Conn(mounted_server.port) as conn:
        conn.request("GET", target)
        miss = conn.read_response()
        conn.request("GET", "/app/hello")  # same connection: a 404 is an ordinary response
        hit = conn.read_response()
    assert miss.status == 404
    assert miss.body == b"Not Found: this server serves only under /app/\n"
    assert miss.header("Content-Type") == "text/plain; charset=utf-8"
    assert hit.status == 200 and hit.body == b"hello"


def _serve(*args, env=None):
    return ServerProcess(["--bind", "127.0.0.1:0", *args, DEFAULT_APP], env).start()


@pytest.mark.parametrize("parser,threads", BACKENDS)
def test_script_name_environment_variable_as_gunicorn(parser, threads):
    """gunicorn mounts the application at $SCRIPT_NAME; a flag overrides it."""
    server = _serve("--http-parser", parser, "--threads", str(threads), env={"SCRIPT_NAME": "/mnt"})
    try:
        env, _port = environ_of(server.port, "/mnt/environ")
        assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/mnt", "/environ")
    finally:
        server.stop()
    server = _serve("--http-parser", parser, "--url-prefix", "/flag", env={"SCRIPT_NAME": "/mnt"})
    try:
        env, _port = environ_of(server.port, "/flag/environ")
        assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/flag", "/environ")
        with Conn(server.port) as conn:
            conn.request("GET", "/mnt/environ")
            assert conn.read_response().status == 404
    finally:
        server.stop()


def test_no_prefix_serves_every_path_with_an_empty_script_name(launch):
    server = launch("--url-prefix", "/", app=DEFAULT_APP)  # "/" is the root: no prefix
    env, _port = environ_of(server.port, "/environ")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("", "/environ")


@pytest.mark.parametrize("value", ["app", "/a b", "/a?b", "/a#b", "/a%2Fb", "/caf\u00e9"])
def test_bad_prefixes_are_one_line_errors(value):
    for args, env, named in ((["--url-prefix", value], None, "--url-prefix"),
                             ([], {"SCRIPT_NAME": value}, "environment variable SCRIPT_NAME")):
        result = run_cli("--bind", "127.0.0.1:0", *args, DEFAULT_APP, timeout=30, env=env)
        assert named in assert_one_error_line(result, 2)
