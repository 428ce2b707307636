"""A small real Flask application served by fastwsgi: `fastwsgi flaskapp:app` (from this directory)
or `fastwsgi 'flaskapp:create_app()'`.

Theory of operation: one route per part of the WSGI contract a Flask site relies on: JSON in and out
(`request.get_json`, `jsonify`), multipart uploads (Werkzeug's form parser reading `wsgi.input` in
pieces; the view hashes every file), a raw body read (`request.get_data`, which also sees chunked
request bodies because fastwsgi sets `wsgi.input_terminated`), and a streamed response
(`stream_with_context`, sent chunked by the server).
"""

import hashlib

from flask import Flask, Response, jsonify, request, stream_with_context


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024

    @app.get("/")
    def hello():
        return "Hello from Flask"

    @app.post("/json")
    def echo_json():
        payload = request.get_json()
        return jsonify(received=payload, keys=sorted(payload) if isinstance(payload, dict) else None)

    @app.post("/upload")
    def upload():
        files = {}
        for field, storage in request.files.items():
            digest, size = hashlib.sha256(), 0
            while chunk := storage.stream.read(65536):
                digest.update(chunk)
                size += len(chunk)
            files[field] = {"name": storage.filename, "size": size, "sha256": digest.hexdigest()}
        return jsonify(files=files, fields=request.form.to_dict())

    @app.post("/raw")
    def raw():
        data = request.get_data()
        return jsonify(size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                       chunked=request.headers.get("Transfer-Encoding", "").lower() == "chunked")

    @app.get("/stream")
    def stream():
        count = request.args.get("lines", 100, type=int)

        @stream_with_context
        def lines():
            for i in range(count):
                yield f"{request.path} {i}\n"

        return Response(lines(), mimetype="text/plain")

    return app


app = create_app()
