"""The usage writer: records go to the store in batches, soon, and none is ever lost."""

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from inference_club.gateway.metering import UsageWriter
from inference_club.store import UsageRecord

T0 = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)


def _record(number: int) -> UsageRecord:
    return UsageRecord(
        user_id=1,
        model=f"model-{number}",
        endpoint="chat.completions",
        status_code=200,
        started_at=T0,
        ended_at=T0,
    )


class _Store:
    """Takes batches as the store would; can be told to fail the next writes."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.failures = 0
        self.written = asyncio.Event()

    async def write(self, records: Sequence[UsageRecord]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database unavailable")
        self.batches.append([record.model for record in records])
        self.written.set()


async def _until_written(store: _Store) -> None:
    await asyncio.wait_for(store.written.wait(), 5)
    store.written.clear()


async def test_a_batch_s_worth_of_records_wakes_the_writer_before_its_interval() -> None:
    store = _Store()
    writer = UsageWriter(store.write, interval=60.0, batch=3)
    writer.start()
    try:
        writer.add(_record(1))
        writer.add(_record(2))
        await asyncio.sleep(0.05)
        assert store.batches == []  # fewer than a batch: they wait for the interval

        writer.add(_record(3))
        await _until_written(store)
        assert store.batches == [["model-1", "model-2", "model-3"]]
    finally:
        await writer.stop()


async def test_a_few_records_are_written_when_the_interval_ends() -> None:
    store = _Store()
    writer = UsageWriter(store.write, interval=0.05, batch=100)
    writer.start()
    try:
        writer.add(_record(1))
        await _until_written(store)
        assert store.batches == [["model-1"]]
    finally:
        await writer.stop()


async def test_a_backlog_goes_in_transactions_of_at_most_max_batch() -> None:
    store = _Store()
    writer = UsageWriter(store.write, interval=60.0, batch=100, max_batch=2)
    for number in range(5):
        writer.add(_record(number))

    await writer.flush()

    assert store.batches == [["model-0", "model-1"], ["model-2", "model-3"], ["model-4"]]
    assert writer.written == 5


async def test_a_failed_write_keeps_its_records_for_the_next_one() -> None:
    store = _Store()
    store.failures = 1
    writer = UsageWriter(store.write, interval=60.0, batch=100)
    writer.add(_record(1))

    await writer.flush()  # the database is down: logged, kept
    assert store.batches == []
    writer.add(_record(2))
    await writer.flush()

    assert store.batches == [["model-1", "model-2"]]


async def test_stopping_writes_what_is_queued() -> None:
    store = _Store()
    writer = UsageWriter(store.write, interval=60.0, batch=100)
    writer.start()
    writer.add(_record(1))

    await writer.stop()

    assert store.batches == [["model-1"]]
