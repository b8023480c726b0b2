"""Requests relayed through the tunnel to a local model server, and how they fail."""

import asyncio
import gc
import hashlib
import logging
import random

import orjson
import pytest

from inference_club.agent import BackendSettings
from inference_club.agent.backend_client import BackendClient
from inference_club.agent.relay import StreamLimits, StreamRelay
from inference_club.cli.logs import KeyValueFormatter
from inference_club.protocol import (
    MAX_BODY_CHUNK,
    Body,
    Cancel,
    End,
    Frame,
    Request,
    Response,
    Window,
)

from .fakes import TOKEN, WAIT, wait_until

CHAT = orjson.dumps({"model": "tiny-llm", "messages": [{"role": "user", "content": "ping"}]})
SSE_CHAT = orjson.dumps({"model": "tiny-llm", "stream": True, "messages": []})


def messages_of(peer, stream_id: int) -> list[tuple[Frame, ...]]:
    """The messages the agent sent that carry frames of one stream."""
    return [
        message
        for message in peer.messages
        if any(frame.stream_id == stream_id for frame in message)
    ]


async def test_non_streamed_request_is_relayed_with_its_query_and_headers(tunnel):
    """Status, headers and body come back; the backend gets path, query and content type."""
    peer, backend, _ = tunnel
    stream = await peer.request(
        "tiny-llm",
        body=CHAT,
        query="trace=1&x=%20y",
        headers=(("content-type", "application/json"), ("x-request-id", "r-1")),
    )
    relayed = await peer.collect(stream)

    assert relayed.error is None
    assert relayed.response is not None
    assert relayed.response.status == 200
    headers = dict(relayed.response.headers)
    assert headers["content-type"].startswith("application/json")
    assert headers["x-backend"] == "fake"
    assert "content-length" not in headers
    assert "connection" not in headers
    assert orjson.loads(relayed.body)["choices"][0]["message"]["content"] == "pong"
    seen = backend.requests[0]
    assert (seen.method, seen.path, seen.query) == (
        "POST",
        "/v1/chat/completions",
        "trace=1&x=%20y",
    )
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["X-Request-Id"] == "r-1"
    assert seen.body == CHAT
    assert "Authorization" not in seen.headers


async def test_whole_request_goes_with_a_length_and_small_reply_in_one_message(tunnel):
    """A body that came whole is sent with Content-Length; the reply is one batched message."""
    peer, backend, _ = tunnel
    stream = await peer.request("tiny-llm", body=CHAT)
    relayed = await peer.collect(stream)

    seen = backend.requests[0]
    assert seen.body == CHAT
    assert seen.headers["Content-Length"] == str(len(CHAT))
    assert "Transfer-Encoding" not in seen.headers
    [message] = messages_of(peer, stream)
    assert [type(frame) for frame in message] == [Response, Body, End]
    assert relayed.response is not None
    assert relayed.response.status == 200
    assert orjson.loads(relayed.body)["choices"][0]["message"]["content"] == "pong"


async def test_request_frames_in_separate_messages_are_relayed(tunnel):
    """Request, Body and End sent as three messages get the same answer as one batch."""
    peer, backend, _ = tunnel
    stream = await peer.request("tiny-llm", body=CHAT, batched=False)
    relayed = await peer.collect(stream)

    assert relayed.response is not None
    assert relayed.response.status == 200
    assert backend.requests[0].body == CHAT


async def test_every_frame_of_a_batch_is_dispatched_in_order(tunnel):
    """Two whole requests in one message each reach the backend and get their own answer."""
    peer, backend, _ = tunnel
    bodies = {
        stream: orjson.dumps({"model": "tiny-llm", "messages": [], "n": stream})
        for stream in (1, 3)
    }
    frames: list[Frame] = []
    for stream, body in bodies.items():
        head = Request(stream, "POST", "/upload", "tiny-llm", "", (), 10.0)
        frames += [head, Body(stream, body), End(stream)]
    await peer.send_batch(*frames)
    first, second = await asyncio.gather(peer.collect(1), peer.collect(3))

    assert orjson.loads(first.body)["size"] == len(bodies[1])
    assert orjson.loads(second.body)["size"] == len(bodies[3])
    assert sorted(request.body for request in backend.requests) == sorted(bodies.values())


async def test_reply_larger_than_a_chunk_streams_in_pieces(tunnel):
    """A reply over max_body_chunk goes as a head, then pieces of at most a chunk, in order.

    (Pieces queued in one loop turn may share a message; that the head leaves before the
    body is read whole is covered by the SSE test below.)
    """
    peer, _, _ = tunnel
    size = 3 * MAX_BODY_CHUNK
    stream = await peer.request("tiny-llm", "/big", method="GET", query=f"size={size}", headers=())
    relayed = await peer.collect(stream)

    assert len(relayed.body) == size
    assert len(relayed.chunks) >= 3
    assert all(len(data) <= MAX_BODY_CHUNK for _, data in relayed.chunks)
    frames = [frame for message in messages_of(peer, stream) for frame in message]
    assert isinstance(frames[0], Response)
    assert isinstance(frames[-1], End)


async def test_small_reply_over_the_window_waits_for_credit(
    gateway_factory, backend_factory, agent_factory
):
    """A short reply that exceeds the stream's window is not batched past the window."""
    gateway = await gateway_factory(initial_window=100)
    backend = await backend_factory("tiny-llm")
    await agent_factory(gateway, [backend])
    peer = await gateway.next_peer()

    stream = await peer.request("tiny-llm", "/big", method="GET", query="size=300", headers=())
    relayed = await peer.collect(stream)

    assert relayed.body == b"x" * 300
    assert all(len(data) <= 100 for _, data in relayed.chunks)
    # Each 100 bytes waited for its own credit, so they cannot have left in one message.
    assert len(messages_of(peer, stream)) >= 3


async def test_short_reply_cut_off_before_its_length_is_backend_disconnected(tunnel):
    """A reply read whole that ends early fails the stream before any head is relayed."""
    peer, _, _ = tunnel
    relayed = await peer.collect(await peer.request("tiny-llm", "/truncated", b"{}"))

    assert relayed.response is None
    assert relayed.error is not None
    assert relayed.error.type == "backend_disconnected"


async def test_sequential_requests_reuse_one_backend_connection(
    gateway_factory, backend_factory, agent_factory
):
    """Replies of every kind leave their connection in the keep-alive pool for the next one."""
    gateway = await gateway_factory()
    backend = await backend_factory("tiny-llm", sse_delay=0.001)
    await agent_factory(gateway, [backend])
    peer = await gateway.next_peer()
    upload = random.Random(3).randbytes(300 * 1024)

    for _ in range(10):
        relayed = await peer.collect(await peer.request("tiny-llm", body=CHAT))
        assert relayed.end is not None
    for _ in range(3):
        relayed = await peer.collect(await peer.request("tiny-llm", body=SSE_CHAT))
        assert relayed.end is not None
    relayed = await peer.collect(await peer.request("tiny-llm", "/upload", upload))
    assert orjson.loads(relayed.body)["size"] == len(upload)
    for _ in range(5):
        relayed = await peer.collect(await peer.request("tiny-llm", body=CHAT))
        assert relayed.end is not None

    assert len(backend.client_ports) == 1 + 10 + 3 + 1 + 5  # with the model listing
    assert len(set(backend.client_ports)) <= 2


async def test_backend_gets_its_own_key_and_never_an_upstream_credential(
    gateway_factory, backend_factory, agent_factory
):
    """A configured api_key is sent as Bearer; an Authorization header from the tunnel is not."""
    gateway = await gateway_factory()
    backend = await backend_factory("tiny-llm")
    await agent_factory(gateway, [BackendSettings(backend.url, api_key="backend-key-123")])
    peer = await gateway.next_peer()

    stream = await peer.request(
        "tiny-llm",
        body=CHAT,
        headers=(("content-type", "application/json"), ("authorization", "Bearer member-key")),
    )
    relayed = await peer.collect(stream)

    assert relayed.response is not None
    assert relayed.response.status == 200
    assert backend.requests[0].headers["Authorization"] == "Bearer backend-key-123"
    assert backend.listings[0]["Authorization"] == "Bearer backend-key-123"


async def test_sse_events_are_relayed_as_they_are_generated(tunnel):
    """Each SSE event reaches the gateway before the backend has even written the next one."""
    peer, backend, _ = tunnel
    stream = await peer.request("tiny-llm", body=SSE_CHAT)
    relayed = await peer.collect(stream)

    assert relayed.response is not None
    assert dict(relayed.response.headers)["content-type"] == "text/event-stream"
    events = [data for _, data in relayed.chunks]
    assert len(events) == 4
    assert all(event.startswith(b"data: ") and event.endswith(b"\n\n") for event in events)
    assert events[-1] == b"data: [DONE]\n\n"
    arrivals = [at for at, _ in relayed.chunks]
    for index in range(3):
        assert arrivals[index] < backend.sse_sent[index + 1]
    assert relayed.end is not None
    # Events generated apart left apart: no message carries two of them.
    messages = messages_of(peer, stream)
    assert all(sum(isinstance(frame, Body) for frame in message) <= 1 for message in messages)


@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "chunked"])
async def test_large_request_body_streams_through_window_grants(tunnel, with_length):
    """A 3 MB upload arrives intact, in many Body frames, while the agent grants credit back."""
    peer, backend, _ = tunnel
    payload = random.Random(7).randbytes(3 * 1024 * 1024)
    headers = [("content-type", "application/octet-stream")]
    if with_length:
        headers.append(("content-length", str(len(payload))))
    stream = await peer.request("tiny-llm", "/upload", payload, headers=tuple(headers))
    relayed = await peer.collect(stream)

    assert relayed.response is not None
    assert relayed.response.status == 200
    assert orjson.loads(relayed.body) == {
        "size": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    assert backend.requests[0].reads > 1
    granted = peer.granted[stream]
    assert len(granted) >= 3
    assert sum(granted) >= len(payload) - peer.welcome.initial_window


async def test_backend_receives_the_body_before_the_gateway_ends_it(tunnel):
    """The request starts with the first body chunk; the agent does not wait for End."""
    peer, backend, _ = tunnel
    await peer.send(Request(1, "POST", "/upload", "tiny-llm", "", (), 10.0))
    await peer.send(Body(1, b"first part;"))
    await wait_until(lambda: backend.requests and backend.requests[0].body == b"first part;")
    await peer.send(Body(1, b"second part"))
    await peer.send(End(1))
    relayed = await peer.collect(1)

    assert orjson.loads(relayed.body)["size"] == len(b"first part;second part")
    assert backend.requests[0].headers["Transfer-Encoding"] == "chunked"


async def test_response_body_stops_without_credit_and_resumes_on_window(
    gateway_factory, backend_factory, agent_factory
):
    """The agent never sends more than the window allows, and continues when granted more."""
    gateway = await gateway_factory(auto_grant=False, initial_window=1000, max_body_chunk=400)
    backend = await backend_factory("tiny-llm")
    await agent_factory(gateway, [backend])
    peer = await gateway.next_peer()

    stream = await peer.request("tiny-llm", "/big", method="GET", query="size=5000", headers=())
    assert isinstance(await peer.next_frame(stream), Response)
    received = b""
    while len(received) < 1000:
        frame = await peer.next_frame(stream)
        assert isinstance(frame, Body)
        assert len(frame.data) <= 400
        received += frame.data
    with pytest.raises(TimeoutError):
        await peer.next_frame(stream, timeout=0.3)
    assert len(received) == 1000

    await peer.send(Window(stream, 4000))
    relayed = await peer.collect(stream)

    assert len(received + relayed.body) == 5000
    assert all(len(data) <= 400 for _, data in relayed.chunks)
    assert relayed.end is not None


async def test_cancel_aborts_the_backend_request(tunnel, caplog):
    """After Cancel the backend sees its client disconnect, and the stream sends nothing more."""
    caplog.set_level(logging.INFO, logger="inference_club")
    peer, backend, _ = tunnel
    stream = await peer.request("tiny-llm", "/forever", b"{}")
    assert isinstance(await peer.next_frame(stream), Response)
    assert isinstance(await peer.next_frame(stream), Body)

    await peer.send(Cancel(stream))

    await asyncio.wait_for(backend.disconnected.wait(), WAIT)
    await asyncio.sleep(0.1)
    while True:
        try:
            frame = await peer.next_frame(stream, timeout=0.2)
        except TimeoutError:
            break
        assert isinstance(frame, Body), "a cancelled stream ends silently"
    [line] = [record for record in caplog.records if record.getMessage() == "request"]
    assert line.outcome == "cancelled"
    assert line.stream_id == stream


@pytest.mark.parametrize("path", ["/forever", "/hang"], ids=["streaming", "before-head"])
async def test_dropped_tunnel_aborts_backend_requests(tunnel, path):
    """When the tunnel goes away, requests in flight are cancelled at the backend at once."""
    peer, backend, _ = tunnel
    await peer.request("tiny-llm", path, b"{}", timeout=60.0)
    await wait_until(lambda: backend.requests)

    await peer.ws.close()

    await asyncio.wait_for(backend.disconnected.wait(), WAIT)


async def test_concurrent_streams_share_one_tunnel(tunnel):
    """Many requests in flight at once each get their own, correct answer."""
    peer, backend, _ = tunnel
    bodies = [
        orjson.dumps({"model": "tiny-llm", "messages": [], "n": index}) for index in range(20)
    ]
    streams = [await peer.request("tiny-llm", body=body) for body in bodies]
    results = await asyncio.gather(*(peer.collect(stream) for stream in streams))

    assert all(result.response and result.response.status == 200 for result in results)
    assert sorted(orjson.loads(request.body)["n"] for request in backend.requests) == list(
        range(20)
    )


async def test_unknown_model_is_an_error_frame(tunnel):
    """A model no local server offers is answered with unknown_model."""
    peer, _, _ = tunnel
    relayed = await peer.collect(await peer.request("no-such-model", body=CHAT))

    assert relayed.response is None
    assert relayed.error is not None
    assert relayed.error.type == "unknown_model"


async def test_large_body_for_an_unknown_model_does_not_stall_the_gateway(tunnel):
    """A stream that fails early still grants the rest of its body, so the sender finishes."""
    peer, _, _ = tunnel
    stream = await peer.request("no-such-model", body=b"a" * (1024 * 1024))
    relayed = await peer.collect(stream)

    assert relayed.error is not None
    assert relayed.error.type == "unknown_model"
    assert sum(peer.granted[stream]) >= 1024 * 1024 - peer.welcome.initial_window


async def test_backend_answering_before_the_body_ends_is_relayed(tunnel):
    """A server that refuses an upload before reading it: its answer arrives, the body drains."""
    peer, _, _ = tunnel
    stream = await peer.request("tiny-llm", "/reject", b"b" * (2 * 1024 * 1024))
    relayed = await peer.collect(stream)

    assert relayed.response is not None
    assert relayed.response.status == 413
    assert orjson.loads(relayed.body)["error"]["message"] == "too large"
    assert relayed.end is not None


async def test_request_the_agent_cannot_send_is_an_error_frame(tunnel, caplog):
    """A head the agent refuses to send (a newline in a header) fails the stream, not it."""
    peer, backend, _ = tunnel
    headers = (("content-type", "application/json"), ("x-injected", "a\r\nHost: evil"))
    relayed = await peer.collect(await peer.request("tiny-llm", body=CHAT, headers=headers))

    assert relayed.error is not None
    assert relayed.error.type == "agent_error"
    assert backend.requests == []
    relayed = await peer.collect(await peer.request("tiny-llm", body=CHAT))
    assert relayed.response is not None
    assert relayed.response.status == 200


async def test_refused_backend_is_unreachable(gateway_factory, backend_factory, agent_factory):
    """A backend that stopped listening gives backend_unreachable, without its address."""
    gateway = await gateway_factory()
    backend = await backend_factory("tiny-llm")
    await agent_factory(gateway, [backend])
    peer = await gateway.next_peer()
    port = backend.url.split(":")[2].split("/")[0]
    await backend.close()

    relayed = await peer.collect(await peer.request("tiny-llm", body=CHAT))

    assert relayed.error is not None
    assert relayed.error.type == "backend_unreachable"
    assert "refused" in relayed.error.message
    assert "127.0.0.1" not in relayed.error.message
    assert port not in relayed.error.message


async def test_hanging_backend_times_out(tunnel):
    """No response head within the request's timeout gives backend_timeout and a hang-up."""
    peer, backend, _ = tunnel
    stream = await peer.request("tiny-llm", "/hang", b"{}", timeout=0.3)
    await expect_backend_timeout(peer, backend, stream)


async def expect_backend_timeout(peer, backend, stream: int) -> None:
    """The stream ends in backend_timeout with no head, and the backend is hung up on."""
    relayed = await peer.collect(stream)

    assert relayed.response is None
    assert relayed.error is not None
    assert relayed.error.type == "backend_timeout"
    await asyncio.wait_for(backend.disconnected.wait(), WAIT)


async def test_backend_dropping_midway_is_disconnected(tunnel):
    """A connection lost after the head ends the stream with backend_disconnected."""
    peer, _, _ = tunnel
    relayed = await peer.collect(await peer.request("tiny-llm", "/drop", b"{}"))

    assert relayed.response is not None
    assert relayed.response.status == 200
    assert relayed.body.startswith(b"data: partial")
    assert relayed.end is None
    assert relayed.error is not None
    assert relayed.error.type == "backend_disconnected"


async def test_request_line_is_left_out_below_its_level(
    gateway_factory, backend_factory, agent_factory, caplog
):
    """With the request log level below the logger's, requests are relayed without a line."""
    caplog.set_level(logging.INFO, logger="inference_club")
    gateway = await gateway_factory()
    backend = await backend_factory("tiny-llm")
    await agent_factory(gateway, [backend], request_log_level="debug")
    peer = await gateway.next_peer()

    relayed = await peer.collect(await peer.request("tiny-llm", body=CHAT))

    assert relayed.end is not None
    assert not any(record.getMessage() == "request" for record in caplog.records)


async def test_request_log_has_one_line_without_bodies_or_secrets(
    gateway_factory, backend_factory, agent_factory, caplog
):
    """Each request logs model, status, duration and stream id, and never bodies or keys."""
    caplog.set_level(logging.DEBUG, logger="inference_club")
    gateway = await gateway_factory()
    backend = await backend_factory("tiny-llm")
    await agent_factory(gateway, [BackendSettings(backend.url, api_key="backend-key-456")])
    peer = await gateway.next_peer()
    secret_prompt = b"SECRET-PROMPT-TEXT"
    body = orjson.dumps({"model": "tiny-llm", "messages": [{"content": secret_prompt.decode()}]})

    stream = await peer.request("tiny-llm", body=body)
    await peer.collect(stream)
    await wait_until(lambda: any(r.getMessage() == "request" for r in caplog.records))

    formatter = KeyValueFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    text = "\n".join(lines)
    for secret in ("SECRET-PROMPT-TEXT", "backend-key-456", TOKEN, "pong", "usage"):
        assert secret not in text
    [line] = [record for record in caplog.records if record.getMessage() == "request"]
    assert line.levelno == logging.INFO
    assert line.model == "tiny-llm"
    assert line.status == 200
    assert line.stream_id == stream
    assert isinstance(line.duration_ms, int)
    assert line.outcome == "ok"


class DetachedRelays:
    """Stream relays made by hand, outside any tunnel, so a test decides when their tasks run."""

    def __init__(self, backend_url: str) -> None:
        self.http = BackendClient(connect_timeout=2.0)
        self.settings = BackendSettings(backend_url)
        self.sent: list[Frame] = []

    async def _send(self, frame: Frame) -> None:
        self.sent.append(frame)

    async def _send_many(self, frames) -> None:
        self.sent.extend(frames)

    def _try_send(self, frames) -> bool:
        self.sent.extend(frames)
        return True

    def _try_send_body(self, stream_id: int, data: bytes) -> bool:
        self.sent.append(Body(stream_id, data))
        return True

    def with_whole_body(
        self, stream_id: int, path: str, body: bytes, headers: tuple[tuple[str, str], ...] = ()
    ) -> StreamRelay:
        """A relay whose request and whole body have arrived, as after one batch of frames."""
        request = Request(stream_id, "POST", path, "tiny-llm", headers=headers)
        relay = StreamRelay(
            request,
            self.settings,
            http=self.http,
            send=self._send,
            send_many=self._send_many,
            limits=StreamLimits(MAX_BODY_CHUNK, 1 << 20),
            try_send=self._try_send,
            try_send_body=self._try_send_body,
        )
        relay.feed(body)
        relay.end_body()
        return relay


async def test_a_whole_request_leaves_before_its_streams_task_runs(backend_factory):
    """With a connection to the model server idle, a request whose whole body came with it is
    sent from the frame handler; the stream's task then only waits for the reply."""
    backend = await backend_factory("tiny-llm")
    relays = DetachedRelays(backend.url)
    await relays.with_whole_body(1, "/chat/completions", CHAT).run()  # leaves a pooled connection

    relay = relays.with_whole_body(3, "/chat/completions", CHAT)
    relay.send_early()

    await wait_until(lambda: len(backend.requests) == 2)  # no task of stream 3 exists yet
    await relay.run()
    frames = [frame for frame in relays.sent if frame.stream_id == 3]
    assert [type(frame) for frame in frames] == [Response, Body, End]
    assert orjson.loads(frames[1].data)["choices"][0]["message"]["content"] == "pong"
    assert backend.requests[1].body == CHAT
    assert len(set(backend.client_ports)) == 1
    relays.http.close()


async def test_a_request_sent_early_is_hung_up_when_its_stream_is_cancelled_before_it_ran(
    backend_factory,
):
    """A stream cancelled before its task ran leaves nobody to read the reply: the model
    server sees its client go away."""
    backend = await backend_factory("tiny-llm")
    relays = DetachedRelays(backend.url)
    await relays.with_whole_body(1, "/chat/completions", CHAT).run()
    relay = relays.with_whole_body(3, "/hang", b"{}")
    relay.send_early()
    await wait_until(lambda: len(backend.requests) == 2)

    task = asyncio.create_task(relay.run())
    task.cancel()  # before its first step: nothing in run() gets to hang up
    with pytest.raises(asyncio.CancelledError):
        await task
    relay.abandon_early()

    await asyncio.wait_for(backend.disconnected.wait(), WAIT)
    relays.http.close()


async def test_a_request_cancelled_in_the_batch_that_opened_it_never_reaches_the_backend(
    tunnel,
):
    """Request, body, end and cancel in one message: nothing is sent for that stream."""
    peer, backend, _ = tunnel
    await peer.collect(await peer.request("tiny-llm", body=CHAT))  # a pooled connection

    await peer.send_batch(
        Request(101, "POST", "/chat/completions", "tiny-llm"),
        Body(101, CHAT),
        End(101),
        Cancel(101),
    )
    relayed = await peer.collect(await peer.request("tiny-llm", body=b'{"after": 1}'))

    assert relayed.end is not None
    assert [seen.body for seen in backend.requests] == [CHAT, b'{"after": 1}']


def stream_tasks() -> list[str]:
    """The names of the stream tasks running in this loop."""
    return [name for task in asyncio.all_tasks() if (name := task.get_name()).startswith("stream-")]


async def test_a_request_sent_early_waits_for_its_reply_without_a_task(tunnel, caplog):
    """Sent from the frame handler on a pooled connection, a request waits for its reply with
    no task of its own; cancelling it then still hangs up on the model server."""
    caplog.set_level(logging.INFO, logger="inference_club")
    peer, backend, _ = tunnel
    await peer.collect(await peer.request("tiny-llm", body=CHAT))  # a pooled connection
    assert stream_tasks() == []

    stream = await peer.request("tiny-llm", "/hang", b"{}", timeout=60.0)
    await wait_until(lambda: len(backend.requests) == 2)
    assert stream_tasks() == []

    await peer.send(Cancel(stream))
    await asyncio.wait_for(backend.disconnected.wait(), WAIT)

    def outcomes() -> list[tuple[int, str]]:
        lines = [record for record in caplog.records if record.getMessage() == "request"]
        return [(line.stream_id, line.outcome) for line in lines]

    await wait_until(lambda: len(outcomes()) == 2)  # request lines are logged in batches
    assert outcomes()[1] == (stream, "cancelled")


async def test_a_request_waiting_without_a_task_times_out(tunnel):
    """No head by the deadline: the stream's task takes over and reports backend_timeout."""
    peer, backend, _ = tunnel
    await peer.collect(await peer.request("tiny-llm", body=CHAT))
    stream = await peer.request("tiny-llm", "/hang", b"{}", timeout=0.3)
    await wait_until(lambda: len(backend.requests) == 2)
    assert stream_tasks() == []

    await expect_backend_timeout(peer, backend, stream)


async def test_a_reply_to_stream_goes_on_in_a_task_and_arrives_whole(tunnel):
    """A request sent early whose reply is an event stream is handed to its task."""
    peer, backend, _ = tunnel
    await peer.collect(await peer.request("tiny-llm", body=CHAT))
    stream = await peer.request("tiny-llm", body=SSE_CHAT)
    relayed = await peer.collect(stream)

    assert relayed.response is not None
    assert relayed.response.status == 200
    assert relayed.body.count(b"data: ") == 4
    assert relayed.body.endswith(b"data: [DONE]\n\n")
    assert len(set(backend.client_ports[-2:])) == 1  # both went on the pooled connection


async def test_a_request_for_an_event_stream_has_its_task_waiting_for_the_head(tunnel):
    """A client that asks for an event stream gets its task at once, so the first event is
    relayed as soon as it comes, not a loop turn later."""
    peer, backend, _ = tunnel
    await peer.collect(await peer.request("tiny-llm", body=CHAT))
    accept = (("accept", "text/event-stream"),)
    stream = await peer.request("tiny-llm", "/hang", b"{}", headers=accept, timeout=60.0)
    await wait_until(lambda: len(backend.requests) == 2)

    assert stream_tasks() == [f"stream-{stream}"]
    assert len(set(backend.client_ports[-2:])) == 1  # it was still sent early
    await peer.send(Cancel(stream))
    await asyncio.wait_for(backend.disconnected.wait(), WAIT)


async def test_a_streams_head_and_first_event_leave_as_they_arrive_before_its_task_runs(
    backend_factory,
):
    """The reply to a request for an event stream: its head and first event go to the tunnel
    from the call that reads them from the model server, while the stream's task has not
    run; the task then relays the rest after them, without sending the head again."""
    backend = await backend_factory("tiny-llm")
    relays = DetachedRelays(backend.url)
    await relays.with_whole_body(1, "/chat/completions", CHAT).run()  # leaves a pooled connection
    accept = (("accept", "text/event-stream"),)
    relay = relays.with_whole_body(3, "/chat/completions", SSE_CHAT, accept)
    relay.send_early()

    def sent_on_3() -> list[Frame]:
        return [frame for frame in relays.sent if frame.stream_id == 3]

    await wait_until(lambda: len(sent_on_3()) >= 2)  # no task of stream 3 exists
    head, first = sent_on_3()[:2]
    assert isinstance(head, Response)
    assert head.status == 200
    assert isinstance(first, Body)
    assert first.data.startswith(b"data: ")

    await relay.run()
    frames = sent_on_3()
    assert [type(frame) for frame in frames].count(Response) == 1
    assert isinstance(frames[-1], End)
    body = b"".join(frame.data for frame in frames if isinstance(frame, Body))
    assert body.count(b"data: ") == 4
    assert body.endswith(b"data: [DONE]\n\n")
    relays.http.close()


@pytest.mark.usefixtures("without_the_cycle_collector")
async def test_relays_leave_no_reference_cycle_behind(tunnel):
    """A relay is freed by its last reference going, whether its reply went out with a task
    or without one: none waits for the cycle collector."""
    peer, _, _ = tunnel
    await peer.collect(await peer.request("tiny-llm", body=CHAT))  # by a task
    relayed = await peer.collect(await peer.request("tiny-llm", body=CHAT))  # without one
    assert relayed.end is not None
    await asyncio.sleep(0.05)  # what the replies scheduled has run

    assert [thing for thing in gc.get_objects() if isinstance(thing, StreamRelay)] == []
