"""Plain binary WebSocket frames from a client, read straight from the socket's bytes.

Every message an agent sends is one final, masked, binary frame (RFC 6455, section 5).
Reading those here costs a header check and one unmasking call, where a general parser
suspends a generator per frame and makes a list and a frame object per message; with
thousands of tunnels those survive until each one's next message, and young collections
grow to walk them all. Anything else at the head of the buffer (text, a control frame, a
fragment, an extension bit, an unmasked or oversized frame) is left for the general parser,
which knows how to answer it or fail the connection.
"""

from typing import Final

from inference_club.protocol.websocket_frames import (
    FINAL_BINARY,
    MASK_SIZE,
    MASKED,
    apply_mask,
    frame_extent,
)


class NotPlain:
    """The frame at the head of the buffer is one the general parser must read."""


NOT_PLAIN: Final = NotPlain()


class ClientFrames:
    """Bytes read from a client, taken one plain binary frame at a time."""

    __slots__ = ("_buffer", "_max_size")

    def __init__(self, max_size: int | None) -> None:
        self._buffer = bytearray()
        self._max_size = max_size

    def __len__(self) -> int:
        """Bytes held that are not a whole frame yet (or were not taken)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        """Add bytes read from the socket."""
        self._buffer += data

    def next_message(self) -> bytes | NotPlain | None:
        """The payload of the frame at the head, once it is whole; None until then, and
        ``NOT_PLAIN`` when that frame is not a plain binary one (nothing is taken then)."""
        buffer = self._buffer
        head = _head(buffer, self._max_size)
        if head is None or isinstance(head, NotPlain):
            return head
        mask_start, end = head
        if len(buffer) < end:
            return None
        payload_start = mask_start + MASK_SIZE
        mask = bytes(buffer[mask_start:payload_start])
        with memoryview(buffer) as view:
            payload = apply_mask(view[payload_start:end], mask)
        del buffer[:end]
        return payload

    def take_rest(self) -> bytes:
        """Everything held, for the general parser; nothing is left here."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest


def _head(buffer: bytearray, max_size: int | None) -> tuple[int, int] | NotPlain | None:
    """Where the mask of the frame at the head starts and where the frame ends; None while
    its header is incomplete, ``NOT_PLAIN`` when it is not a plain binary frame."""
    if len(buffer) < 2:
        return None
    if buffer[0] != FINAL_BINARY or not buffer[1] & MASKED:
        return NOT_PLAIN
    extent = frame_extent(buffer)
    if extent is None:
        return None
    payload_start, end = extent
    if max_size is not None and end - payload_start > max_size:
        return NOT_PLAIN
    return payload_start - MASK_SIZE, end
