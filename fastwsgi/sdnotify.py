"""systemd service notifications (sd_notify(3)): Type=notify and Type=notify-reload units.

Theory of operation: systemd gives a Type=notify service the address of a datagram socket in
NOTIFY_SOCKET (a path, or "@name" in Linux's abstract namespace) and reads newline-separated
KEY=VALUE messages from it. `claim()` takes that address (and WATCHDOG_USEC / WATCHDOG_PID) out of
the environment once, in the process systemd started (the master, or the single serving process),
so neither the workers, the application nor the programs it runs can speak for the service; every
other call is a no-op when there is no address. What is sent, and when:

  READY=1      once the service serves: the single process just before its event loop, the master
               once its first workers are all ready (the moment -D's command returns as well);
               again when a reload ends, whether the new workers took over or failed to boot
               (the old ones serve on) or the reload was aborted (a broken config file).
  RELOADING=1  with MONOTONIC_USEC when a HUP begins a reload (Type=notify-reload sends the HUP and
               waits for this and the READY=1 after it).
  STOPPING=1   when a stop begins (TERM, INT, QUIT).
  STATUS=...   a line for `systemctl status` with each of the above.
  WATCHDOG=1   when systemd set WATCHDOG_USEC (and WATCHDOG_PID is this process, or unset): every half
               of that interval, from the master's loop or the single process's sweep; a single
               process whose application blocks its loop misses them, and systemd restarts it.

A message that cannot be sent (no listener, a full queue) is logged once as a warning and never
raised: the service does not fail because its supervisor went away.
"""

import logging
import os
import socket
import time

__all__ = ["claim", "ready", "reloading", "stopping", "watchdog", "watchdog_interval"]

log = logging.getLogger("fastwsgi")

_address = None  # where messages go, once claim() found NOTIFY_SOCKET
_socket = None
_watchdog_interval = 0.0  # seconds between WATCHDOG=1 messages (half of WATCHDOG_USEC), 0: none
_watchdog_last = 0.0
_warned = False


def claim(environ=os.environ) -> None:
    """Take the notification socket and watchdog settings out of `environ` (once per process tree:
    a second call, or one in a process that never had them, finds nothing)."""
    global _address, _socket, _watchdog_interval, _watchdog_last
    address = environ.pop("NOTIFY_SOCKET", None)
    usec = environ.pop("WATCHDOG_USEC", None)
    watchdog_pid = environ.pop("WATCHDOG_PID", None)
    if not address:
        return
    if address.startswith("@"):  # the abstract namespace (sd_notify(3))
        address = "\0" + address[1:]
    _address = address
    _socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if usec and usec.isdigit() and int(usec) > 0 and watchdog_pid in (None, "", str(os.getpid())):
        _watchdog_interval = int(usec) / 2_000_000
        _watchdog_last = time.monotonic()


def _send(*fields: str) -> None:
    global _warned
    if _address is None:
        return
    try:
        _socket.sendto("\n".join(fields).encode("utf-8", "replace"), _address)
    except OSError as exc:
        if not _warned:
            _warned = True
            log.warning("cannot notify systemd at NOTIFY_SOCKET: %s", exc)


def ready(status: str = "serving") -> None:
    _send("READY=1", f"STATUS={status}")


def reloading() -> None:
    _send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}",
          "STATUS=reloading")


def stopping() -> None:
    _send("STOPPING=1", "STATUS=stopping")


def watchdog_interval() -> float:
    """Seconds between WATCHDOG=1 messages; 0.0 when systemd watches nothing."""
    return _watchdog_interval


def watchdog() -> None:
    """Send WATCHDOG=1 if half the watchdog interval has passed since the last one."""
    global _watchdog_last
    if not _watchdog_interval:  # (set by claim() only with an address)
        return
    now = time.monotonic()
    if now - _watchdog_last >= _watchdog_interval:
        _watchdog_last = now
        _send("WATCHDOG=1")
