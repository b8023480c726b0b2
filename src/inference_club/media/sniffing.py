"""Recognise audio and image formats from their first bytes, never from a file name."""

from collections.abc import Mapping
from types import MappingProxyType

# Enough for every signature below; an ID3 tag is skipped only when the head reaches past it.
SNIFF_BYTES = 64

FILE_EXTENSIONS: Mapping[str, str] = MappingProxyType(
    {
        "audio/wav": "wav",
        "audio/mpeg": "mp3",
        "audio/mp4": "m4a",
        "audio/flac": "flac",
        "audio/ogg": "ogg",
        "audio/webm": "webm",
        "image/png": "png",
        "image/jpeg": "jpg",
        "image/webp": "webp",
        "image/gif": "gif",
    }
)

# ISO base media brands that announce a still image (HEIF, AVIF), not a sound track.
_IMAGE_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif"})
_ID3_HEADER = 10
_AUDIO_MAGIC = (
    (b"fLaC", "audio/flac"),
    (b"OggS", "audio/ogg"),
    # EBML: Matroska and WebM share it, and FFmpeg reads both the same way.
    (b"\x1a\x45\xdf\xa3", "audio/webm"),
)


def sniff_audio(head: bytes) -> str | None:
    """The MIME type of the audio file that starts with ``head``, or None if unrecognised."""
    if head.startswith(b"ID3"):
        return _after_id3(head)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    for magic, mime in _AUDIO_MAGIC:
        if head.startswith(magic):
            return mime
    if _is_iso_media(head):
        return "audio/mp4"
    return "audio/mpeg" if _is_mpeg_audio_frame(head) else None


def sniff_image(head: bytes) -> str | None:
    """The MIME type of the image file that starts with ``head``, or None if unrecognised."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def id3_tag_size(head: bytes) -> int | None:
    """Bytes taken by the ID3v2 tag that opens ``head`` (header and footer included), if any."""
    if len(head) < _ID3_HEADER or not head.startswith(b"ID3"):
        return None
    size_bytes = head[6:10]
    if any(byte & 0x80 for byte in size_bytes):
        return None
    # The size is "syncsafe": four 7-bit groups, so no byte of it looks like a frame sync.
    size = 0
    for byte in size_bytes:
        size = (size << 7) | byte
    has_footer = bool(head[5] & 0x10)
    return _ID3_HEADER + size + (_ID3_HEADER if has_footer else 0)


def _after_id3(head: bytes) -> str | None:
    tag_size = id3_tag_size(head)
    if tag_size is None:
        return None
    # Some FLAC encoders prepend ID3 too; with no bytes past the tag, MP3 is the convention.
    if head[tag_size : tag_size + 4] == b"fLaC":
        return "audio/flac"
    return "audio/mpeg"


def _is_iso_media(head: bytes) -> bool:
    if head[4:8] != b"ftyp" or len(head) < 12:
        return False
    box_size = int.from_bytes(head[:4], "big")
    return box_size >= 12 and head[8:12] not in _IMAGE_BRANDS


def _is_mpeg_audio_frame(head: bytes) -> bool:
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    bitrate_index = head[2] >> 4
    sample_rate_index = (head[2] >> 2) & 0b11
    # Reserved values; layer 0 is also how ADTS AAC headers look, which is not MP3.
    return version != 0b01 and layer != 0 and bitrate_index != 0b1111 and sample_rate_index != 0b11
