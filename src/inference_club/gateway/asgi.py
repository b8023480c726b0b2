"""Small ASGI helpers for the /v1 hot path: bounded body reads and typed responses."""

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import orjson

from inference_club.gateway.errors import ApiError, BadRequest, TooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_CONTENT_TYPE = (b"content-type", b"application/json")


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (``name`` in lower case), decoded as latin-1."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def extension(scope: Mapping[str, Any], key: str) -> Any:
    """What the server put in ``scope["extensions"]`` under ``key``, or None."""
    extensions = scope.get("extensions")
    return extensions.get(key) if extensions else None


def too_large(limit: int) -> TooLarge:
    """The 413 for a body over ``limit`` bytes."""
    megabytes = limit / (1024 * 1024)
    return TooLarge(f"Request body is larger than the {megabytes:g} MB limit.")


def refuse_declared_over(scope: Scope, limit: int) -> None:
    """413 before reading a byte when the declared Content-Length passes ``limit``."""
    declared = header(scope, b"content-length")
    if declared is None:
        return
    try:
        length = int(declared)
    except ValueError:
        raise BadRequest("Content-Length is not a number.") from None
    if length > limit:
        raise too_large(limit)


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, refused with 413 as soon as it is known to pass ``limit``."""
    refuse_declared_over(scope, limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class ClientGone(Exception):
    """The client disconnected before we could answer."""


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 that says what is wrong."""
    if not body:
        raise BadRequest("The request body is empty; expected a JSON object.")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest("The request body must be a JSON object.")
    return value


async def send_json(
    send: Send, status: int, body: bytes, headers: RawHeaders | None = None
) -> None:
    """A complete JSON response."""
    raw: RawHeaders = [JSON_CONTENT_TYPE, (b"content-length", str(len(body)).encode())]
    if headers:
        raw.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, error: ApiError, headers: RawHeaders | None = None) -> None:
    """An error in the OpenAI envelope; the only place /v1 errors are written."""
    raw = list(headers or [])
    raw.extend((key.lower().encode(), value.encode()) for key, value in error.headers.items())
    await send_json(send, error.status, error.body(), raw)
