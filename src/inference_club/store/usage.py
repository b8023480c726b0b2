"""Usage records: one per request, written in batches, read back for dashboards and quotas."""

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import UTC, date, datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import RowMapping, bindparam, case, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from inference_club.store._base import StoreBase, require_aware
from inference_club.store.errors import InvalidValue, NotFound
from inference_club.store.fastwrite import ConstraintViolated, ObjectRows
from inference_club.store.records import UsageRecord, UsageTotal
from inference_club.store.schema import (
    UtcDateTime,
    api_keys,
    providers,
    usage_daily,
    usage_records,
    users,
)

_COLUMNS = tuple(field.name for field in fields(UsageRecord) if field.name != "id")
# A record's column values in one call.
_column_values = attrgetter(*_COLUMNS)
_MAX_LIST_LIMIT = 10_000
# Inline: nothing reads the new rows' ids, so no RETURNING for them.
_INSERT = insert(usage_records).inline()

# Batches may arrive out of order; last_used_at only ever moves forward.
_used_at = bindparam("used_at", type_=UtcDateTime())
_TOUCH_KEY = (
    update(api_keys)
    .where(api_keys.c.id == bindparam("key_id"))
    .values(
        last_used_at=case(
            (
                or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < _used_at),
                _used_at,
            ),
            else_=api_keys.c.last_used_at,
        )
    )
)

_DAY_SUMS = ("requests", "errors", "prompt_tokens", "completion_tokens", "audio_seconds", "images")


def _add_to_day(dialect_insert: Any) -> Any:
    """An upsert that adds a batch's sums to a member's day (the same SQL on both databases)."""
    statement = dialect_insert(usage_daily)
    return statement.on_conflict_do_update(
        index_elements=[usage_daily.c.user_id, usage_daily.c.day],
        set_={name: usage_daily.c[name] + statement.excluded[name] for name in _DAY_SUMS},
    )


_ADD_TO_DAY = {"sqlite": _add_to_day(sqlite.insert), "postgresql": _add_to_day(postgresql.insert)}


class UsageMixin(StoreBase):
    """Writing and reading usage records."""

    async def record_usage(self, records: Sequence[UsageRecord]) -> None:
        """Store a batch in one transaction and move each key's ``last_used_at`` forward.

        The batch is prepared in slices between other work on the loop. Once started it is
        stored even if the caller is cancelled (a stopping gateway loses no records), and
        ``close`` waits for it.
        """
        if not records:
            return
        write = asyncio.ensure_future(self._record_usage(records))
        self._usage_writes.add(write)
        write.add_done_callback(self._usage_writes.discard)
        await asyncio.shield(write)

    async def _record_usage(self, records: Sequence[UsageRecord]) -> None:
        touches, days = _batch_sums(records)
        add_to_day = _ADD_TO_DAY[self._engine.dialect.name]
        try:
            if await self._write_fast(
                [
                    (_INSERT, ObjectRows(_COLUMNS, records)),
                    (_TOUCH_KEY, touches),
                    (add_to_day, days),
                ]
            ):
                return
            async with self._write(announce=False) as connection:
                await connection.execute(_INSERT, [_row_of(record) for record in records])
                if touches:
                    await connection.execute(_TOUCH_KEY, touches)
                await connection.execute(add_to_day, days)
        except (ConstraintViolated, IntegrityError):
            raise NotFound(
                "a usage record names a user, API key or provider that does not exist"
            ) from None

    async def list_usage(
        self,
        *,
        user_id: int | None = None,
        provider_id: int | None = None,
        since: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[UsageRecord]:
        """Usage records, newest first, optionally of one user or provider since a time."""
        if not 0 < limit <= _MAX_LIST_LIMIT or offset < 0:
            raise InvalidValue(f"limit must be 1-{_MAX_LIST_LIMIT} and offset zero or more")
        statement = select(usage_records)
        if user_id is not None:
            statement = statement.where(usage_records.c.user_id == user_id)
        if provider_id is not None:
            statement = statement.where(usage_records.c.provider_id == provider_id)
        if since is not None:
            require_aware(since, "since")
            statement = statement.where(usage_records.c.started_at >= since)
        statement = (
            statement.order_by(usage_records.c.started_at.desc(), usage_records.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        async with self._read_one() as connection:
            result = await connection.execute(statement)
            return [_record_from_mapping(row) for row in result.mappings()]

    async def usage_totals(self, user_id: int, since: datetime) -> UsageTotal:
        """What one user consumed since ``since``, over every model (for daily quotas)."""
        require_aware(since, "since")
        statement = select(*_SUMS).where(
            usage_records.c.user_id == user_id, usage_records.c.started_at >= since
        )
        async with self._read_one() as connection:
            row = (await connection.execute(statement)).one()
        return _total("", "", row._mapping)

    async def daily_totals(self, user_id: int, day: date) -> UsageTotal:
        """What one user consumed on one UTC day, over every model: one row, kept as records
        are written (for daily quotas)."""
        statement = select(*(usage_daily.c[name] for name in _DAY_SUMS)).where(
            usage_daily.c.user_id == user_id, usage_daily.c.day == day
        )
        async with self._read_one() as connection:
            row = (await connection.execute(statement)).mappings().one_or_none()
        return _total("", "", row or dict.fromkeys(_DAY_SUMS, 0))

    async def usage_by_user(
        self, *, since: datetime, user_name: str | None = None
    ) -> list[UsageTotal]:
        """Consumption per user and model since ``since``."""
        require_aware(since, "since")
        statement = (
            select(users.c.name.label("who"), usage_records.c.model, *_SUMS)
            .join_from(usage_records, users, usage_records.c.user_id == users.c.id)
            .where(usage_records.c.started_at >= since)
            .group_by(users.c.name, usage_records.c.model)
            .order_by(users.c.name, usage_records.c.model)
        )
        if user_name is not None:
            statement = statement.where(users.c.name == user_name)
        async with self._read_one() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [_total(row["who"], row["model"], row) for row in rows]

    async def usage_by_provider(
        self, *, since: datetime, owner_name: str | None = None
    ) -> list[UsageTotal]:
        """What each provider served since ``since``, per model; ``for_others`` counts guests."""
        require_aware(since, "since")
        guest = usage_records.c.user_id != providers.c.owner_id
        statement = (
            select(
                providers.c.name.label("who"),
                usage_records.c.model,
                *_SUMS,
                func.sum(case((guest, 1), else_=0)).label("for_others"),
            )
            .join_from(usage_records, providers, usage_records.c.provider_id == providers.c.id)
            .where(usage_records.c.started_at >= since)
            .group_by(providers.c.name, usage_records.c.model)
            .order_by(providers.c.name, usage_records.c.model)
        )
        if owner_name is not None:
            statement = statement.join(users, providers.c.owner_id == users.c.id).where(
                users.c.name == owner_name
            )
        async with self._read_one() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [_total(row["who"], row["model"], row) for row in rows]


_SUMS = (
    func.count().label("requests"),
    func.sum(case((usage_records.c.status_code >= 400, 1), else_=0)).label("errors"),
    func.coalesce(func.sum(usage_records.c.prompt_tokens), 0).label("prompt_tokens"),
    func.coalesce(func.sum(usage_records.c.completion_tokens), 0).label("completion_tokens"),
    func.coalesce(func.sum(usage_records.c.audio_seconds), 0.0).label("audio_seconds"),
    func.coalesce(func.sum(usage_records.c.image_count), 0).label("images"),
)


def _total(who: str, model: str, row: RowMapping | Mapping[str, Any]) -> UsageTotal:
    return UsageTotal(
        who=who,
        model=model,
        requests=int(row["requests"] or 0),
        errors=int(row["errors"] or 0),
        prompt_tokens=int(row["prompt_tokens"] or 0),
        completion_tokens=int(row["completion_tokens"] or 0),
        audio_seconds=float(row["audio_seconds"] or 0.0),
        images=int(row["images"] or 0),
        for_others=int(row.get("for_others") or 0),
    )


def _row_of(record: UsageRecord) -> dict[str, object]:
    return dict(zip(_COLUMNS, _column_values(record), strict=True))


def _batch_sums(
    records: Sequence[UsageRecord],
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """In one pass over a batch: each API key's latest use, and the sums per member and UTC
    day in key order (concurrent writers lock the rows in the same order, so they never
    deadlock). A naive timestamp refuses the batch before anything is written."""
    last_used: dict[int, datetime] = {}
    sums: dict[tuple[int, date], list[Any]] = {}
    for record in records:
        started = record.started_at
        ended = record.ended_at
        if started.utcoffset() is None or ended.utcoffset() is None:
            require_aware(started, "started_at")
            require_aware(ended, "ended_at")
        key_id = record.api_key_id
        if key_id is not None:
            seen = last_used.get(key_id)
            if seen is None or seen < ended:
                last_used[key_id] = ended
        key = (
            record.user_id,
            (started if started.tzinfo is UTC else started.astimezone(UTC)).date(),
        )
        day = sums.get(key)
        if day is None:
            day = sums[key] = [0, 0, 0, 0, 0.0, 0]
        day[0] += 1
        day[1] += record.status_code >= 400
        day[2] += record.prompt_tokens or 0
        day[3] += record.completion_tokens or 0
        day[4] += record.audio_seconds or 0.0
        day[5] += record.image_count or 0
    touches: list[dict[str, object]] = [
        {"key_id": key_id, "used_at": at} for key_id, at in last_used.items()
    ]
    days: list[dict[str, object]] = [
        {"user_id": user_id, "day": day, **dict(zip(_DAY_SUMS, values, strict=True))}
        for (user_id, day), values in sorted(sums.items())
    ]
    return touches, days


def _record_from_mapping(row: RowMapping) -> UsageRecord:
    return UsageRecord(**dict(row))
