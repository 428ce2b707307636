"""Suite-wide fixtures. Every test runs under a hard deadline, so a hung server or client can fail a
test but never stall the whole run (on top of the bounded timeout each socket operation has).

The servers and commands the tests start inherit this process's environment, so the variables
fastwsgi reads as option sources (config.ENVIRONMENT_DEFAULTS, FASTWSGI_CMD_ARGS, and
GUNICORN_CMD_ARGS, which it names when unread) are removed here: a developer's shell with, say,
WEB_CONCURRENCY or SENDFILE=0 set would otherwise change what the tests see. Tests that need one
pass it explicitly."""

import os
import signal

import pytest

from fastwsgi.config import ENVIRONMENT_DEFAULTS
from tests.functional.tlscerts import make_certs

for _variable in [row[0] for row in ENVIRONMENT_DEFAULTS] + ["FASTWSGI_CMD_ARGS", "GUNICORN_CMD_ARGS"]:
    os.environ.pop(_variable, None)

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
