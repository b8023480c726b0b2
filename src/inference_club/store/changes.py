"""Knowing, on PostgreSQL, when any process committed a change a cached answer depends on.

Every write transaction of the store sends ``NOTIFY`` on one channel as part of its commit
(usage and presence writes excepted: no cached answer depends on them). A ``ChangeListener``
keeps one extra connection listening on that channel; each notice moves ``generation`` on, so
answers cached under an older generation are known to be stale. While the listener is not
connected, ``live`` is False and nothing may be cached: every lookup goes to the database.

A notice reaches the other processes a moment after the commit (about a millisecond on one
host), so a revoked key may pass a check or two within that moment, never after it.
"""

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from sqlalchemy.engine import URL

from inference_club.store.kept import MISSING, KeptAnswers

if TYPE_CHECKING:
    import asyncpg

logger = logging.getLogger(__name__)

CHANNEL = "inference_club_changes"
NOTIFY_SQL = f"SELECT pg_notify('{CHANNEL}', '')"
# After a failed connect or a lost connection, the next attempt waits this long.
RETRY_AFTER = 2.0


class ChangeListener:
    """One listening connection; ``generation`` moves on with every change committed anywhere."""

    def __init__(self, url: URL, *, retry_after: float = RETRY_AFTER) -> None:
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._retry_after = retry_after
        self._connection: asyncpg.Connection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._next_attempt = 0.0
        self._closed = False
        self.generation = 0

    @property
    def live(self) -> bool:
        """Whether notices are arriving, so cached answers can be trusted until the next one."""
        connection = self._connection
        return connection is not None and not connection.is_closed()

    def ensure_listening(self) -> None:
        """Start connecting in the background if not listening (at most every retry_after s)."""
        if self.live or self._closed or self._connecting is not None:
            return
        if time.monotonic() < self._next_attempt:
            return
        self._connecting = asyncio.create_task(self._connect(), name="change-listener")

    async def _connect(self) -> None:
        import asyncpg  # noqa: PLC0415 - only PostgreSQL needs it; SQLite gateways never load it

        connection: asyncpg.Connection | None = None
        try:
            connection = await asyncpg.connect(self._dsn)
            await connection.add_listener(CHANNEL, self._on_notice)
            connection.add_termination_listener(self._on_lost)
        except Exception as exc:  # any failure only means: no answers kept for now
            self._next_attempt = time.monotonic() + self._retry_after
            logger.warning(
                "cannot listen for database changes; key checks go to the database",
                extra={"error": type(exc).__name__},
            )
            if connection is not None:
                connection.terminate()
            return
        finally:
            self._connecting = None
        if self._closed:
            await connection.close()
            return
        # Anything cached before this moment may have missed a notice.
        self.generation += 1
        self._connection = connection

    def _on_notice(self, *_args: object) -> None:
        self.generation += 1

    def _on_lost(self, _connection: object) -> None:
        self._connection = None
        self.generation += 1
        self._next_attempt = time.monotonic() + self._retry_after
        if not self._closed:
            logger.warning("lost the database change listener; key checks go to the database")

    async def close(self) -> None:
        """Stop listening."""
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()


class AnswersUntilChange:
    """Answers kept while the listener is live and no change was committed since they were read."""

    def __init__(self, listener: ChangeListener) -> None:
        self._listener = listener
        self._kept = KeptAnswers()

    def get(self, key: object) -> object:
        """The answer kept for ``key``, or ``MISSING``."""
        listener = self._listener
        listener.ensure_listening()
        if not listener.live:
            return MISSING
        return self._kept.get(key, listener.generation)

    def generation(self) -> int | None:
        """Take before reading the database; None while answers cannot be kept."""
        return self._listener.generation if self._listener.live else None

    def put(self, key: object, answer: object, read_at: int | None) -> None:
        """Keep ``answer``, read at generation ``read_at``, unless a change came meanwhile."""
        listener = self._listener
        if read_at is not None and listener.live and listener.generation == read_at:
            self._kept.put(key, answer, read_at)
