"""The procedural demo image generator: the same prompt always draws the same picture.

It is no model: a hash of the prompt picks a gradient and a few discs, and an edit re-colours
the input with curves picked the same way. It exists so the image path can run end to end
on a machine without any image model.
"""

import hashlib
import math

from inference_club.demo.raster import RgbImage

_MIN_DISCS = 3
_MAX_DISCS = 8
_BYTES_PER_DISC = 6


def generate(prompt: str, width: int, height: int, variant: int = 0) -> RgbImage:
    """A ``width`` x ``height`` picture that depends only on the prompt and the variant."""
    seed = hashlib.shake_256(f"{variant}\n{prompt}".encode()).digest(64)
    # One gradient strip as long as width + height; each row is a window into it, which
    # draws a diagonal gradient at the cost of one slice per row.
    strip = _gradient(seed[0:3], seed[3:6], width + height)
    discs = [
        _Disc.from_seed(seed[offset : offset + _BYTES_PER_DISC], width, height)
        for offset in range(7, 7 + _BYTES_PER_DISC * _disc_count(seed[6]), _BYTES_PER_DISC)
    ]
    pixels = bytearray()
    for y in range(height):
        row = bytearray(strip[(height - 1 - y) * 3 : (height - 1 - y + width) * 3])
        for disc in discs:
            disc.paint(row, y, width)
        pixels += row
    return RgbImage(width, height, bytes(pixels))


def recolor(
    image: RgbImage, prompt: str, selection: bytes | None = None, variant: int = 0
) -> RgbImage:
    """``image`` re-coloured by curves from the prompt's hash, where ``selection`` is non-zero.

    ``selection`` has one byte per pixel; None means the whole image.
    """
    seed = hashlib.shake_256(f"edit {variant}\n{prompt}".encode()).digest(8)
    invert = bool(seed[6] & 1)
    recolored = bytearray(len(image.pixels))
    for channel in range(3):
        gain = 0.5 + seed[channel] / 510
        offset = seed[3 + channel] // 2
        curve = bytes(
            min(255, int((255 - value if invert else value) * gain + offset))
            for value in range(256)
        )
        recolored[channel::3] = image.pixels[channel::3].translate(curve)
    if selection is None:
        return RgbImage(image.width, image.height, bytes(recolored))
    return RgbImage(image.width, image.height, _blend(image.pixels, bytes(recolored), selection))


def _blend(original: bytes, edited: bytes, selection: bytes) -> bytes:
    """``edited`` where ``selection`` is non-zero, else ``original``, without a per-pixel loop."""
    chosen = selection.translate(bytes([0]) + bytes([0xFF]) * 255)
    mask = bytearray(len(original))
    for channel in range(3):
        mask[channel::3] = chosen
    # Big integers do the bitwise select across the whole buffer at C speed.
    original_bits = int.from_bytes(original, "big")
    edited_bits = int.from_bytes(edited, "big")
    mask_bits = int.from_bytes(mask, "big")
    blended = original_bits ^ ((original_bits ^ edited_bits) & mask_bits)
    return blended.to_bytes(len(original), "big")


def _disc_count(byte: int) -> int:
    return _MIN_DISCS + byte % (_MAX_DISCS - _MIN_DISCS + 1)


def _gradient(start: bytes, end: bytes, length: int) -> bytes:
    strip = bytearray()
    last = max(length - 1, 1)
    for index in range(length):
        strip += bytes(round(a + (b - a) * index / last) for a, b in zip(start, end, strict=True))
    return bytes(strip)


class _Disc:
    """A filled circle, painted row by row as one slice assignment."""

    __slots__ = ("center_x", "center_y", "color", "radius")

    def __init__(self, center_x: int, center_y: int, radius: int, color: bytes) -> None:
        self.center_x = center_x
        self.center_y = center_y
        self.radius = radius
        self.color = color

    @classmethod
    def from_seed(cls, seed: bytes, width: int, height: int) -> "_Disc":
        radius = max(1, round(min(width, height) * (0.06 + seed[2] / 255 * 0.24)))
        return cls(seed[0] * width // 256, seed[1] * height // 256, radius, seed[3:6])

    def paint(self, row: bytearray, y: int, width: int) -> None:
        offset = y - self.center_y
        if abs(offset) > self.radius:
            return
        half = math.isqrt(self.radius * self.radius - offset * offset)
        left = max(0, self.center_x - half)
        right = min(width, self.center_x + half + 1)
        if right > left:
            row[left * 3 : right * 3] = self.color * (right - left)
