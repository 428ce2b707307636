"""--url-prefix: the application mounted under a path prefix, as waitress's url_prefix.

Theory of operation: `mounted(app, prefix)` is the application itself when there is no prefix (the
server's per-request path is unchanged), else a small WSGI middleware, put around the application
once when the Server is made. A request whose PATH_INFO is the prefix or continues it with "/" is
passed on with the prefix moved from PATH_INFO to the end of SCRIPT_NAME (so `/app/users` is
SCRIPT_NAME `/app`, PATH_INFO `/users`, and frameworks build their URLs under `/app`); any other path
gets a 404 from here, as the mount point's parent has nothing to serve. RAW_URI/REQUEST_URI keep the
target as sent. Over uwsgi the front end may send SCRIPT_NAME itself: one that ends with the prefix
already (`uwsgi_param SCRIPT_NAME /app;` with PATH_INFO left whole, which uWSGI's
manage-script-name serves) keeps it, rather than becoming /app/app. The prefix is compared with the percent-decoded PATH_INFO, and config.url_prefix
only accepts prefixes without "%", "?", "#" or spaces, so the comparison cannot be fooled by encoding.
"""

__all__ = ["mounted"]


def mounted(app, prefix: str):
    """`app` under `prefix` ("" or None: `app` itself)."""
    if not prefix:
        return app
    size = len(prefix)
    body = f"Not Found: this server serves only under {prefix}/\n".encode("latin-1")
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]

    def under_prefix(environ, start_response):
        path = environ["PATH_INFO"]
        if path.startswith(prefix) and (len(path) == size or path[size] == "/"):
            script = environ.get("SCRIPT_NAME", "")
            if not script.endswith(prefix):  # (a uwsgi front end may have said so already)
                script += prefix
            environ["SCRIPT_NAME"] = script
            environ["PATH_INFO"] = path[size:]
            return app(environ, start_response)
        start_response("404 Not Found", list(headers))
        return [body]

    under_prefix.__wrapped__ = app
    return under_prefix
