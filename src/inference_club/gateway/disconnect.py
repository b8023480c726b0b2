"""Noticing a client that leaves, so its request is cancelled all the way to the backend.

Watching takes a task that waits on ``receive()``. Most requests through a busy gateway are
answered within milliseconds, so the watch starts only after ``WATCH_AFTER``: a timer costs a
fraction of a task, and a client that leaves sooner is noticed that much later at most.
"""

import asyncio
import contextlib

from inference_club.gateway.context import RequestContext

WATCH_AFTER = 0.05


async def _watch(ctx: RequestContext) -> None:
    while True:
        message = await ctx.receive()
        if message["type"] == "http.disconnect":
            break
    ctx.exchange.client_gone = True
    stream = ctx.exchange.stream
    if stream is not None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await stream.cancel("the client disconnected", by_client=True)


def start_disconnect_watch(ctx: RequestContext) -> None:
    """Watch for ``http.disconnect`` beside the handler; call once the body has been read."""
    ctx.watch_timer = asyncio.get_running_loop().call_later(WATCH_AFTER, _begin_watch, ctx)


def _begin_watch(ctx: RequestContext) -> None:
    ctx.watch_timer = None
    ctx.watcher = asyncio.create_task(_watch(ctx))


async def stop_disconnect_watch(ctx: RequestContext) -> None:
    """Stop watching: the request is over."""
    if ctx.watch_timer is not None:
        ctx.watch_timer.cancel()
        ctx.watch_timer = None
    if ctx.watcher is not None:
        ctx.watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ctx.watcher
