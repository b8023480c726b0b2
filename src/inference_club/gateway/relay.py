"""Relaying a provider's response to the client: whole for JSON, chunk by chunk for streams."""

from collections.abc import Callable
from typing import Any

import orjson

from inference_club.gateway.asgi import RawHeaders, Send
from inference_club.gateway.direct_body import DirectBody
from inference_club.gateway.errors import UpstreamError
from inference_club.gateway.exchange import Exchange
from inference_club.gateway.forwarding import Upstream, response_headers, upstream_error_message
from inference_club.gateway.sse import UsageTap, error_event
from inference_club.gateway.streams import BodySink, StreamLost, TunnelStream
from inference_club.protocol import Body, End, Error, Response

# Bodies a backend sends as one JSON document are small; anything past this is not a chat reply.
MAX_BUFFERED_RESPONSE = 16 * 1024 * 1024


async def collect_body(upstream: Upstream, exchange: Exchange, limit: int) -> bytes:
    """The whole response body; a failure on the way is a 502.

    A body larger than half the stream's window is going to be held whole anyway, so the
    window widens then, to ``limit`` or ``WIDEST_WINDOW`` if that is less: the agent sends
    on without waiting for credit a window per round trip.
    """
    chunks: list[bytes] = []
    size = 0
    stream = upstream.stream
    widen_at = stream.initial_window // 2
    while True:
        event = await stream.next_event()
        match event:
            case Body():
                size += len(event.data)
                if size > limit:
                    exchange.error_type = "upstream_too_large"
                    msg = "The provider's response was larger than the gateway accepts."
                    raise UpstreamError(msg)
                chunks.append(event.data)
                if size >= widen_at:
                    widen_at = limit + 1
                    await stream.widen_window(limit)
                await stream.consumed(len(event.data))
            case End():
                return b"".join(chunks)
            case Error():
                exchange.error_type = event.type
                msg = f"The provider failed mid-response: {event.message}"
                raise UpstreamError(msg)
            case StreamLost():
                exchange.client_gone = event.by_client
                exchange.error_type = "client_disconnected" if event.by_client else "provider_lost"
                raise UpstreamError(f"The provider failed mid-response: {event.reason}.")
            case Response():
                msg = "The provider sent two response heads."
                raise UpstreamError(msg)


async def relay_buffered(
    send: Send,
    upstream: Upstream,
    exchange: Exchange,
    extra_headers: RawHeaders,
    *,
    read_usage: Callable[[bytes], dict[str, Any] | None] | None = None,
    direct: DirectBody | None = None,
) -> None:
    """Read the whole reply, then answer: a failure mid-body becomes a clean 502.

    With ``direct``, the answer is written in one call rather than as two ASGI messages.
    """
    body = await collect_body(upstream, exchange, MAX_BUFFERED_RESPONSE)
    upstream.stream.close()
    status = upstream.head.status
    if status >= 500:
        exchange.error_type = "upstream_error"
        raise UpstreamError(upstream_error_message(status, body))
    headers = answer_whole(
        upstream.head, body, exchange, extra_headers, read_usage=read_usage, direct=direct
    )
    if headers is None:
        return
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def answer_whole(
    head: Response,
    body: bytes,
    exchange: Exchange,
    extra_headers: RawHeaders,
    *,
    read_usage: Callable[[bytes], dict[str, Any] | None] | None,
    direct: DirectBody | None,
) -> RawHeaders | None:
    """Note a whole reply (below 500) on ``exchange`` and write it through ``direct`` when it
    can: None once written, else the headers to send it with through ASGI."""
    status = head.status
    if read_usage is not None and status < 400:
        exchange.usage = read_usage(body)
    exchange.status = status
    headers = response_headers(head)
    headers.extend(extra_headers)
    exchange.mark_first_byte()
    if direct is not None and direct.respond(status, headers, body):
        exchange.response_started = True
        return None
    return headers


def usage_of_json(body: bytes) -> dict[str, Any] | None:
    """The ``usage`` object of a JSON reply, if it has one."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(parsed, dict) and isinstance(parsed.get("usage"), dict):
        usage: dict[str, Any] = parsed["usage"]
        return usage
    return None


async def relay_stream(
    send: Send,
    upstream: Upstream,
    exchange: Exchange,
    extra_headers: RawHeaders,
    tap: UsageTap | None,
    *,
    direct: DirectBody | None = None,
    head_written: bool = False,
) -> None:
    """Pass the body through as it arrives; a failure after the head ends it with an error event.

    With ``direct``, chunks are written to the client as the tunnel delivers them, without
    waking this task; it still writes what queued meanwhile, the end and any error.
    ``head_written``: the head (below 400) went out already, through ``direct``.
    """
    head = upstream.head
    stream = upstream.stream
    if head.status >= 400:
        # Errors are small JSON; answer them whole so they keep the envelope.
        await relay_buffered(send, upstream, exchange, extra_headers, direct=direct)
        return
    exchange.status = head.status
    await _start_stream(send, head, extra_headers, written=head_written)
    stream.sink_bodies(direct_sink(direct, exchange, tap))
    try:
        while True:
            _flush_before_waiting(stream, direct)
            event = await stream.next_event()
            match event:
                case Body():
                    # Chunks that arrived meanwhile (a busy loop) leave in the same write.
                    data = stream.with_ready_bodies(event.data)
                    received = len(data)
                    if tap is not None:
                        data = tap.feed(data)
                    if data:
                        exchange.mark_first_byte()
                        await send({"type": "http.response.body", "body": data, "more_body": True})
                    await stream.consumed(received)
                case End():
                    rest = tap.flush() if tap is not None else b""
                    await send({"type": "http.response.body", "body": rest, "more_body": False})
                    return
                case Error():
                    exchange.error_type = event.type
                    await _end_with_error(send, f"The provider failed mid-stream: {event.message}")
                    return
                case StreamLost():
                    exchange.client_gone = event.by_client
                    if event.by_client:
                        exchange.error_type = "client_disconnected"
                        return
                    exchange.error_type = "provider_lost"
                    await _end_with_error(send, f"The provider failed mid-stream: {event.reason}.")
                    return
                case Response():
                    exchange.error_type = "protocol_error"
                    await _end_with_error(send, "The provider sent two response heads.")
                    return
    finally:
        stream.sink_bodies(None)
        if tap is not None and tap.usage is not None:
            exchange.usage = tap.usage


async def _start_stream(
    send: Send, head: Response, extra_headers: RawHeaders, *, written: bool
) -> None:
    if written:
        return  # by the callback that saw the head arrive
    headers = stream_headers(head, extra_headers)
    await send({"type": "http.response.start", "status": head.status, "headers": headers})


def stream_headers(head: Response, extra_headers: RawHeaders) -> list[tuple[bytes, bytes]]:
    """The headers of a streamed reply: the backend's a client should see, no caching or
    proxy buffering, then the gateway's own."""
    headers = response_headers(head)
    headers.append((b"cache-control", b"no-cache"))
    headers.append((b"x-accel-buffering", b"no"))
    headers.extend(extra_headers)
    return headers


def _flush_before_waiting(stream: TunnelStream, direct: DirectBody | None) -> None:
    """With nothing more to join, what the task wrote (the head, a first chunk) leaves now
    rather than when the turn ends, after every other callback that is ready."""
    if direct is not None and not stream.has_event():
        direct.flush()


def direct_sink(
    direct: DirectBody | None, exchange: Exchange, tap: UsageTap | None
) -> BodySink | None:
    """What writes a stream's chunks straight to the client through ``direct`` (through
    ``tap`` first) while it can; None without ``direct``."""
    if direct is None:
        return None

    def sink(data: bytes) -> bool:
        if not direct.writable():
            return False
        if tap is not None:
            data = tap.feed(data)
        if data:
            exchange.mark_first_byte()
            direct.write(data)
        return True

    return sink


async def _end_with_error(send: Send, message: str) -> None:
    await send({"type": "http.response.body", "body": error_event(message), "more_body": False})
