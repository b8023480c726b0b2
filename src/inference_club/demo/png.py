"""A minimal PNG encoder for 8-bit RGB pixels, with nothing but zlib and struct."""

import struct
import zlib
from collections.abc import Iterable

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_RGB_COLOR_TYPE = 2
_NO_FILTER = b"\x00"


def encode_png(width: int, height: int, rows: Iterable[bytes]) -> bytes:
    """A PNG of ``height`` rows, each ``width * 3`` bytes of R, G, B."""
    compressor = zlib.compressobj(level=6)
    row_size = width * 3
    parts: list[bytes] = []
    count = 0
    for row in rows:
        if len(row) != row_size:
            msg = f"row {count} has {len(row)} bytes, expected {row_size}"
            raise ValueError(msg)
        # Every scanline starts with its filter type; none keeps encoding cheap.
        parts.append(compressor.compress(_NO_FILTER + row))
        count += 1
    if count != height:
        msg = f"got {count} rows, expected {height}"
        raise ValueError(msg)
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, _RGB_COLOR_TYPE, 0, 0, 0)
    return b"".join(
        (
            PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", b"".join(parts)),
            _chunk(b"IEND", b""),
        )
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
