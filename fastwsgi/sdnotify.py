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
  MAINPID=...  a USR2 upgrade's hand-over (fastwsgi.workers.upgrade): the master systemd started gives
               the new master it executes NOTIFY_SOCKET (and WATCHDOG_USEC) back (`handover()`);
               the new master sends MAINPID=its pid with its first READY=1, and, if it exits while
               the old master still runs (a roll-back, workers that cannot boot), MAINPID=the old
               master's pid instead of STOPPING=1, so that systemd's main process is always the one
               that serves and a roll-back never stops the unit. A master beside a running new master
               says no STOPPING=1 either: its exit is not the service's. systemd takes MAINPID= from
               a process other than the main one only with NotifyAccess=all in the unit.

A message that cannot be sent (no listener, a full queue) is logged once as a warning and never
raised: the service does not fail because its supervisor went away.
"""

import logging
import os
import socket
import time

__all__ = ["claim", "handover", "main_pid", "ready", "reloading", "stopping", "watchdog",
           "watchdog_interval"]

log = logging.getLogger("fastwsgi")

_address = None  # where messages go, once claim() found NOTIFY_SOCKET
_socket = None
_watchdog_interval = 0.0  # seconds between WATCHDOG=1 messages (half of WATCHDOG_USEC), 0: none
_watchdog_last = 0.0
_warned = False
_claimed = {}  # the variables claim() took, as given: what a new master started by USR2 gets back
VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")  # what claim() takes


def claim(environ=os.environ) -> None:
    """Take the notification socket and watchdog settings out of `environ` (once per process tree:
    a second call, or one in a process that never had them, finds nothing)."""
    global _address, _socket, _watchdog_interval, _watchdog_last
    address, usec, watchdog_pid = (environ.pop(name, None) for name in VARIABLES)
    if not address:
        return
    _claimed["NOTIFY_SOCKET"] = address
    if usec:
        _claimed["WATCHDOG_USEC"] = usec
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


def handover() -> dict:
    """The variables for a new master started by USR2, which is to become systemd's main process:
    NOTIFY_SOCKET and WATCHDOG_USEC as this process was given them (not WATCHDOG_PID: the watchdog
    is then the new master's too); {} when systemd gave none."""
    return dict(_claimed)


def ready(status: str = "serving", main_pid: int = 0) -> None:
    """READY=1; with `main_pid`, also MAINPID= (a new master taking the service over)."""
    if main_pid:
        _send("READY=1", f"STATUS={status}", f"MAINPID={main_pid}")
    else:
        _send("READY=1", f"STATUS={status}")


def main_pid(pid: int) -> None:
    """Make `pid` systemd's main process again (a new master that exits hands the service back)."""
    _send(f"MAINPID={pid}", "STATUS=serving (the upgrade was rolled back)")


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
