"""Factories for real audio files of a known duration and real encoded images."""

import math
from array import array
from fractions import Fraction
from pathlib import Path

import av
import pytest

# (container format, codec, sample rate) per sniffed MIME type.
ENCODINGS = {
    "audio/wav": ("wav", "pcm_s16le", 22050),
    "audio/mpeg": ("mp3", "libmp3lame", 44100),
    "audio/mp4": ("ipod", "aac", 44100),
    "audio/flac": ("flac", "flac", 44100),
    "audio/ogg": ("ogg", "libopus", 48000),
    "audio/webm": ("webm", "libopus", 48000),
}


def _write_sine(
    path: Path,
    mime: str,
    seconds: float,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Encode a 440 Hz mono sine of ``seconds`` into ``path`` in the container for ``mime``."""
    container_format, codec, rate = ENCODINGS[mime]
    count = round(rate * seconds)
    samples = array("h", (int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(count)))
    source = av.AudioFrame(format="s16", layout="mono", samples=count)
    source.planes[0].update(samples.tobytes())
    source.sample_rate = rate
    source.pts = 0
    source.time_base = Fraction(1, rate)
    with av.open(
        str(path), "w", format=container_format, container_options=container_options or {}
    ) as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        resampler = av.AudioResampler(
            format=stream.codec_context.format.name, layout="mono", rate=rate
        )
        for frame in resampler.resample(source):
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _encode_image(codec: str, pixel_format: str, width: int = 16, height: int = 12) -> bytes:
    """One still image of ``width`` x ``height`` encoded with an FFmpeg image codec."""
    frame = av.VideoFrame(width, height, "rgb24").reformat(format=pixel_format)
    context = av.CodecContext.create(codec, "w")
    assert isinstance(context, av.VideoCodecContext)
    context.width = width
    context.height = height
    context.pix_fmt = pixel_format
    context.time_base = Fraction(1, 25)
    packets = [*context.encode(frame), *context.encode(None)]
    return b"".join(bytes(packet) for packet in packets)


@pytest.fixture
def sine_file(tmp_path: Path):
    """Factory: ``sine_file(mime, seconds, name=..., container_options=...)`` -> the file's path."""

    def make(
        mime: str,
        seconds: float = 1.5,
        name: str = "sound.bin",
        container_options: dict[str, str] | None = None,
    ) -> Path:
        return _write_sine(tmp_path / name, mime, seconds, container_options)

    return make


@pytest.fixture
def encoded_image():
    """Factory: ``encoded_image(codec, pixel_format)`` -> the encoded bytes."""
    return _encode_image
