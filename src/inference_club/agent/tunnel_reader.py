"""The gateway's tunnel messages read straight from the socket, each handled in the call that
read it.

Through aiohttp, every message the gateway sends is parsed into a message object, queued,
wakes the tunnel's task, and climbs back through ``receive`` before the agent looks at it;
a request waits for that wake-up before it goes to the model server. Every message the
gateway sends on the tunnel is one final, unmasked, binary frame (RFC 6455, section 5), so
this reader sits between the socket and aiohttp's protocol, takes those frames' payloads to
a sink as they complete, and hands aiohttp every other frame whole (the close, a ping, text,
a fragment, a frame over the size limit), which answers it as before.

The reader is put in front of aiohttp before the agent says hello, so it has seen every frame
from the first byte: aiohttp only ever gets whole frames, and is always between two. A frame
goes to the sink only while aiohttp holds no message the tunnel's task has not read yet, and
has not failed or closed: what the gateway sent keeps its order whichever way it is read.

It relies on the connection having no read timeout and no heartbeat of aiohttp's own
(``ws_receive=None``, ``heartbeat=None``): the frames it takes never pass aiohttp's protocol,
which would otherwise restart those timers on them.
"""

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp

from inference_club.protocol.websocket_frames import FINAL_BINARY, MASKED, frame_extent

MessageSink = Callable[[bytes], None]

# The opcodes below this one are data frames (continuation, text, binary); the rest control.
_FIRST_CONTROL_OPCODE = 0x8
_CLOSE_OPCODE = 0x8


class TunnelReader(asyncio.Protocol):
    """Reads the tunnel's socket in front of aiohttp's protocol (see the module's doc)."""

    def __init__(self, inner: asyncio.Protocol, queue: Any, max_size: int) -> None:
        self._inner = inner
        # aiohttp's queue of messages for ``receive``, and its parser's parked state.
        self._queue = queue
        # aiohttp refuses a message of this many bytes or more.
        self._max_size = max_size
        # Where whole plain frames go; None while they go to aiohttp like the rest.
        self._sink: MessageSink | None = None
        # Once stopped, every byte goes to aiohttp as it comes.
        self._stopped = False
        # Bytes of a frame that is not whole yet (added to in place: a large frame comes in
        # many reads).
        self._pending = bytearray()
        # aiohttp was handed the first frames of a fragmented message and not yet its last.
        self._fragmented = False

    @classmethod
    def install(cls, ws: aiohttp.ClientWebSocketResponse, max_size: int) -> "TunnelReader | None":
        """Put a reader in front of ``ws``'s protocol, before anything was read from it; None,
        with nothing changed, when aiohttp does not show what the reader needs (every
        message then goes through ``receive``)."""
        transport = getattr(getattr(ws, "_writer", None), "transport", None)
        queue = getattr(ws, "_reader", None)
        if (
            transport is None
            or not callable(getattr(transport, "set_protocol", None))
            or not callable(getattr(transport, "get_protocol", None))
            or not all(hasattr(queue, name) for name in ("_buffer", "_stalled_reader"))
            or not all(
                callable(getattr(queue, name, None))
                for name in ("is_eof", "exception", "feed_data")
            )
        ):
            return None
        inner = transport.get_protocol()
        if not callable(getattr(inner, "data_received", None)):
            return None
        reader = cls(inner, queue, max_size)
        transport.set_protocol(reader)
        return reader

    def take(self, sink: MessageSink) -> None:
        """Hand whole plain binary messages to ``sink`` from now on. It must not raise."""
        if not self._stopped:
            self._sink = sink

    def stop(self) -> None:
        """Hand everything to aiohttp from now on, starting with a frame begun here."""
        self._stopped = True
        self._sink = None
        pending, self._pending = self._pending, bytearray()
        if pending:
            self._inner.data_received(bytes(pending))

    def fail(self, error: Exception) -> None:
        """Stop, and have ``receive`` return an error message carrying ``error`` next (nothing
        waits before it there: the sink only runs while aiohttp holds nothing)."""
        self.stop()
        self._queue.feed_data(aiohttp.WSMessage(aiohttp.WSMsgType.ERROR, error, None), 0)

    def data_received(self, data: bytes) -> None:
        """Whole plain frames to the sink, other whole frames to aiohttp, in order."""
        if self._stopped:
            self._inner.data_received(data)
            return
        if self._pending:
            joined = self._join(data)
            if joined is None:
                return  # the frame begun earlier is still not whole
            data = joined
        self._read(data)

    def _read(self, data: bytes) -> None:
        """The frames ``data`` holds, from its first byte; what ends it unfinished is kept."""
        position = 0
        # Where the frames not taken since the last one taken begin: they go to aiohttp
        # together, in one call.
        unread = 0
        # Once aiohttp holds a message, it holds it for the rest of this call (only the
        # tunnel's task reads it): nothing more is taken, and nothing more asked.
        aiohttp_busy = self._sink is None
        size = len(data)
        while position < size:
            extent = frame_extent(data, position)
            if extent is None:
                break  # the header is still on its way
            payload_start, end = extent
            if end - payload_start >= self._max_size or self._stopped:
                # aiohttp refuses an oversized frame as it should, without this reader holding
                # it first; after a close, nothing more is taken.
                self._forward(data, unread, position)
                self._pending = bytearray(data[position:])
                self.stop()
                return
            if end > size:
                break  # the rest of the frame is still on its way
            if not self._plain(data, position) or aiohttp_busy:
                position = end
                continue
            # aiohttp gets what came before first: whether it holds a message now decides.
            self._forward(data, unread, position)
            unread = position
            if self._fragmented or not self._aiohttp_is_idle():
                aiohttp_busy = True
                position = end
                continue
            unread = position = end
            sink = self._sink
            assert sink is not None
            sink(data[payload_start:end])
            if self._stopped:  # the sink stopped the reader: aiohttp reads on
                if end < size:
                    self._inner.data_received(data[end:])
                return
        self._forward(data, unread, position)
        if position < size:
            self._pending = bytearray(data[position:])
        if self._stopped:  # a close was handed on: the rest, held or not, is aiohttp's
            self.stop()

    def _forward(self, data: bytes, start: int, end: int) -> None:
        """Hand aiohttp the whole frames in ``data[start:end]``."""
        if start < end:
            self._inner.data_received(data[start:end] if start or end < len(data) else data)

    def _join(self, data: bytes) -> bytes | None:
        """The bytes held with ``data`` after them, once the frame they begin is whole (or
        its header says it is over the limit); None until then, with ``data`` kept."""
        pending = self._pending
        pending += data
        extent = frame_extent(pending)
        if (
            extent is not None
            and extent[1] > len(pending)
            and extent[1] - extent[0] < self._max_size
        ):
            return None
        self._pending = bytearray()
        return bytes(pending)

    def _plain(self, data: bytes, position: int) -> bool:
        """Whether the whole frame at ``position`` is a final, unmasked binary one; of any
        other, what aiohttp will make of it is noted (a message in fragments, a close)."""
        first = data[position]
        if first == FINAL_BINARY and not data[position + 1] & MASKED:
            return True
        opcode = first & 0x0F
        if opcode < _FIRST_CONTROL_OPCODE:
            # A message in fragments lasts until a data frame with FIN.
            self._fragmented = not first & 0x80
        elif opcode == _CLOSE_OPCODE:
            self._stopped = True  # what follows a close is aiohttp's to ignore
        return False

    def _aiohttp_is_idle(self) -> bool:
        """Whether aiohttp holds no message yet to be read from it, parked or queued, and has
        not ended (a close, a failed frame)."""
        queue = self._queue
        return (
            not queue._buffer
            and queue._stalled_reader is None
            and not queue.is_eof()
            and queue.exception() is None
        )

    def eof_received(self) -> bool | None:
        """The gateway half-closed: aiohttp decides."""
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection closed: aiohttp ends its reader; nothing more reaches the sink."""
        self._stopped = True
        self._sink = None
        self._pending = bytearray()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        """The socket pushes back on aiohttp's writes."""
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        """The socket takes aiohttp's writes again."""
        self._inner.resume_writing()
