"""PocketSphinx behind OpenAI's ``POST /v1/audio/transcriptions``: a tiny real STT backend.

Run with ``python -m inference_club.demo.stt_server --port 0``. The ``prompt`` field is
accepted and ignored: PocketSphinx has no way to be primed with text.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from inference_club.demo.recognition import (
    SpeechRecognizer,
    TimedWord,
    Transcript,
    UndecodableAudioError,
    decode_to_pcm,
)
from inference_club.demo.serving import (
    ListenAddress,
    RequestError,
    argument_parser,
    models_response,
    new_application,
    run,
)

DEFAULT_MODEL_ID = "pocketsphinx-en-us"
RESPONSE_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")
GRANULARITIES = ("word", "segment")

RECOGNIZER = web.AppKey("recognizer", SpeechRecognizer)
MODEL_ID = web.AppKey("model_id", str)


@dataclass(frozen=True, slots=True)
class TranscriptionRequest:
    """A validated transcription form: the audio bytes and how to answer."""

    audio: bytes
    response_format: str
    granularities: frozenset[str]


async def parse_transcription_form(request: web.Request) -> TranscriptionRequest:
    """Read and validate the multipart form; RequestError names the offending field."""
    if not request.content_type.startswith("multipart/"):
        raise RequestError("send the audio as multipart/form-data with a 'file' field")
    form = await request.post()
    upload = form.get("file")
    if not isinstance(upload, web.FileField):
        raise RequestError("the form needs an audio 'file'", param="file")
    response_format = str(form.get("response_format", "json"))
    if response_format not in RESPONSE_FORMATS:
        message = f"response_format must be one of {', '.join(RESPONSE_FORMATS)}"
        raise RequestError(message, param="response_format", code="invalid_value")
    granularities = frozenset(str(value) for value in form.getall("timestamp_granularities[]", []))
    if not granularities <= set(GRANULARITIES):
        message = "timestamp_granularities[] may only hold 'word' and 'segment'"
        raise RequestError(message, param="timestamp_granularities", code="invalid_value")
    language = str(form.get("language", "")).lower()
    if language and language not in ("en", "english") and not language.startswith("en-"):
        message = f"language {language!r} is not supported; this model hears English (en)"
        raise RequestError(message, param="language", code="invalid_value")
    return TranscriptionRequest(
        audio=upload.file.read(),
        response_format=response_format,
        granularities=granularities or frozenset({"segment"}),
    )


async def create_transcription(request: web.Request) -> web.Response:
    """``POST /v1/audio/transcriptions``: the text spoken in the uploaded audio."""
    form = await parse_transcription_form(request)
    recognizer = request.app[RECOGNIZER]
    try:
        transcript = await asyncio.to_thread(_transcribe, recognizer, form.audio)
    except UndecodableAudioError as exc:
        raise RequestError(str(exc), param="file", code="invalid_file_format") from exc
    if form.response_format == "text":
        return web.Response(text=transcript.text + "\n")
    if form.response_format in ("srt", "vtt"):
        return web.Response(text=subtitles(transcript, form.response_format))
    body: dict[str, Any] = {"text": transcript.text}
    if form.response_format == "verbose_json":
        body = verbose_body(transcript, form.granularities)
    body["usage"] = {"type": "duration", "seconds": round(transcript.duration, 3)}
    return web.json_response(body)


def _transcribe(recognizer: SpeechRecognizer, audio: bytes) -> Transcript:
    return recognizer.transcribe(decode_to_pcm(audio))


def verbose_body(transcript: Transcript, granularities: frozenset[str]) -> dict[str, Any]:
    """OpenAI's ``verbose_json`` shape: words and/or segments as the client asked."""
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": "english",
        "duration": round(transcript.duration, 3),
        "text": transcript.text,
    }
    if "word" in granularities:
        body["words"] = [
            {"word": word.word, "start": word.start, "end": word.end} for word in transcript.words
        ]
    if "segment" in granularities:
        body["segments"] = [
            _segment_json(index, words) for index, words in enumerate(transcript.segments())
        ]
    return body


def _segment_json(index: int, words: tuple[TimedWord, ...]) -> dict[str, Any]:
    return {
        "id": index,
        "seek": 0,
        "start": words[0].start,
        "end": words[-1].end,
        "text": " ".join(word.word for word in words),
        "tokens": [],
        "temperature": 0.0,
        "avg_logprob": sum(word.log_probability for word in words) / len(words),
        "compression_ratio": 1.0,
        "no_speech_prob": 0.0,
    }


def subtitles(transcript: Transcript, kind: str) -> str:
    """The segments as an SRT or WebVTT document."""
    separator = "," if kind == "srt" else "."
    cues = []
    for index, words in enumerate(transcript.segments(), start=1):
        start = _timestamp(words[0].start, separator)
        end = _timestamp(words[-1].end, separator)
        text = " ".join(word.word for word in words)
        cue = f"{start} --> {end}\n{text}\n"
        cues.append(f"{index}\n{cue}" if kind == "srt" else cue)
    header = "WEBVTT\n\n" if kind == "vtt" else ""
    return header + "\n".join(cues)


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    whole, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{whole:02d}{separator}{millis:03d}"


async def list_models(request: web.Request) -> web.Response:
    """``GET /v1/models``: the one recognition model."""
    return models_response(request.app[MODEL_ID])


def create_app(recognizer: SpeechRecognizer, model_id: str = DEFAULT_MODEL_ID) -> web.Application:
    """The STT application around an already loaded recognizer."""
    app = new_application()
    app[RECOGNIZER] = recognizer
    app[MODEL_ID] = model_id
    app.router.add_post("/v1/audio/transcriptions", create_transcription)
    app.router.add_get("/v1/models", list_models)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Load the recognizer and serve until SIGTERM or SIGINT."""
    parser = argument_parser("PocketSphinx speech-to-text with an OpenAI-compatible API.")
    parser.add_argument("--model-id", default=DEFAULT_MODEL_ID, help="id announced on /v1/models")
    args = parser.parse_args(argv)
    app = create_app(SpeechRecognizer(), model_id=args.model_id)
    return run(app, ListenAddress(args.host, args.port))


if __name__ == "__main__":
    raise SystemExit(main())
