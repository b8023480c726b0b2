"""One heartbeat loop for every tunnel: a timer per process, not a task per agent."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

from inference_club.gateway.connection import ProviderConnection

logger = logging.getLogger(__name__)


class Heartbeats:
    """Pings every connected agent each ``interval`` and drops those silent for three."""

    def __init__(
        self, connections: Callable[[], Iterable[ProviderConnection]], interval: float
    ) -> None:
        self._connections = connections
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin the loop."""
        self._task = asyncio.create_task(self._run(), name="heartbeats")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.beat(time.monotonic())

    async def beat(self, now: float) -> None:
        """One round: close the silent, ping the rest, all at once so a slow tunnel delays none."""
        beats = [
            connection.heartbeat_once(now, self._interval) for connection in self._connections()
        ]
        for outcome in await asyncio.gather(*beats, return_exceptions=True):
            if isinstance(outcome, Exception):
                # A socket that died under us: its pump notices and cleans up. One dead tunnel
                # must never stop the heartbeats of all the others.
                logger.debug("heartbeat on a dead tunnel", extra={"error": type(outcome).__name__})
            elif isinstance(outcome, BaseException):
                raise outcome

    async def stop(self) -> None:
        """Stop the loop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
