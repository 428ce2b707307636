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


def test_flush_logs_a_held_back_count_only_once_the_interval_has_passed(captured):
    logger, lines = captured
    now = [0.0]
    refusals = Throttled(logger, "refused connections", 10.0, clock=lambda: now[0])
    refusals.flush()  # nothing held back: nothing to say
    refusals.warn("refused %s", "a")
    for _ in range(5):
        now[0] += 1.0
        refusals.warn("refused %s", "b")
    refusals.flush()  # 5 s after the line: still within the interval
    assert [message for _level, message in lines] == ["refused a"]
    now[0] = 10.0
    refusals.flush()
    refusals.flush()  # the count was reported: nothing more
    assert lines[1:] == [(logging.WARNING, "5 more refused connections since the last warning")]
    now[0] = 12.0  # within the interval of the summary line: counted, then flushed with it
    refusals.warn("refused %s", "c")
    now[0] = 20.0
    refusals.flush()
    now[0] = 35.0  # a quiet interval: the next one is logged at once, with no count
    refusals.warn("refused %s", "d")
    assert [message for _level, message in lines[2:]] == [
        "1 more refused connections since the last warning", "refused d"]
