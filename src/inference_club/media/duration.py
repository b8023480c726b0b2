"""Measure how many seconds of sound an audio file holds, reading it in chunks."""

import struct
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import av.error

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
# A container's stated duration is trusted only this close to what its packets add up to.
_AGREEMENT_SECONDS = 0.25
_AGREEMENT_RATIO = 0.05


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
    return _container_duration(path, _DEMUXERS[mime])


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


def _container_duration(path: Path, demuxer: str) -> float:
    try:
        with av.open(str(path), format=demuxer, metadata_errors="replace") as container:
            if not container.streams.audio:
                msg = "the file has no audio stream"
                raise MediaError(msg)
            stated = container.duration / av.time_base if container.duration else None
            measured = _packet_span(container)
        if measured is None:
            measured = _decoded_duration(path, demuxer)
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        msg = "the audio could not be decoded"
        raise MediaError(msg) from exc
    if stated is not None and abs(stated - measured) <= max(
        _AGREEMENT_SECONDS, _AGREEMENT_RATIO * measured
    ):
        # The stated value accounts for encoder delay and padding, which packets do not.
        return stated
    return measured


def _packet_span(container: av.container.InputContainer) -> float | None:
    """Seconds from the first packet's start to the last packet's end, without decoding."""
    stream = container.streams.audio[0]
    first: int | None = None
    last_end = 0
    time_base: Fraction | None = None
    for packet in container.demux(stream):
        if packet.pts is None or packet.time_base is None:
            continue
        time_base = packet.time_base
        first = packet.pts if first is None else min(first, packet.pts)
        last_end = max(last_end, packet.pts + (packet.duration or 0))
    if first is None or time_base is None:
        return None
    return float((last_end - first) * time_base)


def _decoded_duration(path: Path, demuxer: str) -> float:
    """Seconds of decoded samples: the slow path, for streams whose packets carry no times."""
    samples = 0
    sample_rate = 0
    with av.open(str(path), format=demuxer, metadata_errors="replace") as container:
        for frame in container.decode(audio=0):
            samples += frame.samples
            sample_rate = frame.sample_rate
    if not sample_rate:
        msg = "the file holds no audio"
        raise MediaError(msg)
    return samples / sample_rate
