"""The PocketSphinx STT demo server over HTTP, fed with speech from the TTS demo server."""

import io
from fractions import Fraction

import av
import httpx
import pytest
from openai import OpenAI

pytestmark = pytest.mark.slow

FOX = "the quick brown fox jumps over the lazy dog"
FILLERS = ("<s>", "</s>", "<sil>", "[NOISE]")


@pytest.fixture(scope="module")
def fox_wav(tts_server) -> bytes:
    """Piper saying the fox sentence."""
    response = httpx.post(
        f"{tts_server.base_url}/audio/speech", json={"model": "piper-joe", "input": FOX}, timeout=60
    )
    response.raise_for_status()
    return response.content


def transcribe(server, audio: bytes, filename: str = "speech.wav", **fields) -> httpx.Response:
    data = {"model": "pocketsphinx-en-us", **fields}
    return httpx.post(
        f"{server.base_url}/audio/transcriptions",
        data=data,
        files={"file": (filename, audio)},
        timeout=60,
    )


def word_errors(heard: str) -> int:
    """Words of FOX missing from what was heard (order-insensitive, lenient on purpose)."""
    heard_words = heard.lower().split()
    return sum(1 for word in FOX.split() if word not in heard_words)


def reencode(wav: bytes, container_format: str, codec: str, rate: int) -> bytes:
    """The WAV's audio in another container and codec."""
    output = io.BytesIO()
    with (
        av.open(io.BytesIO(wav), "r") as source,
        av.open(output, "w", format=container_format) as target,
    ):
        stream = target.add_stream(codec, rate=rate, layout="mono")
        resampler = av.AudioResampler(
            format=stream.codec_context.format.name, layout="mono", rate=rate
        )
        for frame in source.decode(audio=0):
            frame.pts = None
            for converted in resampler.resample(frame):
                target.mux(stream.encode(converted))
        for converted in resampler.resample(None):
            target.mux(stream.encode(converted))
        target.mux(stream.encode(None))
    return output.getvalue()


def test_round_trip_tts_to_stt_with_word_timings(stt_server, fox_wav):
    """Piper's speech comes back as mostly the right words, timed in order inside the audio."""
    client = OpenAI(base_url=stt_server.base_url, api_key="unused")
    result = client.audio.transcriptions.create(
        model="pocketsphinx-en-us",
        file=("fox.wav", fox_wav),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert word_errors(result.text) <= 2
    assert result.language == "english"
    with av.open(io.BytesIO(fox_wav), "r") as container:
        seconds = container.duration / 1_000_000
    assert result.duration == pytest.approx(seconds, abs=0.05)
    words = result.words
    assert len(words) >= 7
    assert not any(word.word in FILLERS for word in words)
    assert all(0 <= word.start < word.end <= result.duration + 0.01 for word in words)
    assert all(
        earlier.end <= later.start + 0.01 for earlier, later in zip(words, words[1:], strict=False)
    )
    assert result.segments
    assert " ".join(segment.text for segment in result.segments) == result.text


@pytest.mark.parametrize(
    ("container_format", "codec", "rate"),
    [
        ("ogg", "libopus", 48000),
        ("webm", "libopus", 48000),
        ("mp3", "libmp3lame", 44100),
        ("flac", "flac", 22050),
        ("ipod", "aac", 44100),
    ],
)
def test_compressed_uploads_are_understood(stt_server, fox_wav, container_format, codec, rate):
    """Opus in Ogg and WebM, MP3, FLAC and AAC in M4A decode and resample to the same words."""
    audio = reencode(fox_wav, container_format, codec, rate)
    response = transcribe(stt_server, audio, filename="upload.bin")
    assert response.status_code == 200
    assert word_errors(response.json()["text"]) <= 3


def test_plain_json_and_text_formats(stt_server, fox_wav):
    """json gives {text, usage}; text gives the same words as text/plain."""
    as_json = transcribe(stt_server, fox_wav).json()
    assert set(as_json) == {"text", "usage"}
    assert as_json["usage"]["type"] == "duration"
    assert as_json["usage"]["seconds"] > 1.5
    as_text = transcribe(stt_server, fox_wav, response_format="text")
    assert as_text.headers["content-type"].startswith("text/plain")
    assert as_text.text.strip() == as_json["text"]


def test_verbose_json_without_granularities_has_segments_only(stt_server, fox_wav):
    """verbose_json defaults to segment timings, as OpenAI's does."""
    body = transcribe(stt_server, fox_wav, response_format="verbose_json").json()
    assert "segments" in body
    assert "words" not in body
    assert body["segments"][0]["start"] < body["segments"][-1]["end"]


def test_subtitle_formats(stt_server, fox_wav):
    """srt and vtt carry cues with the recognised words."""
    srt = transcribe(stt_server, fox_wav, response_format="srt").text
    assert srt.startswith("1\n00:00:0")
    assert " --> " in srt
    assert "fox" in srt
    vtt = transcribe(stt_server, fox_wav, response_format="vtt").text
    assert vtt.startswith("WEBVTT\n\n00:00:0")


def test_silence_is_an_empty_transcript(stt_server):
    """A second of digital silence yields no words."""
    output = io.BytesIO()
    with av.open(output, "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=16000, layout="mono")
        frame = av.AudioFrame(format="s16", layout="mono", samples=16000)
        frame.planes[0].update(bytes(32000))
        frame.sample_rate, frame.pts, frame.time_base = 16000, 0, Fraction(1, 16000)
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    body = transcribe(
        stt_server,
        output.getvalue(),
        response_format="verbose_json",
        **{"timestamp_granularities[]": "word"},
    ).json()
    assert body["text"] == ""
    assert body["words"] == []
    assert body["duration"] == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize(
    ("audio", "fields", "param"),
    [
        (b"this is not audio at all" * 20, {}, "file"),
        (None, {"response_format": "yaml"}, "response_format"),
        (None, {"language": "fr"}, "language"),
        (None, {"timestamp_granularities[]": "phoneme"}, "timestamp_granularities"),
    ],
)
def test_bad_requests_get_the_openai_error_envelope(stt_server, fox_wav, audio, fields, param):
    """Undecodable audio and invalid fields are refused with 400 naming the field."""
    response = transcribe(stt_server, fox_wav if audio is None else audio, **fields)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_missing_file_is_refused(stt_server):
    """A form without a file is a 400 that names the file field."""
    response = httpx.post(
        f"{stt_server.base_url}/audio/transcriptions", files={"model": (None, "x")}, timeout=10
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "file"


def test_upload_over_the_limit_is_a_413_envelope(stt_server):
    """More than 26 MiB is refused with 413 in the OpenAI envelope."""
    response = transcribe(stt_server, bytes(27 * 1024 * 1024))
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_models_lists_the_recognizer(stt_server):
    """/v1/models lists pocketsphinx-en-us."""
    body = httpx.get(f"{stt_server.base_url}/models", timeout=10).json()
    assert [model["id"] for model in body["data"]] == ["pocketsphinx-en-us"]
