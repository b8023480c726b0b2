"""Usage records: written in batches, read back newest first, moving keys' last use forward."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from inference_club.store import InvalidValue, NotFound, Store, UsageRecord, User

T0 = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)


def _record(user: User, offset_s: float, **fields: object) -> UsageRecord:
    started = T0 + timedelta(seconds=offset_s)
    values: dict[str, object] = {
        "user_id": user.id,
        "model": "smollm2",
        "endpoint": "chat.completions",
        "status_code": 200,
        "started_at": started,
        "ended_at": started + timedelta(seconds=2),
    }
    values.update(fields)
    return UsageRecord(**values)  # type: ignore[arg-type]


async def test_every_field_round_trips(store: Store) -> None:
    """A record with every column set reads back equal, with its new id."""
    user = await store.add_user("alice")
    key, _ = await store.create_api_key("alice")
    provider, _ = await store.add_provider("alice", "alice-home")
    record = _record(
        user,
        0,
        api_key_id=key.id,
        provider_id=provider.id,
        model="whisper-tiny",
        endpoint="audio.transcriptions",
        status_code=502,
        ttfb_ms=12.5,
        prompt_tokens=11,
        completion_tokens=22,
        audio_seconds=3.25,
        image_count=2,
        error_type="upstream_error",
    )

    await store.record_usage([record])
    (stored,) = await store.list_usage()

    assert stored.id is not None
    assert stored == replace(record, id=stored.id)


async def test_optional_fields_stay_empty(store: Store) -> None:
    """A minimal record keeps None in every optional column."""
    user = await store.add_user("alice")

    await store.record_usage([_record(user, 0)])
    (stored,) = await store.list_usage()

    assert (stored.api_key_id, stored.provider_id, stored.ttfb_ms) == (None, None, None)
    assert (stored.prompt_tokens, stored.completion_tokens) == (None, None)
    assert (stored.audio_seconds, stored.image_count, stored.error_type) == (None, None, None)


async def test_batch_is_listed_newest_first(store: Store) -> None:
    """A batch lands whole; list_usage orders by start time, newest first."""
    user = await store.add_user("alice")
    batch = [_record(user, offset, prompt_tokens=offset) for offset in (5, 1, 9, 3)]

    await store.record_usage(batch)

    listed = await store.list_usage()
    assert [record.prompt_tokens for record in listed] == [9, 5, 3, 1]
    assert len({record.id for record in listed}) == 4


async def test_list_usage_filters_and_pages(store: Store) -> None:
    """user_id, provider_id and since narrow the list; limit and offset page through it."""
    alice = await store.add_user("alice")
    bob = await store.add_user("bob")
    provider, _ = await store.add_provider("bob", "bob-home")
    await store.record_usage(
        [_record(alice, offset, prompt_tokens=offset) for offset in range(10)]
        + [_record(bob, 100, provider_id=provider.id, prompt_tokens=100)]
    )

    alice_tokens = [r.prompt_tokens for r in await store.list_usage(user_id=alice.id)]
    recent = [
        r.prompt_tokens
        for r in await store.list_usage(user_id=alice.id, since=T0 + timedelta(seconds=7))
    ]
    page = [r.prompt_tokens for r in await store.list_usage(user_id=alice.id, limit=3, offset=2)]
    by_provider = [r.user_id for r in await store.list_usage(provider_id=provider.id)]

    assert alice_tokens == list(range(9, -1, -1))
    assert recent == [9, 8, 7]
    assert page == [7, 6, 5]
    assert by_provider == [bob.id]


async def test_usage_moves_key_last_used_forward_only(store: Store) -> None:
    """last_used_at becomes the latest ended_at seen, even when batches arrive out of order."""
    user = await store.add_user("alice")
    key, _ = await store.create_api_key("alice")
    other, _ = await store.create_api_key("alice", "unused")

    await store.record_usage(
        [_record(user, 10, api_key_id=key.id), _record(user, 30, api_key_id=key.id)]
    )
    await store.record_usage([_record(user, 20, api_key_id=key.id)])

    by_id = {k.id: k for k in await store.list_api_keys("alice")}
    assert by_id[key.id].last_used_at == T0 + timedelta(seconds=32)
    assert by_id[other.id].last_used_at is None


async def test_empty_batch_is_a_no_op(store: Store) -> None:
    """Recording nothing stores nothing and does not fail."""
    await store.record_usage([])

    assert await store.list_usage() == []


async def test_batch_naming_a_missing_user_stores_nothing(store: Store) -> None:
    """A record for a user that does not exist fails the whole batch with NotFound."""
    user = await store.add_user("alice")

    with pytest.raises(NotFound):
        await store.record_usage([_record(user, 0), _record(user, 1, user_id=user.id + 999)])
    assert await store.list_usage() == []


async def test_naive_times_in_usage_are_refused(store: Store) -> None:
    """A record with a naive datetime is refused before anything is written."""
    user = await store.add_user("alice")
    naive = T0.replace(tzinfo=None)

    with pytest.raises(InvalidValue):
        await store.record_usage([_record(user, 0, started_at=naive)])
    with pytest.raises(InvalidValue):
        await store.list_usage(since=naive)
    assert await store.list_usage() == []


async def test_a_naive_end_refuses_the_whole_batch(store: Store) -> None:
    """A naive ``ended_at`` in the last record of a batch: none of the batch is written."""
    user = await store.add_user("alice")
    naive_end = _record(user, 1, ended_at=(T0 + timedelta(seconds=3)).replace(tzinfo=None))

    with pytest.raises(InvalidValue, match="ended_at"):
        await store.record_usage([_record(user, 0), naive_end])
    assert await store.list_usage() == []
    assert (await store.daily_totals(user.id, T0.date())).requests == 0


@pytest.mark.parametrize(("limit", "offset"), [(0, 0), (-1, 0), (10, -1), (10_001, 0)])
async def test_list_usage_refuses_bad_paging(store: Store, limit: int, offset: int) -> None:
    """Limits outside 1-10000 and negative offsets raise InvalidValue."""
    with pytest.raises(InvalidValue):
        await store.list_usage(limit=limit, offset=offset)


async def test_daily_totals_add_up_each_member_and_utc_day(store: Store) -> None:
    """Every batch adds to its member's UTC day; days and members never mix."""
    alice = await store.add_user("alice")
    bob = await store.add_user("bob")
    # T0 is noon UTC: 13 hours later is the next UTC day.
    await store.record_usage(
        [
            _record(alice, 0, prompt_tokens=10, completion_tokens=5, image_count=2),
            _record(alice, 60, status_code=502, audio_seconds=1.5),
            _record(alice, 13 * 3600, prompt_tokens=1000),
            _record(bob, 30, prompt_tokens=7),
        ]
    )
    await store.record_usage([_record(alice, 120, completion_tokens=100, audio_seconds=2.0)])

    first = await store.daily_totals(alice.id, T0.date())
    second = await store.daily_totals(alice.id, (T0 + timedelta(days=1)).date())
    others = await store.daily_totals(bob.id, T0.date())
    empty = await store.daily_totals(alice.id, (T0 - timedelta(days=1)).date())

    assert (first.requests, first.errors) == (3, 1)
    assert (first.prompt_tokens, first.completion_tokens, first.tokens) == (10, 105, 115)
    assert (first.audio_seconds, first.images) == (3.5, 2)
    assert (second.requests, second.tokens, second.images) == (1, 1000, 0)
    assert (others.requests, others.tokens) == (1, 7)
    assert (empty.requests, empty.tokens, empty.audio_seconds, empty.images) == (0, 0, 0.0, 0)


async def test_daily_totals_match_the_records_since_midnight(store: Store) -> None:
    """The kept day equals a sum over the day's records, batch after batch."""
    alice = await store.add_user("alice")
    for batch in range(5):
        await store.record_usage(
            [
                _record(alice, batch * 60 + n, prompt_tokens=n, completion_tokens=batch)
                for n in range(40)
            ]
        )

    kept = await store.daily_totals(alice.id, T0.date())
    summed = await store.usage_totals(alice.id, T0.replace(hour=0))

    assert kept == summed
    assert kept.requests == 200


async def test_failed_batch_adds_nothing_to_the_day(store: Store) -> None:
    """A batch refused for a missing user leaves the other members' days as they were."""
    alice = await store.add_user("alice")
    await store.record_usage([_record(alice, 0, prompt_tokens=3)])
    ghost = _record(alice, 2, user_id=alice.id + 999)

    with pytest.raises(NotFound):
        await store.record_usage([_record(alice, 1, prompt_tokens=50), ghost])

    day = await store.daily_totals(alice.id, T0.date())
    assert (day.requests, day.tokens) == (1, 3)
