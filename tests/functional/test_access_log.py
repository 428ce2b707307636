"""When the access log's lines are written, and that worker processes sharing it never split one;
the file as logrotate and a HUP meet it (USR1 leaves no process holding the rotated file; a HUP to an
access log that cannot be opened keeps the old one).

A server answering on its event loop (threads = 0) holds the lines of one loop turn and writes them at
the turn's end, in pieces of whole lines of at most PIPE_BUF bytes (fastwsgi/accesslog.py, Writes).
"""

import os
import re
import signal
import socket
import threading
import time

import pytest

from tests.functional.client import Conn, get
from tests.functional.conftest import FULL_MATRIX, matrix_id
from tests.functional.ops import OPS_APP, children, wait_booted
from tests.functional.serverproc import DEFAULT_APP


@pytest.mark.parametrize("parser,threads", FULL_MATRIX, ids=[matrix_id(p) for p in FULL_MATRIX])
def test_a_line_is_written_when_its_response_is_sent_not_at_the_next_event(started, tmp_path, parser,
                                                                           threads):
    """The connection stays open and idle after its response: nothing else happens in the server, so a
    line held for a later turn would never come."""
    path = tmp_path / "access.log"
    server = started("--http-parser", parser, "--threads", str(threads), "--access-logfile", str(path),
                     "--access-logformat", "%(s)s %(U)s", DEFAULT_APP)
    with Conn(server.port) as conn:
        for number in range(3):
            conn.request("GET", f"/p/line-{number}")
            assert conn.read_response().status == 200
            deadline = time.monotonic() + 3
            while f"200 /p/line-{number}\n" not in path.read_text():
                assert time.monotonic() < deadline, f"line {number} not written: {path.read_text()!r}"
                time.sleep(0.01)


@pytest.mark.parametrize("parser,threads", FULL_MATRIX, ids=[matrix_id(p) for p in FULL_MATRIX])
def test_bytes_sent_counts_bytes_of_a_wide_memoryview(started, tmp_path, parser, threads):
    """A memoryview of 4-byte items was counted as its item count (3 for its 12 bytes)."""
    path = tmp_path / "access.log"
    server = started("--http-parser", parser, "--threads", str(threads), "--access-logfile", str(path),
                     "--access-logformat", "%(U)s %(B)s", DEFAULT_APP)
    response = get(server.port, "/wide-view")
    assert len(response.body) == 24
    deadline = time.monotonic() + 3
    while "/wide-view" not in path.read_text():
        assert time.monotonic() < deadline, path.read_text()
        time.sleep(0.01)
    assert path.read_text() == "/wide-view 24\n"


USER_AGENT = "fastwsgi-test/" + "x" * 1500  # three lines exceed PIPE_BUF (4096 bytes on Linux)
LINE = re.compile(r"^/p/c(\d+)-(\d+) (\S+)\n$")


def test_workers_sharing_stdout_never_split_or_lose_a_line(started):
    """Two worker processes write their batches to one pipe (the journal's, a container's stdout) while
    clients pipeline requests with long User-Agent lines: every line arrives whole, exactly once."""
    server = started("-w", "2", "--access-logfile", "-", "--access-logformat", "%(U)s %(a)s", DEFAULT_APP,
                     booted=2)
    clients, rounds, depth = 6, 25, 4
    errors = []

    def client(number: int) -> None:
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                reader = sock.makefile("rb")
                for round_ in range(rounds):
                    batch = b"".join(
                        f"GET /p/c{number}-{round_ * depth + index} HTTP/1.1\r\nHost: t\r\n"
                        f"User-Agent: {USER_AGENT}\r\n\r\n".encode() for index in range(depth))
                    sock.sendall(batch)  # pipelined: one loop turn answers (and logs) them together
                    for _ in range(depth):
                        status = reader.readline()
                        assert status.startswith(b"HTTP/1.1 200"), status
                        length = 0
                        while (line := reader.readline()) != b"\r\n":
                            if line.lower().startswith(b"content-length:"):
                                length = int(line.split(b":")[1])
                        reader.read(length)
        except Exception as exc:  # reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(number,)) for number in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    expected = {(number, index) for number in range(clients) for index in range(rounds * depth)}
    deadline = time.monotonic() + 5
    while True:
        logged = [line for line in server.stdout_lines if line.startswith("/p/c")]
        if len(logged) >= len(expected) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    seen = []
    for line in logged:
        match = LINE.match(line)
        assert match is not None and match.group(3) == USER_AGENT, f"a split or mixed line: {line[:200]!r}"
        seen.append((int(match.group(1)), int(match.group(2))))
    assert sorted(seen) == sorted(expected)


@pytest.mark.parametrize("parser,threads", FULL_MATRIX, ids=[matrix_id(p) for p in FULL_MATRIX])
def test_a_response_the_client_abandons_is_logged(started, tmp_path, parser, threads):
    """A streamed response cut short by the client (a reset; a reader stalled past --send-timeout) is
    logged with what was sent. With threads = 0 the loop closed the suspended exchange without a
    line (and the metrics missed it); a worker thread's exchange was logged."""
    path = tmp_path / "access.log"
    server = started("--http-parser", parser, "--threads", str(threads), "--send-timeout", "1",
                     "--access-logfile", str(path), "--access-logformat", "%(U)s %(q)s %(s)s %(b)s",
                     DEFAULT_APP)
    with Conn(server.port, rcvbuf=4096) as conn:
        conn.request("GET", "/close?mode=flood&t=reset")
        conn.read_head()
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with Conn(server.port, rcvbuf=4096) as conn:
        conn.request("GET", "/close?mode=flood&t=stall")  # never read: cut at the send timeout
        deadline = time.monotonic() + 8
        while len(re.findall(r"^/close mode=flood&t=(reset|stall) 200 (\d+)$", path.read_text(), re.M)) < 2:
            assert time.monotonic() < deadline, f"lines missing: {path.read_text()!r}"
            time.sleep(0.05)
    assert all(int(sent) > 0 for _t, sent in re.findall(r"t=(\w+) 200 (\d+)", path.read_text()))


@pytest.mark.parametrize("parser,threads", FULL_MATRIX, ids=[matrix_id(p) for p in FULL_MATRIX])
def test_a_body_over_the_limit_is_logged_as_its_413(started, tmp_path, parser, threads):
    """The 413 answered before reading a Content-Length body is a response to a valid request, as
    the 413 for a chunked body that grows past the limit is: both are logged."""
    path = tmp_path / "access.log"
    server = started("--http-parser", parser, "--threads", str(threads), "--limit-request-body", "100",
                     "--access-logfile", str(path), "--access-logformat", "%(m)s %(U)s %(q)s %(s)s", DEFAULT_APP)
    for framing in ([("Content-Length", "200")], [("Transfer-Encoding", "chunked")]):
        with Conn(server.port) as conn:
            body = b"x" * 200 if framing[0][0] == "Content-Length" else b"c8\r\n" + b"x" * 200 + b"\r\n0\r\n\r\n"
            conn.request("POST", f"/echo?{framing[0][0]}", headers=framing, body=body)
            assert conn.read_response().status == 413
    deadline = time.monotonic() + 5
    expected = "POST /echo Content-Length 413\nPOST /echo Transfer-Encoding 413\n"
    while path.read_text() != expected:
        assert time.monotonic() < deadline, path.read_text()
        time.sleep(0.05)


def open_files(pid: int) -> set:
    """The paths of the files process `pid` has open (Linux /proc)."""
    paths = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            paths.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:  # closed meanwhile
            pass
    return paths


def test_after_usr1_no_process_holds_the_rotated_access_log(started, tmp_path):
    """logrotate renames the file, USR1 has every worker reopen it: none may keep the old one open,
    or its disk space is never freed once logrotate deletes it. The master's start-up check used to
    leave its descriptor open, in the master and in every worker it forked."""
    log, rotated = tmp_path / "access.log", tmp_path / "access.log.1"
    server = started("-w", "2", "--access-logfile", str(log), OPS_APP)
    workers = set(wait_booted(server, 2))
    os.rename(log, rotated)
    server.signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10  # each worker reopens at its next sweep
    while not all(str(log) in open_files(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert children(server.proc.pid) == workers
    for pid in [server.proc.pid, *workers]:
        held = open_files(pid)
        assert str(rotated) not in held, (pid, held)
    assert str(log) not in open_files(server.proc.pid)  # the master writes no access log


def test_a_reload_to_an_access_log_that_cannot_be_opened_keeps_the_old_one(started, tmp_path):
    """Each new worker opens the access log: one that cannot failed to boot (a traceback, "could not
    load the application"), so the reload failed. The master checks it first, as at start."""
    log, conf = tmp_path / "access.log", tmp_path / "conf.py"
    conf.write_text(f"access_logfile = {str(log)!r}\n")
    server = started("-c", str(conf), "-w", "1", OPS_APP)
    wait_booted(server, 1)
    mark = server.stderr_mark()
    conf.write_text(f"access_logfile = {str(tmp_path / 'no-such-dir' / 'access.log')!r}\n")
    server.signal(signal.SIGHUP)
    after = server.wait_stderr("Reload complete", since=mark, timeout=15)
    assert after is not None, server.stderr_text()
    assert "Reload: the access log stays as it was: cannot open the access log" in after, after
    assert "crashed" not in after and "Reload failed" not in after, after
    wait_booted(server, 2)
    assert get(server.port, "/after-the-reload").status == 200
    deadline = time.monotonic() + 5
    while "/after-the-reload" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert '"GET /after-the-reload HTTP/1.1" 200' in log.read_text()
