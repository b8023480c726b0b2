"""``/v1/audio/transcriptions``, ``/v1/audio/speech`` and ``/v1/audio/voices``.

Transcriptions with ``timestamp_granularities[]`` go only to providers whose model card lists
the matching feature: ``word_timestamps`` for words, ``segment_timestamps`` for segments, or
``timestamps`` for both. When none does, the request is downgraded: the backend is asked for
plain ``json``, the answer is reshaped into the ``verbose_json`` fields the gateway can fill
(text, duration, language when known, usage), and the response carries
``X-Inference-Club-Downgraded: timestamp_granularities``.
"""

import asyncio
import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson

from inference_club.gateway.asgi import ClientGone, parse_json_object, read_body, send_json
from inference_club.gateway.assets import AssetFile
from inference_club.gateway.context import RequestContext
from inference_club.gateway.disconnect import start_disconnect_watch
from inference_club.gateway.dispatch import forward
from inference_club.gateway.errors import BadRequest, UnsupportedMedia, UpstreamError
from inference_club.gateway.forwarding import OutgoingRequest, Upstream
from inference_club.gateway.media_replies import (
    asset_owner,
    choice,
    parse_reply_object,
    pass_through,
    read_reply,
    require_text,
    send_json_reply,
)
from inference_club.gateway.registry import Candidate
from inference_club.gateway.relay import relay_buffered
from inference_club.gateway.routing import choose, split_model
from inference_club.gateway.streams import StreamLost
from inference_club.gateway.uploads import (
    FilePart,
    MultipartBody,
    Upload,
    UploadedFile,
    receive_upload,
)
from inference_club.media import (
    FILE_EXTENSIONS,
    MediaError,
    audio_duration,
    id3_tag_size,
    sniff_audio,
)
from inference_club.protocol import Body, End, Error, ModelCard, Response

logger = logging.getLogger(__name__)

TRANSCRIPTION_FORMATS = ("json", "text", "verbose_json")
GRANULARITY_FEATURES = {"word": "word_timestamps", "segment": "segment_timestamps"}
ALL_TIMESTAMPS_FEATURE = "timestamps"
DOWNGRADED_HEADER = "x-inference-club-downgraded"
ACCEPTED_AUDIO = "wav, mp3, m4a, flac, ogg, webm"
# What each speech format must turn out to be, judged from the bytes.
SPEECH_TYPES = {"wav": "audio/wav", "opus": "audio/ogg"}
_GRANULARITY_FIELDS = ("timestamp_granularities[]", "timestamp_granularities")
_MANAGED_FIELDS = frozenset({"model", "response_format", *_GRANULARITY_FIELDS})
# A transcript is text; anything near this size is not one.
MAX_TRANSCRIPT_BYTES = 8 * 1024 * 1024
# Enough bytes of speech to tell WAV from Ogg before answering.
_SNIFF_AT_LEAST = 16


async def transcriptions(ctx: RequestContext) -> None:
    """Speech to text: the upload is checked and measured here, then sent to an stt model."""
    settings = ctx.services.settings
    async with receive_upload(
        ctx.scope,
        ctx.receive,
        limit=settings.max_request_bytes,
        temp_root=settings.data_dir / "tmp",
        file_fields=frozenset({"file"}),
    ) as upload:
        start_disconnect_watch(ctx)
        await _transcribe(ctx, upload)


async def _transcribe(ctx: RequestContext, upload: Upload) -> None:
    model = require_text(upload.value("model"), "model")
    ctx.exchange.model = model
    audio = upload.file("file")
    if audio is None:
        raise BadRequest("Missing required parameter: 'file'.", param="file")
    response_format = choice(
        upload.value("response_format"), "response_format", TRANSCRIPTION_FORMATS, "json"
    )
    granularities = _granularities(upload, response_format)
    mime = _audio_type(audio)
    candidates = choose(ctx, model, "stt")
    try:
        duration = await asyncio.to_thread(audio_duration, audio.path)
    except MediaError as exc:
        raise BadRequest(f"The 'file' could not be read as audio: {exc}.", param="file") from None
    downgrade = False
    if granularities:
        able = [c for c in candidates if _has_timestamps(c.card, granularities)]
        downgrade = not able
        candidates = able or candidates
    model_id, _pinned = split_model(model)
    fields = [("model", model_id)]
    fields += [(name, value) for name, value in upload.fields if name not in _MANAGED_FIELDS]
    fields.append(("response_format", "json" if downgrade else response_format))
    if not downgrade:
        fields += [("timestamp_granularities[]", value) for value in granularities]
    extension = FILE_EXTENSIONS[mime]
    body = MultipartBody(
        fields, [FilePart("file", f"audio.{extension}", mime, audio.path, audio.size)]
    )
    upstream = await _open(ctx, candidates, "/audio/transcriptions", model_id, body)
    reply = await read_reply(ctx, upstream, MAX_TRANSCRIPT_BYTES)
    if upstream.head.status >= 400:
        await pass_through(ctx, upstream, reply)
        return
    ctx.exchange.audio_seconds = duration
    if response_format == "text":
        await pass_through(ctx, upstream, reply)
        return
    document = parse_reply_object(reply)
    extra: list[tuple[bytes, bytes]] = []
    if downgrade:
        document = _verbose_from_plain(document, upload.value("language"))
        extra.append((DOWNGRADED_HEADER.encode(), b"timestamp_granularities"))
    if response_format == "verbose_json":
        document["duration"] = round(duration, 3)
    document["usage"] = {"type": "duration", "seconds": round(duration, 3)}
    await send_json_reply(ctx, document, extra)


def _granularities(upload: Upload, response_format: str) -> list[str]:
    values = [value for name in _GRANULARITY_FIELDS for value in upload.values(name)]
    unknown = sorted(set(values) - set(GRANULARITY_FEATURES))
    if unknown:
        msg = f"'timestamp_granularities[]' may hold only word and segment (got '{unknown[0]}')."
        raise BadRequest(msg[:300], param="timestamp_granularities")
    if values and response_format != "verbose_json":
        msg = "'timestamp_granularities[]' needs response_format 'verbose_json'."
        raise BadRequest(msg, param="timestamp_granularities")
    return list(dict.fromkeys(values))


def _audio_type(audio: UploadedFile) -> str:
    """The upload's format from its bytes; its name and declared type are not trusted."""
    if audio.size == 0:
        raise BadRequest("The uploaded 'file' is empty.", param="file")
    mime = sniff_audio(audio.head)
    tag_size = id3_tag_size(audio.head)
    if tag_size is not None and tag_size + 4 > len(audio.head):
        # A long ID3 tag may hide a FLAC stream past what the head holds.
        mime = "audio/flac" if _bytes_at(audio.path, tag_size, 4) == b"fLaC" else mime
    if mime is None:
        msg = f"The 'file' is not audio in a supported format; accepted formats: {ACCEPTED_AUDIO}."
        raise UnsupportedMedia(msg, param="file")
    return mime


def _bytes_at(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as file:
        file.seek(offset)
        return file.read(size)


def _has_timestamps(card: ModelCard, granularities: list[str]) -> bool:
    features = set(card.supported_features)
    if ALL_TIMESTAMPS_FEATURE in features:
        return True
    return all(GRANULARITY_FEATURES[value] in features for value in granularities)


def _verbose_from_plain(document: dict[str, Any], language: str | None) -> dict[str, Any]:
    """The verbose_json fields a plain transcription can fill; the timings cannot be made up."""
    verbose: dict[str, Any] = {"task": "transcribe"}
    known = document.get("language") or language
    if isinstance(known, str) and known:
        verbose["language"] = known
    verbose["text"] = document.get("text", "")
    return verbose


async def _open(
    ctx: RequestContext,
    candidates: list[Candidate],
    path: str,
    model_id: str,
    body: MultipartBody,
) -> Upstream:
    outgoing = OutgoingRequest(
        method="POST",
        path=path,
        model=model_id,
        body=b"",
        headers=body.headers(),
        body_source=body.chunks,
    )
    return await forward(ctx, candidates, outgoing)


async def speech(ctx: RequestContext) -> None:
    """Text to speech: the audio streams to the client and into an asset at the same time."""
    settings = ctx.services.settings
    raw = await read_body(ctx.scope, ctx.receive, settings.max_request_bytes)
    start_disconnect_watch(ctx)
    request = parse_json_object(raw)
    model = require_text(request.get("model"), "model")
    ctx.exchange.model = model
    require_text(request.get("input"), "input")
    response_format = choice(
        request.get("response_format"), "response_format", tuple(SPEECH_TYPES), "wav"
    )
    voice = request.get("voice")
    if voice is not None and not isinstance(voice, str):
        raise BadRequest("'voice' must be a string.", param="voice")
    candidates = choose(ctx, model, "tts")
    if voice:
        candidates = _with_voice(candidates, model, voice)
    model_id, _pinned = split_model(model)
    # Backends default to other formats (OpenAI's is mp3), so the format is always named.
    request["model"] = model_id
    request["response_format"] = response_format
    expected = SPEECH_TYPES[response_format]
    outgoing = OutgoingRequest(
        method="POST",
        path="/audio/speech",
        model=model_id,
        body=orjson.dumps(request),
        headers=(("content-type", "application/json"), ("accept", expected)),
    )
    upstream = await forward(ctx, candidates, outgoing)
    if not 200 <= upstream.head.status < 300:
        await relay_buffered(ctx.send, upstream, ctx.exchange, ctx.extra_headers)
        return
    await _relay_speech(ctx, upstream, response_format)


def _with_voice(candidates: list[Candidate], model: str, voice: str) -> list[Candidate]:
    able = [c for c in candidates if not c.card.voices or voice in c.card.voices]
    if able:
        return able
    offered = list(dict.fromkeys(name for c in candidates for name in c.card.voices))
    msg = f"Voice '{voice[:64]}' is not offered by model '{model}'; choose one of: "
    raise BadRequest(msg + ", ".join(offered) + ".", param="voice")


async def _relay_speech(ctx: RequestContext, upstream: Upstream, response_format: str) -> None:
    stream = upstream.stream
    assets = ctx.services.assets
    file = assets.create()
    try:
        first = bytearray()
        ended = False
        while len(first) < _SNIFF_AT_LEAST and not ended:
            data = await _next_audio(ctx, upstream)
            if data is None:
                ended = True
            else:
                first += data
        mime = sniff_audio(bytes(first))
        if mime != SPEECH_TYPES[response_format]:
            ctx.exchange.error_type = "upstream_bad_audio"
            found = mime or "unrecognised data"
            msg = f"The provider answered with {found}, not the {response_format} audio asked for."
            raise UpstreamError(msg)
        ctx.exchange.status = upstream.head.status
        headers = [(b"content-type", mime.encode()), *ctx.extra_headers]
        await ctx.send(
            {"type": "http.response.start", "status": upstream.head.status, "headers": headers}
        )
        data = bytes(first)
        while data is not None:
            file.write(data)
            ctx.exchange.mark_first_byte()
            await ctx.send({"type": "http.response.body", "body": data, "more_body": True})
            data = None if ended else await _next_audio(ctx, upstream)
        stream.close()
        file.close()
        await _keep_speech(ctx, file, mime)
        await ctx.send({"type": "http.response.body", "body": b"", "more_body": False})
    except BaseException:
        file.discard()
        raise


async def _next_audio(ctx: RequestContext, upstream: Upstream) -> bytes | None:
    """The next chunk of the provider's audio, or None at its end."""
    stream = upstream.stream
    event = await stream.next_event()
    match event:
        case Body():
            await stream.consumed(len(event.data))
            return event.data
        case End():
            return None
        case Error():
            ctx.exchange.error_type = event.type
            raise UpstreamError(f"The provider failed mid-response: {event.message}")
        case StreamLost():
            if event.by_client:
                ctx.exchange.client_gone = True
                raise ClientGone
            ctx.exchange.error_type = "provider_lost"
            raise UpstreamError(f"The provider failed mid-response: {event.reason}.")
        case Response():
            ctx.exchange.error_type = "protocol_error"
            raise UpstreamError("The provider sent two response heads.")


async def _keep_speech(ctx: RequestContext, file: AssetFile, mime: str) -> None:
    """Meter the speech by its duration and keep it in the user's history."""
    try:
        duration = await asyncio.to_thread(audio_duration, file.path)
    except MediaError as exc:
        # The client has the bytes already; unmeasurable audio is not worth keeping.
        logger.warning("synthesized speech could not be measured", extra={"reason": str(exc)})
        file.discard()
        return
    ctx.exchange.audio_seconds = duration
    await ctx.services.assets.commit(file, asset_owner(ctx), mime)


async def voices(ctx: RequestContext) -> None:
    """The voices a tts model's providers announced."""
    query = parse_qs(bytes(ctx.scope.get("query_string", b"")).decode("latin-1"))
    model = (query.get("model") or [""])[0]
    if not model:
        raise BadRequest("Missing required query parameter: 'model'.", param="model")
    ctx.exchange.model = model
    candidates = choose(ctx, model, "tts")
    names = list(dict.fromkeys(name for c in candidates for name in c.card.voices))
    ctx.exchange.status = 200
    await send_json(ctx.send, 200, orjson.dumps({"voices": names}), ctx.extra_headers)
