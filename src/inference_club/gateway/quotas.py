"""Daily quotas per member on tokens, audio seconds and images.

Each node keeps today's totals of the members it serves, loaded from the store and then
counted as records are made; it reloads them every ``refresh`` seconds, so the work of other
nodes is counted too within that delay.
"""

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as clock
from typing import Protocol

from inference_club.gateway.errors import RateLimited
from inference_club.store import KeyIdentity, UsageRecord, UsageTotal


class QuotaExceeded(RateLimited):
    """429: a daily quota is used up."""

    type = "quota_exceeded"


class TotalsSource(Protocol):
    """Where today's totals come from (the store)."""

    async def usage_totals(self, user_id: int, since: datetime) -> UsageTotal:
        """One user's sums since ``since``."""


@dataclass(slots=True)
class _Today:
    day: date
    loaded: float
    tokens: int
    audio_seconds: float
    images: int


class QuotaLedger:
    """Today's consumption of members with quotas, checked before each request."""

    def __init__(self, source: TotalsSource, refresh: float = 30.0) -> None:
        self._source = source
        self._refresh = refresh
        self._today: dict[int, _Today] = {}

    async def check(self, identity: KeyIdentity) -> None:
        """Refuse with 429 quota_exceeded when a daily quota of the member is used up."""
        if (
            identity.daily_tokens is None
            and identity.daily_audio_seconds is None
            and identity.daily_images is None
        ):
            return
        today = await self._totals(identity.user_id)
        for used, quota, what in (
            (today.tokens, identity.daily_tokens, "tokens"),
            (today.audio_seconds, identity.daily_audio_seconds, "seconds of audio"),
            (today.images, identity.daily_images, "images"),
        ):
            if quota is not None and used >= quota:
                raise QuotaExceeded(
                    f"Daily quota of {quota:g} {what} used up; it resets at 00:00 UTC.",
                    code="quota_exceeded",
                    headers={"Retry-After": str(_seconds_to_midnight())},
                )

    def add(self, record: UsageRecord) -> None:
        """Count a finished request towards its member's day, if the member is tracked."""
        today = self._today.get(record.user_id)
        if today is None or today.day != record.started_at.date():
            return
        today.tokens += (record.prompt_tokens or 0) + (record.completion_tokens or 0)
        today.audio_seconds += record.audio_seconds or 0.0
        today.images += record.image_count or 0

    async def _totals(self, user_id: int) -> _Today:
        now = datetime.now(UTC)
        today = self._today.get(user_id)
        if (
            today is None
            or today.day != now.date()
            or time.monotonic() - today.loaded > self._refresh
        ):
            midnight = datetime.combine(now.date(), clock(), tzinfo=UTC)
            total = await self._source.usage_totals(user_id, midnight)
            today = _Today(
                now.date(), time.monotonic(), total.tokens, total.audio_seconds, total.images
            )
            self._today[user_id] = today
        return today


def _seconds_to_midnight() -> int:
    now = datetime.now(UTC)
    seconds = 86400 - (now.hour * 3600 + now.minute * 60 + now.second)
    return max(1, seconds)
