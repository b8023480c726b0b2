"""The agent's request lines: handed to logging in batches, each with its request's own time."""

import asyncio
import io
import logging
import time

import pytest

from inference_club.agent.request_log import RequestLog
from inference_club.cli.logs import BurstBufferedHandler, KeyValueFormatter


def _lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.getMessage() == "request"]


async def test_a_line_after_a_quiet_spell_is_logged_on_the_next_turn(caplog) -> None:
    """A lone request's line does not wait for a batch: it is there one loop turn later."""
    caplog.set_level(logging.INFO, logger="inference_club")
    log = RequestLog(interval=5.0)
    before = time.time()

    log.add({"stream_id": 1, "status": 200})
    assert _lines(caplog) == []  # never on the request's own way out
    await asyncio.sleep(0)

    [line] = _lines(caplog)
    assert line.name == "inference_club.agent.relay"
    assert line.levelno == logging.INFO
    assert (line.stream_id, line.status) == (1, 200)
    assert before <= line.created <= time.time()


async def test_lines_within_the_interval_go_together_with_their_own_times(caplog) -> None:
    """Lines right after a flush wait for the interval's end, then all go, in order, each
    dated when its request ended."""
    caplog.set_level(logging.INFO, logger="inference_club")
    log = RequestLog(interval=0.3)
    log.add({"stream_id": 1})
    await asyncio.sleep(0)
    assert len(_lines(caplog)) == 1

    ended = time.time()
    log.add({"stream_id": 2})
    await asyncio.sleep(0.05)
    log.add({"stream_id": 3})
    await asyncio.sleep(0.05)
    assert len(_lines(caplog)) == 1  # still within the interval
    await asyncio.sleep(0.4)

    lines = _lines(caplog)
    assert [line.stream_id for line in lines] == [1, 2, 3]
    assert ended <= lines[1].created < lines[2].created
    assert lines[2].created < ended + 0.2  # the request's time, not the batch's
    assert lines[1].msecs == pytest.approx((lines[1].created % 1) * 1000, abs=1)


async def test_flush_logs_everything_queued_at_once(caplog) -> None:
    """Stopping the agent flushes: no line is lost to the batch."""
    caplog.set_level(logging.INFO, logger="inference_club")
    log = RequestLog(interval=60.0)
    log.add({"stream_id": 1})
    await asyncio.sleep(0)
    log.add({"stream_id": 2})
    log.add({"stream_id": 3})

    log.flush()

    assert [line.stream_id for line in _lines(caplog)] == [1, 2, 3]


async def test_a_level_below_the_logger_s_logs_nothing(caplog) -> None:
    """Request lines at debug are off while the agent logs at info."""
    caplog.set_level(logging.INFO, logger="inference_club")
    assert not RequestLog(logging.DEBUG).enabled()
    assert RequestLog(logging.INFO).enabled()


async def test_a_batch_reaches_the_stream_when_it_is_logged(caplog) -> None:
    """The handler's own batching adds no wait: a batch is written when the interval ends."""
    caplog.set_level(logging.INFO, logger="inference_club")
    stream = io.StringIO()
    handler = BurstBufferedHandler(stream, interval=60.0)
    handler.setFormatter(KeyValueFormatter())
    relay_logger = logging.getLogger("inference_club.agent.relay")
    relay_logger.addHandler(handler)
    try:
        log = RequestLog(interval=0.1)
        log.add({"stream_id": 1})
        await asyncio.sleep(0)
        log.add({"stream_id": 2})
        await asyncio.sleep(0.3)
        assert "stream_id=2" in stream.getvalue()
    finally:
        relay_logger.removeHandler(handler)
        handler.close()
