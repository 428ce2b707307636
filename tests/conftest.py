"""Suite-wide fixtures. Every test runs under a hard deadline, so a hung server or client can fail a
test but never stall the whole run (on top of the bounded timeout each socket operation has)."""

import signal

import pytest

from tests.functional.tlscerts import make_certs

TEST_DEADLINE_S = 90


class DeadlineExceeded(Exception):
    pass


@pytest.fixture(autouse=True)
def _deadline():
    """Interrupt a test after TEST_DEADLINE_S seconds."""

    def expire(signum, frame):
        raise DeadlineExceeded(f"test exceeded {TEST_DEADLINE_S} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TEST_DEADLINE_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """The test certificates (tests/functional/tlscerts.py), made once per run: {file name: path}."""
    return make_certs(tmp_path_factory.mktemp("tls"))
