"""Transcriptions, speech and voices through gateway, tunnel and agent against fake backends."""

import asyncio
import io
import math
import socket
import time
import wave
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import av
import httpx
import openai
import pytest

from inference_club.store import Store, UsageRecord, default_database_url
from tests.support.fake_backend import FakeBackend
from tests.support.fake_media import MP3_BYTES, TRANSCRIPT, FakeMedia, write_agent_config
from tests.support.processes import Gateway, Process, start_agent, start_gateway, wait_for_models

# (container, codec, sample rate, file name the client sends) per format.
FORMATS = {
    "audio/wav": ("wav", "pcm_s16le", 16000, "a.wav"),
    "audio/mpeg": ("mp3", "libmp3lame", 44100, "a.mp3"),
    "audio/mp4": ("ipod", "aac", 44100, "a.m4a"),
    "audio/flac": ("flac", "flac", 44100, "a.flac"),
    "audio/ogg": ("ogg", "libopus", 48000, "a.ogg"),
    "audio/webm": ("webm", "libopus", 48000, "a.webm"),
}
EXTENSIONS = {
    "audio/wav": "wav",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/flac": "flac",
    "audio/ogg": "ogg",
    "audio/webm": "webm",
}
SPEECH_SECONDS = 0.75


@dataclass
class Setup:
    gateway: Gateway
    key: str
    stt: FakeMedia
    tts: FakeMedia
    agent: Process
    tmp: Path

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.gateway.v1, api_key=self.key, max_retries=0)

    def post(
        self, path: str, headers: dict[str, str] | None = None, **kwargs: object
    ) -> httpx.Response:
        sent = {"Authorization": f"Bearer {self.key}", **(headers or {})}
        return httpx.post(f"{self.gateway.v1}{path}", headers=sent, timeout=30, **kwargs)  # type: ignore[arg-type]


def wav_bytes(seconds: float, rate: int = 16000) -> bytes:
    """A mono 16-bit WAV of a 440 Hz tone."""
    samples = array(
        "h",
        (int(6000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(int(rate * seconds))),
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


def encode_tone(path: Path, mime: str, seconds: float) -> Path:
    """A mono tone of ``seconds`` encoded by FFmpeg in the container and codec for ``mime``."""
    container_format, codec, rate, _name = FORMATS[mime]
    count = round(rate * seconds)
    samples = array("h", (int(6000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(count)))
    source = av.AudioFrame(format="s16", layout="mono", samples=count)
    source.planes[0].update(samples.tobytes())
    source.sample_rate = rate
    source.pts = 0
    source.time_base = Fraction(1, rate)
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        resampler = av.AudioResampler(
            format=stream.codec_context.format.name, layout="mono", rate=rate
        )
        for frame in resampler.resample(source):
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """One gateway, and alice's agent serving fake stt, tts and llm models."""
    tmp = tmp_path_factory.mktemp("audio")
    gateway = start_gateway(tmp, "--heartbeat-interval", "0.5", "--upstream-timeout", "10")
    stt = FakeMedia(["fake-stt", "fake-stt-words"]).start()
    tts = FakeMedia(["fake-tts"], speech_audio=wav_bytes(SPEECH_SECONDS)).start()
    llm = FakeBackend(["fake-llm"]).start()
    key = gateway.add_user("alice")
    token = gateway.add_provider("alice", "alice-home")
    config = write_agent_config(
        tmp / "agent.toml",
        [(stt.url, "stt"), (tts.url, "tts"), (llm.url, "llm")],
        {
            "fake-stt-words": {"supported_features": ["word_timestamps"]},
            "fake-tts": {"voices": ["joe", "amy"]},
        },
    )
    agent = start_agent(tmp, gateway.url, token, extra=("--config", str(config)))
    try:
        wait_for_models(gateway.v1, key, {"fake-stt", "fake-stt-words", "fake-tts", "fake-llm"})
        yield Setup(gateway, key, stt, tts, agent, tmp)
    finally:
        agent.stop()
        gateway.process.stop()
        for server in (stt, tts, llm):
            server.stop()


def assert_error(response: httpx.Response, status: int, error_type: str, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == error_type
    assert message in error["message"], error["message"]


def latest_usage(data: Path, endpoint: str, since: datetime) -> UsageRecord:
    """The newest usage record of ``endpoint`` started after ``since``, once it is written."""

    async def poll() -> UsageRecord:
        store = await Store.open(default_database_url(data))
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                for record in await store.list_usage(limit=20):
                    if record.endpoint == endpoint and record.started_at >= since:
                        return record
                await asyncio.sleep(0.05)
        finally:
            await store.close()
        msg = f"no {endpoint} usage record"
        raise AssertionError(msg)

    return asyncio.run(poll())


def now() -> datetime:
    return datetime.now().astimezone()


@pytest.mark.parametrize("mime", list(FORMATS))
def test_each_audio_format_is_recognised_and_metered(
    setup: Setup, mime: str, tmp_path: Path
) -> None:
    """All six formats reach the backend typed from their bytes, with the measured duration."""
    seconds = 1.3
    path = encode_tone(tmp_path / "tone", mime, seconds)
    since = now()
    with path.open("rb") as file:
        # The client's name and type are wrong on purpose: only the bytes count.
        result = setup.client().audio.transcriptions.create(
            model="fake-stt", file=("recording.bin", file, "application/octet-stream")
        )
    assert result.text == TRANSCRIPT
    assert result.usage is not None
    assert result.usage.type == "duration"
    assert result.usage.seconds == pytest.approx(seconds, abs=0.1)
    seen = setup.stt.last("/v1/audio/transcriptions")
    assert seen["file"]["filename"] == f"audio.{EXTENSIONS[mime]}"
    assert seen["file"]["content_type"] == mime
    assert seen["file"]["data"] == path.read_bytes()
    assert seen["model"] == "fake-stt"
    record = latest_usage(setup.gateway.data, "audio.transcriptions", since)
    assert record.status_code == 200
    assert record.audio_seconds == pytest.approx(seconds, abs=0.1)


def test_text_format_passes_the_text(setup: Setup) -> None:
    """response_format=text answers the backend's plain text."""
    result = setup.client().audio.transcriptions.create(
        model="fake-stt", file=("a.wav", wav_bytes(0.4)), response_format="text"
    )
    assert str(result).strip() == TRANSCRIPT


def test_verbose_json_duration_is_the_gateways_measurement(setup: Setup) -> None:
    """verbose_json carries the duration the gateway measured, not the backend's claim."""
    result = setup.client().audio.transcriptions.create(
        model="fake-stt", file=("a.wav", wav_bytes(0.6)), response_format="verbose_json"
    )
    assert result.duration == pytest.approx(0.6, abs=0.01)
    assert result.usage is not None
    assert result.usage.seconds == pytest.approx(0.6, abs=0.01)


def test_word_timestamps_go_to_a_model_that_has_them(setup: Setup) -> None:
    """A model announcing word_timestamps gets the granularities; no downgrade header."""
    response = setup.post(
        "/audio/transcriptions",
        data={
            "model": "fake-stt-words",
            "response_format": "verbose_json",
            "timestamp_granularities[]": "word",
        },
        files={"file": ("a.wav", wav_bytes(0.5), "audio/wav")},
    )
    assert response.status_code == 200, response.text
    assert "x-inference-club-downgraded" not in response.headers
    assert response.json()["words"] == [{"word": "the", "start": 0.0, "end": 0.2}]
    seen = setup.stt.last("/v1/audio/transcriptions")
    assert seen["response_format"] == "verbose_json"
    assert seen["timestamp_granularities[]"] == "word"


def test_timestamps_are_downgraded_for_a_model_without_them(setup: Setup) -> None:
    """Without the feature the backend is asked for json and the answer says it was downgraded."""
    response = setup.post(
        "/audio/transcriptions",
        data={
            "model": "fake-stt",
            "response_format": "verbose_json",
            "timestamp_granularities[]": ["word", "segment"],
            "language": "en",
        },
        files={"file": ("a.wav", wav_bytes(0.5), "audio/wav")},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-inference-club-downgraded"] == "timestamp_granularities"
    body = response.json()
    assert body == {
        "task": "transcribe",
        "language": "en",
        "text": TRANSCRIPT,
        "duration": pytest.approx(0.5, abs=0.01),
        "usage": {"type": "duration", "seconds": pytest.approx(0.5, abs=0.01)},
    }
    seen = setup.stt.last("/v1/audio/transcriptions")
    assert seen["response_format"] == "json"
    assert "timestamp_granularities[]" not in seen


def test_declared_upload_over_the_limit_is_refused_before_it_is_read(setup: Setup) -> None:
    """A declared 30 MB upload gets 413 while the client has sent only a few bytes of it."""
    with socket.create_connection(("127.0.0.1", setup.gateway.port), timeout=5) as sock:
        head = (
            "POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {setup.key}\r\n"
            "Content-Type: multipart/form-data; boundary=xyz\r\n"
            f"Content-Length: {30 * 1024 * 1024}\r\n\r\n"
        )
        sock.sendall(head.encode() + b"--xyz\r\n")
        answer = b""
        while b"}}" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    text = answer.decode()
    assert text.startswith("HTTP/1.1 413")
    assert '"type":"request_too_large"' in text
    assert "25 MB" in text


def test_streamed_upload_over_the_limit_is_cut_off(setup: Setup) -> None:
    """An upload without Content-Length is cut off at 25 MB and its temporary file removed."""
    boundary = "cutoff"

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="big.wav"\r\n\r\n'
        ).encode()
        for _ in range(30):
            yield b"\0" * (1024 * 1024)

    response = setup.post(
        "/audio/transcriptions",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert_error(response, 413, "request_too_large", "25 MB")
    assert list((setup.gateway.data / "tmp").iterdir()) == []


def test_text_named_wav_is_415(setup: Setup) -> None:
    """A text file called .wav and typed audio/wav is refused from its bytes, listing formats."""
    response = setup.post(
        "/audio/transcriptions",
        data={"model": "fake-stt"},
        files={"file": ("speech.wav", b"hello, this is not audio at all\n" * 4, "audio/wav")},
    )
    assert_error(response, 415, "unsupported_media_type", "wav, mp3, m4a, flac, ogg, webm")
    assert response.json()["error"]["param"] == "file"


@pytest.mark.parametrize(
    ("data", "files", "param"),
    [
        ({"model": "fake-stt"}, None, "file"),
        ({}, {"file": ("a.wav", wav_bytes(0.2), "audio/wav")}, "model"),
    ],
)
def test_missing_file_or_model_is_400(
    setup: Setup, data: dict[str, str], files: dict[str, object] | None, param: str
) -> None:
    """A form without its file or its model: 400 naming the parameter."""
    if files is None:
        # A form with no file still has to be multipart.
        files = {"other": ("x.txt", b"x", "text/plain")}
    response = setup.post("/audio/transcriptions", data=data, files=files)
    assert_error(response, 400, "invalid_request_error", f"Missing required parameter: '{param}'")
    assert response.json()["error"]["param"] == param


def test_json_body_is_400_asking_for_multipart(setup: Setup) -> None:
    """A JSON body to the upload endpoint: 400 that says multipart/form-data is needed."""
    response = setup.post("/audio/transcriptions", json={"model": "fake-stt"})
    assert_error(response, 400, "invalid_request_error", "must be multipart/form-data")


def test_truncated_multipart_body_is_400(setup: Setup) -> None:
    """A form that stops before its closing boundary: 400, and nothing reaches the backend."""
    before = len(setup.stt.requests)
    body = (
        b'--cut\r\nContent-Disposition: form-data; name="model"\r\n\r\nfake-stt\r\n'
        b'--cut\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
    ) + wav_bytes(0.2)
    response = setup.post(
        "/audio/transcriptions",
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=cut"},
    )
    assert_error(response, 400, "invalid_request_error", "ended before its closing boundary")
    assert len(setup.stt.requests) == before


def test_unknown_transcription_format_is_400(setup: Setup) -> None:
    """response_format outside json, text, verbose_json: 400 listing the choices."""
    response = setup.post(
        "/audio/transcriptions",
        data={"model": "fake-stt", "response_format": "srt"},
        files={"file": ("a.wav", wav_bytes(0.2), "audio/wav")},
    )
    assert_error(response, 400, "invalid_request_error", "json, text, verbose_json")


def test_transcription_is_never_routed_to_an_llm(setup: Setup) -> None:
    """An llm model on the transcription endpoint: 404 naming the endpoint that serves it."""
    response = setup.post(
        "/audio/transcriptions",
        data={"model": "fake-llm"},
        files={"file": ("a.wav", wav_bytes(0.2), "audio/wav")},
    )
    assert_error(response, 404, "no_provider", "is a llm model")
    assert "/v1/chat/completions" in response.json()["error"]["message"]


def test_speech_streams_wav_and_keeps_an_asset(setup: Setup) -> None:
    """Speech answers the backend's WAV, meters its duration and stores a servable copy."""
    since = now()
    audio = setup.client().audio.speech.create(model="fake-tts", input="hello", voice="joe")
    assert audio.response.headers["content-type"] == "audio/wav"
    assert audio.content == setup.tts.speech_audio
    seen = setup.tts.last("/v1/audio/speech")
    assert seen["response_format"] == "wav"
    record = latest_usage(setup.gateway.data, "audio.speech", since)
    assert record.audio_seconds == pytest.approx(SPEECH_SECONDS, abs=0.01)
    assets = asyncio.run(_assets_of(setup.gateway.data, record.user_id))
    kept = next(asset for asset in assets if asset.usage_record_id == record.id)
    assert kept.content_type == "audio/wav"
    served = httpx.get(f"{setup.gateway.url}/api/inference/assets/{kept.id}/", timeout=5)
    assert served.status_code == 200
    assert served.content == setup.tts.speech_audio


async def _assets_of(data: Path, user_id: int) -> list:  # type: ignore[type-arg]
    store = await Store.open(default_database_url(data))
    try:
        return await store.list_assets(user_id=user_id)
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"model": "fake-tts"}, "input", "Missing required parameter: 'input'"),
        ({"model": "fake-tts", "input": "  "}, "input", "'input' must be a non-empty string"),
        ({"input": "hi"}, "model", "Missing required parameter: 'model'"),
        (
            {"model": "fake-tts", "input": "hi", "response_format": "mp3"},
            "response_format",
            "'response_format' must be one of wav, opus (got 'mp3')",
        ),
        (
            {"model": "fake-tts", "input": "hi", "voice": "alloy"},
            "voice",
            "Voice 'alloy' is not offered by model 'fake-tts'; choose one of: joe, amy.",
        ),
    ],
)
def test_bad_speech_requests_are_400(
    setup: Setup, body: dict[str, object], param: str, message: str
) -> None:
    """Missing or empty input, a missing model, an unknown format or voice: 400 naming it."""
    response = setup.post("/audio/speech", json=body)
    assert_error(response, 400, "invalid_request_error", message)
    assert response.json()["error"]["param"] == param


def test_speech_in_the_wrong_format_is_502(setup: Setup) -> None:
    """A backend answering MP3 when WAV was asked: 502 before any audio reaches the client."""
    response = setup.post("/audio/speech", json={"model": "fake-tts", "input": "send mp3"})
    assert_error(response, 502, "upstream_error", "audio/mpeg, not the wav audio asked for")
    assert setup.tts.last("/v1/audio/speech")["input"] == "send mp3"
    assert MP3_BYTES not in response.content


def test_speech_is_never_routed_to_an_stt_model(setup: Setup) -> None:
    """An stt model on the speech endpoint: 404 naming the transcription endpoint."""
    response = setup.post("/audio/speech", json={"model": "fake-stt", "input": "hi"})
    assert_error(response, 404, "no_provider", "use /v1/audio/transcriptions")


def test_voices_are_listed_from_the_card(setup: Setup) -> None:
    """GET /v1/audio/voices lists the voices the provider announced for the model."""
    response = httpx.get(
        f"{setup.gateway.v1}/audio/voices",
        params={"model": "fake-tts"},
        headers={"Authorization": f"Bearer {setup.key}"},
        timeout=5,
    )
    assert response.status_code == 200
    assert response.json() == {"voices": ["joe", "amy"]}


@pytest.mark.parametrize(
    ("params", "status", "error_type", "message"),
    [
        ({}, 400, "invalid_request_error", "Missing required query parameter: 'model'"),
        ({"model": "fake-llm"}, 404, "no_provider", "use /v1/chat/completions"),
        ({"model": "nope"}, 404, "no_provider", "No online provider serving model 'nope'"),
    ],
)
def test_voices_need_a_reachable_tts_model(
    setup: Setup, params: dict[str, str], status: int, error_type: str, message: str
) -> None:
    """Voices without a model is 400; for a model that is not a reachable tts model, 404."""
    response = httpx.get(
        f"{setup.gateway.v1}/audio/voices",
        params=params,
        headers={"Authorization": f"Bearer {setup.key}"},
        timeout=5,
    )
    assert_error(response, status, error_type, message)
