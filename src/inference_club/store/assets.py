"""Assets: generated images and speech, kept on disk and found by an unguessable id."""

import re
from pathlib import PurePosixPath

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from inference_club.store._base import StoreBase, utcnow
from inference_club.store.errors import AlreadyExists, InvalidValue, NotFound
from inference_club.store.records import Asset
from inference_club.store.schema import assets

ASSET_KINDS = ("image", "audio")
# At least 128 random bits of URL-safe base64.
_ASSET_ID = re.compile(r"[A-Za-z0-9_-]{22,64}")
_CONTENT_TYPE = re.compile(r"[a-z]+/[A-Za-z0-9.+-]{1,100}")


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
        try:
            async with self._write() as connection:
                await connection.execute(
                    insert(assets).values(
                        id=asset.id,
                        user_id=asset.user_id,
                        usage_record_id=asset.usage_record_id,
                        kind=asset.kind,
                        content_type=asset.content_type,
                        size_bytes=asset.size_bytes,
                        path=asset.path,
                        created_at=asset.created_at,
                    )
                )
        except IntegrityError:
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
    relative = PurePosixPath(path)
    if not path or relative.is_absolute() or ".." in relative.parts or "\\" in path:
        raise InvalidValue("an asset path must be relative to the data directory")
