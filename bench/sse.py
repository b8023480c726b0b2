"""Server-sent events seen on the wire: when each event completed, and the gaps between them."""

import itertools
from collections.abc import Sequence

_DONE = b"data: [DONE]"


class EventClock:
    """Feeds on response body bytes as they arrive and stamps each completed SSE event.

    An event ends at a blank line; the blank line may be split across reads, so the unfinished
    line is kept between feeds. ``data: [DONE]`` is noted but not stamped: it is not a chunk.
    """

    __slots__ = ("_line", "_pending_event", "done", "times")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.done = False
        self._line = b""
        self._pending_event = False

    def feed(self, data: bytes, now: float) -> None:
        """Account for ``data`` received at time ``now``."""
        lines = (self._line + data).split(b"\n")
        self._line = lines.pop()
        for raw in lines:
            line = raw.rstrip(b"\r")
            if line:
                if line == _DONE:
                    self.done = True
                else:
                    self._pending_event = True
            elif self._pending_event:
                self._pending_event = False
                self.times.append(now)


def gaps(times: Sequence[float]) -> list[float]:
    """The intervals between consecutive event times (one fewer than the events)."""
    return [later - earlier for earlier, later in itertools.pairwise(times)]
