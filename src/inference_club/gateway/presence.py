"""When each provider was last seen, written in batches so thousands of agents cost few writes."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime

logger = logging.getLogger(__name__)

_PART = 500

MarkSeen = Callable[[Sequence[int], datetime], Awaitable[None]]


class PresenceWriter:
    """Marks providers seen: those that connected or left since the last write, and every
    online one once per ``refresh`` seconds, in one statement per flush."""

    def __init__(
        self,
        mark_seen: MarkSeen,
        online: Callable[[], Iterable[int]],
        *,
        interval: float = 1.0,
        refresh: float = 60.0,
    ) -> None:
        self._mark_seen = mark_seen
        self._online = online
        self._interval = interval
        self._refresh = refresh
        self._pending: set[int] = set()
        self._task: asyncio.Task[None] | None = None

    def seen(self, provider_id: int) -> None:
        """Note that a provider connected or disconnected now."""
        self._pending.add(provider_id)

    def start(self) -> None:
        """Begin the background writer."""
        self._task = asyncio.create_task(self._run(), name="presence-writer")

    async def _run(self) -> None:
        since_refresh = 0.0
        while True:
            await asyncio.sleep(self._interval)
            since_refresh += self._interval
            if since_refresh >= self._refresh:
                since_refresh = 0.0
                self._pending.update(self._online())
            await self.flush()

    async def flush(self) -> None:
        """Write what is pending; a failed write is retried on the next flush."""
        if not self._pending:
            return
        batch, self._pending = sorted(self._pending), set()
        now = datetime.now(UTC)
        # In parts, so the once-a-minute refresh of thousands of agents never holds the loop
        # for one huge statement.
        for start in range(0, len(batch), _PART):
            part = batch[start : start + _PART]
            try:
                await self._mark_seen(part, now)
            except Exception:
                self._pending.update(batch[start:])
                logger.warning(
                    "could not record provider presence", extra={"providers": len(batch) - start}
                )
                return

    async def stop(self) -> None:
        """Stop after a last flush."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
