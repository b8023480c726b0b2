"""Chat and completions through gateway, tunnel and agent against a fake backend."""

import asyncio
import socket
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from tests.support.fake_backend import FakeBackend
from tests.support.processes import Gateway, Process, wait_for_models
from tests.support.usage import chat_records


@pytest.fixture
def member(
    gateway: Gateway,
    backend_factory: Callable[..., FakeBackend],
    agent_factory: Callable[..., Process],
) -> tuple[str, FakeBackend, Process]:
    """Alice with one provider serving ``fake-llm`` through a running agent."""
    key = gateway.add_user("alice")
    token = gateway.add_provider("alice", "alice-home")
    backend = backend_factory("fake-llm")
    agent = agent_factory(token, backend.url)
    wait_for_models(gateway.v1, key, {"fake-llm"})
    return key, backend, agent


def client(gateway: Gateway, key: str, **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0, **kwargs)  # type: ignore[arg-type]


def test_models_list_has_the_contract_fields(
    gateway: Gateway, member: tuple[str, FakeBackend, Process]
) -> None:
    """GET /v1/models lists the provider's model with the spec's Model fields."""
    key, _backend, _agent = member
    models = client(gateway, key).models.list().data
    assert [m.id for m in models] == ["fake-llm"]
    entry = models[0].model_dump()
    assert entry["owned_by"] == "alice-home"
    assert entry["object"] == "model"
    assert entry["service_type"] == "llm"
    assert entry["input_modalities"] == ["text"]
    assert entry["output_modalities"] == ["text"]
    assert isinstance(entry["created"], int)


def test_chat_passes_the_body_through_untouched(
    gateway: Gateway, member: tuple[str, FakeBackend, Process]
) -> None:
    """A non-streamed chat reaches the backend with unknown fields intact and returns its reply."""
    key, backend, _agent = member
    reply = client(gateway, key).chat.completions.create(
        model="fake-llm",
        messages=[{"role": "user", "content": "hello"}],
        extra_body={"tools_extra": {"x": [1, 2]}, "reasoning_effort": "low"},
    )
    assert reply.choices[0].message.content == "echo from fake: hello"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 3
    seen = backend.requests[-1]
    assert seen["tools_extra"] == {"x": [1, 2]}
    assert seen["reasoning_effort"] == "low"
    # The member's API key never reaches the home machine.
    assert key not in str(seen["_headers"])


def test_completions_endpoint(gateway: Gateway, member: tuple[str, FakeBackend, Process]) -> None:
    """Legacy completions are proxied to the backend's /v1/completions."""
    key, backend, _agent = member
    reply = client(gateway, key).completions.create(model="fake-llm", prompt="once")
    assert reply.choices[0].text == "completion from fake: once"
    assert backend.requests[-1]["_path"] == "/v1/completions"


def test_stream_strips_usage_chunk_client_did_not_ask_for(
    gateway: Gateway, member: tuple[str, FakeBackend, Process]
) -> None:
    """Streams ask the backend for usage but only show it to clients that asked."""
    key, backend, _agent = member
    chunks = list(
        client(gateway, key).chat.completions.create(
            model="fake-llm", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "tok0 tok1 tok2 tok3 tok4 "
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    assert backend.requests[-1]["stream_options"] == {"include_usage": True}


def test_stream_keeps_usage_chunk_when_asked(
    gateway: Gateway, member: tuple[str, FakeBackend, Process]
) -> None:
    """A client asking include_usage gets the usage chunk."""
    key, _backend, _agent = member
    chunks = list(
        client(gateway, key).chat.completions.create(
            model="fake-llm",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5


def test_stream_arrives_chunk_by_chunk(
    gateway: Gateway, member: tuple[str, FakeBackend, Process]
) -> None:
    """A slow stream's first chunk reaches the client long before the last."""
    key, _backend, _agent = member
    stream = client(gateway, key).chat.completions.create(
        model="fake-llm", messages=[{"role": "user", "content": "slow"}], stream=True
    )
    started = time.monotonic()
    arrivals = [time.monotonic() - started for _chunk in stream]
    assert len(arrivals) == 21
    # 20 chunks 100 ms apart: unbuffered relay spreads arrivals over ~2 s.
    assert arrivals[0] < 0.5
    assert arrivals[-1] - arrivals[0] > 1.5


def test_backend_error_is_502_in_the_envelope(
    gateway: Gateway, member: tuple[str, FakeBackend, Process]
) -> None:
    """A backend 500 becomes a 502 upstream_error quoting the backend's message."""
    key, _backend, _agent = member
    with pytest.raises(openai.APIStatusError) as raised:
        client(gateway, key).chat.completions.create(
            model="fake-llm", messages=[{"role": "user", "content": "fail"}]
        )
    assert raised.value.status_code == 502
    body = raised.value.response.json()
    assert body["error"]["type"] == "upstream_error"
    assert "model exploded" in body["error"]["message"]


def test_hanging_backend_is_502_after_the_timeout(
    gateway: Gateway, member: tuple[str, FakeBackend, Process]
) -> None:
    """A backend that never answers gives a 502 after the upstream timeout, not a hang."""
    key, _backend, _agent = member
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as raised:
        client(gateway, key, timeout=30).chat.completions.create(
            model="fake-llm", messages=[{"role": "user", "content": "hang"}]
        )
    assert raised.value.status_code == 502
    assert "did not answer within 3 seconds" in raised.value.response.json()["error"]["message"]
    assert time.monotonic() - started < 10


def test_backend_dropping_mid_stream_ends_with_an_error_event(
    gateway: Gateway, member: tuple[str, FakeBackend, Process]
) -> None:
    """A backend that cuts the stream makes the SDK raise instead of hanging."""
    key, _backend, _agent = member
    received = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in client(gateway, key, timeout=15).chat.completions.create(
            model="fake-llm", messages=[{"role": "user", "content": "drop"}], stream=True
        ):
            received.append(chunk)
    assert len(received) == 2
    assert "mid-stream" in str(raised.value)


def stream_chat(
    gateway: Gateway, key: str, content: str, **fields: object
) -> AbstractContextManager[httpx.Response]:
    """A streamed chat through httpx, to read the raw events (a context manager)."""
    return httpx.stream(
        "POST",
        f"{gateway.v1}/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "model": "fake-llm",
            "messages": [{"role": "user", "content": content}],
            "stream": True,
            **fields,
        },
        timeout=10,
    )


def test_client_disconnect_reaches_the_backend(
    gateway: Gateway, member: tuple[str, FakeBackend, Process]
) -> None:
    """Closing the client mid-stream makes the backend see its connection close."""
    key, backend, _agent = member
    with stream_chat(gateway, key, "slow") as response:
        for _line in response.iter_lines():
            break
    deadline = time.monotonic() + 5
    while "slow" not in backend.disconnects and time.monotonic() < deadline:
        time.sleep(0.05)
    assert backend.disconnects == ["slow"]


def test_agent_killed_mid_stream_ends_with_an_error_event(
    gateway: Gateway, member: tuple[str, FakeBackend, Process]
) -> None:
    """A provider that vanishes mid-stream ends the stream with an error within seconds."""
    key, _backend, agent = member
    stream = client(gateway, key, timeout=30).chat.completions.create(
        model="fake-llm", messages=[{"role": "user", "content": "slow"}], stream=True
    )
    started = time.monotonic()
    with pytest.raises(openai.APIError):
        for index, _chunk in enumerate(stream):
            if index == 1:
                agent.kill()
    assert time.monotonic() - started < 5


def test_a_slow_reader_gets_every_chunk_in_order_and_holds_the_backend_back(
    gateway: Gateway, member: tuple[str, FakeBackend, Process]
) -> None:
    """A client that stops reading mid-stream pauses the relay all the way to the backend,
    without the gateway holding the backlog; read again, every chunk arrives once, in order."""
    key, backend, _agent = member
    chunks = 20000  # about 24 MB of events: more than the kernel's socket buffers hold
    command = f"flood:{chunks}"
    body = orjson.dumps(
        {"model": "fake-llm", "messages": [{"role": "user", "content": command}], "stream": True}
    )
    host, port = gateway.url.removeprefix("http://").split(":")
    rss_before = _rss(gateway.process.popen.pid)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # A small receive buffer so that the gateway's side backs up soon.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
            b"Authorization: Bearer " + key.encode() + b"\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        received = bytearray(sock.recv(4096))
        time.sleep(2.0)
        assert backend.written[command] < chunks  # held back while nobody read
        assert _rss(gateway.process.popen.pid) - rss_before < 8 * 1024 * 1024
        sock.settimeout(20)
        while not received.endswith(b"\r\n0\r\n\r\n"):
            data = sock.recv(65536)
            assert data, "the gateway closed the connection mid-stream"
            received += data
    head, _, chunked = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    events = _dechunk(chunked).split(b"\n\n")
    tokens = [
        orjson.loads(event[6:])["choices"][0]["delta"]["content"].split(" ")[0]
        for event in events
        if event.startswith(b"data: {") and b'"tok' in event
    ]
    assert tokens == [f"tok{index}" for index in range(chunks)]
    assert events[-2] == b"data: [DONE]"


def _rss(pid: int) -> int:
    """A process's resident memory in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    msg = f"no VmRSS for process {pid}"
    raise AssertionError(msg)


def _dechunk(data: bytes) -> bytes:
    """The payload of an HTTP/1.1 chunked body."""
    out = bytearray()
    position = 0
    while True:
        line_end = data.index(b"\r\n", position)
        size = int(data[position:line_end], 16)
        if size == 0:
            return bytes(out)
        start = line_end + 2
        out += data[start : start + size]
        position = start + size + 2


def test_pinned_stream_still_asks_for_usage_and_is_metered(
    gateway: Gateway, member: tuple[str, FakeBackend, Process]
) -> None:
    """A stream pinned to a provider (its body encoded again with the plain model id) asks the
    backend for usage all the same, keeps it from the client, and is metered with it."""
    key, backend, _agent = member
    chunks = list(
        client(gateway, key).chat.completions.create(
            model="fake-llm@alice-home", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )

    assert all(c.usage is None for c in chunks)
    seen = backend.requests[-1]
    assert seen["model"] == "fake-llm"
    assert seen["stream_options"] == {"include_usage": True}
    [record] = asyncio.run(chat_records(gateway.data, 1))
    assert record.completion_tokens == 5


def test_stream_with_null_stream_options_is_metered(
    gateway: Gateway, member: tuple[str, FakeBackend, Process]
) -> None:
    """``"stream_options": null`` is the same as none: the backend is asked for usage (the
    client's null does not win over it), the client does not see it, and the record has it."""
    key, backend, _agent = member
    with stream_chat(gateway, key, "hi", stream_options=None) as response:
        events = [line for line in response.iter_lines() if line.startswith("data: {")]

    assert response.status_code == 200
    assert events
    assert all("usage" not in orjson.loads(line.removeprefix("data: ")) for line in events)
    assert backend.requests[-1]["stream_options"] == {"include_usage": True}
    [record] = asyncio.run(chat_records(gateway.data, 1))
    assert record.completion_tokens == 5
