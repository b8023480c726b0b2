"""The agent's tunnel messages written straight to the socket, as masked WebSocket frames.

aiohttp writes a message through a coroutine, so the agent's outbox used to wake its writer
task for every reply: a loop turn between the reply arriving from the model server and its
frames leaving. Given this writer, the outbox writes the first frames of a turn in the call
that queued them (see ``inference_club.protocol.outbox``), as the gateway does on its side.

A client's frames must be masked (RFC 6455, section 5.3): each gets a fresh random key. The
frames go to the transport aiohttp's own writer uses, so they keep their order with the
frames it writes (pongs, the close); the writer task, which goes through aiohttp, takes over
whenever the transport pushes back or the connection closes.
"""

import asyncio
import os
from typing import cast

import aiohttp

from inference_club.protocol.websocket_frames import apply_mask, frame_header

# What this writer asks of the transport.
_TRANSPORT_METHODS = ("write", "is_closing", "get_write_buffer_size")
# The transport's buffer beyond which a message waits for the writer task (and its drain).
_WRITE_LIMIT = 64 * 1024


def masked_frame(message: bytes, key: bytes) -> bytes:
    """A final binary frame carrying ``message``, masked with the 4-byte ``key``."""
    return frame_header(len(message), masked=True) + key + apply_mask(message, key)


class TunnelWriter:
    """Writes whole messages on the tunnel's transport without waiting (``DirectWriter``)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, transport: asyncio.Transport) -> None:
        self._ws = ws
        self._transport = transport

    @classmethod
    def of(cls, ws: aiohttp.ClientWebSocketResponse) -> "TunnelWriter | None":
        """The writer for ``ws``, or None when aiohttp does not show its transport."""
        transport = getattr(getattr(ws, "_writer", None), "transport", None)
        # uvloop's transports do not derive from asyncio.Transport: ask for what is used.
        if not all(hasattr(transport, name) for name in _TRANSPORT_METHODS):
            return None
        return cls(ws, cast(asyncio.Transport, transport))

    def ready(self) -> bool:
        """Whether a message may be written now: open, and the transport keeps up."""
        transport = self._transport
        return (
            not self._ws.closed
            and not transport.is_closing()
            and transport.get_write_buffer_size() < _WRITE_LIMIT
        )

    def write_now(self, message: bytes) -> None:
        """Write one binary message."""
        self._transport.write(masked_frame(message, os.urandom(4)))
