"""The store: every table behind one async object, opened and migrated in one call."""

import asyncio
from typing import Self

from inference_club.store.accounts import AccountsMixin
from inference_club.store.assets import AssetsMixin
from inference_club.store.engine import create_engine
from inference_club.store.keys import KeysMixin
from inference_club.store.migrate import migrate
from inference_club.store.providers import ProvidersMixin
from inference_club.store.sharing import SharingMixin
from inference_club.store.usage import UsageMixin
from inference_club.store.users import UsersMixin


class Store(
    UsersMixin, KeysMixin, ProvidersMixin, UsageMixin, SharingMixin, AssetsMixin, AccountsMixin
):
    """Users, keys, providers, usage, groups, shares and assets, in SQLite or PostgreSQL."""

    @classmethod
    async def open(cls, database_url: str) -> Self:
        """Connect to ``database_url`` and bring its schema up to date."""
        engine = create_engine(database_url)
        try:
            await migrate(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine)

    @property
    def url(self) -> str:
        """The database URL, with any password masked."""
        return self._engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    async def close(self) -> None:
        """Finish the usage batches being written, then close every pooled connection."""
        if self._usage_writes:
            await asyncio.gather(*self._usage_writes, return_exceptions=True)
        if self._fast_reader is not None:
            self._fast_reader.close()
            # A generation counts only on the connection that read it.
            self._fast_identities.clear()
        if self._fast_writer is not None:
            self._fast_writer.close()
        if self._changes is not None:
            await self._changes.close()
        await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()
