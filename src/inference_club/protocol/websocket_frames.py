"""The one kind of WebSocket frame the tunnel's fast paths write and read (RFC 6455, section
5): final and binary, with no extension bits; masked when the agent (the client) sends it, and
unmasked from the gateway."""

import os
import sys
from collections.abc import Iterator, Sequence
from typing import Final


def _apply_mask(data: bytes | bytearray | memoryview, mask: bytes | bytearray) -> bytes:
    """``data`` XORed with the 4-byte ``mask`` repeated, as one big-integer XOR."""
    size = len(data)
    repeated = mask * (size // 4) + mask[: size % 4]
    masked = int.from_bytes(data, sys.byteorder) ^ int.from_bytes(repeated, sys.byteorder)
    return masked.to_bytes(size, sys.byteorder)


try:
    # The gateway's install has websockets, whose C extension masks fastest.
    from websockets.speedups import apply_mask
except ImportError:  # the agent alone (no websockets), or websockets without its C extension
    apply_mask = _apply_mask

__all__ = [
    "FINAL_BINARY",
    "LENGTH_16",
    "LENGTH_64",
    "MASKED",
    "MaskKeys",
    "apply_mask",
    "frame_extent",
    "frame_header",
    "masked_frame_parts",
]

# FIN with the binary opcode and no extension bits.
FINAL_BINARY: Final = 0x82
# The second byte's mask bit; the rest of it is the length, or says where the length is.
MASKED: Final = 0x80
LENGTH_16: Final = 126
LENGTH_64: Final = 127
MASK_SIZE: Final = 4
# Parts of a message smaller than this are joined before masking (``masked_frame_parts``).
_JOIN_BELOW = 2048
# Random bytes drawn from the system at a time for masking keys: one call per 1,024 frames.
_KEY_POOL = 4096


def frame_header(length: int, *, masked: bool = False) -> bytes:
    """The header of a final binary frame of ``length`` bytes: unmasked (a server's), or
    masked (a client's, whose key follows it)."""
    mask_bit = MASKED if masked else 0
    if length < LENGTH_16:
        return bytes((FINAL_BINARY, mask_bit | length))
    if length < 1 << 16:
        return bytes((FINAL_BINARY, mask_bit | LENGTH_16)) + length.to_bytes(2, "big")
    return bytes((FINAL_BINARY, mask_bit | LENGTH_64)) + length.to_bytes(8, "big")


def frame_extent(data: bytes | bytearray, start: int = 0) -> tuple[int, int] | None:
    """Where the payload of the frame at ``start`` of ``data`` begins (after its mask key, if
    it has one) and where the frame ends; None while its header is incomplete. Any frame
    (text, control, fragment) has its header laid out the same way."""
    available = len(data) - start
    if available < 2:
        return None
    second = data[start + 1]
    length = second & 0x7F
    payload_start = start + 2
    if length >= LENGTH_16:
        width = 2 if length == LENGTH_16 else 8
        if available < 2 + width:
            return None
        length = int.from_bytes(data[payload_start : payload_start + width], "big")
        payload_start += width
    if second & MASKED:
        payload_start += MASK_SIZE
    return payload_start, payload_start + length


def masked_frame_parts(parts: Sequence[bytes], key: bytes) -> list[bytes]:
    """A final binary frame carrying ``parts`` joined, as a client sends it (masked with the
    4-byte ``key``, which follows the header), in pieces that joined make the frame.

    A large part is masked on its own, where it falls in the payload, so its bytes are
    copied once (by the masking) and never into a joined message. Small parts are joined
    before masking (masking costs more per call than copying them), and the small ones at
    the start go into the first piece, with the header: a small message is one piece, and a
    body (a tunnel header, then its data) two.
    """
    size = sum(map(len, parts))
    if size < _JOIN_BELOW:  # most messages: one piece, the header and the masked parts joined
        return [frame_header(size, masked=True) + key + apply_mask(b"".join(parts), key)]
    pieces = [frame_header(size, masked=True) + key]
    offset = 0
    for run in _runs(parts):
        shift = offset % MASK_SIZE
        masked = apply_mask(run, key[shift:] + key[:shift] if shift else key)
        if offset == 0 and len(run) < _JOIN_BELOW:
            pieces[0] += masked
        else:
            pieces.append(masked)
        offset += len(run)
    return pieces


def _runs(parts: Sequence[bytes]) -> Iterator[bytes]:
    """``parts`` in order, with neighbours smaller than ``_JOIN_BELOW`` joined."""
    small: list[bytes] = []
    for part in parts:
        if len(part) < _JOIN_BELOW:
            small.append(part)
            continue
        if small:
            yield b"".join(small)
            small = []
        yield part
    if small:
        yield b"".join(small)


class MaskKeys:
    """Masking keys from the system's strong source of entropy (RFC 6455, section 5.3 asks for
    one per frame), drawn in bulk rather than with a system call per frame."""

    __slots__ = ("_offset", "_pool")

    def __init__(self) -> None:
        self._pool = b""
        self._offset = 0

    def next(self) -> bytes:
        """A fresh key, never handed out before."""
        offset = self._offset
        if offset + MASK_SIZE > len(self._pool):
            self._pool = os.urandom(_KEY_POOL)
            offset = 0
        self._offset = offset + MASK_SIZE
        return self._pool[offset : offset + MASK_SIZE]
