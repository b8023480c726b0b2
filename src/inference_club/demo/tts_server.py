"""Piper text-to-speech behind OpenAI's ``POST /v1/audio/speech``: a tiny real TTS backend.

Run with ``python -m inference_club.demo.tts_server --port 0``.
"""

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from inference_club.demo.serving import (
    ListenAddress,
    RequestError,
    argument_parser,
    models_response,
    new_application,
    run,
)
from inference_club.demo.speech import SpeechSynthesizer, ogg_opus_bytes, wav_bytes

DEFAULT_MODEL_ID = "piper-joe"
VOICES = ("joe",)
# Stock OpenAI clients always name one of these; the only speaker there is answers for all.
OPENAI_VOICE_NAMES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse"}
)
MAX_INPUT_CHARACTERS = 4096
CONTENT_TYPES = {"wav": "audio/wav", "opus": "audio/ogg"}

SYNTHESIZER = web.AppKey("synthesizer", SpeechSynthesizer)
MODEL_ID = web.AppKey("model_id", str)


@dataclass(frozen=True, slots=True)
class SpeechRequest:
    """A validated ``/v1/audio/speech`` body."""

    text: str
    response_format: str
    speed: float


def parse_speech_request(body: Any) -> SpeechRequest:
    """Validate a speech request body; RequestError names the offending field."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        raise RequestError("'input' must be a non-empty string", param="input")
    if len(text) > MAX_INPUT_CHARACTERS:
        message = f"'input' is longer than {MAX_INPUT_CHARACTERS} characters"
        raise RequestError(message, param="input", code="string_above_max_length")
    voice = body.get("voice", VOICES[0])
    if voice not in VOICES and voice not in OPENAI_VOICE_NAMES:
        message = f"unknown voice {voice!r}; this model speaks with: {', '.join(VOICES)}"
        raise RequestError(message, param="voice", code="invalid_value")
    response_format = body.get("response_format", "wav")
    if response_format not in CONTENT_TYPES:
        message = f"response_format {response_format!r} is not supported here; use wav or opus"
        raise RequestError(message, param="response_format", code="invalid_value")
    speed = body.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not 0.25 <= speed <= 4.0:
        raise RequestError("'speed' must be a number from 0.25 to 4.0", param="speed")
    language = body.get("language")
    if language is not None and not str(language).lower().startswith("en"):
        message = f"language {language!r} is not supported; this voice speaks English (en)"
        raise RequestError(message, param="language", code="invalid_value")
    return SpeechRequest(text=text, response_format=response_format, speed=float(speed))


async def create_speech(request: web.Request) -> web.Response:
    """``POST /v1/audio/speech``: the raw audio of the input text."""
    try:
        body = await request.json()
    except json.JSONDecodeError as exc:
        raise RequestError("the request body is not valid JSON") from exc
    speech = parse_speech_request(body)
    synthesizer = request.app[SYNTHESIZER]
    audio = await asyncio.to_thread(_encode, synthesizer, speech)
    return web.Response(body=audio, content_type=CONTENT_TYPES[speech.response_format])


def _encode(synthesizer: SpeechSynthesizer, speech: SpeechRequest) -> bytes:
    pcm = synthesizer.synthesize(speech.text, speech.speed)
    if speech.response_format == "opus":
        return ogg_opus_bytes(pcm, synthesizer.sample_rate)
    return wav_bytes(pcm, synthesizer.sample_rate)


async def list_models(request: web.Request) -> web.Response:
    """``GET /v1/models``: the one voice model."""
    return models_response(request.app[MODEL_ID])


async def list_voices(_request: web.Request) -> web.Response:
    """``GET /v1/audio/voices?model=``: the voices this model speaks with."""
    return web.json_response({"voices": list(VOICES)})


def create_app(synthesizer: SpeechSynthesizer, model_id: str = DEFAULT_MODEL_ID) -> web.Application:
    """The TTS application around an already loaded voice."""
    app = new_application()
    app[SYNTHESIZER] = synthesizer
    app[MODEL_ID] = model_id
    app.router.add_post("/v1/audio/speech", create_speech)
    app.router.add_get("/v1/audio/voices", list_voices)
    app.router.add_get("/v1/models", list_models)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Load the voice and serve until SIGTERM or SIGINT."""
    parser = argument_parser("Piper text-to-speech with an OpenAI-compatible API.")
    parser.add_argument("--model-id", default=DEFAULT_MODEL_ID, help="id announced on /v1/models")
    args = parser.parse_args(argv)
    app = create_app(SpeechSynthesizer.load(), model_id=args.model_id)
    return run(app, ListenAddress(args.host, args.port))


if __name__ == "__main__":
    raise SystemExit(main())
