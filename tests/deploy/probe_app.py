"""The application behind nginx in tests/deploy/test_nginx.py: it reports what reached it.

Theory of operation: the last path segment picks the behaviour, so any nginx location prefix
(/trusted/, /plain/, /stream/, /pair/, /tls/) can route to it unchanged:

  .../info     JSON: pid, REMOTE_ADDR/PORT, wsgi.url_scheme, SERVER_NAME/PORT and every HTTP_* key
  .../body     reads wsgi.input to the end; JSON with its size and SHA-256, CONTENT_LENGTH and
               HTTP_TRANSFER_ENCODING (how the body was framed when it reached us), plus .../info's keys
  .../stream   ?n=N&delay=S: N chunks "chunk i\n", sleeping S seconds before the last one
  .../headers  a response with repeated and unusual headers
"""

import hashlib
import json
import os
import time
from urllib.parse import parse_qs


def app(environ, start_response):
    action = environ["PATH_INFO"].rstrip("/").rsplit("/", 1)[-1]
    if action == "stream":
        query = parse_qs(environ.get("QUERY_STRING", ""))
        count, delay = int(query.get("n", ["5"])[0]), float(query.get("delay", ["0"])[0])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _stream(count, delay)
    if action == "headers":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Set-Cookie", "a=1; Path=/"),
                                  ("Set-Cookie", "b=2; Path=/"), ("X-Spaced", "one  two\tthree"),
                                  ("Content-Length", "2")])
        return [b"ok"]
    report = {"pid": os.getpid(), "REMOTE_ADDR": environ.get("REMOTE_ADDR"),
              "REMOTE_PORT": environ.get("REMOTE_PORT"), "url_scheme": environ["wsgi.url_scheme"],
              "SERVER_NAME": environ.get("SERVER_NAME"), "SERVER_PORT": environ.get("SERVER_PORT"),
              "headers": {k: v for k, v in environ.items() if k.startswith("HTTP_")}}
    if action == "body":
        digest, size, stream = hashlib.sha256(), 0, environ["wsgi.input"]
        while chunk := stream.read(65536):
            digest.update(chunk)
            size += len(chunk)
        report.update(size=size, sha256=digest.hexdigest(), CONTENT_LENGTH=environ.get("CONTENT_LENGTH"))
    payload = json.dumps(report).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


def _stream(count, delay):
    for i in range(count):
        if i == count - 1 and delay:
            time.sleep(delay)
        yield f"chunk {i}\n".encode()
