"""Counting in Redis: exact under concurrency, and in memory while Redis cannot be reached."""

import asyncio
import logging
import uuid

import pytest

from inference_club.gateway import GatewaySettings
from inference_club.gateway.ratelimit import WINDOW_SECONDS, RedisRateCounter
from inference_club.gateway.redis_client import RedisClient
from tests.support.redis_relay import RedisRelay

REDIS_URL = "redis://127.0.0.1:6379/0"


def _prefix() -> str:
    return f"test:rate:{uuid.uuid4().hex}:"


async def test_concurrent_hits_are_counted_exactly_and_the_window_key_expires() -> None:
    """Of 50 concurrent hits with a limit of 20, exactly 20 pass, each told a different
    remainder; the window's key carries an expiry just past the window."""
    prefix = _prefix()
    counter = RedisRateCounter(RedisClient(REDIS_URL), prefix=prefix)
    inspector = RedisClient(REDIS_URL)
    try:
        decisions = await asyncio.gather(*(counter.hit("alice", 20) for _ in range(50)))
        assert sum(decision.allowed for decision in decisions) == 20
        remaining = sorted(decision.remaining for decision in decisions if decision.allowed)
        assert remaining == list(range(20))
        assert all(1 <= decision.reset <= WINDOW_SECONDS for decision in decisions)
        [keys] = await inspector.execute(["KEYS", prefix + "*"])
        assert isinstance(keys, list)
        assert len(keys) == 1
        [ttl] = await inspector.execute(["TTL", keys[0]])
        assert isinstance(ttl, int)
        assert WINDOW_SECONDS - 5 < ttl <= WINDOW_SECONDS + 5
        assert (await counter.hit("bob", 20)).remaining == 19  # another key, its own count
        await inspector.execute(["DEL", *keys])
    finally:
        await counter.close()
        await inspector.close()


async def test_while_redis_is_down_limits_hold_in_memory_and_counting_returns_to_redis(
    redis_relay: RedisRelay, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis unreachable: requests are counted in this node's memory (the limit still holds)
    with one warning that keeps the password out; once Redis is back, counts are Redis's."""
    caplog.set_level(logging.INFO, logger="inference_club.gateway.ratelimit")
    prefix = _prefix()
    client = RedisClient(f"redis://:ppp-secret@127.0.0.1:{redis_relay.port}/0")
    counter = RedisRateCounter(client, prefix=prefix)
    try:
        decisions = [await counter.hit("alice", 3) for _ in range(5)]
        assert [decision.allowed for decision in decisions] == [True] * 3 + [False] * 2
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "counted in this node's memory" in warnings[0].getMessage()
        assert "ppp-secret" not in str(warnings[0].__dict__)
    finally:
        await counter.close()
    # The same outage and recovery without a password, which this Redis would refuse.
    caplog.clear()
    # Retrying at once, so the first count after Redis is back goes to it.
    client = RedisClient(f"redis://127.0.0.1:{redis_relay.port}/0", reconnect_delay=0)
    counter = RedisRateCounter(client, prefix=prefix)
    try:
        assert (await counter.hit("carol", 10)).remaining == 9  # in memory
        await redis_relay.start()
        assert (await counter.hit("carol", 10)).remaining == 9  # in Redis, which starts at 1
        assert (await counter.hit("carol", 10)).remaining == 8
        messages = [record.getMessage() for record in caplog.records]
        assert messages[-1] == "rate limits are counted in Redis again"
    finally:
        await counter.close()


def test_settings_refuse_a_bad_redis_url_and_never_show_its_password() -> None:
    """A Redis URL that cannot be used stops the gateway's settings with a clear reason (an
    empty one means none); a good one, like the database URL, stays out of the repr."""
    with pytest.raises(ValueError, match="port is not a number") as caught:
        GatewaySettings(redis_url="redis://:hunter2@127.0.0.1:port/0")
    assert "hunter2" not in str(caught.value)
    settings = GatewaySettings(
        redis_url="redis://:hunter2@127.0.0.1:6379/0",
        database_url="postgresql+asyncpg://club:hunter3@127.0.0.1/club",
    )
    assert "hunter2" not in repr(settings)
    assert "hunter3" not in repr(settings)
    assert GatewaySettings(redis_url="").redis_url == ""  # empty, as unset: in memory
