"""The example Django project (examples/djangosite) served by fastwsgi, as a user serves it.

Each test runs against `fastwsgi mysite.wsgi:application` (CLI process, cwd = the project directory, both
parser backends), against `fastwsgi.make_server` in this process (the one-line swap for wsgiref), and,
where wsgiref has the feature, against `wsgiref.simple_server.make_server` as the reference.
"""

from __future__ import annotations

import hashlib
import random
import re
from http.cookies import SimpleCookie

from tests.deploy.conftest import ADMIN_PASSWORD, ADMIN_USER, multipart

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def cookies_of(reply) -> dict[str, str]:
    jar = SimpleCookie()
    for value in reply.headers.get_all("Set-Cookie") or []:
        jar.load(value)
    return {name: morsel.value for name, morsel in jar.items()}


def cookie_header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def form_token(site, path):
    """GET a page with a CSRF form: (cookies, the form's csrfmiddlewaretoken)."""
    page = site.request("GET", path)
    assert page.status == 200, page.body[:500]
    match = CSRF_INPUT.search(page.body.decode())
    assert match, "no CSRF token in the form"
    cookies = cookies_of(page)
    assert "csrftoken" in cookies
    return cookies, match.group(1)


def form_post(site, path, cookies, fields):
    from urllib.parse import urlencode

    return site.request("POST", path, body=urlencode(fields).encode(),
                        headers={"Content-Type": "application/x-www-form-urlencoded",
                                 "Cookie": cookie_header(cookies)})


def test_hello_view(django_site):
    reply = django_site.request("GET", "/")
    assert reply.status == 200
    assert reply.body == b"Hello from Django"
    assert reply.header("Content-Type").startswith("text/plain")


def test_environ_reaches_django(django_fastwsgi):
    info = django_fastwsgi.request("GET", "/environ/?x=1").json()
    assert info["PATH_INFO"] == "/environ/"
    assert info["SCRIPT_NAME"] == ""
    assert info["REMOTE_ADDR"] == "127.0.0.1"
    assert info["wsgi.url_scheme"] == "http"
    assert info["file_wrapper"] == "fastwsgi.server.filewrapper.FileWrapper"


def test_form_post_with_csrf_token(django_site):
    cookies, token = form_token(django_site, "/form/")
    reply = form_post(django_site, "/form/", cookies, {"csrfmiddlewaretoken": token, "name": "Zoë & co"})
    assert reply.status == 200, reply.body[:1000]
    assert reply.json() == {"name": "Zoë & co", "method": "POST"}


def test_form_post_without_csrf_token_is_forbidden(django_site):
    cookies, _ = form_token(django_site, "/form/")
    assert form_post(django_site, "/form/", cookies, {"name": "x"}).status == 403
    assert form_post(django_site, "/form/", {}, {"name": "x"}).status == 403
    # a token that does not match the cookie is refused too
    assert form_post(django_site, "/form/", cookies, {"csrfmiddlewaretoken": "A" * 64, "name": "x"}).status == 403


def test_multipart_upload_of_several_mib(django_site):
    rng = random.Random(6)
    big, small = rng.randbytes(5 * 1024 * 1024 + 123), rng.randbytes(1000)
    cookies, token = form_token(django_site, "/form/")
    content_type, body = multipart({"note": "two files", "csrfmiddlewaretoken": token},
                                   {"big": ("big.bin", big), "small": ("small.txt", small)})
    reply = django_site.request("POST", "/upload/", body=body,
                                headers={"Content-Type": content_type, "Cookie": cookie_header(cookies)})
    assert reply.status == 200, reply.body[:1000]
    result = reply.json()
    assert result["fields"] == {"note": "two files", "csrfmiddlewaretoken": token}
    assert result["files"]["big"] == {"name": "big.bin", "size": len(big), "sha256": hashlib.sha256(big).hexdigest()}
    assert result["files"]["small"] == {"name": "small.txt", "size": len(small),
                                        "sha256": hashlib.sha256(small).hexdigest()}


def test_streaming_http_response(django_site):
    reply = django_site.request("GET", "/stream/?lines=5000")
    assert reply.status == 200
    assert reply.body == "".join(f"line {i}\n" for i in range(5000)).encode()
    assert reply.header("Content-Length") is None  # streamed: no length known in advance
    if django_site.kind != "wsgiref":  # wsgiref ends it by closing; an HTTP/1.1 server chunks it
        assert reply.header("Transfer-Encoding") == "chunked"


def test_file_response_arrives_intact(django_site):
    from mysite.views import DOWNLOAD_SIZE, download_bytes

    reply = django_site.request("GET", "/download/")
    assert reply.status == 200
    assert reply.header("Content-Length") == str(DOWNLOAD_SIZE)
    assert reply.header("Content-Disposition") == 'attachment; filename="download.bin"'
    assert hashlib.sha256(reply.body).digest() == hashlib.sha256(download_bytes()).digest()


def test_file_response_goes_through_the_servers_sendfile_wrapper(django_stack_fastwsgi):
    """Django hands the FileResponse to environ['wsgi.file_wrapper']; the probe middleware reports that
    the object it got back is fastwsgi's FileWrapper with a sendfile source (a regular file's descriptor),
    and passes that same object to the server."""
    from mysite.views import DOWNLOAD_SIZE, download_bytes

    reply = django_stack_fastwsgi.request("GET", "/download/")
    assert reply.status == 200
    assert reply.header("X-File-Wrapper") == "fastwsgi.server.filewrapper.FileWrapper"
    assert reply.header("X-Sendfile-Eligible") == "yes"
    assert len(reply.body) == DOWNLOAD_SIZE and reply.body == download_bytes()


def test_admin_login_page(django_site):
    reply = django_site.request("GET", "/admin/")
    assert reply.status == 302 and reply.header("Location") == "/admin/login/?next=/admin/"
    page = django_site.request("GET", "/admin/login/?next=/admin/")
    assert page.status == 200
    text = page.body.decode()
    assert 'id="login-form"' in text and 'name="username"' in text and 'name="password"' in text


def test_admin_login_with_the_database(django_site):
    cookies, token = form_token(django_site, "/admin/login/?next=/admin/")
    bad = form_post(django_site, "/admin/login/?next=/admin/", cookies,
                    {"csrfmiddlewaretoken": token, "username": ADMIN_USER, "password": "wrong", "next": "/admin/"})
    assert bad.status == 200 and b"Please enter the correct username and password" in bad.body
    good = form_post(django_site, "/admin/login/?next=/admin/", cookies,
                     {"csrfmiddlewaretoken": token, "username": ADMIN_USER, "password": ADMIN_PASSWORD,
                      "next": "/admin/"})
    assert good.status == 302 and good.header("Location") == "/admin/", good.body[:500]
    session = {**cookies, **cookies_of(good)}
    assert "sessionid" in session
    home = django_site.request("GET", "/admin/", headers={"Cookie": cookie_header(session)})
    assert home.status == 200 and b"Site administration" in home.body


def test_static_files_through_whitenoise(django_site):
    from django.conf import settings

    expected = (settings.STATIC_ROOT / "mysite" / "site.css").read_bytes()
    reply = django_site.request("GET", "/static/mysite/site.css")
    assert reply.status == 200 and reply.body == expected
    assert reply.header("Content-Type").startswith("text/css")
    etag = reply.header("ETag")
    assert etag
    again = django_site.request("GET", "/static/mysite/site.css", headers={"If-None-Match": etag})
    assert again.status == 304 and again.body == b""
    # an admin asset collected by collectstatic, a larger file
    admin_js = (settings.STATIC_ROOT / "admin" / "js" / "core.js").read_bytes()
    assert django_site.request("GET", "/static/admin/js/core.js").body == admin_js


def test_whitenoise_uses_the_servers_file_wrapper(django_stack_fastwsgi):
    reply = django_stack_fastwsgi.request("GET", "/static/mysite/site.css")
    assert reply.status == 200
    assert reply.header("X-File-Wrapper") == "fastwsgi.server.filewrapper.FileWrapper"
    assert reply.header("X-Sendfile-Eligible") == "yes"


def test_middleware_order(django_stack):
    """Environ flows down outer -> middle -> inner; headers and body flow back up inner -> outer."""
    reply = django_stack.request("GET", "/stream/?lines=3&trail=1")
    assert reply.status == 200
    assert reply.header("X-Trail") == "inner,middle,outer"
    assert reply.header("X-Trail-Down-outer") == "outer"
    assert reply.header("X-Trail-Down-inner") == "outer,middle,inner"
    assert reply.body == b"line 0\nline 1\nline 2\nup:inner\nup:middle\nup:outer\n"
    plain = django_stack.request("GET", "/")
    assert plain.body == b"Hello from Django" and plain.header("X-Trail") == "inner,middle,outer"


def test_keep_alive_session_of_many_requests(django_fastwsgi):
    """One HTTP/1.1 connection, many Django requests (the CSRF form twice, static, a view)."""
    import http.client

    conn = http.client.HTTPConnection(django_fastwsgi.host, django_fastwsgi.port, timeout=20)
    try:
        ports = set()
        for path in ["/", "/form/", "/static/mysite/site.css", "/stream/?lines=10", "/"] * 4:
            conn.request("GET", path)
            resp = conn.getresponse()
            assert resp.status == 200
            resp.read()
            ports.add(conn.sock.getsockname()[1])
        assert len(ports) == 1  # never reconnected
    finally:
        conn.close()


def test_mounted_under_a_url_prefix(django_env):
    """`--url-prefix /site`, as behind `location /site/ { proxy_pass ...; }`: Django builds its URLs
    under the prefix from SCRIPT_NAME (no FORCE_SCRIPT_NAME needed); other paths get 404."""
    from tests.deploy.conftest import DJANGO_DIR, start_cli

    for parser in ("c", "python"):
        site = start_cli(DJANGO_DIR, "mysite.wsgi:application", parser, django_env, "--url-prefix", "/site")
        try:
            assert site.request("GET", "/site/").body == b"Hello from Django"
            reply = site.request("GET", "/site/admin/")
            assert reply.status == 302
            assert reply.header("Location") == "/site/admin/login/?next=/site/admin/"
            page = site.request("GET", "/site/admin/login/?next=/site/admin/")
            assert page.status == 200 and b'action="/site/admin/login/' in page.body
            assert site.request("GET", "/admin/").status == 404
        finally:
            site.stop()
