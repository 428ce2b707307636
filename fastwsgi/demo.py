"""The built-in demo application, served when `fastwsgi` is started without MODULE:APP.

`/` answers a short greeting, `/environ` lists the WSGI environ, and a POST to `/echo` returns its body.
It doubles as a smoke test of a fresh install: `fastwsgi` then `curl http://127.0.0.1:8000/`.
"""

__all__ = ["application"]

GREETING = b"Hello from fastwsgi!\n"


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/environ":
        lines = [f"{key} = {environ[key]!r}" for key in sorted(environ)]
        body = ("\n".join(lines) + "\n").encode("utf-8", "replace")
    elif path == "/echo" and environ["REQUEST_METHOD"] == "POST":
        body = environ["wsgi.input"].read()
    elif path == "/":
        body = GREETING
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [b"Not Found\n"]
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]
