"""The master's signal queue (fastwsgi.workers.arbiter.Arbiter._enqueue): bounded, but a stop is never
dropped and CHLDs do not fill it. Real signals, raised in this process with the master's handler
installed (and the previous handlers put back)."""

import os
import signal

import pytest

from fastwsgi import config
from fastwsgi.workers.arbiter import Arbiter


@pytest.fixture
def arbiter():
    master = Arbiter([], config.defaults(), load_app=None)
    master._pipe_r, master._pipe_w = os.pipe()
    os.set_blocking(master._pipe_w, False)
    previous = {signum: signal.signal(signum, master._enqueue) for signum in Arbiter.SIGNALS}
    yield master
    for signum, handler in previous.items():
        signal.signal(signum, handler)
    os.close(master._pipe_r)
    os.close(master._pipe_w)


def test_children_ending_in_a_burst_queue_one_chld_and_a_term_after_them_is_kept(arbiter):
    for _ in range(8):
        signal.raise_signal(signal.SIGCHLD)
    signal.raise_signal(signal.SIGTERM)
    assert arbiter.sig_queue == [signal.SIGCHLD, signal.SIGTERM]


def test_a_full_queue_drops_other_signals_but_never_a_stop(arbiter):
    for signum in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1):
        signal.raise_signal(signum)
    signal.raise_signal(signal.SIGUSR1)  # a sixth: dropped, as gunicorn does
    for signum in (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT):
        signal.raise_signal(signum)
    assert arbiter.sig_queue[5:] == [signal.SIGTERM, signal.SIGQUIT, signal.SIGINT]
    assert len(arbiter.sig_queue) == 8
    assert len(os.read(arbiter._pipe_r, 100)) == 9  # every signal wakes the loop
