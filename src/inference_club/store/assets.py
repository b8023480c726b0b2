"""Assets: generated images and speech, kept on disk and found by an unguessable id."""

import re
from collections.abc import Sequence

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from inference_club.store._base import StoreBase, require_aware, utcnow
from inference_club.store.errors import AlreadyExists, InvalidValue, NotFound
from inference_club.store.fastwrite import ConstraintViolated
from inference_club.store.records import Asset, UsageRecord
from inference_club.store.schema import UtcDateTime, assets, usage_records

ASSET_KINDS = ("image", "audio")
# At least 128 random bits of URL-safe base64.
_ASSET_ID = re.compile(r"[A-Za-z0-9_-]{22,64}")
_CONTENT_TYPE = re.compile(r"[a-z]+/[A-Za-z0-9.+-]{1,100}")
_MAX_LIST_LIMIT = 1000


class AssetsMixin(StoreBase):
    """Recording and finding assets."""

    async def add_asset(
        self,
        *,
        asset_id: str,
        user_id: int,
        kind: str,
        content_type: str,
        size_bytes: int,
        path: str,
        usage_record_id: int | None = None,
    ) -> Asset:
        """Record a file already written under the data directory at ``path``."""
        _check_asset(asset_id, kind, content_type, size_bytes, path)
        asset = Asset(
            id=asset_id,
            user_id=user_id,
            usage_record_id=usage_record_id,
            kind=kind,
            content_type=content_type,
            size_bytes=size_bytes,
            path=path,
            created_at=utcnow(),
        )
        row = {
            "id": asset.id,
            "user_id": asset.user_id,
            "usage_record_id": asset.usage_record_id,
            "kind": asset.kind,
            "content_type": asset.content_type,
            "size_bytes": asset.size_bytes,
            "path": asset.path,
            "created_at": asset.created_at,
        }
        try:
            # Every generated image and speech adds one: the batch writer's way, not the ORM's.
            if not await self._write_fast([(_INSERT, [row])]):
                async with self._write(announce=False) as connection:
                    await connection.execute(_INSERT, row)
        except (ConstraintViolated, IntegrityError):
            raise AlreadyExists(
                "the asset id is taken, or its user or usage record does not exist"
            ) from None
        return asset

    async def get_asset(self, asset_id: str) -> Asset:
        """The asset with this id, or :class:`NotFound`."""
        async with self._read_one() as connection:
            row = (
                await connection.execute(select(assets).where(assets.c.id == asset_id))
            ).one_or_none()
        if row is None:
            raise NotFound("no such asset")
        return Asset(**row._asdict())

    async def list_assets(self, *, user_id: int, limit: int = 100, offset: int = 0) -> list[Asset]:
        """A user's assets, newest first."""
        if not 0 < limit <= _MAX_LIST_LIMIT or offset < 0:
            raise InvalidValue(f"limit must be 1-{_MAX_LIST_LIMIT} and offset zero or more")
        statement = (
            select(assets)
            .where(assets.c.user_id == user_id)
            .order_by(assets.c.created_at.desc(), assets.c.id)
            .limit(limit)
            .offset(offset)
        )
        async with self._read_one() as connection:
            rows = (await connection.execute(statement)).all()
        return [Asset(**row._asdict()) for row in rows]

    async def delete_asset(self, asset_id: str) -> Asset:
        """Forget an asset and return it, so the caller can remove its file; or NotFound."""
        async with self._write() as connection:
            row = (
                await connection.execute(select(assets).where(assets.c.id == asset_id))
            ).one_or_none()
            if row is None:
                raise NotFound("no such asset")
            await connection.execute(delete(assets).where(assets.c.id == asset_id))
        return Asset(**row._asdict())

    async def link_assets(self, made: Sequence[tuple[str, UsageRecord]]) -> None:
        """Point each asset at the stored usage record of the request that made it, all in
        one transaction; an asset whose record is not stored, or not its owner's, is left
        as it is.

        Usage records are written in batches after their request ends, so their ids are not
        known when the assets are stored; each record is found again by who made it and the
        moment (to the microsecond) its request started.
        """
        if not made:
            return
        for _, record in made:
            require_aware(record.started_at, "started_at")
        rows = [_link_row(asset_id, record) for asset_id, record in made]
        if await self._write_fast([(_LINK_ASSET, rows)]):
            return
        async with self._write(announce=False) as connection:
            await connection.execute(_LINK_ASSET, rows)


# The usage record an asset's request left: found again by who made it and the moment (to the
# microsecond) its request started, the newest if there are several.
_record_of_request = (
    select(func.max(usage_records.c.id))
    .where(
        usage_records.c.user_id == bindparam("owner_id"),
        usage_records.c.started_at == bindparam("request_started_at", type_=UtcDateTime()),
        usage_records.c.endpoint == bindparam("request_endpoint"),
        usage_records.c.api_key_id.is_not_distinct_from(bindparam("request_key_id")),
    )
    .scalar_subquery()
)
# Links one asset of the user to the record of its request; changes nothing without one.
_LINK_ASSET = (
    update(assets)
    .where(
        assets.c.id == bindparam("asset_id"),
        assets.c.user_id == bindparam("owner_id"),
        _record_of_request.is_not(None),
    )
    .values(usage_record_id=_record_of_request)
)
_INSERT = insert(assets)


def _link_row(asset_id: str, record: UsageRecord) -> dict[str, object]:
    """The values ``_LINK_ASSET`` takes to link ``asset_id`` to ``record``."""
    return {
        "asset_id": asset_id,
        "owner_id": record.user_id,
        "request_started_at": record.started_at,
        "request_endpoint": record.endpoint,
        "request_key_id": record.api_key_id,
    }


def _check_asset(asset_id: str, kind: str, content_type: str, size_bytes: int, path: str) -> None:
    if not _ASSET_ID.fullmatch(asset_id):
        raise InvalidValue("an asset id must be 22-64 URL-safe characters (128+ random bits)")
    if kind not in ASSET_KINDS:
        raise InvalidValue(f"an asset kind must be one of {', '.join(ASSET_KINDS)}")
    # Only image and audio types may ever be served from an asset URL; SVG can carry script.
    if (
        not _CONTENT_TYPE.fullmatch(content_type)
        or content_type.partition("/")[0] != kind
        or content_type.startswith("image/svg")
    ):
        raise InvalidValue(f"content type {content_type[:100]!r} is not an allowed {kind} type")
    if size_bytes < 0:
        raise InvalidValue("an asset size cannot be negative")
    # As PurePosixPath would read it (absolute, or with a ".." part), without making one.
    if not path or path.startswith("/") or ".." in path.split("/") or "\\" in path:
        raise InvalidValue("an asset path must be relative to the data directory")
