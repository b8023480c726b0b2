"""RGB pixel buffers: decoding uploaded images with PyAV, and encoding them as PNG."""

import io
from collections.abc import Iterator
from dataclasses import dataclass

import av
import av.error

from inference_club.demo.png import encode_png

# Edits hold a few copies of the picture in memory; this bounds each to 12 MB.
MAX_INPUT_SIDE = 2048


class UndecodableImageError(ValueError):
    """The upload is not a PNG, JPEG, WebP or GIF image of an accepted size."""


@dataclass(frozen=True, slots=True)
class RgbImage:
    """Pixels as rows of R, G, B bytes, top to bottom, without padding."""

    width: int
    height: int
    pixels: bytes

    def rows(self) -> Iterator[bytes]:
        """Each row's ``width * 3`` bytes."""
        stride = self.width * 3
        for start in range(0, stride * self.height, stride):
            yield self.pixels[start : start + stride]

    def to_png(self) -> bytes:
        """The image as a PNG file."""
        return encode_png(self.width, self.height, self.rows())


def decode_image(data: bytes) -> RgbImage:
    """The first frame of an image file as RGB."""
    width, height, pixels = _decode(data, "rgb24", 3)
    return RgbImage(width, height, pixels)


def decode_alpha(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and one alpha byte per pixel of an image file (opaque if it has none)."""
    width, height, pixels = _decode(data, "rgba", 4)
    return width, height, pixels[3::4]


def _decode(data: bytes, pixel_format: str, channels: int) -> tuple[int, int, bytes]:
    try:
        with av.open(io.BytesIO(data), "r", metadata_errors="replace") as container:
            if not container.streams.video:
                msg = "the file is not an image"
                raise UndecodableImageError(msg)
            frame = next(container.decode(container.streams.video[0]), None)
            if frame is None:
                msg = "the file holds no picture"
                raise UndecodableImageError(msg)
            if max(frame.width, frame.height) > MAX_INPUT_SIDE:
                msg = f"images may be at most {MAX_INPUT_SIDE} pixels on each side"
                raise UndecodableImageError(msg)
            return _packed_pixels(frame.reformat(format=pixel_format), channels)
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        msg = "the file could not be decoded as an image"
        raise UndecodableImageError(msg) from exc


def _packed_pixels(frame: av.VideoFrame, channels: int) -> tuple[int, int, bytes]:
    plane = frame.planes[0]
    raw = bytes(plane)
    row_size = frame.width * channels
    # Planes pad each line for SIMD; keep only the pixels.
    pixels = b"".join(
        raw[start : start + row_size]
        for start in range(0, plane.line_size * frame.height, plane.line_size)
    )
    return frame.width, frame.height, pixels
