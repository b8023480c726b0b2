"""Generated images and speech: files under ``<data>/assets/``, served at capability URLs.

An asset's id carries 192 random bits and is the whole credential: anyone holding the URL may
fetch it (an ``<img>`` tag sends no API key), nobody can guess one. Only image and audio types
are stored, and they are served with ``nosniff`` so a browser never reinterprets the bytes.
"""

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from inference_club.gateway.errors import ApiError
from inference_club.media import FILE_EXTENSIONS
from inference_club.store import Asset, NotFound, Store, UsageRecord, new_asset_id

logger = logging.getLogger(__name__)

ASSETS_DIRECTORY = "assets"
ASSET_PATH_PREFIX = "/api/inference/assets/"
ASSET_ROUTE = ASSET_PATH_PREFIX + "{asset_id}/"
# Exactly the types the gateway recognises from bytes; never SVG or anything that runs script.
SERVED_TYPES = frozenset(FILE_EXTENSIONS)
_ASSET_ID = re.compile(r"[A-Za-z0-9_-]{22,64}")
# Asset bytes never change under an id, so caches may keep them for good.
_SERVED_HEADERS = {
    "cache-control": "public, max-age=31536000, immutable",
    "content-disposition": "inline",
    "x-content-type-options": "nosniff",
}
_MISSING_HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}


class AssetNotFound(ApiError):
    """404: no asset under this id (never said apart from a tampered or deleted one)."""

    status = 404
    type = "not_found"

    def __init__(self) -> None:
        super().__init__("No such asset.")


@dataclass(frozen=True, slots=True)
class AssetOwner:
    """Who an asset belongs to, and what finds the usage record of the request that made it."""

    user_id: int
    api_key_id: int | None
    started_at: datetime


class AssetFile:
    """An asset being written as it streams (speech); recorded by ``commit`` or thrown away."""

    def __init__(self, asset_id: str, path: Path) -> None:
        self.asset_id = asset_id
        self.path = path
        self.size = 0
        self._file: BinaryIO | None = path.open("xb")

    def write(self, data: bytes) -> None:
        """Append bytes."""
        if self._file is not None:
            self._file.write(data)
            self.size += len(data)

    def close(self) -> None:
        """Finish writing."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def discard(self) -> None:
        """Close and remove the file."""
        self.close()
        self.path.unlink(missing_ok=True)


class AssetStore:
    """Asset files on disk, their records in the store, and their links to usage records."""

    def __init__(self, data_dir: Path, store: Store, base_url: str) -> None:
        self.directory = data_dir / ASSETS_DIRECTORY
        self._store = store
        self._base_url = base_url.rstrip("/")
        # Assets waiting for the usage record of their request, which is written later.
        self._pending: dict[tuple[int, int | None, datetime], list[str]] = {}

    def url(self, asset_id: str) -> str:
        """The absolute public URL of an asset."""
        return f"{self._base_url}{ASSET_PATH_PREFIX}{asset_id}/"

    def create(self) -> AssetFile:
        """A new, empty asset file under a fresh id."""
        self.directory.mkdir(parents=True, exist_ok=True)
        asset_id = new_asset_id()
        return AssetFile(asset_id, self.directory / asset_id)

    async def commit(self, file: AssetFile, owner: AssetOwner, content_type: str) -> Asset:
        """Record a finished asset file; the file is removed if the store refuses it."""
        file.close()
        if content_type not in SERVED_TYPES:
            file.discard()
            msg = f"{content_type[:100]!r} is not a type assets may have"
            raise ValueError(msg)
        try:
            asset = await self._store.add_asset(
                asset_id=file.asset_id,
                user_id=owner.user_id,
                kind=content_type.partition("/")[0],
                content_type=content_type,
                size_bytes=file.size,
                path=f"{ASSETS_DIRECTORY}/{file.asset_id}",
            )
        except BaseException:
            file.discard()
            raise
        key = (owner.user_id, owner.api_key_id, owner.started_at)
        self._pending.setdefault(key, []).append(asset.id)
        return asset

    async def save(self, data: bytes, owner: AssetOwner, content_type: str) -> Asset:
        """Write and record a whole asset (an image)."""
        file = self.create()
        try:
            await asyncio.to_thread(file.write, data)
        except BaseException:
            file.discard()
            raise
        return await self.commit(file, owner, content_type)

    async def delete(self, asset_id: str) -> None:
        """Forget an asset and remove its file; NotFound if there is none."""
        asset = await self._store.delete_asset(asset_id)
        path = self._file_of(asset)
        if path is not None:
            path.unlink(missing_ok=True)

    async def find(self, asset_id: str) -> tuple[Asset, Path] | None:
        """The servable asset under ``asset_id`` and its file, or None."""
        if not _ASSET_ID.fullmatch(asset_id):
            return None
        try:
            asset = await self._store.get_asset(asset_id)
        except NotFound:
            return None
        if asset.content_type not in SERVED_TYPES:
            return None
        path = self._file_of(asset)
        if path is None or not path.is_file():
            return None
        return asset, path

    def _file_of(self, asset: Asset) -> Path | None:
        """The asset's file, only if it lies inside the assets directory."""
        path = (self.directory.parent / asset.path).resolve()
        if not path.is_relative_to(self.directory.resolve()):
            return None
        return path

    async def record_usage(self, records: Sequence[UsageRecord]) -> None:
        """Write a batch of usage records, then link the assets their requests made, all in
        one more transaction."""
        await self._store.record_usage(records)
        if not self._pending:
            return
        made: list[tuple[str, UsageRecord]] = []
        for record in records:
            key = (record.user_id, record.api_key_id, record.started_at)
            made += ((asset_id, record) for asset_id in self._pending.pop(key, ()))
        try:
            await self._store.link_assets(made)
        except Exception:
            # The records are written; failing here would make the writer write them twice.
            logger.exception("linking assets to their usage records failed")


async def serve_asset(request: Request, assets: AssetStore) -> Response:
    """``GET /api/inference/assets/<id>/``: the file, to anyone who holds its URL."""
    found = await assets.find(str(request.path_params["asset_id"]))
    if found is None:
        error = AssetNotFound()
        return JSONResponse(error.envelope(), status_code=error.status, headers=_MISSING_HEADERS)
    asset, path = found
    return FileResponse(path, media_type=asset.content_type, headers=_SERVED_HEADERS)
