"""The Piper TTS demo server over HTTP: audio formats, determinism and OpenAI-shaped errors."""

import io
import wave

import av
import httpx
import pytest
from openai import OpenAI

pytestmark = pytest.mark.slow

FOX = "the quick brown fox jumps over the lazy dog"


def speak(server, **body) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/audio/speech", json={"model": "piper-joe", **body}, timeout=60
    )


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as reader:
        return reader.getnframes() / reader.getframerate()


def test_speech_is_a_22050_hz_mono_wav_of_plausible_length(tts_server):
    """A sentence comes back as 16-bit mono 22050 Hz WAV lasting as long as speech takes."""
    response = speak(tts_server, input=FOX, voice="joe", response_format="wav")
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as reader:
        assert (reader.getframerate(), reader.getnchannels(), reader.getsampwidth()) == (
            22050,
            1,
            2,
        )
        frames = reader.readframes(reader.getnframes())
    # Nine words at a speaking pace of 2 to 5 words a second.
    assert 1.8 <= wav_seconds(response.content) <= 4.5
    loudest = max(
        abs(int.from_bytes(frames[i : i + 2], "little", signed=True))
        for i in range(0, len(frames), 2)
    )
    assert loudest > 3000


def test_longer_text_gives_longer_audio(tts_server):
    """Duration grows with the text, so the audio really is the text spoken."""
    short = wav_seconds(speak(tts_server, input="Hello.").content)
    long = wav_seconds(speak(tts_server, input=f"Hello. {FOX}. {FOX}.").content)
    assert long > short * 3


def test_same_text_gives_identical_audio(tts_server):
    """With noise switched off, synthesis is deterministic byte for byte."""
    first = speak(tts_server, input="Deterministic speech, please.").content
    second = speak(tts_server, input="Deterministic speech, please.").content
    assert first == second


def test_speed_shortens_the_audio(tts_server):
    """Speed 2.0 speaks in roughly half the time."""
    normal = wav_seconds(speak(tts_server, input=FOX).content)
    fast = wav_seconds(speak(tts_server, input=FOX, speed=2.0).content)
    assert 0.35 * normal <= fast <= 0.65 * normal


def test_opus_is_ogg_opus_of_the_same_length(tts_server):
    """response_format=opus returns Ogg/Opus at 48 kHz lasting as long as the WAV."""
    wav = speak(tts_server, input=FOX).content
    response = speak(tts_server, input=FOX, response_format="opus")
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/ogg"
    assert response.content.startswith(b"OggS")
    with av.open(io.BytesIO(response.content), "r") as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "opus"
        samples = sum(frame.samples for frame in container.decode(stream))
    assert samples / 48000 == pytest.approx(wav_seconds(wav), abs=0.05)


def test_openai_sdk_speech_with_a_stock_voice_name(tts_server):
    """The official client, naming an OpenAI voice, gets the one voice's WAV."""
    client = OpenAI(base_url=tts_server.base_url, api_key="unused")
    audio = client.audio.speech.create(
        model="piper-joe", voice="alloy", input="Hi there.", response_format="wav"
    )
    assert audio.content.startswith(b"RIFF")
    assert audio.content[8:12] == b"WAVE"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"voice": "joe"}, "input"),
        ({"input": "   "}, "input"),
        ({"input": "x" * 4097}, "input"),
        ({"input": "hi", "voice": "mia"}, "voice"),
        ({"input": "hi", "response_format": "mp3"}, "response_format"),
        ({"input": "hi", "speed": 9}, "speed"),
        ({"input": "hi", "language": "de"}, "language"),
    ],
)
def test_bad_requests_get_the_openai_error_envelope(tts_server, body, param):
    """Invalid fields are refused with 400 and an error naming the field."""
    response = speak(tts_server, **body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


def test_malformed_json_is_a_400_envelope(tts_server):
    """A body that is not JSON is refused in the envelope, not with an HTML page."""
    response = httpx.post(f"{tts_server.base_url}/audio/speech", content=b"{nope", timeout=10)
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]["message"]


def test_models_and_voices(tts_server):
    """/v1/models lists piper-joe and /v1/audio/voices lists joe."""
    models = httpx.get(f"{tts_server.base_url}/models", timeout=10).json()
    assert models == {
        "object": "list",
        "data": [{"id": "piper-joe", "object": "model", "created": 0, "owned_by": "demo"}],
    }
    voices = httpx.get(
        f"{tts_server.base_url}/audio/voices", params={"model": "piper-joe"}, timeout=10
    ).json()
    assert voices == {"voices": ["joe"]}
