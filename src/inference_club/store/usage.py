"""Usage records: one per request, written in batches, read back for dashboards and quotas."""

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime

from sqlalchemy import RowMapping, bindparam, case, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from inference_club.store._base import StoreBase, require_aware
from inference_club.store.errors import InvalidValue, NotFound
from inference_club.store.records import UsageRecord
from inference_club.store.schema import UtcDateTime, api_keys, usage_records

_COLUMNS = tuple(field.name for field in fields(UsageRecord) if field.name != "id")
_MAX_LIST_LIMIT = 10_000

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


class UsageMixin(StoreBase):
    """Writing and reading usage records."""

    async def record_usage(self, records: Sequence[UsageRecord]) -> None:
        """Store a batch in one transaction and move each key's ``last_used_at`` forward."""
        if not records:
            return
        rows = [{column: getattr(record, column) for column in _COLUMNS} for record in records]
        last_used: dict[int, datetime] = {}
        for record in records:
            require_aware(record.started_at, "started_at")
            require_aware(record.ended_at, "ended_at")
            if record.api_key_id is not None:
                seen = last_used.get(record.api_key_id)
                last_used[record.api_key_id] = (
                    record.ended_at if seen is None else max(seen, record.ended_at)
                )
        try:
            async with self._write() as connection:
                await connection.execute(insert(usage_records), rows)
                if last_used:
                    await connection.execute(
                        _TOUCH_KEY,
                        [{"key_id": key, "used_at": at} for key, at in last_used.items()],
                    )
        except IntegrityError:
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


def _record_from_mapping(row: RowMapping) -> UsageRecord:
    return UsageRecord(**dict(row))
