"""``/v1/images/generations`` and ``/v1/images/edits``: every image is stored and linked by URL.

The backend is always asked for ``b64_json`` (the agent inlines images its backend only links
to), so the gateway holds the bytes, checks they are an image, and keeps them as assets.
"""

import binascii
import time
from typing import Any

import orjson
import pybase64

from inference_club.gateway.asgi import parse_json_object, read_body
from inference_club.gateway.context import RequestContext
from inference_club.gateway.disconnect import start_disconnect_watch
from inference_club.gateway.dispatch import forward
from inference_club.gateway.errors import BadRequest, UnsupportedMedia, UpstreamError
from inference_club.gateway.forwarding import OutgoingRequest, Upstream
from inference_club.gateway.image_reply import ImageText, encode_answer, parse_image_reply
from inference_club.gateway.media_replies import (
    asset_owner,
    choice,
    pass_through,
    read_reply,
    require_text,
    send_json_body,
)
from inference_club.gateway.registry import Candidate
from inference_club.gateway.routing import choose, split_model
from inference_club.gateway.uploads import (
    FilePart,
    MultipartBody,
    Upload,
    UploadedFile,
    receive_upload,
)
from inference_club.media import FILE_EXTENSIONS, sniff_image

RESPONSE_FORMATS = ("url", "b64_json")
EDITABLE_TYPES = ("image/png", "image/jpeg", "image/webp")
ACCEPTED_IMAGES = "png, jpeg, webp"
# One generated image, decoded; past this a backend is not sending a picture worth keeping.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
_IMAGE_FILE_FIELDS = frozenset({"image", "image[]", "mask"})
_MANAGED_FIELDS = frozenset({"model", "n", "response_format"})


async def generations(ctx: RequestContext) -> None:
    """Text to image."""
    settings = ctx.services.settings
    raw = await read_body(ctx.scope, ctx.receive, settings.max_request_bytes)
    start_disconnect_watch(ctx)
    request = parse_json_object(raw)
    model = require_text(request.get("model"), "model")
    ctx.exchange.model = model
    require_text(request.get("prompt"), "prompt")
    count = _count(request.get("n"), settings.max_images_per_request)
    response_format = choice(
        request.get("response_format"), "response_format", RESPONSE_FORMATS, "url"
    )
    size = request.get("size")
    if size is not None and not isinstance(size, str):
        raise BadRequest("'size' must be a string such as '1024x1024'.", param="size")
    candidates = choose(ctx, model, "image")
    model_id, _pinned = split_model(model)
    request.update(model=model_id, n=count, response_format="b64_json")
    outgoing = OutgoingRequest(
        method="POST",
        path="/images/generations",
        model=model_id,
        body=orjson.dumps(request),
        headers=(("content-type", "application/json"), ("accept", "application/json")),
    )
    upstream = await _open(ctx, candidates, outgoing)
    await _answer(ctx, upstream, count, response_format)


async def edits(ctx: RequestContext) -> None:
    """Image and prompt to image, from a multipart upload."""
    settings = ctx.services.settings
    async with receive_upload(
        ctx.scope,
        ctx.receive,
        limit=settings.max_request_bytes,
        temp_root=settings.data_dir / "tmp",
        file_fields=_IMAGE_FILE_FIELDS,
    ) as upload:
        start_disconnect_watch(ctx)
        await _edit(ctx, upload)


async def _edit(ctx: RequestContext, upload: Upload) -> None:
    model = require_text(upload.value("model"), "model")
    ctx.exchange.model = model
    images = [item for item in upload.files if item.name in ("image", "image[]")]
    if not images:
        raise BadRequest("Missing required parameter: 'image'.", param="image")
    if len(images) > 1:
        raise BadRequest("Send one 'image' to edit; several are not supported.", param="image")
    require_text(upload.value("prompt"), "prompt")
    count = _count(upload.value("n"), ctx.services.settings.max_images_per_request)
    response_format = choice(
        upload.value("response_format"), "response_format", RESPONSE_FORMATS, "url"
    )
    parts = [_image_part("image", images[0])]
    mask = upload.file("mask")
    if mask is not None:
        parts.append(_image_part("mask", mask))
    candidates = choose(ctx, model, "image")
    model_id, _pinned = split_model(model)
    fields = [("model", model_id)]
    fields += [(name, value) for name, value in upload.fields if name not in _MANAGED_FIELDS]
    fields += [("n", str(count)), ("response_format", "b64_json")]
    body = MultipartBody(fields, parts)
    outgoing = OutgoingRequest(
        method="POST",
        path="/images/edits",
        model=model_id,
        body=b"",
        headers=(*body.headers(), ("accept", "application/json")),
        body_source=body.chunks,
    )
    upstream = await _open(ctx, candidates, outgoing)
    await _answer(ctx, upstream, count, response_format)


def _count(value: Any, most: int) -> int:
    """``n``, clamped to the gateway's setting."""
    if value is None:
        return 1
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest("'n' must be a positive integer.", param="n")
    return min(value, most)


def _image_part(name: str, upload: UploadedFile) -> FilePart:
    """The uploaded image as the backend will get it, typed from its bytes."""
    mime = sniff_image(upload.head)
    if mime not in EDITABLE_TYPES:
        msg = f"The '{name}' is not a supported image; accepted formats: {ACCEPTED_IMAGES}."
        raise UnsupportedMedia(msg, param=name)
    return FilePart(name, f"{name}.{FILE_EXTENSIONS[mime]}", mime, upload.path, upload.size)


async def _open(
    ctx: RequestContext, candidates: list[Candidate], outgoing: OutgoingRequest
) -> Upstream:
    return await forward(ctx, candidates, outgoing)


async def _answer(
    ctx: RequestContext, upstream: Upstream, count: int, response_format: str
) -> None:
    """Store the provider's images and answer with their URLs (and bytes, when asked)."""
    # Base64 takes 4 bytes for every 3, plus room for the JSON around the images.
    limit = count * (MAX_IMAGE_BYTES * 4 // 3 + 4) + 1024 * 1024
    reply = await read_reply(ctx, upstream, limit)
    if upstream.head.status >= 400:
        await pass_through(ctx, upstream, reply)
        return
    document = parse_image_reply(reply)
    items = document.get("data")
    if not isinstance(items, list) or not items:
        raise UpstreamError("The provider's reply holds no images.")
    owner = asset_owner(ctx)
    data: list[dict[str, Any]] = []
    for item in items[:count]:
        encoded, image = _decoded(item)
        mime = sniff_image(image[:64])
        if mime is None:
            ctx.exchange.error_type = "upstream_bad_image"
            raise UpstreamError("The provider's reply holds something that is not an image.")
        asset = await ctx.services.assets.save(image, owner, mime)
        ctx.exchange.image_count = len(data) + 1
        entry: dict[str, Any] = {"url": ctx.services.assets.url(asset.id)}
        if response_format == "b64_json":
            entry["b64_json"] = encoded
        if isinstance(item.get("revised_prompt"), str):
            entry["revised_prompt"] = item["revised_prompt"]
        data.append(entry)
    created = document.get("created")
    answer: dict[str, Any] = {k: v for k, v in document.items() if k not in ("created", "data")}
    answer = {
        "created": created if isinstance(created, int) else int(time.time()),
        "data": data,
        **answer,
    }
    await send_json_body(ctx, encode_answer(answer))


def _decoded(item: Any) -> tuple[str | ImageText, bytes]:
    """One image of the reply as its base64 text and its bytes; anything else is a 502."""
    encoded = item.get("b64_json") if isinstance(item, dict) else None
    if not isinstance(encoded, str | ImageText):
        msg = "The provider answered with an image URL the gateway cannot fetch, not the bytes."
        raise UpstreamError(msg)
    if len(encoded) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise UpstreamError("The provider's image is larger than the gateway accepts.")
    try:
        text = encoded.view if isinstance(encoded, ImageText) else encoded
        return encoded, pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UpstreamError("The provider's image is not valid base64.") from None
