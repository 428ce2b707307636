"""Chunked flood, and how long a new client waits meanwhile.

    python flood.py PORT CLIENTS CHUNKS DEPTH WARM PROBES

CLIENTS connections each send DEPTH pipelined POSTs at a time, over and over, each body CHUNKS
one-byte chunks (`1\\r\\nx\\r\\n` x CHUNKS, then `0\\r\\n\\r\\n`), and read the answers. After WARM
seconds, PROBES new clients one after another (0.2 s apart) send `GET /probe` on a new connection;
prints the median and the largest time from connect to the answer's first bytes, and the flood's
answers per second meanwhile. Serve apps:flood.
"""
import socket
import statistics
import sys
import threading
import time

from probe import probe

port, clients, chunks, depth, probes = (int(sys.argv[i]) for i in (1, 2, 3, 4, 6))
warm = float(sys.argv[5])
request = (b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           + b"1\r\nx\r\n" * chunks + b"0\r\n\r\n")
stop = False
answers = [0]


def client():
    sock = socket.create_connection(("127.0.0.1", port))

    def reader():
        while not stop:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            answers[0] += data.count(b"HTTP/1.1 200")

    threading.Thread(target=reader, daemon=True).start()
    try:
        while not stop:
            sock.sendall(request * depth)
    except OSError:
        pass


for _ in range(clients):
    threading.Thread(target=client, daemon=True).start()
time.sleep(warm)
waits = []
started, answered = time.monotonic(), answers[0]
for _ in range(probes):
    waits.append(probe(port))
    time.sleep(0.2)
rate = (answers[0] - answered) / (time.monotonic() - started)
stop = True
print(f"probe median {statistics.median(waits):.3f}s max {max(waits):.3f}s; flood {rate:.0f} answers/s")
