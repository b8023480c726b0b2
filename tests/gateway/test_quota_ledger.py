"""The quota ledger asks the store once per member at a time, and never makes requests wait
for a refresh of totals it already has."""

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from inference_club.gateway.quotas import QuotaExceeded, QuotaLedger
from inference_club.store import KeyIdentity, Store, UsageRecord, UsageTotal
from inference_club.store.engine import default_database_url


class GatedTotals:
    """The real store's totals, counted, and held back while ``gate`` is closed."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False

    async def daily_totals(self, user_id: int, day: date) -> UsageTotal:
        self.calls += 1
        await self.gate.wait()
        if self.fail:
            msg = "the database is gone"
            raise OSError(msg)
        return await self.store.daily_totals(user_id, day)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(default_database_url(tmp_path))
    yield opened
    await opened.close()


async def _member(store: Store, daily_tokens: int) -> KeyIdentity:
    user = await store.add_user("bob")
    return KeyIdentity(
        key_id=1,
        key_prefix="ic-test",
        user_id=user.id,
        user_name="bob",
        is_admin=False,
        requests_per_minute=None,
        daily_tokens=daily_tokens,
    )


def _record(identity: KeyIdentity, tokens: int) -> UsageRecord:
    now = datetime.now(UTC)
    return UsageRecord(
        user_id=identity.user_id,
        model="m",
        endpoint="chat.completions",
        status_code=200,
        started_at=now,
        ended_at=now,
        prompt_tokens=tokens,
        completion_tokens=0,
    )


async def _reloading(store: Store) -> tuple[KeyIdentity, GatedTotals, QuotaLedger]:
    """A member with 100 daily tokens whose totals were loaded, went stale, and whose reload
    has begun and is held at the gate."""
    identity = await _member(store, daily_tokens=100)
    source = GatedTotals(store)
    ledger = QuotaLedger(source, refresh=0.01)
    await ledger.check(identity)
    assert source.calls == 1
    await asyncio.sleep(0.02)
    source.gate.clear()
    await ledger.check(identity)
    return identity, source, ledger


async def test_requests_arriving_together_share_one_first_load(store: Store) -> None:
    identity = await _member(store, daily_tokens=1000)
    source = GatedTotals(store)
    source.gate.clear()
    ledger = QuotaLedger(source)
    checks = [asyncio.create_task(ledger.check(identity)) for _ in range(50)]
    await asyncio.sleep(0.05)
    assert not any(check.done() for check in checks)  # the first load is awaited
    source.gate.set()
    await asyncio.gather(*checks)
    assert source.calls == 1


async def test_a_refresh_runs_once_in_the_background_while_requests_go_on(store: Store) -> None:
    identity, source, ledger = await _reloading(store)
    # Stale totals: every check answers at once, and only one reload is under way.
    for _ in range(20):
        await asyncio.wait_for(ledger.check(identity), 0.5)
    assert source.calls == 2
    # Another node used 150 tokens meanwhile; once the reload lands, the member is refused.
    await store.record_usage([_record(identity, 150)])
    source.gate.set()
    await asyncio.sleep(0.05)
    with pytest.raises(QuotaExceeded):
        await ledger.check(identity)


async def test_a_reload_never_forgets_what_this_node_counted_meanwhile(store: Store) -> None:
    identity, source, ledger = await _reloading(store)  # the reload will find nothing stored
    # Counted here but not written to the store yet, as the usage writer batches records.
    ledger.add(_record(identity, 120))
    source.gate.set()
    await asyncio.sleep(0.05)
    with pytest.raises(QuotaExceeded):
        await ledger.check(identity)


async def test_a_failed_reload_keeps_the_totals_and_is_tried_again(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    identity = await _member(store, daily_tokens=100)
    source = GatedTotals(store)
    ledger = QuotaLedger(source, refresh=0.2)
    await ledger.check(identity)
    ledger.add(_record(identity, 60))
    await asyncio.sleep(0.25)
    source.fail = True
    with caplog.at_level(logging.WARNING, logger="inference_club.gateway.quotas"):
        await ledger.check(identity)
        await asyncio.sleep(0.02)
    assert "could not reload daily usage" in caplog.text
    assert source.calls == 2
    ledger.add(_record(identity, 60))  # counted on top of the kept 60
    with pytest.raises(QuotaExceeded):
        await ledger.check(identity)
    assert source.calls == 2  # not retried at once: the failure waits out the refresh too
    source.fail = False
    await asyncio.sleep(0.25)
    with pytest.raises(QuotaExceeded):
        await ledger.check(identity)
    await asyncio.sleep(0.02)
    assert source.calls == 3


async def test_stop_cancels_a_reload_in_progress(store: Store) -> None:
    _identity, _source, ledger = await _reloading(store)
    reloads = [task for task in asyncio.all_tasks() if task.get_name().startswith("quota-")]
    assert len(reloads) == 1
    await asyncio.wait_for(ledger.stop(), 1)
    assert reloads[0].cancelled()
