"""fastwsgi/logs.py: Throttled, the rate limit for warnings a peer can trigger at will.

The clock is a list the test advances; the lines are what a real logger hands its handler.
"""

import logging

import pytest

from fastwsgi.logs import Throttled


@pytest.fixture
def captured():
    """(logger, lines): a private logger whose formatted messages are collected in `lines`."""
    lines = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append((record.levelno, record.getMessage()))

    logger = logging.getLogger("fastwsgi.test-throttled")
    logger.propagate = False
    handler = Collect()
    logger.addHandler(handler)
    yield logger, lines
    logger.removeHandler(handler)


def test_first_at_once_then_one_line_per_interval_with_the_count(captured):
    logger, lines = captured
    now = [100.0]
    refusals = Throttled(logger, "refused connections", 10.0, clock=lambda: now[0])
    refusals.warn("refused %s", "a")
    assert lines == [(logging.WARNING, "refused a")]
    for step in range(137):  # within the interval: counted, not logged
        now[0] = 100.0 + step * 0.05
        refusals.warn("refused %s", "b")
    assert len(lines) == 1
    now[0] = 110.0  # the interval has passed: the next one is logged with the held-back count
    refusals.warn("refused %s", "c")
    assert lines[-1] == (logging.WARNING,
                         "refused c ... and 137 more refused connections since the last warning")
    now[0] = 119.9
    refusals.warn("refused %s", "d")
    now[0] = 121.0  # one held back since the last line
    refusals.warn("refused %s", "e")
    assert [message for _level, message in lines[1:]] == [
        "refused c ... and 137 more refused connections since the last warning",
        "refused e ... and 1 more refused connections since the last warning"]


def test_a_quiet_interval_logs_the_next_one_without_a_count(captured):
    logger, lines = captured
    now = [0.0]
    refusals = Throttled(logger, "refused connections", 10.0, clock=lambda: now[0])
    refusals.warn("one")
    now[0] = 30.0
    refusals.warn("two")
    assert [message for _level, message in lines] == ["one", "two"]
