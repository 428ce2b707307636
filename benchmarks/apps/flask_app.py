"""A real (minimal) Flask application: one JSON view, as `flask` users write it.

Served by the harness as `flask_app:app` in the Flask JSON scenario; the body is checked against the
same JSON document the Django view returns.
"""

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/json")
def json_view():
    return jsonify(message="Hello, World!")
