"""The pollers under the event loop (fastwsgi/server/poller.py): which one is chosen, and that
PollPoller behaves as the loop expects of epoll. Real descriptors (socketpairs), real system calls;
the behaviour tests run on both pollers."""

import select
import socket
import sys

import pytest

import fastwsgi
from fastwsgi.server.poller import (IN, OUT, EpollPoller, PollerError, PollPoller, UnsupportedPlatform,
                                    poller_class)

POLLERS = [EpollPoller, PollPoller]
DEFAULT = EpollPoller if hasattr(select, "epoll") else PollPoller
QUIET = 0.05  # seconds a poll waits when nothing should be reported


@pytest.fixture(params=POLLERS, ids=lambda cls: cls.NAME)
def make(request):
    """make(oneshot=False) -> a poller of the parametrized class, closed at the end."""
    made = []

    def build(oneshot=False):
        poller = request.param(oneshot=oneshot)
        made.append(poller)
        return poller

    yield build
    for poller in made:
        poller.close()


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def ready(poller, timeout=QUIET):
    return {fd: mask for fd, mask in poller.poll(timeout)}


def test_epoll_is_the_default_on_linux(monkeypatch):
    monkeypatch.delenv("FASTWSGI_POLLER", raising=False)
    expected = EpollPoller if sys.platform.startswith("linux") else PollPoller
    assert poller_class() is expected
    with fastwsgi.make_server("127.0.0.1", 0, lambda environ, start_response: []) as server:
        assert server.poller.NAME == expected.NAME


def test_the_epoll_path_has_no_python_layer(monkeypatch):
    """Linux pays nothing for the abstraction: the loop calls epoll's own methods, and closing a
    connection calls nothing more than before."""
    monkeypatch.delenv("FASTWSGI_POLLER", raising=False)
    with fastwsgi.make_server("127.0.0.1", 0, lambda environ, start_response: []) as server:
        poller = server.poller
        for name in ("register", "modify", "unregister", "poll"):
            assert type(getattr(poller, name)).__name__ == "builtin_function_or_method", name
        assert server.rearm == poller.modify
        assert "forget" not in vars(server)


@pytest.mark.parametrize("value, expected", [("poll", PollPoller), ("epoll", EpollPoller),
                                             ("auto", DEFAULT), ("", DEFAULT)])
def test_fastwsgi_poller_forces_one(monkeypatch, value, expected):
    monkeypatch.setenv("FASTWSGI_POLLER", value)
    assert poller_class() is expected
    with fastwsgi.make_server("127.0.0.1", 0, lambda environ, start_response: []) as server:
        assert server.poller.NAME == expected.NAME


def test_an_unknown_poller_is_an_error(monkeypatch):
    monkeypatch.setenv("FASTWSGI_POLLER", "kqueue")
    with pytest.raises(PollerError, match="FASTWSGI_POLLER='kqueue': choose epoll, poll or auto"):
        poller_class()


def test_without_epoll_or_poll_the_platform_is_refused(monkeypatch):
    monkeypatch.delenv("FASTWSGI_POLLER", raising=False)
    monkeypatch.delattr(select, "epoll")
    monkeypatch.delattr(select, "poll")
    with pytest.raises(UnsupportedPlatform, match="this platform is not supported"):
        poller_class()
    with pytest.raises(UnsupportedPlatform, match="FASTWSGI_POLLER=poll: select.poll does not exist"):
        poller_class("poll")


def test_the_masks_mean_the_same_to_both():
    assert (IN, OUT) == (select.POLLIN, select.POLLOUT)
    assert (select.EPOLLIN, select.EPOLLOUT) == (IN, OUT)
    assert PollPoller.ONESHOT & 0xFFFF == 0  # outside poll(2)'s 16-bit masks: never reaches select.poll


def test_level_triggered(make, pair):
    a, b = pair
    poller = make()
    poller.register(a.fileno(), IN)
    assert ready(poller) == {}
    b.send(b"x")
    assert ready(poller) == {a.fileno(): IN}
    assert ready(poller) == {a.fileno(): IN}  # reported until read
    a.recv(1)
    assert ready(poller) == {}
    poller.modify(a.fileno(), IN | OUT)
    assert ready(poller) == {a.fileno(): OUT}


def test_oneshot_disarms_until_modify(make, pair):
    a, b = pair
    poller = make(oneshot=True)
    poller.register(a.fileno(), IN | poller.ONESHOT)
    b.send(b"x")
    assert ready(poller) == {a.fileno(): IN}
    assert ready(poller) == {}  # disarmed, though the byte is still unread
    poller.modify(a.fileno(), IN | poller.ONESHOT)
    assert ready(poller) == {a.fileno(): IN}
    assert ready(poller) == {}


def test_a_disarmed_socket_reports_no_hangup(make, pair):
    """A worker owns a disarmed socket: the loop must hear nothing of it, even when the peer goes
    (poll(2) reports POLLHUP whatever the mask, so PollPoller takes the descriptor out)."""
    a, b = pair
    poller = make(oneshot=True)
    poller.register(a.fileno(), IN | poller.ONESHOT)
    b.send(b"x")
    assert a.fileno() in ready(poller)
    b.close()
    assert ready(poller) == {}
    poller.modify(a.fileno(), IN | poller.ONESHOT)
    assert a.fileno() in ready(poller)


def test_other_descriptors_stay_level_triggered_beside_oneshot_ones(make, pair):
    a, b = pair
    wake_r, wake_w = socket.socketpair()
    try:
        poller = make(oneshot=True)
        poller.register(wake_r.fileno(), IN)
        poller.register(a.fileno(), IN | poller.ONESHOT)
        wake_w.send(b"w")
        b.send(b"x")
        assert ready(poller) == {wake_r.fileno(): IN, a.fileno(): IN}
        assert ready(poller) == {wake_r.fileno(): IN}
    finally:
        wake_r.close()
        wake_w.close()


def test_a_closed_descriptor_leaves_the_set_and_its_number_starts_clean(make):
    """What the loop does when a connection closes (discard where the poller keeps closed
    descriptors), then a new socket that gets the same number registers from scratch."""
    poller = make(oneshot=True)
    a, b = socket.socketpair()
    fd = a.fileno()
    poller.register(fd, IN | OUT | poller.ONESHOT)
    b.close()
    assert fd in ready(poller)  # the one-shot fired; now disarmed
    if poller.keeps_closed:
        poller.discard(fd)
    a.close()
    assert ready(poller) == {}
    c, d = socket.socketpair()
    try:
        assert c.fileno() == fd  # the lowest free number: the one just closed
        poller.register(fd, IN)  # epoll refuses a registered descriptor: the old one is gone
        assert ready(poller) == {}
        d.send(b"x")
        assert ready(poller) == {fd: IN}
        assert ready(poller) == {fd: IN}  # not one-shot: nothing of the old registration is left
    finally:
        c.close()
        d.close()


def test_poll_drops_a_descriptor_closed_without_discard():
    """A descriptor closed while registered (a bug elsewhere) is reported once as POLLNVAL, not at
    every call: the loop does not spin."""
    poller = PollPoller()
    a, b = socket.socketpair()
    fd = a.fileno()
    poller.register(fd, IN)
    a.close()
    b.close()
    assert ready(poller) == {fd: select.POLLNVAL}
    assert ready(poller) == {}


def test_poll_discard_forgets_unknown_and_disarmed_descriptors(pair):
    a, b = pair
    poller = PollPoller(oneshot=True)
    poller.discard(a.fileno())  # never registered (a connection closed after its first read)
    poller.register(a.fileno(), IN | poller.ONESHOT)
    b.send(b"x")
    assert a.fileno() in ready(poller)
    poller.discard(a.fileno())  # disarmed
    assert poller._oneshot == set()
    poller.register(a.fileno(), IN)
    assert ready(poller) == {a.fileno(): IN}
