"""Time to a new client's answer while BUSY pool threads run CPU-bound Python.

    python convoy.py PORT BUSY [PROBES]

Serve apps:spin with --threads BUSY+1 (one thread stays free for the probes). BUSY connections send
`GET /spin?60`; half a second later PROBES new clients one after another send `GET /probe` on a new
connection; prints the median, p90 and largest time from connect to the answer's first bytes.
"""
import socket
import statistics
import sys
import time

from probe import probe

port, busy = int(sys.argv[1]), int(sys.argv[2])
probes = int(sys.argv[3]) if len(sys.argv) > 3 else 30
spinners = []
for _ in range(busy):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET /spin?60 HTTP/1.1\r\nHost: x\r\n\r\n")
    spinners.append(sock)
time.sleep(0.5)
waits = []
for _ in range(probes):
    waits.append(probe(port))
    time.sleep(0.02)
waits.sort()
print(f"busy={busy} median {statistics.median(waits) * 1e3:.2f} ms p90 {waits[int(probes * 0.9)] * 1e3:.2f} ms "
      f"max {waits[-1] * 1e3:.2f} ms")
