"""nginx running as `www-data` (as Debian's nginx.conf says) in front of a fastwsgi UNIX socket.

Theory of operation: the other deployment tests run nginx's workers as root (pytest's temporary
directories are 0700), which connect to any socket file and so hide the one permission a real
deployment needs: nginx's user must be allowed to connect to fastwsgi's socket. Here the prefix and the
socket live in a world-readable directory, nginx runs with `user www-data;` and passes `/` over uwsgi to
a fastwsgi started as root. With the process's umask (0o022) the socket is `root:root 0755`: nginx is
refused (its error log says "Permission denied") and answers 502, as docs/deployment.md warns; with
the recipe it gives (`-u nobody -g www-data --umask 0o007`) the socket is `nobody:www-data 0770` and the
request arrives. Needs root, as nginx's `user` directive and --user do.
"""

from __future__ import annotations

import http.client
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from tests.deploy.conftest import HTTP_TIMEOUT, NginxProcess
from tests.deploy.test_nginx_uwsgi import uwsgi_params
from tests.functional.serverproc import ServerProcess

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="nginx's user directive and --user need root")

CONF = """
user www-data;
worker_processes 1;
events { worker_connections 16; }
http {
    access_log off;
    client_body_temp_path {{PREFIX}}/client_body;
    proxy_temp_path {{PREFIX}}/proxy;
    fastcgi_temp_path {{PREFIX}}/fastcgi;
    uwsgi_temp_path {{PREFIX}}/uwsgi;
    scgi_temp_path {{PREFIX}}/scgi;
    server {
        listen 127.0.0.1:{{LISTEN_PORT}};
        include {{UWSGI_PARAMS}};
        location / { uwsgi_pass unix:{{PREFIX}}/app.sock; }
    }
}
"""


@pytest.fixture
def public_dir():
    """A directory every user can enter (pytest's tmp_path is not: its parents are 0700), with the
    nginx template and the application."""
    path = Path(tempfile.mkdtemp(prefix="fastwsgi-nginx-owner-"))
    path.chmod(0o755)
    (path / "template.conf.in").write_text(CONF)
    # imports nothing: as `nobody` the workers may not read a Python installed under /root
    (path / "fw_owner_app.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Length', '2')])\n"
        "    return [b'ok']\n")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def status_through(nginx: NginxProcess) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=HTTP_TIMEOUT)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.mark.parametrize("flags, mode, owner, status", [
    ([], 0o755, ("root", "root"), 502),
    (["-u", "nobody", "-g", "www-data", "--umask", "0o007"], 0o770, ("nobody", "www-data"), 200),
], ids=["process-umask", "documented-recipe"])
def test_nginx_as_www_data_connects_only_when_the_socket_lets_it(public_dir, flags, mode, owner, status):
    import grp
    import pwd

    sock = public_dir / "app.sock"
    app = nginx = None
    try:
        app = ServerProcess(["--bind", f"uwsgi://unix:{sock}", *flags,
                             "--pythonpath", str(public_dir), "fw_owner_app:app"]).start()
        info = os.stat(sock)
        assert stat.S_IMODE(info.st_mode) == mode
        assert (pwd.getpwuid(info.st_uid).pw_name, grp.getgrgid(info.st_gid).gr_name) == owner
        nginx = NginxProcess(public_dir, {"UWSGI_PARAMS": uwsgi_params(), "USER": ""},
                             template=public_dir / "template.conf.in").start()
        assert status_through(nginx) == status, nginx.log_text()[-2000:]
        denied = nginx.lines_with(["Permission denied"])
        assert bool(denied) == (status == 502), nginx.log_text()[-2000:]
    finally:
        if nginx is not None:
            nginx.stop()
        if app is not None:
            app.stop()
