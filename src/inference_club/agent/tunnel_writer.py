"""The agent's tunnel messages written straight to the socket, as masked WebSocket frames.

aiohttp writes a message through a coroutine, so each batch of frames the agent sent used to
wake the outbox's writer task, and go through aiohttp's writer, about ten microseconds a batch
on top of the write itself. While a stream trickles chunks, every chunk is a batch of its own.
Given this writer, the outbox writes what a loop turn queued in one call at the turn's end
(see ``inference_club.protocol.outbox``), with no task and no coroutine.

A client's frames must be masked with a fresh, unpredictable key (RFC 6455, section 5.3). The
frames go to the transport aiohttp's own writer uses, whole, so they keep their order with
the frames it writes (pongs, the close); the writer task, which goes through aiohttp, takes
over whenever the transport pushes back or the connection closes.
"""

from collections.abc import Sequence
from typing import Protocol

import aiohttp

from inference_club.protocol.websocket_frames import MaskKeys, masked_frame_parts

# The transport's buffer beyond which a message waits for the writer task (and its drain).
_WRITE_LIMIT = 64 * 1024


class _Transport(Protocol):
    """What the writer needs of the connection's transport (asyncio's or uvloop's)."""

    def write(self, data: bytes) -> None: ...

    def writelines(self, data: Sequence[bytes]) -> None: ...

    def is_closing(self) -> bool: ...

    def get_write_buffer_size(self) -> int: ...


class TunnelWriter:
    """Writes whole messages on the tunnel's transport without waiting (``DirectWriter``)."""

    __slots__ = ("_keys", "_transport", "_ws")

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, transport: _Transport) -> None:
        self._ws = ws
        self._transport = transport
        self._keys = MaskKeys()

    @classmethod
    def of(cls, ws: aiohttp.ClientWebSocketResponse) -> "TunnelWriter | None":
        """The writer for ``ws``, or None when aiohttp does not show a transport it can use
        (its frames then all go through aiohttp)."""
        transport = getattr(getattr(ws, "_writer", None), "transport", None)
        if not all(
            callable(getattr(transport, name, None))
            for name in ("write", "writelines", "is_closing", "get_write_buffer_size")
        ):
            return None
        return cls(ws, transport)  # type: ignore[arg-type]

    def ready(self) -> bool:
        """Whether a message may be written now: open, and the transport keeps up."""
        transport = self._transport
        return (
            not self._ws.closed
            and not transport.is_closing()
            and transport.get_write_buffer_size() < _WRITE_LIMIT
        )

    def write_parts(self, parts: Sequence[bytes]) -> None:
        """Write one binary message: ``parts``, joined in order. A frame in several pieces
        goes in one call, which uvloop sends, on a plain TCP connection, with one system
        call and without joining them."""
        pieces = masked_frame_parts(parts, self._keys.next())
        if len(pieces) == 1:
            self._transport.write(pieces[0])
        else:
            self._transport.writelines(pieces)
