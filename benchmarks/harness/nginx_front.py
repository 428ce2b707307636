"""Debian's nginx as a reverse proxy in front of one backend, for benchmarks/behind_nginx.py.

Theory of operation: `front_argv()` writes an nginx.conf into a prefix directory of its own (pid file,
error log and temp paths all inside it, so no system service, file or port is touched) and returns the
command that runs nginx in the foreground from it: one master and ONE worker, listening on a loopback
port, no access log, unlimited keep-alive requests from the client (wrk). The worker forwards every
request to the backend (at 127.0.0.1:PORT, or at a UNIX socket) in one of two ways:

- "http": `proxy_pass` to an `upstream` block with `keepalive 16`, `proxy_http_version 1.1` and an
  empty Connection header (the headers of tests/deploy/nginx.conf.in): backend connections are reused
  as long as the backend keeps them open; with keepalive=False (for a backend that closes after every
  response anyway) no pool and nginx's default HTTP/1.0 with `Connection: close`, since a pool in front
  of such a backend only makes nginx retry on connections the backend has already closed;
- "uwsgi": `uwsgi_pass` with Debian's stock `uwsgi_params`: nginx has no keep-alive for uwsgi
  upstreams, so every request opens (and the backend closes) a new backend connection.

The caller runs the command with measure.ServerProcess (pinned, own session), so the CPU time of master
and worker is summed from /proc like any server's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

NGINX_BIN = shutil.which("nginx") or "/usr/sbin/nginx"
UWSGI_PARAMS = Path("/etc/nginx/uwsgi_params")  # Debian's stock file, as a deployment includes it
UPSTREAM_KEEPALIVE = 16

CONF = """{user}
worker_processes 1;
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
{upstream}
    server {{
        listen 127.0.0.1:{listen_port};
        server_name localhost;
        location / {{
{location}
        }}
    }}
}}
"""

UPSTREAM_HTTP = """    upstream backend {{
        server {backend};{keepalive}
    }}"""

LOCATION_HTTP = """            proxy_pass http://backend;{keepalive_headers}
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;"""

KEEPALIVE_HEADERS = """
            proxy_http_version 1.1;
            proxy_set_header Connection "";"""

LOCATION_UWSGI = """            include {params};
            uwsgi_pass {backend};"""

PROTOCOLS = ("http", "uwsgi")


class NginxUnavailable(Exception):
    pass


def check_available() -> str:
    """nginx's version string; raises NginxUnavailable when nginx or uwsgi_params is missing."""
    if not os.access(NGINX_BIN, os.X_OK):
        raise NginxUnavailable(f"nginx is not installed ({NGINX_BIN}); Debian: apt-get install nginx-light")
    if not UWSGI_PARAMS.is_file():
        raise NginxUnavailable(f"{UWSGI_PARAMS} is missing (it ships with Debian's nginx-common)")
    result = subprocess.run([NGINX_BIN, "-v"], capture_output=True, text=True, timeout=30)
    text = (result.stdout + result.stderr).strip()
    return text.split("/", 1)[-1] if "/" in text else text


def render(protocol: str, listen_port: int, backend: str, prefix: Path, keepalive: bool = True) -> str:
    """BACKEND is nginx's upstream address: `127.0.0.1:PORT` or `unix:/PATH`."""
    if protocol == "http":
        pool = f"\n        keepalive {UPSTREAM_KEEPALIVE};" if keepalive else ""
        upstream = UPSTREAM_HTTP.format(backend=backend, keepalive=pool)
        location = LOCATION_HTTP.format(keepalive_headers=KEEPALIVE_HEADERS if keepalive else "")
    elif protocol == "uwsgi":
        upstream = ""
        location = LOCATION_UWSGI.format(params=UWSGI_PARAMS, backend=backend)
    else:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
    # as root, the worker stays root (as in tests/deploy): it must reach a UNIX socket in a private directory
    user = "user root;" if os.geteuid() == 0 else ""
    return CONF.format(user=user, prefix=prefix, listen_port=listen_port, upstream=upstream, location=location)


def front_argv(protocol: str, listen_port: int, backend: str, prefix: Path, keepalive: bool = True) -> list[str]:
    """Writes PREFIX/nginx.conf and returns the foreground nginx command that uses it."""
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(render(protocol, listen_port, backend, prefix, keepalive))
    return [NGINX_BIN, "-p", str(prefix), "-c", str(conf)]
