"""Measure how many seconds of sound an audio file holds, reading it in chunks."""

import struct
from pathlib import Path
from typing import BinaryIO

from inference_club.media.errors import MediaError
from inference_club.media.sniffing import SNIFF_BYTES, id3_tag_size, sniff_audio

# FFmpeg demuxer per sniffed type: naming it stops FFmpeg from probing every format it knows.
_DEMUXERS = {
    "audio/wav": "wav",
    "audio/mpeg": "mp3",
    "audio/mp4": "mp4",
    "audio/flac": "flac",
    "audio/ogg": "ogg",
    "audio/webm": "matroska",
}
_WAV_PCM = 1
_WAV_FLOAT = 3
_WAV_EXTENSIBLE = 0xFFFE
_WAV_MAX_CHUNKS = 64


def audio_duration(path: Path) -> float:
    """Seconds of audio in the file at ``path``; MediaError if it is not audio we can measure."""
    with path.open("rb") as file:
        mime = _sniff_file(file)
        if mime is None:
            msg = "not a recognised audio format (wav, mp3, m4a, flac, ogg or webm)"
            raise MediaError(msg)
        if mime == "audio/wav":
            seconds = _wav_header_duration(file)
            if seconds is not None:
                return seconds
    # FFmpeg loads on the first file that needs it: a gateway that only ever sees WAV (or no
    # audio at all) never carries its libraries (about 27 MB) or its objects.
    from inference_club.media.containers import container_duration  # noqa: PLC0415

    return container_duration(path, _DEMUXERS[mime])


def _sniff_file(file: BinaryIO) -> str | None:
    head = file.read(SNIFF_BYTES)
    tag_size = id3_tag_size(head)
    if tag_size is not None and tag_size + 4 > len(head):
        # The tag may hide a FLAC stream; look just past it without reading the tag itself.
        file.seek(tag_size)
        if file.read(4) == b"fLaC":
            return "audio/flac"
    return sniff_audio(head)


def _wav_header_duration(file: BinaryIO) -> float | None:
    """Duration of a PCM or float WAV from its header; None when FFmpeg should decide."""
    file.seek(0, 2)
    file_size = file.tell()
    file.seek(12)
    sample_rate = block_align = 0
    for _ in range(_WAV_MAX_CHUNKS):
        header = file.read(8)
        if len(header) < 8:
            return None
        chunk_id, chunk_size = header[:4], int.from_bytes(header[4:], "little")
        if chunk_id == b"fmt ":
            body = file.read(min(chunk_size, 40))
            if not _is_plain_sample_format(body):
                return None
            sample_rate, block_align = struct.unpack_from("<4xI4xH", body)
            file.seek(chunk_size - len(body) + chunk_size % 2, 1)
        elif chunk_id == b"data":
            if not sample_rate or not block_align:
                return None
            available = file_size - file.tell()
            # Writers that stream to a pipe leave the size as 0 or 0xFFFFFFFF; the file knows.
            data_size = available if chunk_size == 0 else min(chunk_size, available)
            return (data_size // block_align) / sample_rate
        else:
            file.seek(chunk_size + chunk_size % 2, 1)
    return None


def _is_plain_sample_format(fmt_body: bytes) -> bool:
    if len(fmt_body) < 16:
        return False
    format_tag = int.from_bytes(fmt_body[:2], "little")
    if format_tag == _WAV_EXTENSIBLE and len(fmt_body) >= 26:
        # The real format is the first two bytes of the sub-format GUID.
        format_tag = int.from_bytes(fmt_body[24:26], "little")
    return format_tag in (_WAV_PCM, _WAV_FLOAT)
