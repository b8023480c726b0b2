"""Frames sent during one turn of the event loop leave together, in as few messages as fit.

Every WebSocket message costs framing on both sides and a system call. Under load, many
streams have a frame ready in the same turn (a chunk from each of a hundred streams, replies
finishing together); one writer task gathers whatever was queued while it was away and
sends it as batch messages, each within the size limit.

``send`` returns once its frames are written. The relays' data path uses ``send_soon``
instead, which returns at once unless more than the high-water mark is waiting, like a
stream writer's ``drain``: back-pressure still reaches a sender on a congested tunnel, but an
uncongested one costs no wake-up per frame.

Given a ``DirectWriter`` (a socket it can write to without waiting), the writer task is
left out whenever the socket is ready and the task has nothing in hand. By default the first
frames queued in a turn are written in the call that queued them, and frames queued later in
that turn gather and leave in one write when the turn ends: a lone reply leaves without
waiting for the loop to come round, while a busy turn still costs two writes, not one per
sender. With ``at_turn_end``, everything queued in a turn leaves in one write when it ends:
one write per turn however the turn began, for a sender whose frames come from many sockets
read in the same turn (the agent's chunks). Otherwise the task writes them, in order.

A sender that waits for its frames to be written gets a future for them; frames nobody waits
for cost none.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from inference_club.protocol.frames import (
    MAX_FRAME_SIZE,
    Encoded,
    Frame,
    encode_body_parts,
    encode_parts,
    encoded_size,
    pack_message_parts,
)

WriteMessage = Callable[[bytes], Awaitable[None]]

# Bytes queued and not yet taken by the writer beyond which ``send_soon`` waits.
HIGH_WATER = 1 << 20


class DirectWriter(Protocol):
    """A socket the outbox can write to in the call that gathers the frames."""

    def ready(self) -> bool:
        """Whether a message may be written now (open, not pushing back)."""

    def write_parts(self, parts: Sequence[bytes]) -> None:
        """Write one message: ``parts``, joined in order."""


class Outbox:
    """Queues encoded frames and writes them in order through ``write``, batched per turn."""

    def __init__(
        self,
        write: WriteMessage,
        *,
        max_message: int = MAX_FRAME_SIZE,
        high_water: int = HIGH_WATER,
        direct: DirectWriter | None = None,
        at_turn_end: bool = False,
    ) -> None:
        self._write = write
        self._direct = direct
        self._at_turn_end = at_turn_end
        # The writer task holds a batch it is writing: the direct path must not overtake it.
        self._writing = False
        self._max_message = max_message
        self._high_water = high_water
        self._queued: list[Encoded] = []
        self._queued_bytes = 0
        # Resolved when the frames queued so far are written; made only once a sender waits.
        self._written: asyncio.Future[None] | None = None
        self._wakeup = asyncio.Event()
        # Set once this turn wrote to the direct socket; cleared when the turn ends.
        self._wrote_in_turn = False
        self._writer: asyncio.Task[None] | None = None
        self._error: ConnectionError | None = None

    async def send(self, frames: Sequence[Frame]) -> None:
        """Queue ``frames`` after everything queued before, and wait until they are written.

        Raises ConnectionError once a write failed or the outbox was closed.
        """
        self._queue(frames)
        if self._queued:  # not written in the call that queued them
            await asyncio.shield(self._written_future())
        elif self._error is not None:
            raise self._error

    async def send_soon(self, frames: Sequence[Frame]) -> None:
        """Queue ``frames`` and return at once, unless more than the high-water mark waits to be
        written: then wait until it is. A write that fails later fails every send after it.

        Raises ConnectionError once a write failed or the outbox was closed.
        """
        self._queue(frames)
        if self._queued_bytes > self._high_water:
            await asyncio.shield(self._written_future())

    def post(self, frames: Sequence[Frame]) -> None:
        """Queue ``frames`` like ``send`` without waiting for the write (heartbeats: a
        congested tunnel must not hold up the pings of all the others)."""
        self._queue(frames)

    def try_post(self, frames: Sequence[Frame]) -> bool:
        """Queue ``frames`` if nothing holds them back: False once the high-water mark is passed
        or the outbox failed, and then nothing is queued (the caller sends them the way that
        waits, or learns of the failure)."""
        if self._error is not None or self._queued_bytes > self._high_water:
            return False
        self._queue(frames)
        return True

    def try_post_body(self, stream_id: int, data: bytes) -> bool:
        """``try_post`` for one body chunk, with no frame object to make and take apart: the
        relays' path for every chunk of a stream."""
        if self._error is not None or self._queued_bytes > self._high_water:
            return False
        header, data = encode_body_parts(stream_id, data)
        first = not self._queued  # else their write is arranged already
        self._queued.append((header, data))
        self._queued_bytes += len(header) + len(data)
        if first:
            self._arrange_write()
        return True

    def _queue(self, frames: Sequence[Frame]) -> None:
        if self._error is not None:
            raise self._error
        encoded = [encode_parts(frame) for frame in frames]  # a bad frame fails only its sender
        first = not self._queued  # else their write is arranged already
        self._queued.extend(encoded)
        self._queued_bytes += sum(map(encoded_size, encoded))
        if first and self._queued:
            self._arrange_write()

    def _written_future(self) -> asyncio.Future[None]:
        """What a sender waits on: resolved once the frames queued so far are written."""
        written = self._written
        if written is None:
            written = self._written = asyncio.get_running_loop().create_future()
            # Nobody may wait (a sender cancelled meanwhile): never warn about its outcome.
            written.add_done_callback(_retrieve)
        return written

    def _arrange_write(self) -> None:
        """The first frames since the last write are queued: have them written, now, when the
        turn ends, or by the writer task."""
        if self._direct is None or self._writing:
            self._wake_writer()
        elif self._at_turn_end or self._wrote_in_turn:
            # With the rest of this turn, at its end.
            asyncio.get_running_loop().call_soon(self._write_direct)
        else:
            self._wrote_in_turn = True
            asyncio.get_running_loop().call_soon(self._end_turn)
            self._write_direct()

    def _wake_writer(self) -> None:
        self._wakeup.set()
        if self._writer is None:
            self._writer = asyncio.create_task(self._run(), name="tunnel-outbox")

    def _take_batch(self) -> tuple[list[list[bytes]], asyncio.Future[None] | None]:
        """Everything queued, packed into messages (each as the parts that make it), and the
        future its senders wait on."""
        queued, self._queued = self._queued, []
        self._queued_bytes = 0
        written, self._written = self._written, None
        return pack_message_parts(queued, self._max_message), written

    def _end_turn(self) -> None:
        self._wrote_in_turn = False

    def _write_direct(self) -> None:
        """The frames queued so far, written in this call."""
        direct = self._direct
        if not self._queued or direct is None:
            return  # failed, or handed to the writer task meanwhile
        if self._writing or not direct.ready():
            self._wake_writer()
            return
        messages, written = self._take_batch()
        try:
            for parts in messages:
                direct.write_parts(parts)
        except Exception as exc:
            self._fail(exc, written)
            return
        _resolve(written)

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            messages, written = self._take_batch()
            self._writing = True
            try:
                for parts in messages:
                    await self._write(parts[0] if len(parts) == 1 else b"".join(parts))
            except asyncio.CancelledError:
                self._fail(ConnectionError("the tunnel is closed"), written)
                raise
            except Exception as exc:
                self._fail(exc, written)
                return
            finally:
                self._writing = False
            _resolve(written)

    def _fail(self, exc: Exception, written: asyncio.Future[None] | None) -> None:
        error = exc if isinstance(exc, ConnectionError) else ConnectionError(str(exc))
        self._error = self._error or error
        for future in (written, self._written):
            if future is not None and not future.done():
                future.set_exception(self._error)
        self._queued = []
        self._queued_bytes = 0
        self._written = None

    async def close(self) -> None:
        """Stop the writer; frames not yet written are dropped and their senders fail."""
        self._fail(ConnectionError("the tunnel is closed"), None)
        writer, self._writer = self._writer, None
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer


def _resolve(written: asyncio.Future[None] | None) -> None:
    if written is not None and not written.done():
        written.set_result(None)


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
