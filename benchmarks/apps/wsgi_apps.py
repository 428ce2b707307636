"""The plain WSGI applications the server comparison serves, one callable per scenario.

Theory of operation: every server under test imports one of these by `module:attr` (the harness runs the
servers with benchmarks/apps as the working directory and on PYTHONPATH), so all servers run the very same
application code and differ only in how they move bytes. Each app is the smallest honest version of its
scenario: fixed bodies are built once at import, the file is served through `wsgi.file_wrapper` (so servers
that implement it with sendfile can), and the upload app reads the whole body before answering. The
harness checks each response body against `expected_body()` before it times a server.
"""

import os
import time

HELLO = b"Hello, World!"
BIG_BODY = b"x" * 65536  # 64 KiB response
SLEEP_SECONDS = 0.020
FILE_SIZE = 1 << 20  # 1 MiB served by `file_app`; the harness creates it (see BENCH_FILE below)
READ_CHUNK = 65536


def _text_response(start_response, body: bytes, content_type: str = "text/plain"):
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def hello(environ, start_response):
    return _text_response(start_response, HELLO)


def big(environ, start_response):
    return _text_response(start_response, BIG_BODY, "application/octet-stream")


def file_app(environ, start_response):
    """1 MiB static file through wsgi.file_wrapper (PEP 3333 "Optional Platform-Specific File Handling")."""
    path = os.environ["BENCH_FILE"]
    handle = open(path, "rb")
    size = os.fstat(handle.fileno()).st_size
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))])
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is not None:
        return wrapper(handle, READ_CHUNK)
    return _read_all_then_close(handle)


def _read_all_then_close(handle):
    try:
        while True:
            block = handle.read(READ_CHUNK)
            if not block:
                return
            yield block
    finally:
        handle.close()


def upload(environ, start_response):
    """Reads the whole request body (in 64 KiB reads, as real apps do) and answers with its length."""
    stream = environ["wsgi.input"]
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    received = 0
    while remaining > 0:
        block = stream.read(min(READ_CHUNK, remaining))
        if not block:
            break
        received += len(block)
        remaining -= len(block)
    return _text_response(start_response, str(received).encode())


def sleepy(environ, start_response):
    """Stands for an app waiting on a database or an API: 20 ms of wall time, almost no CPU."""
    time.sleep(SLEEP_SECONDS)
    return _text_response(start_response, HELLO)


def make_bench_file(path: str) -> None:
    """Writes the deterministic 1 MiB file that `file_app` serves (non-repeating enough to catch mixups)."""
    pattern = bytes(range(256)) * 4 + b"fastwsgi"
    data = (pattern * (FILE_SIZE // len(pattern) + 1))[:FILE_SIZE]
    with open(path, "wb") as handle:
        handle.write(data)
