"""What the audio and image handlers share: their input checks and a provider's reply read whole."""

from typing import Any

import orjson

from inference_club.gateway.assets import AssetOwner
from inference_club.gateway.context import RequestContext
from inference_club.gateway.errors import BadRequest, UpstreamError
from inference_club.gateway.forwarding import Upstream, response_headers, upstream_error_message
from inference_club.gateway.relay import collect_body


def require_text(value: Any, name: str) -> str:
    """A required non-empty string parameter, or the 400 that names it."""
    if value is None or value == "":
        raise BadRequest(f"Missing required parameter: '{name}'.", param=name)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"'{name}' must be a non-empty string.", param=name)
    return value


def choice(value: Any, name: str, allowed: tuple[str, ...], default: str) -> str:
    """An optional parameter that must be one of ``allowed``; ``default`` when absent."""
    if value is None:
        return default
    if value not in allowed:
        shown = str(value)[:40]
        msg = f"'{name}' must be one of {', '.join(allowed)} (got '{shown}')."
        raise BadRequest(msg, param=name)
    return str(value)


async def read_reply(ctx: RequestContext, upstream: Upstream, limit: int) -> bytes:
    """The provider's whole reply; a 5xx from its server or a broken body is a 502."""
    body = await collect_body(upstream, ctx.exchange, limit)
    upstream.stream.close()
    status = upstream.head.status
    if status >= 500:
        ctx.exchange.error_type = "upstream_error"
        raise UpstreamError(upstream_error_message(status, body))
    return body


async def pass_through(ctx: RequestContext, upstream: Upstream, body: bytes) -> None:
    """Answer with the provider's reply as it came (a 4xx from its server keeps its message)."""
    status = upstream.head.status
    headers = response_headers(upstream.head)
    headers.append((b"content-length", str(len(body)).encode()))
    headers.extend(ctx.extra_headers)
    await send_reply(ctx, status, headers, body)


async def send_json_reply(
    ctx: RequestContext, document: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    """A 200 JSON answer made by the gateway, with the request's extra headers."""
    await send_json_body(ctx, orjson.dumps(document), extra)


async def send_json_body(
    ctx: RequestContext, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    """``send_json_reply`` of a document already encoded."""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers.extend(extra or [])
    headers.extend(ctx.extra_headers)
    await send_reply(ctx, 200, headers, body)


async def send_reply(
    ctx: RequestContext, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    """One complete response; the exchange notes its status and first byte."""
    ctx.exchange.status = status
    ctx.exchange.mark_first_byte()
    await ctx.send({"type": "http.response.start", "status": status, "headers": headers})
    await ctx.send({"type": "http.response.body", "body": body})


def parse_reply_object(body: bytes) -> dict[str, Any]:
    """The provider's reply as a JSON object, or a 502 that says it was not one."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        msg = "The provider's local server answered with something other than a JSON object."
        raise UpstreamError(msg)
    return parsed


def asset_owner(ctx: RequestContext) -> AssetOwner:
    """Who the assets this request makes belong to, and the usage record they will link to."""
    return AssetOwner(
        user_id=ctx.identity.user_id,
        api_key_id=ctx.identity.key_id,
        started_at=ctx.exchange.started_at,
    )
