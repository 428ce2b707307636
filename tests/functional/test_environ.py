"""The WSGI environ the application receives (PEP 3333 "environ Variables"), and a run of the whole
server under wsgiref.validate.validator."""

import http.cookies
import json

import pytest

from tests.functional.client import Conn, build_request
from tests.functional.conftest import BACKENDS, server_fixture

PEP3333_KEYS = ["REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME", "SERVER_PORT",
                "SERVER_PROTOCOL", "wsgi.version", "wsgi.url_scheme", "wsgi.input", "wsgi.errors",
                "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"]


def environ_of(port: int, target: str = "/environ", **kwargs) -> tuple[dict, int]:
    method = kwargs.pop("method", "GET")
    with Conn(port) as conn:
        conn.request(method, target, **kwargs)
        resp = conn.read_response()
        assert resp.status == 200, resp.body
        return json.loads(resp.body), conn.local_port


def test_pep3333_keys_and_types(server):
    env, client_port = environ_of(server.port, "/environ?a=1")
    missing = [k for k in PEP3333_KEYS if k not in env["_types"]]
    assert missing == []
    for key in ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME", "SERVER_PORT",
                "SERVER_PROTOCOL", "RAW_URI", "REQUEST_URI", "REMOTE_ADDR", "REMOTE_PORT"):
        assert env["_types"][key] == "str", (key, env["_types"][key])
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is (server.threads > 0)
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    assert env["_file_wrapper_callable"] is True
    assert env["_input_methods"] == ["read", "readline", "readlines", "__iter__"]
    assert env["_errors_methods"] == ["write", "writelines", "flush"]
    assert env["SERVER_PORT"] == str(server.port)
    assert env["SERVER_NAME"]
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == str(client_port)
    assert env["HTTP_HOST"] == "localhost"
    assert "CONTENT_TYPE" not in env and "CONTENT_LENGTH" not in env
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env


def test_wsgi_errors_goes_to_the_server_log(server):
    mark = server.stderr_mark()
    environ_of(server.port)
    assert server.wait_stderr("environ-report", since=mark) is not None


def test_path_info_is_percent_decoded_latin1_and_query_is_raw(server):
    target = "/environ/caf%C3%A9/a%2Fb/%zz/%41/%ff%FF%2/?q=%20a+b&x=%C3%A9"
    env, _ = environ_of(server.port, target)
    assert env["PATH_INFO"] == "/environ/caf\u00c3\u00a9/a/b/%zz/A/\u00ff\u00ff%2/"  # bytes seen as latin-1
    assert env["QUERY_STRING"] == "q=%20a+b&x=%C3%A9"
    assert env["RAW_URI"] == target
    assert env["REQUEST_URI"] == target


def test_absolute_form_target(server):
    origin_env, _ = environ_of(server.port, "/environ")
    env, _ = environ_of(server.port, "http://example.com:8081/environ?z=1")  # Host: localhost
    assert env["PATH_INFO"] == "/environ"
    assert env["QUERY_STRING"] == "z=1"
    assert env["RAW_URI"] == "http://example.com:8081/environ?z=1"
    assert env["HTTP_HOST"] == "example.com:8081"  # the target's authority, not Host (RFC 9112 §3.2.2)
    # the listener's name and port, as for origin-form: PEP 3333 URL reconstruction uses HTTP_HOST
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == (origin_env["SERVER_NAME"], str(server.port))
    env, _ = environ_of(server.port, "http://[::1]/environ", version="HTTP/1.0", host=None)
    assert env["HTTP_HOST"] == "[::1]"  # HTTP/1.0 needs no Host: HTTP_HOST still comes from the target


def test_no_query_string_is_empty(server):
    env, _ = environ_of(server.port, "/environ")
    assert env["QUERY_STRING"] == ""


def test_headers_map_to_cgi_names(server):
    headers = [("Content-Type", "text/x-test"), ("X-Multi", "a"), ("X-Custom-Header", "v1"), ("X-Multi", "b"),
               ("X_Custom_Header", "spoofed"), ("User-Agent", "t\u00e9st"), ("Accept", "*/*")]
    env, _ = environ_of(server.port, "/environ", method="POST", headers=headers, body=b"12345")
    assert env["CONTENT_TYPE"] == "text/x-test"
    assert env["CONTENT_LENGTH"] == "5"
    assert env["HTTP_X_MULTI"] == "a,b"
    assert env["HTTP_X_CUSTOM_HEADER"] == "v1", "an underscore header overwrote the dashed one"
    assert "spoofed" not in json.dumps(env)
    assert env["HTTP_USER_AGENT"] == "t\u00e9st"  # latin-1 decoded
    assert env["HTTP_ACCEPT"] == "*/*"
    assert env["REQUEST_METHOD"] == "POST"


def test_repeated_cookie_lines_reach_cookie_parsers_as_separate_cookies(server):
    # joined with "," (as gunicorn does), "a=1,b=2" parses as the one cookie a="1,b=2"
    env, _ = environ_of(server.port, headers=[("Cookie", "a=1"), ("X-A", "1"), ("Cookie", "b=2; c=3"),
                                              ("X-A", "2")])
    assert env["HTTP_COOKIE"] == "a=1; b=2; c=3"
    jar = http.cookies.SimpleCookie(env["HTTP_COOKIE"])
    assert {name: morsel.value for name, morsel in jar.items()} == {"a": "1", "b": "2", "c": "3"}
    assert env["HTTP_X_A"] == "1,2"  # other fields keep ","


def test_underscore_header_alone_is_dropped(server):
    env, _ = environ_of(server.port, headers=[("X_Only_Underscore", "v")])
    assert "HTTP_X_ONLY_UNDERSCORE" not in env


def test_http10_environ(server):
    env, _ = environ_of(server.port, version="HTTP/1.0", host=None)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert "HTTP_HOST" not in env


def test_chunked_request_has_no_content_length(server):
    with Conn(server.port) as conn:
        conn.request("POST", "/environ", headers=[("Transfer-Encoding", "chunked")], body=b"0\r\n\r\n")
        env = json.loads(conn.read_response().body)
    assert "CONTENT_LENGTH" not in env
    assert env["wsgi.input_terminated"] is True


def test_method_is_passed_as_sent(server):
    env, _ = environ_of(server.port, method="PROPFIND")
    assert env["REQUEST_METHOD"] == "PROPFIND"


# -- wsgiref.validate.validator around the application --------------------------------------------------

validated = server_fixture(matrix=BACKENDS, app="tests.functional.apps:validated_app")


def test_validator_finds_nothing(validated):
    """Every request is checked by validator; an AssertionError or WSGIWarning shows up on stderr."""
    body = b"line one\nline two\nthree"
    mark = validated.stderr_mark()
    with Conn(validated.port) as conn:
        for path in ("/read", "/readline", "/readlines", "/iter", "/read-n"):
            for framing in ("length", "chunked"):
                if framing == "chunked":
                    conn.request("POST", path, headers=[("Transfer-Encoding", "chunked")],
                                 body=b"5\r\nline \r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body) - 5, body[5:]))
                else:
                    conn.request("POST", path, body=body)
                resp = conn.read_response()
                assert (resp.status, resp.body) == (200, body), (path, framing, resp.body)
        conn.request("GET", "/write")
        assert conn.read_response().body == b"written;returned"
        conn.request("GET", "/file")
        assert conn.read_response().body == b"bytes!"
        conn.request("GET", "/errors")
        assert conn.read_response().body == b"errors ok"
        conn.send(build_request("HEAD", "/anything") + build_request("GET", "/p/x?y=1"))
        assert conn.read_response("HEAD").status == 200
        assert conn.read_response().body == b"GET /p/x"
    assert validated.wait_stderr("validated errors stream", since=mark) is not None
    log = "".join(validated.stderr_lines[mark:])
    for needle in ("AssertionError", "WSGIWarning", "Warning:", "Traceback"):
        assert needle not in log, f"{needle} on the server's stderr:\n{log[-3000:]}"


@pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/1.1"])
def test_validator_on_each_protocol_version(validated, version):
    mark = validated.stderr_mark()
    with Conn(validated.port) as conn:
        conn.request("GET", "/plain", version=version)
        assert conn.read_response().body == b"GET /plain"
    log = "".join(validated.stderr_lines[mark:])
    assert "AssertionError" not in log and "Warning" not in log, log


def test_validator_is_active(validated):
    """The checks above mean something only if validator failures do reach stderr."""
    mark = validated.stderr_mark()
    with Conn(validated.port) as conn:
        conn.request("GET", "/violate")
        resp = conn.read_response(allow_incomplete=True)
        assert resp.status == 500
    assert validated.wait_stderr("AssertionError", since=mark) is not None


def test_a_repeated_request_gets_a_fresh_environ_and_its_own_head(server):
    """The same request bytes again and again on one connection (the parsers return their kept
    head, the connection its environ, the server its last head's decision): every request must get
    an environ untouched by what the application did to the previous one, and a response head
    made from the headers it gives this time, though they come in the same list object."""
    request = build_request("GET", "/meddle", headers=[("Host", "example.test")])
    counts = []
    with Conn(server.port) as conn:
        for burst in (1, 1, 1, 3, 1, 2):  # alone, and pipelined behind one another
            conn.send(request * burst)
            for _ in range(burst):
                resp = conn.read_response()
                assert resp.status == 200, resp.body
                seen = json.loads(resp.body)
                assert seen["leaked"] is False
                assert seen["path"] == "/meddle"
                assert seen["host"] == "example.test"
                assert resp.header("X-Count") == str(seen["count"])
                counts.append(seen["count"])
    assert counts == sorted(counts) and len(set(counts)) >= len(counts) // 2 - 1


untrusting = server_fixture("--forwarded-allow-ips", "10.9.9.9")  # the test client is not a proxy
forwarded_family = server_fixture("--forwarded-headers", "forwarded")


def proxied_environs(port: int, source: str | None = None) -> set:
    """The same request with proxy headers, 6 times on one connection (from the local address
    `source` when given), alone and pipelined (the kept-head path must treat each as the first):
    {(REMOTE_ADDR, wsgi.url_scheme, the XFF header)}."""
    wire = build_request("GET", "/environ", headers=[("Host", "example.test"),
                                                    ("X-Forwarded-For", "203.0.113.9"),
                                                    ("X-Forwarded-Proto", "https")])
    seen = set()
    with Conn(port, source=source) as conn:
        for burst in (1, 1, 3, 1):
            conn.send(wire * burst)
            for _ in range(burst):
                resp = conn.read_response()
                assert resp.status == 200, resp.body
                environ = json.loads(resp.body)
                seen.add((environ["REMOTE_ADDR"], environ["wsgi.url_scheme"],
                          environ.get("HTTP_X_FORWARDED_FOR")))
    return seen


def test_a_repeated_request_from_a_trusted_proxy_has_its_headers_applied_every_time(server):
    assert proxied_environs(server.port) == {("203.0.113.9", "https", "203.0.113.9")}


def test_a_repeated_request_from_another_peer_has_its_proxy_headers_removed_every_time(untrusting):
    assert proxied_environs(untrusting.port) == {("127.0.0.1", "http", None)}



def test_a_kept_head_on_a_spare_parser_gets_the_new_peers_address_and_trust(server):
    """A closed connection's parser, with the head it kept, serves the next connection: the same
    request bytes from another peer must be judged as that peer's (127.0.0.1 is a trusted proxy by
    default, 127.0.0.2 is not), never with the previous peer's address or proxy outcome."""
    for _ in range(3):  # each connection closes before the next: its parser is the next one's
        assert proxied_environs(server.port, "127.0.0.1") == {("203.0.113.9", "https", "203.0.113.9")}
        assert proxied_environs(server.port, "127.0.0.2") == {("127.0.0.2", "http", None)}


def forwarded_view(port: int) -> tuple:
    """A trusted peer's request carrying both header families, as a client's own Forwarded passed
    through by nginx's documented configuration (which sets only X-Forwarded-For and -Proto)."""
    with Conn(port) as conn:
        conn.request("GET", "/environ", headers=[("Host", "example.test"),
                                                 ("Forwarded", "for=9.9.9.9;proto=https;host=evil.example"),
                                                 ("X-Forwarded-For", "203.0.113.9"),
                                                 ("X-Forwarded-Proto", "http")])
        environ = json.loads(conn.read_response().body)
    return (environ["REMOTE_ADDR"], environ["wsgi.url_scheme"], environ["HTTP_HOST"],
            sorted(key for key in environ if "FORWARDED" in key))


def test_only_the_configured_proxy_header_family_is_read_and_the_other_removed(server, forwarded_family):
    """Default X-Forwarded-*: a client's Forwarded cannot choose its address, scheme or host (it used
    to win over X-Forwarded-* when well-formed); --forwarded-headers forwarded reads Forwarded alone."""
    assert forwarded_view(server.port) == (
        "203.0.113.9", "http", "example.test", ["HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO"])
    assert forwarded_view(forwarded_family.port) == ("9.9.9.9", "https", "evil.example", ["HTTP_FORWARDED"])


def test_a_forwarded_hosts_port_is_one_to_65535_in_decimal(server):
    """X-Forwarded-Host from a trusted proxy sets SERVER_PORT: port 0 (which no client can reach) is
    malformed and ignored, and "0080" is port 80 (an application rebuilding the URL compares
    SERVER_PORT with "80")."""
    def view(forwarded_host):
        with Conn(server.port) as conn:
            conn.request("GET", "/environ", headers=[("Host", "example.test"), ("X-Forwarded-Proto", "http"),
                                                     ("X-Forwarded-Host", forwarded_host)])
            environ = json.loads(conn.read_response().body)
        return environ["HTTP_HOST"], environ["SERVER_NAME"], environ["SERVER_PORT"]

    assert view("shop.example:0") == ("example.test", "127.0.0.1", str(server.port))
    assert view("shop.example:0080") == ("shop.example:0080", "shop.example", "80")
    assert view("shop.example:8080") == ("shop.example:8080", "shop.example", "8080")
