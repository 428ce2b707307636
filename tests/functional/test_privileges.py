"""-u/--user, -g/--group, --initgroups on real server processes started as root: the workers run as
`nobody` (their ids read from /proc/PID/status, and from the application itself), the master stays
root (its ids; a root-only TLS key it reads again on HUP; the pid file it writes and removes), the
unix socket and the log files belong to the workers' user (also after logrotate and USR1), and the
mistakes are one line and a non-zero exit before anything listens.

The application module is written to a world-readable directory (pytest's tmp_path is not: its
parents are 0700), so the workers can import it once they are `nobody`; it reports the ids it runs
with, and those it was imported with. The suite runs as root (here and in CI); as another user these
tests are skipped, since only root can switch users.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from tests.functional.client import get
from tests.functional.ops import children, wait_booted, wait_for
from tests.functional.serverproc import REPO_ROOT, ServerProcess, ServeScript
from tests.functional.test_cli import assert_one_error_line
from tests.functional.test_cli import run_cli
from tests.functional.tlscerts import peer_organization
from tests.functional.test_uwsgi import unix_exchange

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")

PARSERS = ["c", "python"]
NOBODY = pwd.getpwnam("nobody")
NOGROUP = grp.getgrgid(NOBODY.pw_gid)
DAEMON_GROUP = grp.getgrnam("daemon")

ID_APP = textwrap.dedent('''
    import json
    import os

    IMPORTED_AS = [os.getuid(), os.geteuid(), os.getgid(), os.getegid()]
    VERSION = {version!r}


    def app(environ, start_response):
        body = json.dumps({{"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
                           "egid": os.getegid(), "groups": os.getgroups(), "imported_as": IMPORTED_AS,
                           "pid": os.getpid(), "version": VERSION}}).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]
''')


@pytest.fixture
def public_dir():
    """A directory every user can read (and only root can write), removed after the test."""
    path = Path(tempfile.mkdtemp(prefix="fastwsgi-priv-"))
    path.chmod(0o755)
    (path / "fw_priv_app.py").write_text(ID_APP.format(version="v1"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def app_args(directory: Path) -> list[str]:
    return ["--pythonpath", str(directory), "fw_priv_app:app"]


def ids(pid: int) -> dict[str, list[int]]:
    """Uid (real, effective, saved, fs), Gid (same) and Groups of a process, from /proc."""
    found = {}
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                found[key] = [int(number) for number in value.split()]
    return found


def seen_by_app(port: int) -> dict:
    response = get(port, "/")
    assert response.status == 200, (response.status, response.body)
    return json.loads(response.body)


def unix_get(path: Path) -> bytes:
    return unix_exchange(str(path), b"GET /unix HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")


# -- who runs as whom ------------------------------------------------------------------------------

@pytest.mark.parametrize("parser,threads", [("c", 0), ("python", 4)])
def test_workers_run_as_the_user_and_the_master_stays_root(started, public_dir, parser, threads):
    pidfile = public_dir / "fw.pid"  # in a directory only root may write to
    server = started("-u", "nobody", "-w", "2", "--http-parser", parser, "--threads", str(threads),
                     "--pid", str(pidfile), *app_args(public_dir), booted=2)
    master = server.proc.pid
    workers = wait_for(lambda: len(children(master)) == 2) and children(master)
    assert workers, server.stderr_text()
    nobody = NOBODY.pw_uid, NOBODY.pw_gid
    for worker in workers:
        assert ids(worker) == {"Uid": [nobody[0]] * 4, "Gid": [nobody[1]] * 4, "Groups": []}
    assert ids(master)["Uid"] == [0, 0, 0, 0] and ids(master)["Gid"][:2] == [0, 0]
    seen = seen_by_app(server.port)
    assert seen["pid"] in workers
    assert [seen["uid"], seen["euid"], seen["gid"], seen["egid"]] == [nobody[0], nobody[0], nobody[1], nobody[1]]
    assert seen["imported_as"] == [seen["uid"], seen["euid"], seen["gid"], seen["egid"]]
    assert seen["groups"] == []
    assert pidfile.read_text() == f"{master}\n" and pidfile.stat().st_uid == 0
    server.signal(signal.SIGTERM)
    assert server.wait(20) == 0, server.stderr_text()
    assert not pidfile.exists()  # removed by the master, which is still root


@pytest.mark.parametrize("parser", PARSERS)
def test_user_without_workers_implies_a_master_that_stays_root(started, public_dir, parser):
    server = started("--user", "nobody", "--http-parser", parser, *app_args(public_dir), booted=1)
    assert "workers: 1" in server.stderr_text()
    assert ids(server.proc.pid)["Uid"] == [0, 0, 0, 0]
    assert wait_for(lambda: len(children(server.proc.pid)) == 1)
    seen = seen_by_app(server.port)
    assert seen["pid"] != server.proc.pid
    assert seen["uid"] == seen["euid"] == seen["imported_as"][0] == NOBODY.pw_uid


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("flags,gid,groups", [
    (["-u", str(NOBODY.pw_uid), "-g", str(DAEMON_GROUP.gr_gid)], DAEMON_GROUP.gr_gid, []),
    (["--user", "nobody", "--group", "daemon"], DAEMON_GROUP.gr_gid, []),
    (["--user", "nobody", "--initgroups"], NOBODY.pw_gid, [NOBODY.pw_gid]),
], ids=["numeric-ids", "named-group", "initgroups"])
def test_group_ids_and_initgroups(started, public_dir, parser, flags, gid, groups):
    server = started(*flags, "--http-parser", parser, *app_args(public_dir), booted=1)
    seen = seen_by_app(server.port)
    assert (seen["uid"], seen["gid"], seen["egid"]) == (NOBODY.pw_uid, gid, gid)
    assert sorted(seen["groups"]) == groups
    assert ids(seen["pid"])["Groups"] == groups


@pytest.mark.parametrize("parser", PARSERS)
def test_serve_with_user_runs_the_application_in_a_worker_as_that_user(public_dir, parser):
    script = (f"import sys\nsys.path.insert(0, {str(public_dir)!r})\nimport fastwsgi\nimport fw_priv_app\n"
              f"fastwsgi.serve(fw_priv_app.app, port=0, http_parser={parser!r}, user='nobody')\n")
    server = ServeScript([script])
    try:
        server.start()
        seen = seen_by_app(server.port)
        assert seen["pid"] != server.proc.pid and seen["uid"] == NOBODY.pw_uid
        assert seen["imported_as"][0] == 0  # the caller imported it (as root) before serve()
        assert ids(server.proc.pid)["Uid"][0] == 0
    finally:
        server.stop()


# -- files the workers use: unix sockets, log files, TLS -------------------------------------------

@pytest.mark.parametrize("parser", PARSERS)
def test_unix_socket_and_log_files_belong_to_the_user_also_after_rotation(started, public_dir, parser):
    sock, access, errors = public_dir / "s.sock", public_dir / "access.log", public_dir / "error.log"
    server = started("--bind", f"unix:{sock}", "--umask", "0o007", "-u", "nobody", "-w", "2",
                     "--http-parser", parser, "--access-logfile", str(access), "--log-file", str(errors),
                     *app_args(public_dir), booted=0)  # "Booting worker" goes to the error log
    assert wait_for(lambda: len(children(server.proc.pid)) == 2 and errors.exists()
                    and errors.read_text().count("Booting worker") == 2), server.stderr_text()
    owner = NOBODY.pw_uid, NOBODY.pw_gid
    info = os.stat(sock, follow_symlinks=False)
    assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o770
    assert (info.st_uid, info.st_gid) == owner
    for path in (access, errors):
        assert (path.stat().st_uid, path.stat().st_gid) == owner
    assert unix_get(sock).startswith(b"HTTP/1.1 200 ")
    assert wait_for(lambda: "GET /unix" in access.read_text()), access.read_text()
    # logrotate without copytruncate: the files move away; nobody may not create files here
    access.rename(public_dir / "access.log.1")
    errors.rename(public_dir / "error.log.1")
    server.signal(signal.SIGUSR1)

    def owned(path):
        return path.exists() and (path.stat().st_uid, path.stat().st_gid) == owner

    assert wait_for(lambda: owned(access) and owned(errors)), server.stderr_text()
    time.sleep(2.5)  # the workers reopen at their next sweep (once a second)
    for _ in range(4):  # reaches both workers, whichever accepts
        assert unix_get(sock).startswith(b"HTTP/1.1 200 ")
    assert wait_for(lambda: access.read_text().count("GET /unix") == 4), access.read_text()
    assert "GET /unix" not in (public_dir / "access.log.1").read_text().split("\n", 1)[1]
    assert "cannot reopen" not in server.stderr_text() + errors.read_text()
    assert len(children(server.proc.pid)) == 2
    server.signal(signal.SIGTERM)
    assert server.wait(20) == 0
    assert not sock.exists()  # the master (root) removes its socket file



def test_the_master_does_not_follow_a_link_the_user_put_where_a_log_file_was(started, public_dir):
    """The workers' user may write to the log directory: after logrotate moved the files away it can
    put symbolic links in their place. On USR1 (and HUP) the master, root, must not open through them:
    that would create the file they name, anywhere, as root, and append the master's lines to it."""
    logs_dir = public_dir / "logs"
    logs_dir.mkdir()
    os.chown(logs_dir, NOBODY.pw_uid, NOBODY.pw_gid)
    access, errors = logs_dir / "access.log", logs_dir / "error.log"
    server = started("-u", "nobody", "-w", "1", "--access-logfile", str(access), "--log-file", str(errors),
                     *app_args(public_dir), booted=0)
    assert wait_for(lambda: errors.exists() and "Booting worker" in errors.read_text()), server.stderr_text()
    targets = {access: public_dir / "planted-access", errors: public_dir / "planted-error"}
    for path, target in targets.items():
        path.rename(path.with_suffix(".log.1"))
        path.symlink_to(target)
    server.signal(signal.SIGUSR1)
    old_errors = errors.with_suffix(".log.1")
    refused = f"[{server.proc.pid}] [ERROR] cannot reopen the log file {str(errors)!r}"  # the master's line
    assert wait_for(lambda: refused in old_errors.read_text()), old_errors.read_text()
    assert "it is a symbolic link, which the master does not follow" in old_errors.read_text()
    server.signal(signal.SIGHUP)
    assert wait_for(lambda: "Reload" in old_errors.read_text()), old_errors.read_text()
    assert [target for target in targets.values() if os.path.lexists(target)] == []
    assert seen_by_app(server.port)["uid"] == NOBODY.pw_uid  # the old worker serves on

def test_the_captured_error_log_belongs_to_the_user_with_a_log_config_too(public_dir):
    """--log-config owns the logging, but --capture-output points stdout and stderr at --error-logfile
    all the same, and each worker points them at it again after USR1, as the user: the file was not
    handed over (at start, nor once logrotate moved it), so the workers could not reopen it and went
    on writing into the rotated file."""
    errors, config = public_dir / "error.log", public_dir / "logging.json"
    config.write_text(json.dumps({
        "version": 1, "formatters": {"f": {"format": "CFG %(message)s"}},
        "handlers": {"h": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "f"}},
        "root": {"handlers": ["h"], "level": "INFO"}}))
    server = ServerProcess(["--bind", "127.0.0.1:0", "-u", "nobody", "-w", "1", "--log-config", str(config),
                            "--error-logfile", str(errors), "--capture-output", *app_args(public_dir)],
                           startup_log=errors)
    server.start()
    try:
        assert wait_for(lambda: "Booting worker" in errors.read_text()), errors.read_text()
        (worker,) = children(server.proc.pid)
        owner = NOBODY.pw_uid, NOBODY.pw_gid
        assert (errors.stat().st_uid, errors.stat().st_gid) == owner
        errors.rename(public_dir / "error.log.1")  # logrotate without copytruncate
        server.signal(signal.SIGUSR1)
        # the worker points its stdout and stderr at the new file at its next sweep
        assert wait_for(lambda: all(os.readlink(f"/proc/{worker}/fd/{fd}") == str(errors) for fd in (1, 2))), \
            (public_dir / "error.log.1").read_text()
        assert (errors.stat().st_uid, errors.stat().st_gid) == owner
        assert "cannot reopen" not in (public_dir / "error.log.1").read_text() + errors.read_text()
    finally:
        server.stop()


@pytest.mark.parametrize("parser,threads", [("c", 0), ("python", 4)])
def test_master_reads_a_root_only_tls_key_again_on_hup(started, public_dir, certs, parser, threads):  # noqa: F811
    cert, key = public_dir / "cert.pem", public_dir / "key.pem"
    shutil.copy(certs["server.pem"], cert)
    shutil.copy(certs["server.key"], key)
    key.chmod(0o600)  # as Let's Encrypt's privkey.pem: root only
    server = started("-u", "nobody", "-w", "2", "--http-parser", parser, "--threads", str(threads),
                     "--certfile", str(cert), "--keyfile", str(key), *app_args(public_dir), booted=2)
    assert server.url.startswith("https://")
    assert {peer_organization(server.port, certs) for _ in range(4)} == {"first"}
    shutil.copy(certs["renewed.pem"], cert)
    shutil.copy(certs["renewed.key"], key)
    key.chmod(0o600)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.stat().st_uid == 0
    server.signal(signal.SIGHUP)
    wait_booted(server, 4, timeout=20)
    assert wait_for(lambda: {peer_organization(server.port, certs) for _ in range(4)} == {"renewed"}, 30), \
        server.stderr_text()
    assert "keeping the previous TLS certificate" not in server.stderr_text()
    assert all(ids(worker)["Uid"][0] == NOBODY.pw_uid for worker in children(server.proc.pid))


@pytest.mark.parametrize("parser", PARSERS)
def test_reload_works_from_workers_that_cannot_signal_the_master(started, public_dir, parser):
    module = public_dir / "fw_priv_app.py"
    server = started("--reload", "-u", "nobody", "--http-parser", parser, *app_args(public_dir), booted=1)
    assert seen_by_app(server.port)["version"] == "v1"
    module.write_text(ID_APP.format(version="v2"))
    later = time.time() + 2
    os.utime(module, (later, later))
    assert wait_for(lambda: seen_by_app(server.port)["version"] == "v2", 20), server.stderr_text()
    assert "fw_priv_app.py changed" in server.stderr_text()
    assert seen_by_app(server.port)["uid"] == NOBODY.pw_uid


# -- mistakes: one line, a non-zero exit, nothing listening -----------------------------------------

@pytest.mark.parametrize("args,code,needle", [
    (["--user", "fw-no-such-user"], 2, "no such user 'fw-no-such-user'"),
    (["--user", "nobody", "--group", "fw-no-such-group"], 2, "no such group 'fw-no-such-group'"),
    (["--group", "nogroup"], 1, "--group nogroup needs --user"),
    (["--initgroups"], 1, "--initgroups needs --user"),
    (["--user", "4242424"], 1, "give --group too"),
    (["--user", "4242424", "--group", "1", "--initgroups"], 1, "no passwd entry"),
], ids=["unknown-user", "unknown-group", "group-alone", "initgroups-alone", "uid-without-passwd",
        "initgroups-without-passwd"])
@pytest.mark.parametrize("mode", [[], ["-w", "2"]], ids=["single", "workers"])
def test_mistakes_are_one_line_before_anything_listens(args, code, needle, mode):
    result = run_cli("--bind", "127.0.0.1:0", *mode, *args, "tests.functional.ops:ops_app")
    assert needle in assert_one_error_line(result, code)
    assert "Listening at" not in result.stdout + result.stderr


def _main_as_nobody(argv: list[str]) -> subprocess.CompletedProcess:
    """fastwsgi's main(argv) in a process that imports it as root, then becomes nobody (the Python
    here may live where nobody cannot read, e.g. under /root: what main imports late is imported
    first, getaddrinfo's idna codec included, and argparse's gettext/locale, which 3.13 imports while
    building the parser)."""
    script = ("import encodings.idna, grp, locale, os, pwd, sys\nimport fastwsgi.cli, fastwsgi.config\n"
              "fastwsgi.config.build_parser()\n"
              f"os.setgroups([]); os.setgid({NOBODY.pw_gid}); os.setuid({NOBODY.pw_uid})\n"
              f"sys.exit(fastwsgi.cli.main({argv!r}))\n")
    environ = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=30, env=environ, stdin=subprocess.DEVNULL)


def test_a_process_that_is_not_root_cannot_switch_but_may_already_be_the_user():
    line = assert_one_error_line(_main_as_nobody(["--bind", "127.0.0.1:0", "--user", "daemon"]), 1)
    assert line.startswith("fastwsgi: error: --user daemon: only root can ") and \
        f"runs as uid {NOBODY.pw_uid}" in line
    result = _main_as_nobody(["--user", "nobody", "--group", NOGROUP.gr_name, "--check-config"])
    assert (result.returncode, result.stdout, result.stderr) == (0, "fastwsgi: configuration OK\n", "")


def test_serve_refuses_group_alone_and_unknown_users():
    import fastwsgi
    from fastwsgi.privileges import PrivilegeError

    with pytest.raises(PrivilegeError, match="needs --user"):
        fastwsgi.serve(lambda environ, start_response: [], port=0, group="nogroup")
    with pytest.raises(ValueError, match="no such user"):
        fastwsgi.serve(lambda environ, start_response: [], port=0, user="fw-no-such-user")


def test_print_config_shows_user_and_group():
    result = run_cli("-u", "nobody", "-g", "65534", "--print-config")
    assert result.returncode == 0, result.stderr
    assert 'user = "nobody"' in result.stdout and "group = 65534" in result.stdout
    assert "initgroups = false" in result.stdout
