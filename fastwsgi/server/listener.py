"""Listening sockets: parse a bind address, create (or adopt) the socket, accept in batches.

Theory of operation: a bind address is one of `HOST:PORT`, `[IPV6]:PORT`, `HOST` (port 8000),
`unix:PATH` or `fd://N` (an inherited, already listening descriptor), optionally prefixed with the
protocol the socket speaks: `http://` or `uwsgi://` (e.g. `uwsgi://127.0.0.1:9000`,
`uwsgi://unix:/run/app.sock`); without a prefix the socket speaks the `protocol` option's default.
`split_protocol` takes the prefix off, `parse_bind` turns the rest into (family, sockaddr) and
`open_listener` binds a non-blocking socket with SO_REUSEADDR (IPv6 sockets are
v6-only, so `[::]` and `0.0.0.0` can coexist), optionally SO_REUSEPORT, and a umask for unix sockets.
`systemd_sockets()` adopts the descriptors of systemd socket activation (LISTEN_FDS/LISTEN_PID,
sd_listen_fds(3)). A socket bound elsewhere (e.g. by a pre-fork master) is adopted with `Listener(sock)`.

A Listener carries what speaks on it (`use_protocol`): for "http" the server's own Connection and
every peer admitted; for "uwsgi" fastwsgi.server.uwsgi's UwsgiConnection and, on TCP, the peer filter
of --uwsgi-allow-from (UNIX-socket peers are always admitted). The server applies --defer-accept to
TCP listeners (`defer_accept`: TCP_DEFER_ACCEPT, so a connection is accepted once its request or
packet is there, and the loop's read right after accept finds it). The event loop calls
`accept_batch` when the socket is readable; it returns as many connections as are waiting, up to the
room left under worker_connections, so one wakeup serves a burst of connects. On Linux TCP the
kernel says how many are waiting (TCP_INFO of a listening socket: tcpi_unacked is the accept queue's
length): after the first accept the batch asks, takes that many and asks again, and stops when the
answer is 0 instead of at a failed accept, whose BlockingIOError costs more Python than the
getsockopt. A UNIX socket gives no count (SIOCINQ refuses a listening one), so it takes one connection
per wakeup: behind nginx over `uwsgi_pass unix:` nearly every wakeup has exactly one, and another
epoll round when a second waits costs less than the failed accept every batch would end with.
TCP on other kernels accepts until BlockingIOError (their TCP_INFO, where it exists, has another
layout: it is read on Linux only).

SO_REUSEPORT spreads connections over the sockets bound to one address only on Linux
(`REUSE_PORT_BALANCES`); macOS and the BSDs accept the option but let one socket take them all (FreeBSD
balances only with SO_REUSEPORT_LB), so there `--reuse-port` falls back to one shared socket (cli.py).
"""

import errno
import functools
import os
import socket
import stat
import struct
import sys

import _socket

__all__ = ["BindError", "Listener", "PROTOCOLS", "split_protocol", "parse_bind", "open_listener",
           "adopt_fd", "systemd_sockets"]

PROTOCOLS = ("http", "uwsgi")  # what a listening socket can speak (the `protocol` option)
FD_FAMILY = "fd"  # parse_bind's family for fd://N
SD_LISTEN_FDS_START = 3  # sd_listen_fds(3): passed sockets start at descriptor 3
ACTIVATION_VARIABLES = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")  # what systemd_sockets() takes

DEFAULT_PORT = 8000
_LINUX = sys.platform.startswith("linux")
# TCP_INFO of a listening socket (Linux): struct tcp_info up to tcpi_unacked, which is the number of
# connections in the accept queue (tcp_get_info; `ss -l` shows it as Recv-Q). FreeBSD has a TCP_INFO
# too, whose field at that offset is not the queue length.
_TCP_INFO = getattr(socket, "TCP_INFO", None) if _LINUX else None
_SO_REUSEPORT = getattr(socket, "SO_REUSEPORT", None)
# several sockets bound to one address with SO_REUSEPORT share its connections (Linux >= 3.9)
REUSE_PORT_BALANCES = _LINUX and _SO_REUSEPORT is not None
_SO_ACCEPTCONN = getattr(socket, "SO_ACCEPTCONN", None)
_ACCEPT_QUEUE = struct.Struct("=24xI")
_SOL_TCP = socket.IPPROTO_TCP
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class BindError(OSError, ValueError):
    """A bind address that cannot be parsed or bound (the message is shown to the user). An OSError,
    as what wsgiref's make_server raises for a port in use; a ValueError, as a malformed address is."""


def split_protocol(address: str):
    """'uwsgi://127.0.0.1:9000' -> ('uwsgi', '127.0.0.1:9000'); no prefix -> (None, address).
    fd://N is a family, not a protocol. Raises BindError for an unknown scheme."""
    if not isinstance(address, str) or not address:
        raise BindError(f"invalid bind address {address!r}")
    scheme, sep, rest = address.partition("://")
    if not sep or scheme == FD_FAMILY or not scheme.isalpha():  # unix:/odd://path has no protocol
        return None, address
    if scheme not in PROTOCOLS:
        raise BindError(f"invalid bind address {address!r}: unknown protocol {scheme!r} "
                        f"(use {'://, '.join(PROTOCOLS)}://)")
    if not rest:
        raise BindError(f"invalid bind address {address!r}: nothing after {scheme}://")
    return scheme, rest


def parse_bind(address: str):
    """Return (family, sockaddr) for a bind address (a protocol prefix is allowed); raises BindError."""
    _protocol, rest = split_protocol(address)
    return _parse_plain(rest, address)


def _parse_plain(address: str, shown: str):
    """(family, sockaddr) of an address without protocol prefix; messages quote `shown`."""
    if address.startswith("fd://"):
        number = address[5:]
        if not (number.isascii() and number.isdigit()) or int(number) > 2**31 - 1:  # (a C int)
            raise BindError(f"invalid bind address {shown!r} (use fd://N)")
        return FD_FAMILY, int(number)
    if address.startswith("unix:"):
        path = address[5:]
        if not path:
            raise BindError(f"invalid bind address {shown!r}: empty unix socket path")
        if "\0" in path:
            raise BindError(f"invalid bind address {shown!r}: NUL byte in the unix socket path")
        return socket.AF_UNIX, path
    if address.startswith("["):
        host, sep, rest = address[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise BindError(f"invalid bind address {shown!r} (use [IPV6]:PORT)")
        port = _parse_port(rest[1:] if rest else str(DEFAULT_PORT), shown)
        return socket.AF_INET6, (host, port, 0, 0)
    host, sep, port_text = address.rpartition(":")
    if not sep:
        host, port_text = address, str(DEFAULT_PORT)
    if ":" in host:
        raise BindError(f"invalid bind address {shown!r} (write IPv6 addresses as [ADDR]:PORT)")
    port = _parse_port(port_text, shown)
    if not host:
        host = "0.0.0.0"
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(f"cannot resolve {host!r}: {exc.strerror}") from None
    # a name with both (localhost: glibc lists ::1 first with the stock /etc/hosts) listens on IPv4,
    # as wsgiref and gunicorn do, where a proxy's 127.0.0.1 reaches it
    family, _type, _proto, _name, sockaddr = next((info for info in infos if info[0] == socket.AF_INET),
                                                  infos[0])
    return family, sockaddr


def _parse_port(text: str, address: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise BindError(f"invalid port in bind address {address!r}")
    return int(text)


def open_listener(address: str, backlog: int, reuse_port: bool = False, umask=None,
                  listen: bool = True, protocol: str = "http", allow_from=None) -> "Listener":
    """Bind and listen on `address`; raises BindError with a one-line reason.
    listen=False only binds (a pre-fork master reserving a SO_REUSEPORT address for its workers, or
    a worker binding its own before it loads the application: `Listener.listen` later).
    `protocol` is the default for an address without a protocol prefix; `allow_from` the uwsgi peer
    list (None: the default)."""
    scheme, rest = split_protocol(address)
    protocol = scheme or protocol
    family, sockaddr = _parse_plain(rest, address)
    if family == FD_FAMILY:
        return adopt_fd(sockaddr, address, protocol, allow_from)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_UNIX:
            _remove_stale_unix_socket(sockaddr)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                if _SO_REUSEPORT is None:
                    raise OSError("SO_REUSEPORT does not exist on this platform (drop --reuse-port)")
                sock.setsockopt(socket.SOL_SOCKET, _SO_REUSEPORT, 1)
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
        error = BindError(f"cannot listen on {address}: {exc.strerror or exc}")
        error.errno = exc.errno  # (EADDRINUSE: what a caller of wsgiref's make_server tests)
        raise error from None
    return Listener(sock, owns_path=family == socket.AF_UNIX, protocol=protocol, allow_from=allow_from,
                    queue_of_its_own=reuse_port and listen, reserved=reuse_port and not listen)


MIGRATE_REQ_SYSCTL = "/proc/sys/net/ipv4/tcp_migrate_req"


def queued_connections_move() -> bool | None:
    """Does the kernel move the connections queued on a closing SO_REUSEPORT socket to the other
    sockets of its group (Linux 5.14+, net.ipv4.tcp_migrate_req = 1)? None where it cannot tell."""
    try:
        with open(MIGRATE_REQ_SYSCTL) as setting:
            return setting.read().strip() != "0"
    except (OSError, ValueError):
        return None


def adopt_fd(fd: int, address: str, protocol: str = "http", allow_from=None,
             reserved: bool = False) -> "Listener":
    """A listening stream socket we inherited as descriptor `fd`, speaking `protocol`; with
    `reserved`, a TCP address a pre-fork master bound with SO_REUSEPORT without listening (the old
    master's, across USR2: fastwsgi.workers.upgrade), for workers that open sockets of their own."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise BindError(f"cannot use {address}: {exc.strerror or exc}") from None
    try:  # without SO_ACCEPTCONN the check is left to the first accept()
        listening = 1 if _SO_ACCEPTCONN is None else sock.getsockopt(socket.SOL_SOCKET, _SO_ACCEPTCONN)
    except OSError:
        listening = 0
    if reserved:
        try:  # (asked of a reserved socket only: an inherited listening one needs no SO_REUSEPORT)
            shared_port = _SO_REUSEPORT is not None and sock.getsockopt(socket.SOL_SOCKET, _SO_REUSEPORT)
        except OSError:
            shared_port = 0
        usable = (sock.family in (socket.AF_INET, socket.AF_INET6) and not listening and shared_port
                  and sock.getsockname()[1] != 0)
        what = "a bound, not listening SO_REUSEPORT TCP socket"
    else:
        usable, what = listening, "a listening stream socket"
    if sock.type != socket.SOCK_STREAM or not usable:
        sock.detach()
        raise BindError(f"cannot use {address}: not {what}")
    return Listener(sock, protocol=protocol, allow_from=allow_from, reserved=reserved)


def systemd_sockets(environ=None, protocol: str = "http", allow_from=None) -> list:
    """Listeners passed by systemd socket activation, or [] (sd_listen_fds(3)), speaking the default
    `protocol`. The variables are removed from `environ` so that processes we start do not take them
    for theirs."""
    environ = os.environ if environ is None else environ
    count, pid = environ.get("LISTEN_FDS"), environ.get("LISTEN_PID")
    if not count or not pid:
        return []
    for name in ACTIVATION_VARIABLES:
        environ.pop(name, None)
    if not pid.isdigit() or int(pid) != os.getpid():
        return []  # meant for another process
    if not count.isdigit() or int(count) < 1:
        raise BindError(f"invalid LISTEN_FDS={count!r}")
    return [adopt_fd(fd, f"fd://{fd} (LISTEN_FDS)", protocol, allow_from)
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


def _accept_queue_reader(sock: socket.socket):
    """A callable returning the start of a listening TCP socket's struct tcp_info (unpacked by
    _ACCEPT_QUEUE), or None if the kernel does not give it (not Linux, not TCP). A partial, not a
    function: no Python frame per call."""
    if _TCP_INFO is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    read = functools.partial(sock.getsockopt, _SOL_TCP, _TCP_INFO, _ACCEPT_QUEUE.size)
    try:
        return read if len(read()) == _ACCEPT_QUEUE.size else None
    except OSError:
        return None


def _set_defer_accept(sock: socket.socket, seconds: int) -> bool:
    """Ask Linux to complete accept() only once data has arrived, holding a silent connection up to
    about `seconds` (TCP_DEFER_ACCEPT; 0 turns it off); True if the kernel now defers."""
    option = getattr(socket, "TCP_DEFER_ACCEPT", None)
    if option is None:
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, option, seconds)
    except OSError:
        return False
    return seconds > 0


class Listener:
    """One listening socket (ours or adopted) plus what the environ needs to know about it."""

    def __init__(self, sock: socket.socket, owns_path: bool = False, protocol: str = "http",
                 allow_from=None, queue_of_its_own: bool = False, reserved: bool = False):
        if sock.type != socket.SOCK_STREAM:
            raise ValueError("a listener must be a SOCK_STREAM socket")
        sock.setblocking(False)
        self.sock = sock
        self.family = sock.family
        # how accept_batch wraps an accepted descriptor, read once: socket.socket's family and type
        # properties convert to enums, which costs microseconds per accept batch
        self._accepted_kind = (sock.family, sock.type, sock.proto)
        self.is_tcp = sock.family in (socket.AF_INET, socket.AF_INET6)
        sockaddr = sock.getsockname()
        if self.is_tcp:
            self.host, self.port = sockaddr[0], sockaddr[1]
            self.server_name, self.server_port = self.host, str(self.port)
        else:
            self.host, self.port = sockaddr, None
            self.server_name, self.server_port = "localhost", ""
        self.unix_path = sockaddr if owns_path else None
        self.read_accept_queue = _accept_queue_reader(sock)
        self.exhausted = False  # the last accept failed for lack of descriptors or memory
        self.deferred = False  # accept() completes only once the client has sent (defer_accept)
        # SO_REUSEPORT: the kernel queues some of the address's connections here and nowhere else,
        # so a graceful stop closes this socket at once (Server._start_drain)
        self.queue_of_its_own = queue_of_its_own
        # bound, not listening: a pre-fork master's --reuse-port address, where each worker opens
        # a socket of its own (fd:// and systemd's sockets are always shared; a master started by
        # USR2 adopts the old master's reserved ones as reserved: adopt_fd)
        self.reserved = reserved
        self.use_protocol(protocol, allow_from)

    def use_protocol(self, protocol: str, allow_from=None) -> None:
        """What speaks on this socket: `protocol` ("http" or "uwsgi"), and for uwsgi over TCP which
        peers may connect (`allow_from`: the --uwsgi-allow-from list, None for its default).
        Sets `protocol`, `url`, `connection_class` (None: the server's Connection) and `admits`
        (None: every peer; else a callable addr -> bool that logs refusals, at most one line per
        fastwsgi.server.uwsgi.REFUSAL_LOG_INTERVAL), read by the event loop."""
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r} (choose {', '.join(PROTOCOLS)})")
        self.protocol = protocol
        if self.is_tcp:
            host = f"[{self.host}]" if self.family == socket.AF_INET6 else self.host
            self.url = f"{protocol}://{host}:{self.port}"
        else:
            self.url = f"unix:{self.host}" if protocol == "http" else f"{protocol}://unix:{self.host}"
        if protocol == "uwsgi":
            from .uwsgi import UwsgiConnection, peer_filter  # late: uwsgi imports the server modules

            self.connection_class = UwsgiConnection
            self.admits = peer_filter(allow_from) if self.is_tcp else None
        else:
            self.connection_class = None
            self.admits = None

    def listen(self, backlog: int) -> None:
        """Start listening on a reserved socket (bound with SO_REUSEPORT, not listening: open_listener's
        listen=False, or adopt_fd's reserved): the kernel sends some of the address's connections to
        this socket's queue from now on."""
        self.sock.listen(backlog)
        self.reserved = False
        self.queue_of_its_own = True

    def defer_accept(self, seconds: int) -> None:
        """TCP: let the kernel hold a new connection until its first bytes arrive (at most about
        `seconds`, then it is accepted anyway), so the read at accept finds the request and a
        client that connects and stays silent costs no descriptor here; 0: accept at once."""
        if self.is_tcp:
            self.deferred = _set_defer_accept(self.sock, seconds)

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept_batch(self, room: int):
        """Accept up to `room` waiting connections (one on a UNIX socket) without blocking; returns
        [(sock, addr)].

        The sockets are `_socket.socket` objects, the C type under socket.socket (recv, send,
        shutdown, close, fileno, setblocking, setsockopt ...; no makefile or context manager): creating
        one costs a third of a socket.socket, whose Python-level __init__ and enum conversions add up
        at one connection per request."""
        accepted = []
        accept, wrap = self.sock._accept, _socket.socket
        family, kind, proto = self._accepted_kind
        read_accept_queue = self.read_accept_queue
        counted = 1  # accepts before asking the kernel how many wait: the first is on the poller's word
        while len(accepted) < room:
            try:
                fd, addr = accept()
                accepted.append((wrap(family, kind, proto, fd), addr))
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self.exhausted = True  # the loop pauses accepting briefly instead of spinning
                break  # ECONNABORTED and the like: the next wakeup tries again
            counted -= 1
            if counted:
                continue
            if read_accept_queue is not None:
                try:
                    counted = _ACCEPT_QUEUE.unpack(read_accept_queue())[0]
                except OSError:
                    counted = room
            elif self.is_tcp:
                counted = room  # this kernel gives no count: accept until BlockingIOError
            if not counted:  # (a UNIX socket: one per wakeup, see the module's docstring)
                break
        return accepted

    def close(self, unlink: bool = True) -> None:
        """Close the socket; a UNIX socket's file goes too unless `unlink` is False (another master
        still listens on it: fastwsgi.workers.upgrade)."""
        self.sock.close()
        if self.unix_path and unlink:
            try:
                os.unlink(self.unix_path)
            except OSError:
                pass
