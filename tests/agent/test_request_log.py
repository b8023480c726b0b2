"""The agent's request lines: handed to logging in batches, each with its request's own time."""

import asyncio
import io
import logging
import time

import pytest

from inference_club.agent import request_log
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


async def test_a_long_batch_is_logged_in_slices_with_loop_turns_between(
    caplog, monkeypatch
) -> None:
    """A batch longer than a slice lets the loop run between its slices; nothing is lost."""
    caplog.set_level(logging.INFO, logger="inference_club")
    monkeypatch.setattr(request_log, "SLICE_SECONDS", 0.0)  # every line overruns its slice
    log = RequestLog(interval=5.0)
    for number in range(3):
        log.add({"stream_id": number})
    logged_when_the_loop_ran: list[int] = []
    asyncio.get_running_loop().call_soon(
        lambda: logged_when_the_loop_ran.append(len(_lines(caplog)))
    )

    for _ in range(4):
        await asyncio.sleep(0)

    assert logged_when_the_loop_ran == [1]
    assert [line.stream_id for line in _lines(caplog)] == [0, 1, 2]


async def test_a_batch_s_worth_of_lines_goes_without_waiting_for_the_interval(caplog) -> None:
    """Lines that pile up to a batch are logged on the next turn, not at the interval's end."""
    caplog.set_level(logging.INFO, logger="inference_club")
    log = RequestLog(interval=5.0, batch=3)
    log.add({"stream_id": 0})
    await asyncio.sleep(0)  # the first after a quiet spell goes at once
    assert len(_lines(caplog)) == 1

    log.add({"stream_id": 1})
    log.add({"stream_id": 2})
    await asyncio.sleep(0)
    assert len(_lines(caplog)) == 1  # two: less than a batch, they wait

    log.add({"stream_id": 3})
    await asyncio.sleep(0)
    assert [line.stream_id for line in _lines(caplog)] == [0, 1, 2, 3]


async def test_each_line_is_a_record_of_its_own_from_the_factory_in_use(caplog) -> None:
    """Lines are records of the class the record factory makes, and each carries its own
    fields only: what one line added never shows on the next."""

    class ClubRecord(logging.LogRecord):
        pass

    previous = logging.getLogRecordFactory()
    logging.setLogRecordFactory(ClubRecord)
    try:
        caplog.set_level(logging.INFO, logger="inference_club")
        log = RequestLog(interval=60.0)
        log.add({"stream_id": 1, "error": "backend_timeout"})
        log.add({"stream_id": 2})
        log.flush()
    finally:
        logging.setLogRecordFactory(previous)

    first, second = _lines(caplog)
    assert type(first) is ClubRecord
    assert type(second) is ClubRecord
    assert first is not second
    assert (first.stream_id, first.error) == (1, "backend_timeout")
    assert second.stream_id == 2
    assert not hasattr(second, "error")
    assert (second.levelno, second.name) == (logging.INFO, "inference_club.agent.relay")


class _Collect(logging.Handler):
    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.seen: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record)


async def test_lines_reach_handlers_as_logging_would_hand_them_on() -> None:
    """Each handler up the loggers' chain gets the lines its level admits, none past a logger
    that does not propagate; a filter on the request lines' logger is obeyed."""
    relay = logging.getLogger("inference_club.agent.relay")
    agent = logging.getLogger("inference_club.agent")
    club = logging.getLogger("inference_club")
    on_relay, on_agent, picky, above = _Collect(), _Collect(), _Collect(logging.WARNING), _Collect()
    relay.addHandler(on_relay)
    agent.addHandler(on_agent)
    agent.addHandler(picky)
    club.addHandler(above)
    saved = (club.level, agent.propagate)
    club.setLevel(logging.INFO)
    agent.propagate = False
    try:
        log = RequestLog()
        log.add({"stream_id": 1})
        log.add({"stream_id": 2})
        log.flush()
        relay.addFilter(lambda record: record.stream_id != 3)  # type: ignore[attr-defined]
        log.add({"stream_id": 3})
        log.add({"stream_id": 4})
        log.flush()
    finally:
        relay.filters.clear()
        for logger, handler in ((relay, on_relay), (agent, on_agent), (agent, picky)):
            logger.removeHandler(handler)
        club.removeHandler(above)
        club.setLevel(saved[0])
        agent.propagate = saved[1]

    assert [r.stream_id for r in on_relay.seen] == [1, 2, 4]  # type: ignore[attr-defined]
    assert [r.stream_id for r in on_agent.seen] == [1, 2, 4]  # type: ignore[attr-defined]
    assert picky.seen == []
    assert above.seen == []
