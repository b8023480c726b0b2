"""Per-stream flow control: credits a sender spends and a receiver grants back.

TCP's backpressure is per connection, so without per-stream credits one slow client would
either stall every other stream on the tunnel or make the other side buffer without bound.
As in HTTP/2, each stream starts with a window of bytes; the receiver grants more as it
consumes what it was sent.
"""

import asyncio


class WindowClosed(ConnectionError):
    """The stream ended while a sender waited for credit."""


class SendWindow:
    """Bytes a sender may still put on one stream before the peer grants more."""

    __slots__ = ("_closed", "_credit", "_waiter")

    def __init__(self, initial: int) -> None:
        self._credit = initial
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    @property
    def credit(self) -> int:
        """Bytes that may be sent right now."""
        return self._credit

    async def acquire(self, size: int) -> None:
        """Wait until ``size`` bytes may be sent, then spend them."""
        while self._credit < size:
            if self._closed:
                raise WindowClosed
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._closed:
            raise WindowClosed
        self._credit -= size

    def try_spend(self, size: int) -> bool:
        """Spend ``size`` bytes now if the window has them (and is open); never waits."""
        if self._closed or self._credit < size:
            return False
        self._credit -= size
        return True

    def grant(self, increment: int) -> None:
        """The peer consumed ``increment`` more bytes."""
        self._credit += increment
        self._wake()

    def close(self) -> None:
        """Fail any waiting sender: the stream is gone."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class ReceiveWindow:
    """Counts consumed bytes and says when to grant them back to the sender in one frame."""

    __slots__ = ("_pending", "_threshold")

    def __init__(self, initial: int) -> None:
        # Granting in halves of the window keeps frames few and the sender never idle.
        self._threshold = max(1, initial // 2)
        self._pending = 0

    def consumed(self, size: int) -> int:
        """Record ``size`` consumed bytes; return the increment to grant now, or 0."""
        self._pending += size
        if self._pending < self._threshold:
            return 0
        increment, self._pending = self._pending, 0
        return increment
