"""The Django application wrapped in a real stack of WSGI middleware: `fastwsgi mysite.stack:application`.

Theory of operation: PEP 3333 middleware is both a server (to the application it wraps) and an
application (to whatever wraps it). A request flows *down* the chain (outermost middleware first); the
status, headers and body flow back *up* (innermost first). `Recorder` makes that order visible:

* on the way down it appends its name to the environ key `example.trail`;
* on the way up it appends its name to the response header `X-Trail` (and the trail seen on the way
  down to `X-Trail-Down`), and wraps the body so that its name is added to a trailer line at the end of
  the body when the body ends with `-- trail:` (the /stream/ view's callers use `?trail=1`).

`FileWrapperProbe` sits directly around Django. It wraps `environ['wsgi.file_wrapper']` to notice when
Django hands it a file, passes the server's own wrapper object back unchanged (so the server can still
use sendfile), and reports in `X-File-Wrapper` which class the server returned and whether it offers a
sendfile source. To be able to add that header, it delays the real start_response until Django
returned its iterable (allowed: PEP 3333 only requires start_response before the first body byte).
"""

from mysite.wsgi import application as django_application

TRAIL_KEY = "example.trail"


class Recorder:
    def __init__(self, name, app):
        self.name = name
        self.app = app

    def __call__(self, environ, start_response):
        environ[TRAIL_KEY] = environ.get(TRAIL_KEY, "") + ("," if environ.get(TRAIL_KEY) else "") + self.name
        seen_down = environ[TRAIL_KEY]
        want_body_trail = "trail=1" in environ.get("QUERY_STRING", "")

        def recording_start_response(status, headers, exc_info=None):
            headers = list(headers)
            for i, (name, value) in enumerate(headers):
                if name.lower() == "x-trail":
                    headers[i] = (name, f"{value},{self.name}")
                    break
            else:
                headers.append(("X-Trail", self.name))
            headers.append(("X-Trail-Down-" + self.name, seen_down))
            if want_body_trail:  # the body grows, so any Content-Length is now wrong
                headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
            return start_response(status, headers, exc_info)

        result = self.app(environ, recording_start_response)
        if not want_body_trail:
            return result
        return self._with_body_trail(result)

    def _with_body_trail(self, result):
        try:
            for chunk in result:
                yield chunk
            yield f"up:{self.name}\n".encode()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


class FileWrapperProbe:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        server_wrapper = environ.get("wsgi.file_wrapper")
        used = []
        if server_wrapper is not None:
            def probing_wrapper(filelike, blksize=8192):
                wrapped = server_wrapper(filelike, blksize)
                used.append(wrapped)
                return wrapped
            environ["wsgi.file_wrapper"] = probing_wrapper
        pending = []
        write = None

        def delayed_start_response(status, headers, exc_info=None):
            if exc_info is not None and write is not None:
                return start_response(status, headers, exc_info)
            pending[:] = [status, list(headers), exc_info]

            def late_write(data):  # only needed by apps that use write(); Django does not
                return start_response_now()(data)
            return late_write

        def start_response_now():
            nonlocal write
            if write is None:
                status, headers, exc_info = pending
                if used:
                    wrapped = used[-1]
                    source = getattr(wrapped, "sendfile_source", None)
                    eligible = bool(source and source())
                    cls = type(wrapped)
                    headers.append(("X-File-Wrapper", f"{cls.__module__}.{cls.__qualname__}"))
                    headers.append(("X-Sendfile-Eligible", "yes" if eligible else "no"))
                write = start_response(status, headers, exc_info)
            return write

        result = self.app(environ, delayed_start_response)
        start_response_now()
        return result  # unchanged: the server must see its own file wrapper object


application = Recorder("outer", Recorder("middle", Recorder("inner", FileWrapperProbe(django_application))))
