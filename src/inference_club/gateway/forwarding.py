"""Sending one request through a provider's tunnel, with failover before the first byte."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass

import orjson

from inference_club.gateway.admission import Admission
from inference_club.gateway.asgi import ClientGone
from inference_club.gateway.connection import ProviderConnection
from inference_club.gateway.errors import UpstreamError
from inference_club.gateway.exchange import Exchange
from inference_club.gateway.registry import Caller, Candidate
from inference_club.gateway.streams import StreamLost, TunnelStream
from inference_club.protocol import (
    BACKEND_TIMEOUT,
    Body,
    End,
    Error,
    Frame,
    Request,
    Response,
    WindowClosed,
)

logger = logging.getLogger(__name__)

# Response headers worth passing from a backend to the client; the rest are hop-by-hop or noise.
PASSED_RESPONSE_HEADERS = frozenset({"content-type", "content-disposition"})


@dataclass(slots=True)
class Upstream:
    """A provider stream whose response head arrived: from here on there is no failover."""

    connection: ProviderConnection
    stream: TunnelStream
    head: Response


# Not frozen: made per request (``inference_club.protocol.frames`` says what that saves).
@dataclass(slots=True)
class OutgoingRequest:
    """What to send to the agent: path relative to the backend's /v1, headers and body."""

    method: str
    path: str
    model: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    query: str = ""
    # For bodies too large to hold (uploads): called once per attempt, so failover can resend.
    body_source: Callable[[], AsyncGenerator[bytes, None]] | None = None


@dataclass(frozen=True, slots=True)
class SentAttempt:
    """A first attempt whose request already went out: on ``exchange.stream``, holding
    ``exchange.slot``; its head is awaited until ``deadline`` (event loop time; None: its
    head arrived already)."""

    candidate: Candidate
    deadline: float | None


@dataclass(frozen=True, slots=True)
class _Attempt:
    candidate: Candidate
    stream: TunnelStream
    # When its head is due (event loop time); None: it arrived already.
    deadline: float | None
    # Whether the request still has to be sent (not for a sent attempt).
    send: bool


async def open_upstream(
    candidates: Sequence[Candidate],
    request: OutgoingRequest,
    exchange: Exchange,
    *,
    timeout: float,
    max_attempts: int,
    admission: Admission | None = None,
    caller: Caller | None = None,
    sent: SentAttempt | None = None,
) -> Upstream:
    """Try candidates until one answers with a response head worth relaying.

    With ``admission``, each attempt holds a slot on its provider (the first may wait in the
    fair queue); the slot that reaches the head stays on ``exchange.slot`` until the request ends.
    With ``sent``, the first attempt is one already sent, and only its head is awaited here.
    """
    last_error = "no provider answered"
    remaining = list(candidates)
    attempts = 0
    while (remaining and attempts < max_attempts) or sent is not None:
        if sent is not None:
            attempt = _sent_attempt(sent, remaining, exchange)
            sent = None
        else:
            found = await _next_candidate(remaining, request.model, exchange, admission, caller)
            if found is None:
                break
            attempt = _new_attempt(found, exchange, timeout)
        candidate, stream = attempt.candidate, attempt.stream
        attempts += 1
        is_last = not remaining or attempts == max_attempts
        connection = candidate.connection
        if exchange.client_gone:
            await connection.cancel(stream)
            raise ClientGone
        exchange.provider_id = connection.provider_id
        try:
            # A timeout scope rather than wait_for: no extra task per request.
            async with asyncio.timeout_at(attempt.deadline):
                if attempt.send:
                    await send_request(connection, stream, request, timeout)
                head = await _await_head(stream)
        except TimeoutError:
            await connection.cancel(stream)
            exchange.error_type = "upstream_timeout"
            msg = f"The provider did not answer within {timeout:g} seconds."
            raise UpstreamError(msg) from None
        except _AttemptFailed as failure:
            await connection.cancel(stream)
            _give_back(exchange, admission)
            if exchange.client_gone:
                raise ClientGone from None
            last_error = failure.message
            logger.info(
                "provider attempt failed",
                extra={"provider": connection.provider_name, "reason": failure.message},
            )
            continue
        if head.status >= 500 and not is_last:
            # A backend error before any byte reached the client: another provider may do better.
            await connection.cancel(stream)
            _give_back(exchange, admission)
            last_error = f"the provider's local server answered {head.status}"
            continue
        return Upstream(connection, stream, head)
    exchange.error_type = "upstream_error"
    raise UpstreamError(f"The provider failed: {last_error}.")


def _sent_attempt(sent: SentAttempt, remaining: list[Candidate], exchange: Exchange) -> _Attempt:
    """The attempt already sent, on its stream; it needs no sending."""
    remaining.remove(sent.candidate)
    assert exchange.stream is not None, "a sent attempt has its stream"
    return _Attempt(sent.candidate, exchange.stream, sent.deadline, send=False)


def _new_attempt(candidate: Candidate, exchange: Exchange, timeout: float) -> _Attempt:
    """A stream opened on ``candidate``, with its deadline; its request is to be sent."""
    stream = candidate.connection.open_stream()
    exchange.stream = stream
    return _Attempt(candidate, stream, asyncio.get_running_loop().time() + timeout, send=True)


async def _next_candidate(
    remaining: list[Candidate],
    model: str,
    exchange: Exchange,
    admission: Admission | None,
    caller: Caller | None,
) -> Candidate | None:
    if admission is None or caller is None:
        return remaining.pop(0)
    if exchange.queue_position is None:
        # The first attempt may wait its turn; failover only takes a provider with room now.
        slot, exchange.queue_position = await admission.reserve(remaining, caller, model)
    else:
        found = admission.try_reserve(remaining, caller)
        if found is None:
            return None
        slot = found
    exchange.slot = slot
    remaining.remove(slot.candidate)
    return slot.candidate


def _give_back(exchange: Exchange, admission: Admission | None) -> None:
    if admission is not None and exchange.slot is not None:
        admission.release(exchange.slot)
        exchange.slot = None


class _AttemptFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def request_frames(
    stream: TunnelStream, request: OutgoingRequest, timeout: float
) -> list[Frame] | None:
    """The whole request as frames for one message, when its body is small enough to go with
    its head (the common JSON case); None for a body sent in chunks."""
    body = request.body
    if request.body_source is not None or len(body) > min(
        stream.max_chunk, stream.send_window.credit
    ):
        return None
    head = _head_frame(stream, request, timeout)
    frames: list[Frame] = [head, Body(stream.stream_id, body)] if body else [head]
    frames.append(End(stream.stream_id))
    return frames


def _head_frame(stream: TunnelStream, request: OutgoingRequest, timeout: float) -> Request:
    return Request(
        stream.stream_id,
        request.method,
        request.path,
        request.model,
        query=request.query,
        headers=request.headers,
        timeout=timeout,
    )


async def send_request(
    connection: ProviderConnection,
    stream: TunnelStream,
    request: OutgoingRequest,
    timeout: float,
) -> None:
    """Send the request's head, body and end on ``stream``."""
    frames = request_frames(stream, request, timeout)
    if frames is not None:
        await stream.send_window.acquire(len(request.body))
        await connection.send_many(frames)
        return
    await connection.send(_head_frame(stream, request, timeout))
    try:
        if request.body_source is not None:
            async with contextlib.aclosing(request.body_source()) as chunks:
                async for chunk in chunks:
                    await stream.send_body(chunk)
        elif request.body:
            await stream.send_body(request.body)
        await stream.send_end()
    except WindowClosed:
        pass  # the stream was lost while sending; the head's wait says why


async def _await_head(stream: TunnelStream) -> Response:
    event = await stream.next_event()
    match event:
        case Response():
            return event
        case Error() if event.type == BACKEND_TIMEOUT:
            # The agent's wait and this one end together; whichever is heard first, the
            # client hears the same: the provider did not answer in time.
            raise TimeoutError
        case Error():
            raise _AttemptFailed(f"{event.type}: {event.message}")
        case StreamLost():
            raise _AttemptFailed(event.reason)
        case Body() | End():
            msg = "the agent sent a body before the response head"
            raise _AttemptFailed(msg)


def response_headers(head: Response) -> list[tuple[bytes, bytes]]:
    """The backend's headers a client should see."""
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in head.headers
        if name.lower() in PASSED_RESPONSE_HEADERS
    ]


def upstream_error_message(status: int, body: bytes) -> str:
    """A readable message for a backend's 5xx, quoting its own message when it gave one."""
    detail = ""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        detail = body[:200].decode("utf-8", errors="replace").strip()
    else:
        if isinstance(parsed, dict):
            error = parsed.get("error")
            if isinstance(error, dict):
                detail = str(error.get("message", ""))[:200]
            elif isinstance(error, str):
                detail = error[:200]
    suffix = f": {detail}" if detail else "."
    return f"The provider's local server failed with status {status}{suffix}"
