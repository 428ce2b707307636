"""Server CPU to take an upload through wsgi.input: read() whole, a read(65536) loop, readline().

Usage: python read_all.py TREE [MIB ...]   (TREE: a fastwsgi tree with its extension built in place)
Starts `python -m fastwsgi` from TREE (threads=0, C parser) serving an app that reads the body one
way (the path says which) and answers its length; uploads MIB MiB of b"x" (no newline: readline()
reads the whole body as one line) three times per way and prints the median of the server's CPU
time (utime + stime from /proc/PID/stat around each upload) in ms.
"""
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading

APP = '''
def app(environ, start_response):
    stream = environ["wsgi.input"]
    way = environ["PATH_INFO"]
    if way == "/read":
        n = len(stream.read())
    elif way == "/readline":
        n = len(stream.readline())
    else:
        n = 0
        while True:
            piece = stream.read(65536)
            if not piece:
                break
            n += len(piece)
    body = str(n).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
'''
TICK = os.sysconf("SC_CLK_TCK")


def cpu_ms(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / TICK


def upload(port: int, pid: int, way: str, size: int) -> float:
    s = socket.create_connection(("127.0.0.1", port), timeout=600)
    before = cpu_ms(pid)
    sender = threading.Thread(target=s.sendall, args=(
        b"POST /%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (way.encode(), size) + b"x" * size,))
    sender.start()
    data = b""
    while not data.endswith(b"\r\n\r\n" + str(size).encode()):
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    spent = cpu_ms(pid) - before
    sender.join()
    s.close()
    return spent


def main() -> None:
    tree = os.path.abspath(sys.argv[1])
    sizes = [int(a) for a in sys.argv[2:]] or [8, 16, 32, 64]
    directory = tempfile.mkdtemp()
    with open(os.path.join(directory, "bodyapp.py"), "w") as f:
        f.write(APP)
    proc = subprocess.Popen([sys.executable, "-m", "fastwsgi", "-b", "127.0.0.1:0", "--read-timeout", "600",
                             "--http-parser", "c", "bodyapp:app"], cwd=directory,
                            env=dict(os.environ, PYTHONPATH=f"{tree}:{directory}"), stderr=subprocess.PIPE)
    try:
        port = None
        while port is None:
            line = proc.stderr.readline().decode()
            assert line, "the server did not start"
            found = re.search(r"Listening at: \S+:(\d+)", line)
            port = found and int(found.group(1))
        print(f"tree {tree}: server CPU ms per upload, median of 3")
        print("| MiB | read(65536) loop | read() | readline() |")
        print("|---:|---:|---:|---:|")
        for mib in sizes:
            size = mib << 20
            row = [statistics.median(upload(port, proc.pid, way, size) for _ in range(3))
                   for way in ("pieces", "read", "readline")]
            print(f"| {mib} | " + " | ".join(f"{ms:,.0f}" for ms in row) + " |", flush=True)
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
