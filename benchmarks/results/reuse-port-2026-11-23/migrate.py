"""Where do connections queued on a closing SO_REUSEPORT socket go? (Linux; see README.md here.)

Two listening sockets share a port with SO_REUSEPORT; 40 clients connect and send a request; the
first socket closes without accepting; then the second accepts all it can. With
net.ipv4.tcp_migrate_req = 0 the kernel resets those that were queued on the first socket; with 1
it moves them to the second.

    python3 migrate.py          # reads the current setting; `sysctl -w net.ipv4.tcp_migrate_req=1` (root) to compare
"""
import socket

CLIENTS = 40


def listener(port=0):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


first = listener()
port = first.getsockname()[1]
second = listener(port)
clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(CLIENTS)]
for client in clients:
    client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
first.close()
accepted = []
while True:
    try:
        accepted.append(second.accept()[0])
    except BlockingIOError:
        break
with open("/proc/sys/net/ipv4/tcp_migrate_req") as setting:
    migrate = setting.read().strip()
print(f"net.ipv4.tcp_migrate_req = {migrate}: the other socket accepted {len(accepted)} of {CLIENTS}")
