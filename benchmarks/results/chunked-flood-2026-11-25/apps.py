"""The two applications of chunked-flood-2026-11-25.md.

`flood`: reads its whole body (wsgi.input.read()) and answers its length; GET /probe answers at once.
`spin`: GET /spin?S runs pure-Python CPU work for S seconds (a busy pool thread); anything else
answers at once. FLOOD_SWITCH_INTERVAL=0.001 in the environment sets sys.setswitchinterval at import.
"""
import os
import sys
import time

if os.environ.get("FLOOD_SWITCH_INTERVAL"):
    sys.setswitchinterval(float(os.environ["FLOOD_SWITCH_INTERVAL"]))


def _answer(start_response, body: bytes):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def flood(environ, start_response):
    return _answer(start_response, str(len(environ["wsgi.input"].read())).encode())


def spin(environ, start_response):
    if environ["PATH_INFO"] == "/spin":
        end = time.monotonic() + float(environ["QUERY_STRING"] or 5)
        total = 0
        while time.monotonic() < end:
            for i in range(1000):
                total += i
    return _answer(start_response, b"ok")
