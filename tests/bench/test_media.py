"""The media scenario's files, the mock's speech and image replies, the bytes the load generator
counts, and the scenario's figures in the report."""

import asyncio
import base64
import io
import struct
import wave
import zlib
from collections.abc import AsyncIterator

import orjson
import pytest
from bench.httpwire import Endpoint
from bench.loadgen import RequestRecord, RunResult, closed_loop, summarize
from bench.media import (
    IMAGE_MODEL,
    SPEECH_CHUNK,
    SPEECH_SAMPLE_RATE,
    TTS_MODEL,
    image_request,
    png,
    speech_request,
    wav,
)
from bench.mock_backend import MockSettings, start_mock
from bench.procstat import Usage
from bench.report import RunInfo, markdown
from bench.results import MB, Measurement
from bench.scenarios_media import throughput
from bench.services import fetch

from tests.bench.test_targets import summary

SPEECH_BYTES = 200_000
IMAGE_BYTES = 150_000


@pytest.fixture
async def mock() -> AsyncIterator[Endpoint]:
    settings = MockSettings(speech_bytes=SPEECH_BYTES, image_bytes=IMAGE_BYTES)
    server = await start_mock("127.0.0.1", 0, settings)
    port = server.sockets[0].getsockname()[1]
    yield Endpoint("mock", "127.0.0.1", port)
    server.close()
    await server.wait_closed()


def png_chunks(image: bytes) -> list[tuple[bytes, bytes]]:
    """The chunks of a PNG file, each checked against its CRC."""
    assert image[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(image):
        (length,) = struct.unpack_from(">I", image, offset)
        kind = image[offset + 4 : offset + 8]
        data = image[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack_from(">I", image, offset + 8 + length)
        assert crc == zlib.crc32(kind + data), kind
        chunks.append((kind, data))
        offset += 12 + length
    return chunks


def test_wav_is_a_wav_file_of_the_size_asked():
    """The WAV has exactly the size asked, and its header says how long it plays."""
    audio = wav(48_044, 24000)
    assert len(audio) == 48_044
    with wave.open(io.BytesIO(audio)) as reader:
        assert reader.getframerate() == 24000
        assert reader.getnchannels() == 1
        assert reader.getsampwidth() == 2
        assert reader.getnframes() == 24_000  # one second


def test_png_is_a_valid_image_of_about_the_size_asked():
    """Every chunk's CRC holds, the pixels decompress to what the header says, and the file is
    within one row of the size asked."""
    image = png(300_000)
    chunks = png_chunks(image)
    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    assert (depth, colour) == (8, 2)
    pixels = zlib.decompress(chunks[1][1])
    assert len(pixels) == height * (1 + width * 3)
    assert abs(len(image) - 300_000) <= 1 + width * 3 + 200


async def test_models_list_names_the_speech_and_image_models(mock):
    """GET /v1/models names the speech and image models with their kinds."""
    status, body = await fetch(mock, "/v1/models")
    cards = {card["id"]: card["service_type"] for card in orjson.loads(body)["data"]}
    assert status == 200
    assert cards[TTS_MODEL] == "tts"
    assert cards[IMAGE_MODEL] == "image"


async def test_speech_reply_is_the_wav_streamed_in_pieces(mock):
    """The speech reply is the WAV of the set size, sent chunked in pieces."""
    reader, writer = await asyncio.open_connection(mock.host, mock.port)
    writer.write(speech_request(mock))
    raw = b""
    while not raw.endswith(b"0\r\n\r\n"):
        data = await reader.read(1 << 16)
        assert data
        raw += data
    writer.close()
    head, _, chunked = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"content-type: audio/wav" in head.lower()
    pieces, offset = [], 0
    while True:
        line_end = chunked.index(b"\r\n", offset)
        size = int(chunked[offset:line_end], 16)
        if size == 0:
            break
        pieces.append(chunked[line_end + 2 : line_end + 2 + size])
        offset = line_end + 4 + size
    assert max(len(piece) for piece in pieces) == SPEECH_CHUNK
    assert len(pieces) == -(-SPEECH_BYTES // SPEECH_CHUNK)
    assert b"".join(pieces) == wav(SPEECH_BYTES, SPEECH_SAMPLE_RATE)


async def test_image_reply_is_the_png_in_base64_json(mock):
    """The image reply is JSON whose one image decodes to the PNG of the set size."""
    status, body = await fetch(mock, "/v1/images/generations", "POST", b"{}")
    document = orjson.loads(body)
    assert status == 200
    assert base64.b64decode(document["data"][0]["b64_json"]) == png(IMAGE_BYTES)


async def test_the_load_generator_counts_each_replys_body_bytes(mock):
    """A closed loop on the mock's speech and images counts every reply's bytes, not its
    framing: the speech body is the WAV, the image body the JSON around the PNG."""
    speech = await closed_loop(mock, speech_request(mock), 2, 0.3, stream=False)
    assert speech.records
    assert {record.received for record in speech.records} == {SPEECH_BYTES}
    _, image_body = await fetch(mock, "/v1/images/generations", "POST", b"{}")
    images = await closed_loop(mock, image_request(mock), 2, 0.3, stream=False)
    assert {record.received for record in images.records} == {len(image_body)}
    assert summarize(images).errors == 0


def test_throughput_counts_the_bytes_of_whole_replies_over_the_span():
    """Only replies answered whole count; the smallest and largest show a reply cut short."""

    def record(received: int, error: str | None = None) -> RequestRecord:
        return RequestRecord(0.0, 0.0, 0.1, 0.5, 200, error, (), received)

    records = (record(MB), record(MB), record(3 * MB), record(5 * MB, "cut short"))
    result = RunResult(0.0, 2.0, records, 2, 0.0, 0.1)
    figures = throughput(result)
    assert figures["mb_per_s"] == pytest.approx(5 / 2)
    assert figures["reply_min_mb"] == pytest.approx(1.0)
    assert figures["reply_max_mb"] == pytest.approx(3.0)
    assert throughput(RunResult(0.0, 2.0, (record(MB, "refused"),), 1, 0.0, 0.1)) == {}


def test_report_has_a_media_table_with_the_gateways_memory_rise_and_added_latency():
    """Each media kind gets its own table; the gateway's row shows its added p50 against
    direct at the same step of the same kind, and how far its peak memory rose."""
    rise = Usage(1.0, 50.0, 100 * MB, 101 * MB, 112 * MB)
    extra = {"mb_per_s": 40.0, "reply_min_mb": 0.95, "reply_max_mb": 0.95}
    runs = [
        Measurement("media-speech", "1 at a time", 1, "direct", summary(1.0, 2.0), extra=extra),
        Measurement(
            "media-speech",
            "1 at a time",
            1,
            "gateway",
            summary(25.0, 40.0),
            usage={"gateway": rise},
            extra=extra,
        ),
        Measurement("media-image", "1 at a time", 1, "direct", summary(3.0, 4.0), extra=extra),
    ]
    info = RunInfo("2026-01-01 00:00 UTC", "quick", 2, "3.11", {"direct": "ready"}, ())
    text = markdown(info, runs, [])
    speech = text.split("## Text to speech")[1].split("## Image generation")[0]
    assert "| 1 at a time | gateway | 1000/0 | 1,000.0 | 0.95 | 40.0 |" in speech
    cut = {**extra, "reply_min_mb": 0.5}
    short = Measurement("media-image", "1 at a time", 1, "gateway", summary(3.0, 4.0), extra=cut)
    assert "| 0.50 to 0.95 |" in markdown(info, [short], [])
    assert "| +24.00 |" in speech
    assert "gateway 12 MB" in speech
    assert "## Image generation" in text
