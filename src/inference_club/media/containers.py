"""The duration of audio in a container, through FFmpeg (PyAV): packets first, decoding last."""

from fractions import Fraction
from pathlib import Path

import av
import av.error

from inference_club.media.errors import MediaError

# A container's stated duration is trusted only this close to what its packets add up to.
_AGREEMENT_SECONDS = 0.25
_AGREEMENT_RATIO = 0.05


def container_duration(path: Path, demuxer: str) -> float:
    """Seconds of audio in the file at ``path``, read with FFmpeg's ``demuxer``."""
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
