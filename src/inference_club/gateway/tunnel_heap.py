"""Keeping thousands of connected tunnels out of the garbage collector's full passes.

Each connected agent keeps a few hundred objects alive for as long as it stays (its socket,
protocol, tasks and streams). CPython's full collection walks every tracked object and runs
whenever the heap grew by about a quarter, so with ten thousand tunnels one pass took more
than half a second: a stall for every request in flight. Here, whenever the tunnels grew by
a tenth, what is alive is frozen (after a young collection, so fresh garbage is not kept),
and the automatic full passes walk only what came after.

Frozen objects are still freed when nothing refers to them, and a closed tunnel's connection
leaves no reference cycle (``DirectMessagesProtocol``, ``CoalescingHttpToolsProtocol``), so
a leaving tunnel's memory comes back when its task ends. Each leaving tunnel names a few of
its objects (its task, its connection); once a quarter of the tunnels have left and
departures have settled for a few seconds (agents leave in bursts when a network drops),
any of those still alive means a cycle holds a departed tunnel, and one full collection over
everything reclaims it and the survivors are frozen again. When every one of them was freed
there is nothing to reclaim, and the collection, which walks the whole heap (tens of
milliseconds, a stall for every request in flight), is skipped.
"""

import asyncio
import gc
import logging
import weakref
from collections.abc import Callable

logger = logging.getLogger(__name__)

# Fewer tunnels than this never freeze or unfreeze anything: their heap is small.
MINIMUM = 100
# Freeze again once this share more tunnels joined since the last freeze.
GROWTH = 0.1
# Collect everything once this share of the tunnels left since the last full collection...
TURNOVER = 0.25
# ... and this many seconds passed without another tunnel leaving.
SETTLE = 5.0


class TunnelHeap:
    """Counts tunnels joining and leaving, and freezes or collects the heap as they do."""

    def __init__(
        self,
        *,
        minimum: int = MINIMUM,
        growth: float = GROWTH,
        turnover: float = TURNOVER,
        settle: float = SETTLE,
    ) -> None:
        self._minimum = minimum
        self._growth = growth
        self._turnover = turnover
        self._settle = settle
        self.live = 0
        self._joined = 0
        self._left = 0
        # What departed tunnels named, to tell whether they were freed when they closed.
        self._departed: list[Callable[[], object | None]] = []
        self._collection: asyncio.TimerHandle | None = None

    def joined(self) -> None:
        """A tunnel is connected; freezes the heap when enough joined since the last time."""
        self.live += 1
        self._joined += 1
        if self._joined >= max(self._minimum, self._growth * self.live):
            gc.collect(1)
            gc.freeze()
            self._joined = 0

    def left(self, *remains: object | None) -> None:
        """A tunnel closed; ``remains`` are objects of it that nothing should keep once it is
        gone (None is skipped). Once enough tunnels left and departures settle, everything is
        collected if any of those is still alive, or if a tunnel named none."""
        self.live -= 1
        self._left += 1
        named = [weakref.ref(thing) for thing in remains if thing is not None]
        self._departed.extend(named or [_unknown])
        if self._collection is not None:
            self._collection.cancel()  # still leaving: wait for the burst to end
        elif self._left < max(self._minimum, self._turnover * (self.live + self._left)):
            return
        self._collection = asyncio.get_running_loop().call_later(self._settle, self._collect)

    def close(self) -> None:
        """Drop a collection still waiting (the gateway is stopping)."""
        if self._collection is not None:
            self._collection.cancel()
            self._collection = None

    def _collect(self) -> None:
        self._collection = None
        departed, self._departed = self._departed, []
        self._left = 0
        still_alive = sum(1 for ref in departed if ref() is not None)
        if not still_alive:
            return  # every departed tunnel was freed as it closed: nothing to reclaim
        gc.unfreeze()
        collected = gc.collect()
        gc.freeze()
        self._joined = 0
        logger.info(
            "reclaimed memory departed tunnels held in reference cycles",
            extra={"still_alive": still_alive, "collected": collected},
        )


def _unknown() -> object:
    """What a departed tunnel that named nothing counts as: maybe still alive."""
    return True
