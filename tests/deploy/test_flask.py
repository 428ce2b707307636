"""The example Flask application (examples/flaskapp.py) served by fastwsgi: JSON, uploads, streaming.

Parametrized like tests/deploy/test_django.py: `fastwsgi flaskapp:app` as a process (cwd = examples/,
both parser backends), `fastwsgi.make_server` in this process, and wsgiref where it has the feature.
"""

from __future__ import annotations

import hashlib
import json
import random

from tests.deploy.conftest import multipart


def test_hello(flask_app):
    reply = flask_app.request("GET", "/")
    assert reply.status == 200 and reply.body == b"Hello from Flask"


def test_json_round_trip(flask_app):
    payload = {"name": "fastwsgi", "numbers": list(range(1000)), "unicode": "ünïcødé ✓"}
    reply = flask_app.request("POST", "/json", body=json.dumps(payload).encode(),
                              headers={"Content-Type": "application/json"})
    assert reply.status == 200 and reply.header("Content-Type") == "application/json"
    assert reply.json() == {"received": payload, "keys": ["name", "numbers", "unicode"]}


def test_bad_json_is_a_400_from_flask(flask_app):
    reply = flask_app.request("POST", "/json", body=b"{not json", headers={"Content-Type": "application/json"})
    assert reply.status == 400


def test_multipart_upload(flask_app):
    rng = random.Random(7)
    files = {"a": ("a.bin", rng.randbytes(4 * 1024 * 1024 + 1)), "b": ("b.txt", b"small\r\n--not a boundary\r\n")}
    content_type, body = multipart({"who": "test"}, files)
    reply = flask_app.request("POST", "/upload", body=body, headers={"Content-Type": content_type})
    assert reply.status == 200, reply.body[:500]
    result = reply.json()
    assert result["fields"] == {"who": "test"}
    for field, (name, data) in files.items():
        assert result["files"][field] == {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_chunked_request_body(flask_fastwsgi):
    """A chunked upload (no Content-Length): Flask reads it because fastwsgi sets wsgi.input_terminated.
    wsgiref has no chunked request bodies, so it is not parametrized here."""
    data = random.Random(8).randbytes(3 * 1024 * 1024 + 5)
    pieces = (data[i:i + 70000] for i in range(0, len(data), 70000))
    # http.client sends an iterable body without a length chunked (and adds Transfer-Encoding itself)
    reply = flask_fastwsgi.request("POST", "/raw", body=pieces, headers={"Content-Type": "application/octet-stream"})
    assert reply.status == 200
    assert reply.json() == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "chunked": True}


def test_streaming_response(flask_app):
    reply = flask_app.request("GET", "/stream?lines=3000")
    assert reply.status == 200
    assert reply.body == "".join(f"/stream {i}\n" for i in range(3000)).encode()
    if flask_app.kind != "wsgiref":
        assert reply.header("Transfer-Encoding") == "chunked"


def test_unknown_route_is_flasks_404(flask_app):
    reply = flask_app.request("GET", "/nope")
    assert reply.status == 404 and b"Not Found" in reply.body
