"""The readiness poller under the event loop: epoll on Linux, poll(2) on other POSIX systems.

Theory of operation. The loop (loop.py) and the connections use five operations on one set of
descriptors: `register(fd, mask)`, `modify(fd, mask)`, `unregister(fd)`, `poll(seconds)` -> [(fd,
mask)] and `close()`, with masks made of IN and OUT (plus ONESHOT). They were written against two
properties of Linux epoll:

* one-shot registrations (threads > 0): the event that hands a connection to a worker thread disarms
  its socket, and the worker re-arms it with `modify` when the exchange is over, while the loop thread
  may be waiting inside `poll`;
* a closed descriptor leaves the set by itself, so closing a connection needs no call here.

`EpollPoller` is select.epoll, level-triggered, with EPOLLONESHOT. Its operations are the epoll
object's own bound methods, set once on the instance: the loop reaches the system call with the same
attribute lookups as when it held the epoll object itself, and no event is translated (the reported
bits are epoll's, and EPOLLIN/EPOLLOUT equal POLLIN/POLLOUT: checked below).

`PollPoller` emulates those properties over select.poll, which keeps the set (fd -> mask) in user
space and hands it to the kernel at each `poll` call:

* one-shot: a registration carrying ONESHOT (a bit outside poll(2)'s 16-bit masks, stripped before
  select.poll sees it) is recorded in `_oneshot`; when `poll` reports such a descriptor, it leaves the
  select.poll set before `poll` returns, and `modify` puts it back. It leaves rather than keeping an
  empty mask because poll(2) reports POLLHUP and POLLERR even for mask 0, and a disarmed epoll
  registration reports nothing. A descriptor reported by `poll` was armed when the call began, so no
  worker owns it and no worker's `modify` races with its removal.
* a change made while the loop waits (a worker's re-arm) reaches the kernel only at the next `poll`
  call, so on its own it would wait for an unrelated event or the loop's timeout. `PollPoller` says so
  with `changes_need_wake = True`, and the loop writes to its wakeup socket after such a re-arm.
* poll(2) keeps a closed descriptor (reporting POLLNVAL at every call: a busy loop), and a new socket
  given the same number would inherit its registration. `keeps_closed = True` makes the loop call
  `discard(fd)` when a connection closes; a POLLNVAL that still shows up drops the descriptor too.
* error bits: POLLERR and POLLHUP are reported whatever the mask, as EPOLLERR and EPOLLHUP are, and the
  connection treats any report other than OUT alone as "readable" (its recv() finds out what happened).
  So the bits need no translation either; POLLNVAL goes the same way (recv() fails: the connection
  closes).

`register` and `modify` of `PollPoller` both insert or replace (epoll refuses register on a registered
descriptor and modify on an unregistered one; the loop never relies on those refusals).

Selection (`poller_class`): epoll where select.epoll exists, else poll; the environment variable
FASTWSGI_POLLER=epoll|poll forces one (the test suite runs the fallback on Linux that way). Without
either (Windows) it raises UnsupportedPlatform (a PollerError, which is a RuntimeError) whose message
the CLI prints as one line; importing fastwsgi and its parser does not need a poller.
"""

import os
import select

__all__ = ["IN", "OUT", "EpollPoller", "PollPoller", "PollerError", "UnsupportedPlatform", "poller_class"]

# poll(2)'s values where it exists; the fallbacks only let the modules import where neither exists
IN = getattr(select, "POLLIN", 0x001)
OUT = getattr(select, "POLLOUT", 0x004)
_NVAL = getattr(select, "POLLNVAL", 0x020)

if hasattr(select, "epoll"):
    # the connection code builds one mask for either poller, so the bits must agree (they do on Linux)
    assert (select.EPOLLIN, select.EPOLLOUT) == (IN, OUT), "epoll and poll(2) bits differ"


class PollerError(RuntimeError):
    """No poller can be used (the message is shown to the user as one line)."""


class UnsupportedPlatform(PollerError):
    """Neither epoll nor poll(2) here (Windows), or FASTWSGI_POLLER asks for one that is missing."""


class EpollPoller:
    """select.epoll, level-triggered; ONESHOT is EPOLLONESHOT; a closed descriptor leaves the set."""

    NAME = "epoll"  # also the select module's name for it (see _available)
    ONESHOT = getattr(select, "EPOLLONESHOT", 0)
    changes_need_wake = False
    keeps_closed = False

    def __init__(self, oneshot: bool = False):
        epoll = select.epoll()
        self.register = epoll.register
        self.modify = epoll.modify
        self.unregister = epoll.unregister
        self.poll = epoll.poll
        self.close = epoll.close


class PollPoller:
    """select.poll with epoll's one-shot registrations emulated; see the module docstring."""

    NAME = "poll"
    ONESHOT = 1 << 30
    changes_need_wake = True
    keeps_closed = True

    def __init__(self, oneshot: bool = False):
        self._set = select.poll()
        self._oneshot = set()  # descriptors registered with ONESHOT, armed or not
        self.unregister = self._set.unregister
        if not oneshot:  # no ONESHOT will ever be asked for: select.poll's own methods will do
            self.register = self.modify = self._set.register

    def register(self, fd: int, mask: int) -> None:
        if mask & self.ONESHOT:
            self._oneshot.add(fd)
            mask &= ~self.ONESHOT
        else:
            self._oneshot.discard(fd)
        self._set.register(fd, mask)

    modify = register

    def discard(self, fd: int) -> None:
        """Forget `fd` (a connection closes), whether it is registered, disarmed or unknown."""
        self._oneshot.discard(fd)
        try:
            self._set.unregister(fd)
        except KeyError:
            pass

    def poll(self, timeout: float):
        events = self._set.poll(timeout * 1000.0)
        oneshot = self._oneshot
        for fd, mask in events:
            if fd in oneshot or mask & _NVAL:
                try:
                    self._set.unregister(fd)  # disarmed until modify(); or closed under us
                except KeyError:
                    pass
        return events

    def close(self) -> None:
        self._oneshot.clear()


POLLERS = {"epoll": EpollPoller, "poll": PollPoller}


def _available(cls) -> bool:
    return hasattr(select, cls.NAME)


def poller_class(name=None):
    """The poller to use: `name` ("epoll", "poll", or "auto"/"" for the best available), by default
    $FASTWSGI_POLLER. Raises UnsupportedPlatform when it is not available here, PollerError for an
    unknown name."""
    if name is None:
        name = os.environ.get("FASTWSGI_POLLER", "")
    if name in ("", "auto"):
        for cls in POLLERS.values():
            if _available(cls):
                return cls
        raise UnsupportedPlatform("this platform is not supported: it has neither epoll nor poll(2) "
                                  "(fastwsgi serves on Linux, macOS and the BSDs; on Windows use waitress)")
    cls = POLLERS.get(name)
    if cls is None:
        raise PollerError(f"FASTWSGI_POLLER={name!r}: choose epoll, poll or auto")
    if not _available(cls):
        raise UnsupportedPlatform(f"FASTWSGI_POLLER={name}: select.{name} does not exist on this platform")
    return cls
