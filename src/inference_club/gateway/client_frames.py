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
    LENGTH_16,
    LENGTH_64,
    MASK_SIZE,
    MASKED,
    apply_mask,
    frame_extent,
)


class NotPlain:
    """The frame at the head of the buffer is one the general parser must read."""


NOT_PLAIN: Final = NotPlain()


class ClientFrames:
    """Bytes read from a client, taken one plain binary frame at a time.

    A frame that came whole in one read is unmasked straight from that read's bytes; only a
    frame split across reads is gathered first, and from each read only the bytes it still
    needs: copying every read into a buffer would copy each byte once more, and the buffer
    that grows and shrinks with the reads would cost fresh memory pages all the time.
    """

    __slots__ = ("_buffer", "_data", "_max_size", "_offset")

    def __init__(self, max_size: int | None) -> None:
        # The start of a frame split across reads, gathered until it is whole.
        self._buffer = bytearray()
        # The last bytes fed, not yet taken from ``_offset`` on.
        self._data = b""
        self._offset = 0
        self._max_size = max_size

    def __len__(self) -> int:
        """Bytes held that are not a whole frame yet (or were not taken)."""
        return len(self._buffer) + len(self._data) - self._offset

    def feed(self, data: bytes) -> None:
        """Add bytes read from the socket."""
        self._keep_rest()
        self._data = data

    def next_message(self) -> bytes | NotPlain | None:
        """The payload of the frame at the head, once it is whole; None until then, and
        ``NOT_PLAIN`` when that frame is not a plain binary one (nothing is taken then)."""
        if self._buffer:
            return self._from_buffer()
        data, offset = self._data, self._offset
        head = _head(data, offset, self._max_size)
        if isinstance(head, NotPlain):
            return head
        if head is None or len(data) < head[1]:
            self._keep_rest()
            return None
        mask_start, end = head
        self._offset = end
        return _unmasked(data, mask_start, end)

    def take_rest(self) -> bytes:
        """Everything held, for the general parser; nothing is left here."""
        rest = bytes(self._buffer) + self._data[self._offset :]
        self._buffer.clear()
        self._data = b""
        self._offset = 0
        return rest

    def _from_buffer(self) -> bytes | NotPlain | None:
        """The frame gathered in the buffer, completed from the last read as far as it can be."""
        buffer = self._buffer
        while True:
            head = _head(buffer, 0, self._max_size)
            if isinstance(head, NotPlain):
                return head
            if head is not None and len(buffer) >= head[1]:
                break
            # What the frame still lacks, or what its header does (so the next frame, which
            # may have come whole, is not gathered).
            wanted = (head[1] if head is not None else _header_size(buffer)) - len(buffer)
            data, offset = self._data, self._offset
            if offset >= len(data):
                return None
            taken = min(wanted, len(data) - offset)
            with memoryview(data) as view:
                buffer += view[offset : offset + taken]
            self._offset = offset + taken
        mask_start, end = head
        payload = _unmasked(buffer, mask_start, end)
        del buffer[:end]
        return payload

    def _keep_rest(self) -> None:
        """Move what is left of the last read (the start of a frame) into the buffer."""
        data, offset = self._data, self._offset
        if offset < len(data):
            with memoryview(data) as view:
                self._buffer += view[offset:]
        self._data = b""
        self._offset = 0


def _unmasked(data: bytes | bytearray, mask_start: int, end: int) -> bytes:
    """The payload of the masked frame in ``data`` whose mask starts at ``mask_start``."""
    payload_start = mask_start + MASK_SIZE
    mask = bytes(data[mask_start:payload_start])
    with memoryview(data) as view:
        return apply_mask(view[payload_start:end], mask)


def _header_size(start: bytearray) -> int:
    """How long the header of a masked frame beginning with ``start`` is, as far as its
    bytes say: two bytes until the second is known, then those, the length and the mask."""
    if len(start) < 2:
        return 2
    length = start[1] & 0x7F
    width = 2 if length == LENGTH_16 else 8 if length == LENGTH_64 else 0
    return 2 + width + MASK_SIZE


def _head(
    data: bytes | bytearray, start: int, max_size: int | None
) -> tuple[int, int] | NotPlain | None:
    """Where the mask of the frame at ``start`` starts and where the frame ends; None while
    its header is incomplete, ``NOT_PLAIN`` when it is not a plain binary frame."""
    if len(data) - start < 2:
        return None
    if data[start] != FINAL_BINARY or not data[start + 1] & MASKED:
        return NOT_PLAIN
    extent = frame_extent(data, start)
    if extent is None:
        return None
    payload_start, end = extent
    if max_size is not None and end - payload_start > max_size:
        return NOT_PLAIN
    return payload_start - MASK_SIZE, end
