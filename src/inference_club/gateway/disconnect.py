"""Noticing a client that leaves, so its request is cancelled all the way to the backend."""

import asyncio
import contextlib

from inference_club.gateway.context import RequestContext


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
    ctx.watcher = asyncio.create_task(_watch(ctx))


async def stop_disconnect_watch(ctx: RequestContext) -> None:
    """Stop watching: the request is over."""
    if ctx.watcher is not None:
        ctx.watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ctx.watcher
