"""The media of the benchmark: WAV audio and PNG images of a set size, the mock's speech and
image replies made of them, and the requests that ask for them.

Both are noise, so nothing on the way can compress them away, and both are valid files: the
gateway checks what a provider's audio and images are, and measures the audio's duration.
"""

import base64
import random
import struct
import zlib

import orjson

from bench.httpwire import Endpoint, build_request

TTS_MODEL = "bench-tts"
IMAGE_MODEL = "bench-image"
VOICE = "alloy"
SPEECH_SAMPLE_RATE = 24000
# The mock writes a speech reply in pieces of this size, as a TTS server streams its audio.
SPEECH_CHUNK = 16 * 1024
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def wav(size: int, sample_rate: int = 16000) -> bytes:
    """A mono 16-bit WAV file of ``size`` bytes (header included) holding noise."""
    frames = max(0, size - 44)
    header = b"RIFF" + struct.pack("<I", 36 + frames) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
    header += b"data" + struct.pack("<I", frames)
    return header + random.Random(0).randbytes(frames)


def png(size: int) -> bytes:
    """An RGB PNG image of about ``size`` bytes holding noise (stored, not compressed)."""
    width = 512
    row = 1 + width * 3  # a filter byte, then the pixels
    height = max(1, size // row)
    noise = random.Random(1)
    rows = b"".join(b"\x00" + noise.randbytes(width * 3) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows, 0))
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def speech_reply(size: int) -> bytes:
    """The mock's whole HTTP response to a speech request: WAV audio of ``size`` bytes, sent
    with chunked transfer encoding in pieces of ``SPEECH_CHUNK``."""
    audio = wav(size, SPEECH_SAMPLE_RATE)
    head = b"HTTP/1.1 200 OK\r\ncontent-type: audio/wav\r\ntransfer-encoding: chunked\r\n\r\n"
    pieces = [
        b"%x\r\n%b\r\n" % (len(piece), piece)
        for piece in (
            audio[start : start + SPEECH_CHUNK] for start in range(0, len(audio), SPEECH_CHUNK)
        )
    ]
    return head + b"".join(pieces) + b"0\r\n\r\n"


def image_reply(size: int) -> bytes:
    """The mock's whole HTTP response to an image request: one PNG of about ``size`` bytes,
    base64 in JSON, as OpenAI's ``b64_json`` format has it."""
    encoded = base64.b64encode(png(size)).decode("ascii")
    body = orjson.dumps({"created": 0, "data": [{"b64_json": encoded}]})
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    return head % len(body) + body


def speech_request(endpoint: Endpoint) -> bytes:
    """``POST /v1/audio/speech`` for WAV audio."""
    body = {"model": TTS_MODEL, "input": "Hello there.", "voice": VOICE, "response_format": "wav"}
    return build_request(endpoint, "POST", "/v1/audio/speech", orjson.dumps(body))


def image_request(endpoint: Endpoint) -> bytes:
    """``POST /v1/images/generations`` for one image, as base64."""
    body = {"model": IMAGE_MODEL, "prompt": "a red fox", "response_format": "b64_json"}
    return build_request(endpoint, "POST", "/v1/images/generations", orjson.dumps(body))
