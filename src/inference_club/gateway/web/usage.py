"""Usage: a member's requests per day by kind, and what their providers served for others."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from inference_club.gateway.web.charts import (
    KIND_OF_ENDPOINT,
    KINDS,
    daily_usage,
    metric_chart,
    stacked_requests_chart,
    today_utc,
)
from inference_club.gateway.web.context import Web
from inference_club.store import Store, UsageRecord
from inference_club.store.accounts import Account

PERIODS = (7, 30, 90)
_BATCH = 5_000
# A ceiling on what one page reads, whatever the member did.
_MAX_RECORDS = 200_000


@dataclass
class ServedModel:
    """What one provider did for other members with one model."""

    provider: str
    model: str
    requests: int = 0
    errors: int = 0
    tokens: int = 0
    audio_seconds: float = 0.0
    images: int = 0
    members: set[int] = field(default_factory=set)


async def _records(
    store: Store, since: datetime, *, user_id: int | None = None, provider_id: int | None = None
) -> list[UsageRecord]:
    found: list[UsageRecord] = []
    while len(found) < _MAX_RECORDS:
        batch = await store.list_usage(
            user_id=user_id, provider_id=provider_id, since=since, limit=_BATCH, offset=len(found)
        )
        found.extend(batch)
        if len(batch) < _BATCH:
            break
    return found


def _served(provider: str, records: list[UsageRecord], owner_id: int) -> list[ServedModel]:
    models: dict[str, ServedModel] = {}
    for record in records:
        if record.user_id == owner_id or record.endpoint not in KIND_OF_ENDPOINT:
            continue
        entry = models.setdefault(record.model, ServedModel(provider, record.model))
        entry.requests += 1
        entry.errors += record.status_code >= 400
        entry.tokens += (record.prompt_tokens or 0) + (record.completion_tokens or 0)
        entry.audio_seconds += record.audio_seconds or 0.0
        entry.images += record.image_count or 0
        entry.members.add(record.user_id)
    return sorted(models.values(), key=lambda served: -served.requests)


async def usage(web: Web, request: Request, account: Account) -> Response:
    """``GET /usage?days=30``."""
    store = web.services().store
    try:
        days = int(request.query_params.get("days", "30"))
    except ValueError:
        days = 30
    if days not in PERIODS:
        days = 30
    today = today_utc()
    since = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(), UTC)
    per_day = daily_usage(await _records(store, since, user_id=account.user.id), days, today)
    served: list[ServedModel] = []
    for provider in await store.list_providers(account.user.name):
        records = await _records(store, since, provider_id=provider.id)
        served.extend(_served(provider.name, records, account.user.id))
    return web.render(
        request,
        "usage.html",
        {
            "section": "usage",
            "days": days,
            "periods": PERIODS,
            "kinds": KINDS,
            "requests_chart": stacked_requests_chart(per_day),
            "charts": [
                metric_chart(per_day, "tokens", "Tokens", "tokens"),
                metric_chart(per_day, "audio_seconds", "Audio", "seconds"),
                metric_chart(per_day, "images", "Images", "images"),
            ],
            "errors": sum(day.errors for day in per_day),
            "served": served,
        },
        account=account,
    )
