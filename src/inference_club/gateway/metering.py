"""Usage records written in batches off the request path, never lost on shutdown."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from inference_club.store import UsageRecord

logger = logging.getLogger(__name__)

WriteBatch = Callable[[Sequence[UsageRecord]], Awaitable[None]]


class UsageWriter:
    """Collects usage records and writes them in one transaction per batch.

    A batch goes when ``batch`` records are queued or ``interval`` seconds passed. Batches stay
    small (at 1,000 requests a second, one every 0.1 s): preparing one runs on the event loop,
    and a few large ones made the slowest requests wait behind them.
    """

    def __init__(
        self, write: WriteBatch, *, interval: float = 0.2, batch: int = 96, max_batch: int = 500
    ) -> None:
        self._write = write
        self._interval = interval
        self._batch = batch
        self._max_batch = max_batch
        self._pending: list[UsageRecord] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.written = 0

    def add(self, record: UsageRecord) -> None:
        """Queue one record; it is written within ``interval`` seconds."""
        self._pending.append(record)
        if len(self._pending) >= self._batch:
            self._wakeup.set()

    def start(self) -> None:
        """Begin the background writer."""
        self._task = asyncio.create_task(self._run(), name="usage-writer")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._interval)
            self._wakeup.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write everything queued so far."""
        while self._pending:
            batch, self._pending = (
                self._pending[: self._max_batch],
                self._pending[self._max_batch :],
            )
            try:
                await self._write(batch)
                self.written += len(batch)
            except Exception:
                # Put the batch back so a passing database hiccup loses nothing.
                self._pending[:0] = batch
                logger.exception("usage write failed; will retry", extra={"records": len(batch)})
                return

    async def stop(self) -> None:
        """Stop the writer after a last flush."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
