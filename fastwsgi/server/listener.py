"""Listening sockets: parse a bind address, create (or adopt) the socket, accept in batches.

Theory of operation: a bind address is one of `HOST:PORT`, `[IPV6]:PORT`, `HOST` (port 8000),
`unix:PATH` or `fd://N` (an inherited, already listening descriptor). `parse_bind` turns it into
(family, sockaddr) and `open_listener` binds a non-blocking socket with SO_REUSEADDR (IPv6 sockets are
v6-only, so `[::]` and `0.0.0.0` can coexist), optionally SO_REUSEPORT, and a umask for unix sockets.
`systemd_sockets()` adopts the descriptors of systemd socket activation (LISTEN_FDS/LISTEN_PID,
sd_listen_fds(3)). A socket bound elsewhere (e.g. by a pre-fork master) is adopted with `Listener(sock)`. The event loop calls
`accept_batch` when the socket is readable; it returns as many connections as are waiting, up to the
room left under worker_connections, so one wakeup serves a burst of connects.
"""

import errno
import os
import socket
import stat

__all__ = ["BindError", "Listener", "parse_bind", "open_listener", "systemd_sockets"]

FD_FAMILY = "fd"  # parse_bind's family for fd://N
SD_LISTEN_FDS_START = 3  # sd_listen_fds(3): passed sockets start at descriptor 3

DEFAULT_PORT = 8000
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class BindError(ValueError):
    """A bind address that cannot be parsed or bound (the message is shown to the user)."""


def parse_bind(address: str):
    """Return (family, sockaddr) for a bind address; raises BindError."""
    if not isinstance(address, str) or not address:
        raise BindError(f"invalid bind address {address!r}")
    if address.startswith("fd://"):
        number = address[5:]
        if not number.isdigit():
            raise BindError(f"invalid bind address {address!r} (use fd://N)")
        return FD_FAMILY, int(number)
    if address.startswith("unix:"):
        path = address[5:]
        if not path:
            raise BindError(f"invalid bind address {address!r}: empty unix socket path")
        return socket.AF_UNIX, path
    if address.startswith("["):
        host, sep, rest = address[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise BindError(f"invalid bind address {address!r} (use [IPV6]:PORT)")
        port = _parse_port(rest[1:] if rest else str(DEFAULT_PORT), address)
        return socket.AF_INET6, (host, port, 0, 0)
    host, sep, port_text = address.rpartition(":")
    if not sep:
        host, port_text = address, str(DEFAULT_PORT)
    if ":" in host:
        raise BindError(f"invalid bind address {address!r} (write IPv6 addresses as [ADDR]:PORT)")
    port = _parse_port(port_text, address)
    if not host:
        host = "0.0.0.0"
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(f"cannot resolve {host!r}: {exc.strerror}") from None
    family, _type, _proto, _name, sockaddr = infos[0]
    return family, sockaddr


def _parse_port(text: str, address: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise BindError(f"invalid port in bind address {address!r}")
    return int(text)


def open_listener(address: str, backlog: int, reuse_port: bool = False, umask=None,
                  listen: bool = True) -> "Listener":
    """Bind and listen on `address`; raises BindError with a one-line reason.
    listen=False only binds (a pre-fork master reserving a SO_REUSEPORT address for its workers)."""
    family, sockaddr = parse_bind(address)
    if family == FD_FAMILY:
        return adopt_fd(sockaddr, address)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_UNIX:
            _remove_stale_unix_socket(sockaddr)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if family == socket.AF_UNIX and umask is not None:
            previous = os.umask(umask)
            try:
                sock.bind(sockaddr)
            finally:
                os.umask(previous)
        else:
            sock.bind(sockaddr)
        if listen:
            sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {address}: {exc.strerror or exc}") from None
    return Listener(sock, owns_path=family == socket.AF_UNIX)


def adopt_fd(fd: int, address: str) -> "Listener":
    """A listening stream socket we inherited as descriptor `fd`."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise BindError(f"cannot use {address}: {exc.strerror or exc}") from None
    try:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError:
        listening = 0
    if sock.type != socket.SOCK_STREAM or not listening:
        sock.detach()
        raise BindError(f"cannot use {address}: not a listening stream socket")
    return Listener(sock)


def systemd_sockets(environ=None) -> list:
    """Listeners passed by systemd socket activation, or [] (sd_listen_fds(3)). The variables are
    removed from `environ` so that processes we start do not take them for theirs."""
    environ = os.environ if environ is None else environ
    count, pid = environ.get("LISTEN_FDS"), environ.get("LISTEN_PID")
    if not count or not pid:
        return []
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        environ.pop(name, None)
    if not pid.isdigit() or int(pid) != os.getpid():
        return []  # meant for another process
    if not count.isdigit() or int(count) < 1:
        raise BindError(f"invalid LISTEN_FDS={count!r}")
    return [adopt_fd(fd, f"fd://{fd} (LISTEN_FDS)")
            for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count))]


def _remove_stale_unix_socket(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody answers: a leftover from a dead server
    else:
        raise OSError(f"{path} is in use by another server")
    finally:
        probe.close()


class Listener:
    """One listening socket (ours or adopted) plus what the environ needs to know about it."""

    def __init__(self, sock: socket.socket, owns_path: bool = False):
        if sock.type != socket.SOCK_STREAM:
            raise ValueError("a listener must be a SOCK_STREAM socket")
        sock.setblocking(False)
        self.sock = sock
        self.family = sock.family
        self.is_tcp = sock.family in (socket.AF_INET, socket.AF_INET6)
        sockaddr = sock.getsockname()
        if self.is_tcp:
            self.host, self.port = sockaddr[0], sockaddr[1]
            host = f"[{self.host}]" if sock.family == socket.AF_INET6 else self.host
            self.url = f"http://{host}:{self.port}"
            self.server_name, self.server_port = self.host, str(self.port)
        else:
            self.host, self.port = sockaddr, None
            self.url = f"unix:{sockaddr}"
            self.server_name, self.server_port = "localhost", ""
        self.unix_path = sockaddr if owns_path else None
        self.exhausted = False  # the last accept failed for lack of descriptors or memory
        # what speaks on this socket: the server's Connection unless a protocol sets its own class,
        # and which peers may connect (None: all; else a callable addr -> bool that logs refusals)
        self.protocol = "http"
        self.connection_class = None
        self.admits = None

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept_batch(self, room: int):
        """Accept up to `room` waiting connections without blocking; returns [(sock, addr)]."""
        accepted = []
        accept = self.sock.accept
        while len(accepted) < room:
            try:
                accepted.append(accept())
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self.exhausted = True  # the loop pauses accepting briefly instead of spinning
                break  # ECONNABORTED and the like: the next wakeup tries again
        return accepted

    def close(self) -> None:
        self.sock.close()
        if self.unix_path:
            try:
                os.unlink(self.unix_path)
            except OSError:
                pass
