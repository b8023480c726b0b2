"""Daily quotas per member on tokens, audio seconds and images.

Each node keeps today's totals of the members it serves, loaded from the store and then
counted as records are made; it reloads them every ``refresh`` seconds, so the work of other
nodes is counted too within that delay. The store keeps each member's day as one row, added
to with every batch of records, so a load reads one row however busy the day was.

Only a member's first request of the day waits for the store, and however many requests
arrive together, one query is made. Later reloads run in the background while requests go
on against the totals counted so far.
"""

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Protocol

from inference_club.gateway.errors import RateLimited
from inference_club.store import KeyIdentity, UsageRecord, UsageTotal

logger = logging.getLogger(__name__)


class QuotaExceeded(RateLimited):
    """429: a daily quota is used up."""

    type = "quota_exceeded"


class TotalsSource(Protocol):
    """Where today's totals come from (the store)."""

    async def daily_totals(self, user_id: int, day: date) -> UsageTotal:
        """One user's sums on the UTC ``day``."""


@dataclass(slots=True)
class _Today:
    day: date
    loaded: float
    tokens: int
    audio_seconds: float
    images: int
    reload: "asyncio.Task[None] | None" = field(default=None, repr=False)

    def merge(self, total: UsageTotal, loaded: float) -> None:
        """Take the store's sums, never below what this node counted meanwhile.

        Records this node made in the last moments may not be written yet, so the store's
        sums can lag its own count; another node's work makes them larger.
        """
        self.tokens = max(self.tokens, total.tokens)
        self.audio_seconds = max(self.audio_seconds, total.audio_seconds)
        self.images = max(self.images, total.images)
        self.loaded = loaded


def _has_daily_quota(identity: KeyIdentity) -> bool:
    """Whether the member has any daily quota to check."""
    return (
        identity.daily_tokens is not None
        or identity.daily_audio_seconds is not None
        or identity.daily_images is not None
    )


class QuotaLedger:
    """Today's consumption of members with quotas, checked before each request."""

    def __init__(self, source: TotalsSource, refresh: float = 30.0) -> None:
        self._source = source
        self._refresh = refresh
        self._today: dict[int, _Today] = {}
        # A member's first load of the day, shared by the requests that arrive meanwhile.
        self._loading: dict[tuple[int, date], asyncio.Future[_Today]] = {}

    async def check(self, identity: KeyIdentity) -> None:
        """Refuse with 429 quota_exceeded when a daily quota of the member is used up."""
        if not _has_daily_quota(identity):
            return
        today = self._today_now(identity.user_id)
        if today is None:
            today = await self._first_load(identity.user_id, datetime.now(UTC))
        exceeded = _exceeded(today, identity)
        if exceeded is not None:
            raise exceeded

    def allows_now(self, identity: KeyIdentity) -> bool:
        """Whether ``check`` would pass without waiting (False: it would wait, or refuse)."""
        if not _has_daily_quota(identity):
            return True
        today = self._today_now(identity.user_id)
        return today is not None and _exceeded(today, identity) is None

    def add(self, record: UsageRecord) -> None:
        """Count a finished request towards its member's day, if the member is tracked."""
        today = self._today.get(record.user_id)
        if today is None or today.day != record.started_at.date():
            return
        today.tokens += (record.prompt_tokens or 0) + (record.completion_tokens or 0)
        today.audio_seconds += record.audio_seconds or 0.0
        today.images += record.image_count or 0

    async def stop(self) -> None:
        """Cancel the reloads in progress (before the store closes)."""
        reloads = [today.reload for today in self._today.values() if today.reload is not None]
        for reload in reloads:
            reload.cancel()
        await asyncio.gather(*reloads, return_exceptions=True)

    def _today_now(self, user_id: int) -> _Today | None:
        """Today's totals if loaded (a reload starts when due); None before the first load."""
        today = self._today.get(user_id)
        if today is None or today.day != datetime.now(UTC).date():
            return None
        if today.reload is None and time.monotonic() - today.loaded > self._refresh:
            today.reload = asyncio.create_task(
                self._reload(user_id, today), name=f"quota-reload-{user_id}"
            )
        return today

    async def _first_load(self, user_id: int, now: datetime) -> _Today:
        key = (user_id, now.date())
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.ensure_future(self._load(user_id, now))
            self._loading[key] = loading
            loading.add_done_callback(lambda _done: self._loading.pop(key, None))
        # Shielded: one waiting request that is cancelled must not cancel the others' load.
        return await asyncio.shield(loading)

    async def _load(self, user_id: int, now: datetime) -> _Today:
        loaded = time.monotonic()
        total = await self._source.daily_totals(user_id, now.date())
        today = _Today(now.date(), loaded, total.tokens, total.audio_seconds, total.images)
        self._today[user_id] = today
        return today

    async def _reload(self, user_id: int, today: _Today) -> None:
        loaded = time.monotonic()
        try:
            total = await self._source.daily_totals(user_id, today.day)
        except Exception:
            # The totals counted so far stay in use; the next refresh tries again.
            logger.warning("could not reload daily usage", extra={"user_id": user_id})
            today.loaded = loaded
        else:
            today.merge(total, loaded)
        finally:
            today.reload = None


def _exceeded(today: _Today, identity: KeyIdentity) -> QuotaExceeded | None:
    """The refusal for the first daily quota of the member that is used up, if any."""
    for used, quota, what in (
        (today.tokens, identity.daily_tokens, "tokens"),
        (today.audio_seconds, identity.daily_audio_seconds, "seconds of audio"),
        (today.images, identity.daily_images, "images"),
    ):
        if quota is not None and used >= quota:
            return QuotaExceeded(
                f"Daily quota of {quota:g} {what} used up; it resets at 00:00 UTC.",
                code="quota_exceeded",
                headers={"Retry-After": str(_seconds_to_midnight())},
            )
    return None


def _seconds_to_midnight() -> int:
    now = datetime.now(UTC)
    seconds = 86400 - (now.hour * 3600 + now.minute * 60 + now.second)
    return max(1, seconds)
