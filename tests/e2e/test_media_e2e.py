"""Speech, transcription and images end to end: real gateway, agent and tiny real models."""

import asyncio
import base64
import io
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from inference_club.demo.launcher import DemoServer, start_demo_server
from inference_club.store import Asset, Store, UsageRecord, default_database_url
from tests.support.fake_media import write_agent_config
from tests.support.processes import Gateway, Process, start_agent, start_gateway, wait_for_models

pytestmark = pytest.mark.slow

SENTENCE = "the quick brown fox jumps over the lazy dog"
TTS, STT, IMAGE = "piper-joe", "pocketsphinx-en-us", "demo-procedural-image"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class Club:
    gateway: Gateway
    key: str
    agent: Process

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.gateway.v1, api_key=self.key, max_retries=0)


@pytest.fixture(scope="module")
def club(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Club]:
    """A gateway and an agent in front of the Piper, PocketSphinx and procedural image servers."""
    tmp = tmp_path_factory.mktemp("media-e2e")
    servers: list[DemoServer] = []
    gateway: Gateway | None = None
    agent: Process | None = None
    try:
        servers = [start_demo_server(name) for name in ("tts_server", "stt_server", "image_server")]
        tts, stt, image = servers
        gateway = start_gateway(tmp, "--upstream-timeout", "60")
        key = gateway.add_user("brian")
        token = gateway.add_provider("brian", "brian-home")
        config = write_agent_config(
            tmp / "agent.toml",
            [(tts.base_url, "tts"), (stt.base_url, "stt"), (image.base_url, "image")],
            {STT: {"supported_features": ["word_timestamps", "segment_timestamps"]}},
        )
        agent = start_agent(tmp, gateway.url, token, extra=("--config", str(config)))
        wait_for_models(gateway.v1, key, {TTS, STT, IMAGE}, timeout=60)
        yield Club(gateway, key, agent)
    finally:
        if agent is not None:
            agent.stop()
        if gateway is not None:
            gateway.process.stop()
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def speech(club: Club) -> bytes:
    """The sentence, synthesized by Piper through the gateway."""
    audio = club.client().audio.speech.create(model=TTS, voice="joe", input=SENTENCE)
    assert audio.response.headers["content-type"] == "audio/wav"
    return audio.content


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as reader:
        return reader.getnframes() / reader.getframerate()


def stored(data: Path) -> tuple[list[UsageRecord], list[Asset]]:
    """Every usage record and every asset of the gateway, read from its database."""

    async def read() -> tuple[list[UsageRecord], list[Asset]]:
        store = await Store.open(default_database_url(data))
        try:
            records = await store.list_usage(limit=100)
            user_id = records[0].user_id if records else 0
            return records, await store.list_assets(user_id=user_id)
        finally:
            await store.close()

    return asyncio.run(read())


def test_voices_are_listed(club: Club) -> None:
    """The voice Piper's server announced is listed for its model."""
    response = httpx.get(
        f"{club.gateway.v1}/audio/voices",
        params={"model": TTS},
        headers={"Authorization": f"Bearer {club.key}"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json() == {"voices": ["joe"]}


def test_speech_round_trips_through_transcription(club: Club, speech: bytes) -> None:
    """Speech made through the gateway, transcribed through the gateway, keeps most words."""
    assert speech.startswith(b"RIFF")
    seconds = wav_seconds(speech)
    assert seconds > 1.0
    result = club.client().audio.transcriptions.create(model=STT, file=("fox.wav", speech))
    heard = set(result.text.lower().split())
    expected = SENTENCE.split()
    recognised = [word for word in expected if word in heard]
    assert len(recognised) >= 0.6 * len(expected), result.text
    assert result.usage is not None
    assert result.usage.seconds == pytest.approx(seconds, abs=0.05)


def test_word_timestamps_come_from_a_model_that_announces_them(club: Club, speech: bytes) -> None:
    """verbose_json with word timings reaches PocketSphinx and returns its words, not downgraded."""
    raw = club.client().audio.transcriptions.with_raw_response.create(
        model=STT,
        file=("fox.wav", speech),
        response_format="verbose_json",
        timestamp_granularities=["word"],
    )
    assert "x-inference-club-downgraded" not in raw.headers
    result = raw.parse()
    assert result.words
    assert all(word.start <= word.end for word in result.words)
    assert result.duration == pytest.approx(wav_seconds(speech), abs=0.05)


def test_opus_speech_is_ogg(club: Club) -> None:
    """response_format=opus answers Ogg Opus as audio/ogg."""
    audio = club.client().audio.speech.create(
        model=TTS, voice="joe", input="hello there", response_format="opus"
    )
    assert audio.response.headers["content-type"] == "audio/ogg"
    assert audio.content.startswith(b"OggS")


def test_generated_and_edited_images_are_served_without_credentials(club: Club) -> None:
    """A generated image's URL needs no key; editing that image gives another servable PNG."""
    client = club.client()
    generated = client.images.generate(model=IMAGE, prompt="a red fox", size="64x64")
    assert generated.data is not None
    url = generated.data[0].url
    assert url is not None
    picture = httpx.get(url, timeout=10)
    assert picture.status_code == 200
    assert picture.headers["content-type"] == "image/png"
    assert picture.content.startswith(PNG_MAGIC)

    edited = client.images.edit(
        model=IMAGE,
        image=("fox.png", picture.content, "image/png"),
        prompt="make it blue",
        response_format="b64_json",
    )
    assert edited.data is not None
    assert edited.data[0].b64_json is not None
    edited_bytes = base64.b64decode(edited.data[0].b64_json)
    assert edited_bytes.startswith(PNG_MAGIC)
    assert edited_bytes != picture.content
    assert edited.data[0].url is not None
    assert httpx.get(edited.data[0].url, timeout=10).content == edited_bytes


def test_usage_is_metered_and_speech_kept_as_an_asset(club: Club, speech: bytes) -> None:
    """Audio seconds and image counts are metered; the speech is an asset of its record."""
    client = club.client()
    client.audio.transcriptions.create(model=STT, file=("fox.wav", speech))
    client.images.generate(model=IMAGE, prompt="a fox", size="32x32")
    deadline = time.monotonic() + 5
    while True:
        records, assets = stored(club.gateway.data)
        endpoints = {record.endpoint for record in records}
        wanted = {"audio.speech", "audio.transcriptions", "images.generations"}
        if wanted <= endpoints or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert wanted <= endpoints
    speech_record = next(
        r
        for r in records
        if r.endpoint == "audio.speech"
        and r.audio_seconds == pytest.approx(wav_seconds(speech), abs=0.01)
    )
    transcribed = [r for r in records if r.endpoint == "audio.transcriptions"]
    assert all(r.audio_seconds == pytest.approx(wav_seconds(speech), abs=0.05) for r in transcribed)
    images = [r for r in records if r.endpoint == "images.generations"]
    assert all(r.image_count == 1 for r in images)
    kept = [a for a in assets if a.usage_record_id == speech_record.id]
    assert [(a.kind, a.content_type) for a in kept] == [("audio", "audio/wav")]
    file = club.gateway.data / kept[0].path
    assert file.read_bytes() == speech
