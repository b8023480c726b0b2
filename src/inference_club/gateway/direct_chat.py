"""Text completions sent from the protocol's callbacks; their replies answered there too.

Through ASGI, every request costs a task and its steps, the ASGI messages and the request's
way through the app's layers, whatever the request does. For the commonest requests, a chat
or text completion with a small body, the HTTP protocol hands the request here the moment
its body is in (``GatewayApp.direct_request``). When all it needs can be known at once (a
kept API key, current sharing, the in-memory rate counter, today's quota totals already
loaded, a provider with a free slot whose tunnel takes the frames), ``start`` sends it and
returns. With rate counters in Redis, ``start`` asks Redis to count and returns; Redis's
reply, from the callback of its connection, sends the request the same way, or hands it to a
task with the count made (a refusal to answer, a slot to wait for, a client that left).

For a non-streamed request, the tunnel's callback that brings the reply's last frame writes
the response and leaves the usage record. For a streamed one, the callback that brings the
head writes it, the callbacks that bring chunks write them (through the usage tap), and the
one that brings the end completes the response and leaves the usage record: a stream that
goes as expected never has a task.

Anything else takes the ASGI path, so every answer is the one that path gives:

- Before anything was counted or sent (an error to report, a queue to wait in, a database
  to ask), ``start`` declines and the protocol starts the request's task as usual.
- Counted in Redis but not sent (a refusal to answer, a slot to wait for, a client that
  left), the request's task runs the ASGI path with the count made (``serve(counted=...)``).
- After the request went out (a body past half the stream's window, a status of 500 or
  more, a stream's head that cannot be written directly or a chunk its client is not ready
  for, an error or a loss, no head by the deadline, the client leaving), the request goes
  on in a task from the attempt in flight, through the same code the ASGI path runs
  (``forward`` with the attempt already sent, then ``relay_text``, which takes over the
  stream's usage tap and knows its head went out).
"""

import asyncio
import logging
from collections.abc import Callable, Iterable
from functools import partial

from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from inference_club.gateway.asgi import ASGIApp, Receive, Scope, Send
from inference_club.gateway.auth import bearer_token
from inference_club.gateway.context import RequestContext
from inference_club.gateway.direct_body import direct_body
from inference_club.gateway.disconnect import start_disconnect_watch
from inference_club.gateway.dispatch import forward, queue_position_header
from inference_club.gateway.errors import ApiError
from inference_club.gateway.exchange import Exchange
from inference_club.gateway.forwarding import (
    OutgoingRequest,
    SentAttempt,
    request_frames,
)
from inference_club.gateway.ratelimit import MemoryRateCounter, RateDecision, RedisRateCounter
from inference_club.gateway.registry import Caller, Candidate
from inference_club.gateway.relay import (
    answer_whole,
    direct_sink,
    stream_headers,
    usage_of_json,
)
from inference_club.gateway.routing import choose_in
from inference_club.gateway.services import Services
from inference_club.gateway.sse import UsageTap
from inference_club.gateway.streams import FINAL_EVENTS, StreamEvent, TunnelStream
from inference_club.gateway.text_routes import (
    TEXT_ENDPOINTS,
    parse_text_request,
    relay_text,
    text_outgoing,
)
from inference_club.gateway.v1 import ROUTES, RequestRun, meter, rate_of, serve
from inference_club.protocol import Response
from inference_club.store import KeyIdentity, WouldWait

logger = logging.getLogger(__name__)

# Starts the request's task with this ASGI app (the protocol's own start, one cycle bound).
StartTask = Callable[[ASGIApp], None]
# Who asks, the providers that may serve the request, and what to send them.
_Planned = tuple[Caller, list[Candidate], OutgoingRequest]


def direct_chat(
    services: Services,
    cycle: RequestResponseCycle,
    start_task: StartTask,
    on_done: Callable[[], None],
) -> "DirectChat | None":
    """A direct handler for the request of ``cycle`` if it may be one: a POST to a text
    completion endpoint with a declared, small body and no 100-continue."""
    scope = cycle.scope  # read as it is: typing.cast is a call, at run time too
    endpoint = TEXT_ENDPOINTS.get(scope["path"])
    if endpoint is None or scope["method"] != "POST" or cycle.waiting_for_100_continue:
        return None
    heads = _direct_headers(scope["headers"])
    if heads is None:
        return None
    declared, authorization = heads
    # Within the protocol's buffer, so reading is never paused while nothing reads the body.
    if not 0 < declared <= min(HIGH_WATER_LIMIT, services.settings.max_request_bytes):
        return None
    return DirectChat(services, cycle, start_task, on_done, endpoint, authorization=authorization)


def _direct_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[int, str | None] | None:
    """The declared Content-Length and the Authorization of a request that may go the direct
    way (each header's first value), in one pass over its headers; None when its length is
    not declared in digits, or it has a Transfer-Encoding."""
    declared: bytes | None = None
    authorization: bytes | None = None
    for key, value in headers:
        if key == b"content-length":
            if declared is None:
                declared = value
        elif key == b"authorization":
            if authorization is None:
                authorization = value
        elif key == b"transfer-encoding" and value:
            return None
    if declared is None or not declared.isdigit():
        return None
    return int(declared), None if authorization is None else bytes(authorization).decode("latin-1")


class DirectChat:
    """One request sent, and its reply (whole or streamed) answered, from callbacks while all
    goes as expected."""

    __slots__ = (
        "_authorization",
        "_caller",
        "_candidate",
        "_candidates",
        "_cycle",
        "_deadline",
        "_exchange",
        "_extra_headers",
        "_identity",
        "_on_done",
        "_outgoing",
        "_path",
        "_required",
        "_services",
        "_start_task",
        "_stream",
        "_streaming",
        "_strip_usage",
        "_tap",
        "_timer",
    )

    def __init__(
        self,
        services: Services,
        cycle: RequestResponseCycle,
        start_task: StartTask,
        on_done: Callable[[], None],
        endpoint: tuple[str, str],
        *,
        authorization: str | None,
    ) -> None:
        self._services = services
        self._cycle = cycle
        self._start_task = start_task
        self._on_done = on_done
        # The backend's path and the field the request must have.
        self._path, self._required = endpoint
        self._authorization = authorization
        self._exchange = Exchange(endpoint=ROUTES[("POST", cycle.scope["path"])][1])
        self._timer: asyncio.TimerHandle | None = None
        self._stream: TunnelStream | None = None
        self._streaming = False
        self._strip_usage = False
        # Set once a stream's head went out from the callback that saw it arrive: what reads
        # the chunks written after it, before and after its task takes over.
        self._tap: UsageTap | None = None

    def start(self) -> bool:
        """Send the request if nothing must be waited for, or once Redis counted it; False,
        with nothing counted or sent, when the ASGI path must serve it."""
        services = self._services
        identity = self._identity_now()
        if (
            identity is None
            or not services.quotas.allows_now(identity)
            or not services.registry.sharing.is_current(identity.sharing_revision)
        ):
            return False
        counter = services.rate_counter
        if isinstance(counter, MemoryRateCounter):
            return self._start_counting_in_memory(counter, identity)
        if isinstance(counter, RedisRateCounter):
            return self._start_counting_in_redis(counter, identity)
        return False

    def _start_counting_in_memory(self, counter: MemoryRateCounter, identity: KeyIdentity) -> bool:
        key, limit = rate_of(self._services, identity)
        if not counter.would_allow(key, limit):
            return False
        planned = self._plan(identity)
        if planned is None or not self._send_planned(*planned):
            return False
        # Counted once sent, so a request the ASGI path serves instead is counted there.
        self._extra_headers = counter.hit_now(key, limit).headers()
        return True

    def _start_counting_in_redis(self, counter: RedisRateCounter, identity: KeyIdentity) -> bool:
        planned = self._plan(identity)
        if planned is None:
            return False
        # From here the request is this object's: sent once Redis counted it, or handed to a
        # task that goes on with the count.
        counter.hit_then(*rate_of(self._services, identity), partial(self._counted, planned))
        return True

    def _counted(self, planned: "_Planned", decision: RateDecision) -> None:
        """Redis counted the request: send it, or hand it to a task that goes on from the
        count (a refusal to answer, a queue to wait in, a client that left)."""
        self._extra_headers = decision.headers()
        try:
            if decision.allowed and not self._cycle.disconnected and self._send_planned(*planned):
                return
        except Exception:
            logger.exception("a counted direct request failed to start; its task serves it")
        self._on_done()
        self._start_task(partial(serve, self._services, counted=decision))

    def _send_planned(
        self, caller: Caller, candidates: list[Candidate], outgoing: OutgoingRequest
    ) -> bool:
        """Take a slot and send; False, with the slot given back, when either cannot be now."""
        services = self._services
        slot = services.admission.reserve_now(candidates, caller, outgoing.model)
        if slot is None:
            return False
        # The deadline counts from before the send, as on the ASGI path.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + services.settings.upstream_timeout
        try:
            stream = self._send(slot.candidate, outgoing)
        except BaseException:
            services.admission.release(slot)
            raise
        if stream is None:
            services.admission.release(slot)
            return False
        # Sent: from here on the request is this object's to finish, or its task's.
        exchange = self._exchange
        exchange.slot = slot
        exchange.queue_position = 0
        exchange.stream = stream
        exchange.provider_id = slot.candidate.connection.provider_id
        self._caller = caller
        self._candidates = candidates
        self._candidate = slot.candidate
        self._outgoing = outgoing
        self._stream = stream
        self._deadline = deadline
        self._timer = loop.call_at(self._deadline, self._go_on_in_task)
        stream.listen(self._on_event)
        return True

    def client_left(self) -> None:
        """The client's connection closed while the reply was awaited."""
        if self._stream is not None:
            self._exchange.client_gone = True
            self._go_on_in_task()

    def _plan(self, identity: KeyIdentity) -> "_Planned | None":
        """Who asks, the request's candidates and what to send them; None for an error to
        report (the ASGI path reports it)."""
        self._identity = identity
        caller = Caller(
            user_id=identity.user_id,
            groups=self._services.registry.sharing.groups_of(identity.user_id),
        )
        body = bytes(self._cycle.body)
        try:
            request = parse_text_request(body, self._required, self._exchange)
            candidates = choose_in(self._services.registry, caller, request.model, "llm")
            outgoing, self._strip_usage = text_outgoing(request, self._path, body)
        except ApiError:
            return None
        self._streaming = request.streaming
        return caller, candidates, outgoing

    def _identity_now(self) -> KeyIdentity | None:
        token = bearer_token(self._authorization)
        if token is None:
            return None
        try:
            return self._services.store.authenticate_api_key_now(token)
        except WouldWait:
            return None

    def _send(self, candidate: Candidate, outgoing: OutgoingRequest) -> TunnelStream | None:
        """A stream on ``candidate`` with the whole request queued on it, or None (nothing
        sent) when it does not fit one message or the tunnel pushes back."""
        connection = candidate.connection
        stream = connection.open_stream()
        try:
            frames = request_frames(stream, outgoing, self._services.settings.upstream_timeout)
            sent = (
                frames is not None
                and stream.send_window.try_spend(len(outgoing.body))
                and connection.try_send_many(frames)
            )
        except BaseException:
            stream.close()
            raise
        if not sent:
            stream.close()
            return None
        return stream

    def _on_event(self, event: StreamEvent) -> None:
        """An event of the reply arrived; answer once it holds the whole reply.

        Called while the tunnel's message is dispatched: a failure here must not reach the
        tunnel (and every other stream on it), so it is logged and the task takes over.
        """
        try:
            self._on_reply_event(event)
        except Exception:
            logger.exception("a direct reply failed; the request's task goes on with it")
            self._go_on_in_task()

    def _on_reply_event(self, event: StreamEvent) -> None:
        stream = self._stream
        assert stream is not None
        if self._streaming:
            self._on_stream_event(stream)
        elif isinstance(event, FINAL_EVENTS):
            self._answer(stream)
        elif isinstance(event, Response):
            # The deadline is for the head only, as on the ASGI path.
            self._stop_timer()
            if event.status >= 500:
                self._go_on_in_task()  # a failover to try
        elif stream.buffered > stream.initial_window // 2:
            self._go_on_in_task()  # a body whose window must be granted on the way

    def _on_stream_event(self, stream: TunnelStream) -> None:
        """A streamed reply's head leaves from the callback that sees it arrive, and its
        chunks from the callbacks that bring them (``_write_stream_head``); its end completes
        the response and leaves the usage record here too. Anything else (a head it cannot
        write so, a chunk the client is not ready for, an error, a loss) goes on in the task,
        which relays the rest."""
        if self._tap is None:
            head = stream.first_event()
            if isinstance(head, Response) and head.status < 400:
                self._write_stream_head(stream, head)
            if self._tap is None:
                self._go_on_in_task()
            else:
                self._stop_timer()  # the deadline is for the head only, as on the ASGI path
            return
        whole = stream.whole_reply()
        if whole is None or whole[1]:
            self._go_on_in_task()  # queued chunks, an error or a loss: the task relays them
            return
        self._finish_stream(stream)

    def _finish_stream(self, stream: TunnelStream) -> None:
        """The stream ended with every chunk written: write the end and meter the request."""
        tap = self._tap
        assert tap is not None, "only once the head went out directly"
        direct = direct_body(self._cycle.scope)
        if direct is None or not direct.writable():
            self._go_on_in_task()
            return
        exchange = self._exchange
        rest = tap.flush()
        if tap.usage is not None:
            exchange.usage = tap.usage
        if rest:
            exchange.mark_first_byte()
        # Done before the write: a complete response lets the connection's next request start.
        self._stop()
        stream.sink_bodies(None)
        stream.close()  # the agent is done with it: nothing to cancel there
        try:
            direct.finish_chunked(rest)
        finally:
            # Whatever the write met, the request is over: its slot and record are due.
            meter(self._services, self._identity, exchange)

    def _answer(self, stream: TunnelStream) -> None:
        whole = stream.whole_reply()
        if whole is None or whole[0].status >= 500:
            self._go_on_in_task()  # an error or a loss: the ASGI path's code reports it
            return
        head, chunks = whole
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        exchange = self._exchange
        cycle = self._cycle
        # Done before the write: a written reply lets the connection's next request start.
        self._stop()
        extra_headers = [*self._extra_headers, queue_position_header(0)]
        unwritten = answer_whole(
            head,
            body,
            exchange,
            extra_headers,
            read_usage=usage_of_json,
            direct=direct_body(cycle.scope),
        )
        if unwritten is not None:
            if not cycle.disconnected:
                # The client pushes back, or a header cannot go out this way: ASGI sends it.
                self._start_task(self._go_on)
                return
            exchange.client_gone = True
            exchange.error_type = "client_disconnected"
        stream.close()
        meter(self._services, self._identity, exchange)

    def _write_stream_head(self, stream: TunnelStream, head: Response) -> None:
        """Write a stream's head to the client now, and have the chunks that follow it written
        as they arrive, through a usage tap; a task that takes the stream over later goes on
        from the body, with the same tap."""
        direct = direct_body(self._cycle.scope)
        extra_headers = [*self._extra_headers, queue_position_header(0)]
        if direct is None or not direct.start_chunked(
            head.status, stream_headers(head, extra_headers)
        ):
            return
        self._exchange.response_started = True
        self._exchange.status = head.status
        self._tap = tap = UsageTap(strip_usage=self._strip_usage)
        stream.sink_bodies(direct_sink(direct, self._exchange, tap), before_reading=True)

    def _go_on_in_task(self) -> None:
        """Hand the request to a task that goes on from the attempt in flight."""
        if self._stream is None:
            return  # answered, or handed over already
        self._stop()
        self._start_task(self._go_on)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _stop(self) -> None:
        self._stop_timer()
        if self._stream is not None:
            self._stream.listen(None)
            self._stream = None
        self._on_done()

    async def _go_on(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app of the task: the rest of the ASGI path, with its error handling and
        metering, from the attempt in flight."""
        run = RequestRun(
            self._services,
            self._exchange,
            send,
            identity=self._identity,
            extra_headers=self._extra_headers,
        )
        await run.guard(lambda: self._relay(run.context(scope, receive, self._caller)))

    async def _relay(self, ctx: RequestContext) -> None:
        start_disconnect_watch(ctx)
        # Once a stream's head went out, the head's deadline is past its use: a task that
        # takes over later (a client that stopped reading) must not time the stream out.
        deadline = None if self._tap is not None else self._deadline
        sent = SentAttempt(self._candidate, deadline)
        upstream = await forward(ctx, self._candidates, self._outgoing, sent)
        await relay_text(
            ctx,
            upstream,
            streaming=self._streaming,
            strip_usage=self._strip_usage,
            head_written=self._tap is not None,
            tap=self._tap,
        )
