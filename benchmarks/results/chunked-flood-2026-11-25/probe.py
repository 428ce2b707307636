"""One new client's wait: connect, send `GET /probe`, return the seconds to the answer's first bytes."""
import socket
import time


def probe(port: int) -> float:
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(300)
        sock.sendall(b"GET /probe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        first = sock.recv(4096)
        assert first.startswith(b"HTTP/1.1 200"), first
    return time.perf_counter() - start
