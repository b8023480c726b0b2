"""Media helpers for the gateway: sniff audio and image formats, measure audio duration.

This package imports nothing else of inference-club.
"""

from inference_club.media.duration import audio_duration
from inference_club.media.errors import MediaError
from inference_club.media.sniffing import (
    FILE_EXTENSIONS,
    SNIFF_BYTES,
    id3_tag_size,
    sniff_audio,
    sniff_image,
)

__all__ = [
    "FILE_EXTENSIONS",
    "SNIFF_BYTES",
    "MediaError",
    "audio_duration",
    "id3_tag_size",
    "sniff_audio",
    "sniff_image",
]
