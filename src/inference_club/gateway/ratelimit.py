"""Requests-per-minute counters per API key, behind one interface: in memory or in Redis.

Both count in fixed one-minute windows and are exact under concurrency: the in-memory one
because the event loop runs one increment at a time, the Redis one because INCR is atomic and
shared by every gateway node.
"""

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from inference_club.gateway.redis_client import RedisClient, RedisUnavailable

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60


# Not frozen: made per request (``inference_club.protocol.frames`` says what that saves).
@dataclass(slots=True)
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
    """Counters in Redis, shared by every gateway node.

    Each count is two commands written together on the client's one connection: ``SET NX EX``
    makes the window's key with its expiry if it is new, ``INCR`` counts (a lost connection
    between the two never leaves a key without an expiry). While Redis cannot be reached, or
    refuses the commands, requests are counted in this node's memory instead, so limits still
    hold per node and requests still pass; a warning says so once, and a line when Redis is
    back.
    """

    def __init__(self, client: RedisClient, prefix: str = "inference-club:rate:") -> None:
        self._client = client
        self._prefix = prefix
        self._fallback = MemoryRateCounter()
        self._unavailable = False

    def hit_then(self, key: str, limit: int, done: Callable[[RateDecision], None]) -> None:
        """Count one request of ``key`` and call ``done`` with the decision: from the Redis
        connection's callback, or before this returns when Redis is known to be down."""
        start, reset = _window(time.time())
        name = f"{self._prefix}{key}:{start}"

        def counted(replies: "list[object] | RedisUnavailable") -> None:
            count = replies[1] if isinstance(replies, list) else replies
            if not isinstance(count, int):
                done(self._count_in_memory(key, limit, count))
                return
            if self._unavailable:
                self._unavailable = False
                logger.info("rate limits are counted in Redis again")
            done(RateDecision(count <= limit, limit, max(0, limit - count), reset))

        self._client.send(
            ((b"SET", name, b"0", b"EX", WINDOW_SECONDS + 5, b"NX"), (b"INCR", name)), counted
        )

    async def hit(self, key: str, limit: int) -> RateDecision:
        """Count one request of ``key`` (``hit_then``, awaited)."""
        decided: asyncio.Future[RateDecision] = asyncio.get_running_loop().create_future()

        def settle(decision: RateDecision) -> None:
            if not decided.done():  # the caller may have been cancelled meanwhile
                decided.set_result(decision)

        self.hit_then(key, limit, settle)
        return await decided

    async def close(self) -> None:
        """Close the connection to Redis."""
        await self._client.close()

    def _count_in_memory(self, key: str, limit: int, failure: object) -> RateDecision:
        if not self._unavailable:
            self._unavailable = True
            logger.warning(
                "Redis is unavailable: rate limits are counted in this node's memory",
                extra={"reason": str(failure)},
            )
        return self._fallback.hit_now(key, limit)
