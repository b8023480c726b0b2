"""The procedural demo image backend behind OpenAI's ``/v1/images`` API (no real model).

Run with ``python -m inference_club.demo.image_server --port 0``. Images come back as
``b64_json`` unless ``response_format=url`` is asked, in which case they are served from
``GET /v1/files/<id>.png`` on this server (the newest few only).
"""

import asyncio
import base64
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from inference_club.demo import procedural
from inference_club.demo.raster import RgbImage, UndecodableImageError, decode_alpha, decode_image
from inference_club.demo.serving import (
    ListenAddress,
    RequestError,
    argument_parser,
    models_response,
    new_application,
    run,
)

DEFAULT_MODEL_ID = "demo-procedural-image"
DEFAULT_SIZE = (256, 256)
MIN_SIDE = 16
MAX_SIDE = 1024
MAX_IMAGES = 10
MAX_PROMPT_CHARACTERS = 32_000


class ImageFiles:
    """The newest generated PNGs by unguessable id, for ``response_format=url``."""

    def __init__(self, capacity: int = 64) -> None:
        self._files: OrderedDict[str, bytes] = OrderedDict()
        self._capacity = capacity

    def add(self, png: bytes) -> str:
        """Keep ``png`` and return its id; the oldest file goes when full."""
        file_id = secrets.token_urlsafe(16)
        self._files[file_id] = png
        while len(self._files) > self._capacity:
            self._files.popitem(last=False)
        return file_id

    def get(self, file_id: str) -> bytes | None:
        """The PNG stored under ``file_id``, if it is still kept."""
        return self._files.get(file_id)


FILES = web.AppKey("files", ImageFiles)
MODEL_ID = web.AppKey("model_id", str)


def parse_size(value: Any) -> tuple[int, int]:
    """``"WxH"`` (or ``"auto"``) as a width and height within the allowed range."""
    if value is None or value == "auto":
        return DEFAULT_SIZE
    width, separator, height = str(value).partition("x")
    if separator and width.isdigit() and height.isdigit():
        size = (int(width), int(height))
        if all(MIN_SIDE <= side <= MAX_SIDE for side in size):
            return size
    message = (
        f"size must be WIDTHxHEIGHT with each side from {MIN_SIDE} to {MAX_SIDE}, e.g. 256x256"
    )
    raise RequestError(message, param="size", code="invalid_value")


def parse_count(value: Any) -> int:
    """``n``: how many images, 1 to MAX_IMAGES."""
    if value is None:
        return 1
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_IMAGES:
        raise RequestError(f"n must be an integer from 1 to {MAX_IMAGES}", param="n")
    return value


def parse_prompt(value: Any) -> str:
    """A non-empty prompt of bounded length."""
    if not isinstance(value, str) or not value.strip():
        raise RequestError("'prompt' must be a non-empty string", param="prompt")
    if len(value) > MAX_PROMPT_CHARACTERS:
        message = f"'prompt' is longer than {MAX_PROMPT_CHARACTERS} characters"
        raise RequestError(message, param="prompt", code="string_above_max_length")
    return value


def parse_response_format(value: Any) -> str:
    """``b64_json`` (the default here) or ``url``."""
    if value is None:
        return "b64_json"
    if value not in ("b64_json", "url"):
        message = "response_format must be b64_json or url"
        raise RequestError(message, param="response_format", code="invalid_value")
    return str(value)


async def create_image(request: web.Request) -> web.Response:
    """``POST /v1/images/generations``: pictures drawn from a hash of the prompt."""
    try:
        body = await request.json()
    except json.JSONDecodeError as exc:
        raise RequestError("the request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    prompt = parse_prompt(body.get("prompt"))
    width, height = parse_size(body.get("size"))
    count = parse_count(body.get("n"))
    response_format = parse_response_format(body.get("response_format"))
    images = await asyncio.to_thread(
        lambda: [procedural.generate(prompt, width, height, i).to_png() for i in range(count)]
    )
    return _images_response(request, images, response_format)


async def edit_image(request: web.Request) -> web.Response:
    """``POST /v1/images/edits``: the uploaded image re-coloured, inside the mask if one is sent."""
    if not request.content_type.startswith("multipart/"):
        raise RequestError("send the image as multipart/form-data with an 'image' field")
    form = await request.post()
    upload = form.get("image") or form.get("image[]")
    if not isinstance(upload, web.FileField):
        raise RequestError("the form needs an 'image' file", param="image")
    prompt = parse_prompt(form.get("prompt"))
    count = parse_count(form.get("n"))
    response_format = parse_response_format(form.get("response_format"))
    mask = form.get("mask")
    image_bytes = upload.file.read()
    mask_bytes = mask.file.read() if isinstance(mask, web.FileField) else None
    images = await asyncio.to_thread(_edit, image_bytes, mask_bytes, prompt, count)
    return _images_response(request, images, response_format)


def _edit(image_bytes: bytes, mask_bytes: bytes | None, prompt: str, count: int) -> list[bytes]:
    try:
        image = decode_image(image_bytes)
    except UndecodableImageError as exc:
        raise RequestError(str(exc), param="image", code="invalid_image_format") from exc
    selection = None if mask_bytes is None else _selection(image, mask_bytes)
    return [
        procedural.recolor(image, prompt, selection, variant=index).to_png()
        for index in range(count)
    ]


def _selection(image: RgbImage, mask_bytes: bytes) -> bytes:
    """Where the mask is fully transparent, which is where OpenAI's edits apply."""
    try:
        width, height, alpha = decode_alpha(mask_bytes)
    except UndecodableImageError as exc:
        raise RequestError(str(exc), param="mask", code="invalid_image_format") from exc
    if (width, height) != (image.width, image.height):
        message = f"the mask is {width}x{height} but the image is {image.width}x{image.height}"
        raise RequestError(message, param="mask", code="invalid_value")
    return alpha.translate(bytes([1]) + bytes(255))


def _images_response(
    request: web.Request, images: list[bytes], response_format: str
) -> web.Response:
    if response_format == "url":
        files = request.app[FILES]
        origin = f"{request.scheme}://{request.host}"
        data = [{"url": f"{origin}/v1/files/{files.add(png)}.png"} for png in images]
    else:
        data = [{"b64_json": base64.b64encode(png).decode()} for png in images]
    return web.json_response({"created": int(time.time()), "data": data})


async def get_file(request: web.Request) -> web.Response:
    """``GET /v1/files/<id>.png``: a PNG made earlier with ``response_format=url``."""
    png = request.app[FILES].get(request.match_info["file_id"])
    if png is None:
        raise RequestError("no such file (it may have expired)", status=404, code="not_found")
    return web.Response(body=png, content_type="image/png")


async def list_models(request: web.Request) -> web.Response:
    """``GET /v1/models``: the one procedural generator."""
    return models_response(request.app[MODEL_ID])


def create_app(model_id: str = DEFAULT_MODEL_ID) -> web.Application:
    """The image application."""
    app = new_application()
    app[FILES] = ImageFiles()
    app[MODEL_ID] = model_id
    app.router.add_post("/v1/images/generations", create_image)
    app.router.add_post("/v1/images/edits", edit_image)
    app.router.add_get("/v1/files/{file_id}.png", get_file)
    app.router.add_get("/v1/models", list_models)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT."""
    parser = argument_parser("A procedural demo image generator with an OpenAI-compatible API.")
    parser.add_argument("--model-id", default=DEFAULT_MODEL_ID, help="id announced on /v1/models")
    args = parser.parse_args(argv)
    return run(create_app(model_id=args.model_id), ListenAddress(args.host, args.port))


if __name__ == "__main__":
    raise SystemExit(main())
