"""Requests-per-minute counters per API key, behind one interface: in memory or in Redis.

Both count in fixed one-minute windows and are exact under concurrency: the in-memory one
because the event loop runs one increment at a time, the Redis one because INCR is atomic and
shared by every gateway node.
"""

import math
import time
from dataclasses import dataclass
from typing import Protocol

WINDOW_SECONDS = 60


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The outcome of counting one request, with what the response headers report."""

    allowed: bool
    limit: int
    remaining: int
    # Seconds until the window resets.
    reset: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        """``X-RateLimit-*`` headers (and ``Retry-After`` when refused)."""
        headers = [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset).encode()),
        ]
        if not self.allowed:
            headers.append((b"retry-after", str(self.reset).encode()))
        return headers


class RateCounter(Protocol):
    """Counts requests of a key in the current window."""

    async def hit(self, key: str, limit: int) -> RateDecision:
        """Count one request of ``key`` and decide whether it is within ``limit``."""

    async def close(self) -> None:
        """Release connections."""


def _window(now: float) -> tuple[int, int]:
    start = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
    reset = max(1, math.ceil(start + WINDOW_SECONDS - now))
    return start, reset


class MemoryRateCounter:
    """Counters in this process's memory: right for one gateway node."""

    def __init__(self) -> None:
        self._window_start = 0
        self._counts: dict[str, int] = {}

    async def hit(self, key: str, limit: int) -> RateDecision:
        """Count one request of ``key``."""
        return self.hit_now(key, limit)

    def hit_now(self, key: str, limit: int) -> RateDecision:
        """``hit`` without waiting: counting here never does."""
        start, reset = _window(time.time())
        if start != self._window_start:
            # A new window: every counter starts again, and old keys are forgotten.
            self._window_start = start
            self._counts = {}
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        return RateDecision(count <= limit, limit, max(0, limit - count), reset)

    def would_allow(self, key: str, limit: int) -> bool:
        """Whether ``hit_now`` would allow one more request of ``key``, counting nothing."""
        start, _reset = _window(time.time())
        count = self._counts.get(key, 0) if start == self._window_start else 0
        return count < limit

    async def close(self) -> None:
        """Nothing to release."""


class RedisRateCounter:
    """Counters in Redis, shared by every gateway node."""

    def __init__(self, url: str, prefix: str = "inference-club:rate:") -> None:
        import redis.asyncio  # noqa: PLC0415 - only needed when Redis is configured

        self._redis = redis.asyncio.Redis.from_url(url)
        self._prefix = prefix

    async def hit(self, key: str, limit: int) -> RateDecision:
        """Count one request of ``key`` with one atomic INCR."""
        start, reset = _window(time.time())
        name = f"{self._prefix}{key}:{start}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, WINDOW_SECONDS + 5)
            count, _ = await pipe.execute()
        return RateDecision(int(count) <= limit, limit, max(0, limit - int(count)), reset)

    async def close(self) -> None:
        """Close the Redis connection pool."""
        await self._redis.aclose()
