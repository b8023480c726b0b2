"""The disconnect watch: started a little after the body, never for requests already over."""

import asyncio
from types import SimpleNamespace
from typing import Any

from inference_club.gateway.disconnect import (
    WATCH_AFTER,
    start_disconnect_watch,
    stop_disconnect_watch,
)
from inference_club.gateway.exchange import Exchange


class Stream:
    def __init__(self) -> None:
        self.cancelled_by_client: bool | None = None

    async def cancel(self, _reason: str, *, by_client: bool = False) -> None:
        self.cancelled_by_client = by_client


def _context(receive: Any) -> Any:
    exchange = Exchange(endpoint="chat.completions")
    exchange.stream = Stream()  # type: ignore[assignment]
    return SimpleNamespace(receive=receive, exchange=exchange, watcher=None, watch_timer=None)


async def test_a_request_over_quickly_never_starts_a_watch() -> None:
    """Stopped before WATCH_AFTER, the watch never asks the server for a message."""
    asked = 0

    async def receive() -> dict[str, Any]:
        nonlocal asked
        asked += 1
        return {"type": "http.disconnect"}

    ctx = _context(receive)
    start_disconnect_watch(ctx)
    await stop_disconnect_watch(ctx)
    await asyncio.sleep(WATCH_AFTER * 2)

    assert asked == 0
    assert ctx.watcher is None
    assert not ctx.exchange.client_gone


async def test_a_client_that_leaves_cancels_the_stream_once_the_watch_runs() -> None:
    """A disconnect is seen once the watch starts: the stream is cancelled as the client's."""
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    ctx = _context(receive)
    start_disconnect_watch(ctx)
    gone.set()
    await asyncio.sleep(WATCH_AFTER * 3)

    assert ctx.exchange.client_gone
    assert ctx.exchange.stream.cancelled_by_client is True
    await stop_disconnect_watch(ctx)
