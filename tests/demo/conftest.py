"""Demo servers started once per test session as real processes on 127.0.0.1."""

import io
from collections.abc import Iterator
from fractions import Fraction

import av
import pytest

from inference_club.demo.launcher import DemoServer, running_demo_server


def _serve(name: str, *args: str) -> Iterator[DemoServer]:
    with running_demo_server(name, *args) as server:
        yield server


@pytest.fixture(scope="session")
def tts_server() -> Iterator[DemoServer]:
    """The Piper TTS server."""
    yield from _serve("tts_server")


@pytest.fixture(scope="session")
def stt_server() -> Iterator[DemoServer]:
    """The PocketSphinx STT server."""
    yield from _serve("stt_server")


@pytest.fixture(scope="session")
def image_server() -> Iterator[DemoServer]:
    """The procedural image server."""
    yield from _serve("image_server")


@pytest.fixture(scope="session")
def llm_server() -> Iterator[DemoServer]:
    """llama.cpp with SmolLM2, one slot and a small context to start fast."""
    yield from _serve("llm_server", "--parallel", "1", "--ctx-size", "1024", "--alias", "tiny")


@pytest.fixture
def decode_rgb():
    """Factory: image file bytes -> (width, height, packed RGB bytes)."""

    def decode(data: bytes) -> tuple[int, int, bytes]:
        with av.open(io.BytesIO(data), "r") as container:
            frame = next(container.decode(video=0)).reformat(format="rgb24")
        plane = frame.planes[0]
        raw = bytes(plane)
        rows = (
            raw[y * plane.line_size : y * plane.line_size + frame.width * 3]
            for y in range(frame.height)
        )
        return frame.width, frame.height, b"".join(rows)

    return decode


@pytest.fixture
def encode_picture():
    """Factory: (codec, pixel format, width, height, packed pixels) -> encoded image bytes."""

    def encode(
        codec: str,
        pixel_format: str,
        width: int,
        height: int,
        pixels: bytes,
        source_format: str = "rgb24",
    ) -> bytes:
        frame = av.VideoFrame(width, height, source_format)
        plane = frame.planes[0]
        channels = len(pixels) // (width * height)
        padded = b"".join(
            pixels[y * width * channels : (y + 1) * width * channels].ljust(plane.line_size, b"\0")
            for y in range(height)
        )
        plane.update(padded)
        context = av.CodecContext.create(codec, "w")
        context.width, context.height, context.pix_fmt = width, height, pixel_format
        context.time_base = Fraction(1, 25)
        packets = [*context.encode(frame.reformat(format=pixel_format)), *context.encode(None)]
        return b"".join(bytes(packet) for packet in packets)

    return encode
