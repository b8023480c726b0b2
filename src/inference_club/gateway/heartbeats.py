"""One heartbeat loop for every tunnel: a timer per process, not a task per agent.

Each round is spread over the interval in slices, so ten thousand agents cost a steady
trickle of pings rather than one burst that would hold every request up behind it.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

from inference_club.gateway.connection import ProviderConnection

logger = logging.getLogger(__name__)

# Tunnels pinged together; their sends take well under a millisecond.
SLICE = 64


class Heartbeats:
    """Pings every connected agent each ``interval`` and drops those silent for three."""

    def __init__(
        self,
        connections: Callable[[], Iterable[ProviderConnection]],
        interval: float,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._connections = connections
        self._interval = interval
        # The schedule's clock and wait (the event loop's by default; tests drive their own).
        self._clock = clock
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin the loop."""
        self._task = asyncio.create_task(self._run(), name="heartbeats")

    async def _run(self) -> None:
        clock = self._clock or asyncio.get_running_loop().time
        while True:
            started = clock()
            connections = list(self._connections())
            slices = [connections[i : i + SLICE] for i in range(0, len(connections), SLICE)]
            # Slice k goes out at k / n of the interval: every tunnel once per interval.
            for number, part in enumerate(slices or [[]], start=1):
                delay = started + self._interval * number / max(len(slices), 1) - clock()
                await self._sleep(max(delay, 0.0))
                await self.beat(time.monotonic(), part)

    async def beat(
        self, now: float, connections: Sequence[ProviderConnection] | None = None
    ) -> None:
        """One round over ``connections`` (default: all): close the silent, ping the rest.

        They go at once, so a tunnel slow to take its ping delays none of the others.
        """
        if connections is None:
            connections = list(self._connections())
        beats = [connection.heartbeat_once(now, self._interval) for connection in connections]
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
