"""The gateway's tunnel messages read straight from the socket, each handled in the call that
read it.

Through aiohttp, every message the gateway sends is parsed into a message object, queued,
wakes the tunnel's task, and climbs back through ``receive`` before the agent looks at it;
a request waits for that wake-up before it goes to the model server. Every message the
gateway sends on the tunnel is one final, unmasked, binary frame (RFC 6455, section 5), so
this reader sits between the socket and aiohttp's protocol, takes those frames' payloads to
a sink as they complete, and hands aiohttp every other frame whole (the close, a ping, text,
a fragment, a frame over the size limit), which answers it as before.

aiohttp only ever sees whole frames, so its parser is always between frames. A frame goes to
the sink only while aiohttp holds no message the tunnel's task has not read yet: what the
gateway sent keeps its order whichever way it is read.
"""

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp

from inference_club.protocol.websocket_frames import FINAL_BINARY, MASKED, frame_extent

MessageSink = Callable[[bytes], None]

# The opcodes below this one are data frames (continuation, text, binary); the rest control.
_FIRST_CONTROL_OPCODE = 0x8


class TunnelReader(asyncio.Protocol):
    """Reads the tunnel's socket in front of aiohttp's protocol (see the module's doc)."""

    def __init__(
        self,
        inner: asyncio.Protocol,
        queue: Any,
        sink: MessageSink,
        max_size: int,
    ) -> None:
        self._inner = inner
        # aiohttp's queue of messages for ``receive``, and its parser's parked state.
        self._queue = queue
        self._sink: MessageSink | None = sink
        self._max_size = max_size
        # Bytes of a frame that is not whole yet (added to in place: a large frame comes in
        # many reads).
        self._pending = bytearray()
        # aiohttp was handed the first frames of a fragmented message and not yet its last.
        self._fragmented = False

    @classmethod
    def install(
        cls, ws: aiohttp.ClientWebSocketResponse, sink: MessageSink, max_size: int
    ) -> "TunnelReader | None":
        """Put a reader in front of ``ws``'s protocol; None, with nothing changed, when aiohttp
        does not show what the reader needs (every message then goes through ``receive``)."""
        transport = getattr(getattr(ws, "_writer", None), "transport", None)
        queue = getattr(ws, "_reader", None)
        if (
            transport is None
            or not callable(getattr(transport, "set_protocol", None))
            or not callable(getattr(transport, "get_protocol", None))
            or not hasattr(queue, "_buffer")
            or not hasattr(queue, "_stalled_reader")
        ):
            return None
        inner = transport.get_protocol()
        if not callable(getattr(inner, "data_received", None)):
            return None
        reader = cls(inner, queue, sink, max_size)
        transport.set_protocol(reader)
        return reader

    def stop(self) -> None:
        """Hand everything to aiohttp from now on, starting with a frame begun here."""
        self._sink = None
        pending, self._pending = self._pending, bytearray()
        if pending:
            self._inner.data_received(bytes(pending))

    def data_received(self, data: bytes) -> None:
        """Whole plain frames to the sink, other whole frames to aiohttp, in order."""
        if self._sink is None:
            self._inner.data_received(data)
            return
        if self._pending:
            joined = self._join(data)
            if joined is None:
                return  # the frame begun earlier is still not whole
            data = joined
        position = 0
        size = len(data)
        while position < size:
            extent = frame_extent(data, position)
            if extent is None:
                break  # the header is still on its way
            payload_start, end = extent
            if end - payload_start > self._max_size:
                # aiohttp refuses it as it should, without this reader holding it first.
                self._pending = bytearray(data[position:])
                self.stop()
                return
            if end > size:
                break  # the rest of the frame is still on its way
            if self._takes(data, position):
                sink = self._sink
                assert sink is not None
                sink(data[payload_start:end])
                if self._sink is None:  # the sink stopped the reader: aiohttp reads on
                    self._inner.data_received(data[end:])
                    return
            else:
                self._inner.data_received(data[position:end])
            position = end
        if position < size:
            self._pending = bytearray(data[position:])

    def _join(self, data: bytes) -> bytes | None:
        """The bytes held with ``data`` after them, once the frame they begin is whole (or
        its header says it is over the limit); None until then, with ``data`` kept."""
        pending = self._pending
        pending += data
        extent = frame_extent(pending)
        if (
            extent is not None
            and extent[1] > len(pending)
            and extent[1] - extent[0] <= self._max_size
        ):
            return None
        self._pending = bytearray()
        return bytes(pending)

    def _takes(self, data: bytes, position: int) -> bool:
        """Whether the whole frame at ``position`` goes to the sink rather than to aiohttp: a
        final, unmasked binary frame, while aiohttp has nothing before it."""
        first = data[position]
        if first == FINAL_BINARY and not data[position + 1] & MASKED:
            return not self._fragmented and self._aiohttp_is_idle()
        if first & 0x0F < _FIRST_CONTROL_OPCODE:
            # A data frame for aiohttp: a message in fragments lasts until one with FIN.
            self._fragmented = not first & 0x80
        return False

    def _aiohttp_is_idle(self) -> bool:
        """Whether aiohttp holds no message yet to be read from it, parked or queued."""
        queue = self._queue
        return not queue._buffer and queue._stalled_reader is None

    def eof_received(self) -> bool | None:
        """The gateway half-closed: aiohttp decides."""
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection closed: aiohttp ends its reader; nothing more reaches the sink."""
        self._sink = None
        self._pending = bytearray()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        """The socket pushes back on aiohttp's writes."""
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        """The socket takes aiohttp's writes again."""
        self._inner.resume_writing()
