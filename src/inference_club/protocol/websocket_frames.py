"""The one kind of WebSocket frame the gateway's tunnel fast paths write and read (RFC 6455,
section 5): final and binary, with no extension bits; masked when the agent (the client) sent
it, and unmasked from the gateway."""

from typing import Final

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask

__all__ = ["FINAL_BINARY", "LENGTH_16", "LENGTH_64", "MASKED", "apply_mask", "frame_header"]

# FIN with the binary opcode and no extension bits.
FINAL_BINARY: Final = 0x82
# The second byte's mask bit; the rest of it is the length, or says where the length is.
MASKED: Final = 0x80
LENGTH_16: Final = 126
LENGTH_64: Final = 127


def frame_header(length: int) -> bytes:
    """The header of a final, unmasked binary frame of ``length`` bytes (a server's)."""
    if length < LENGTH_16:
        return bytes((FINAL_BINARY, length))
    if length < 1 << 16:
        return bytes((FINAL_BINARY, LENGTH_16)) + length.to_bytes(2, "big")
    return bytes((FINAL_BINARY, LENGTH_64)) + length.to_bytes(8, "big")
