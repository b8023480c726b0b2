"""The tunnel's life: handshake and announcement, heartbeats, reconnection and rejection."""

import asyncio
import itertools
import logging
import socket

from aiohttp import WSMsgType, web

from inference_club import __version__
from inference_club.agent import BackendSettings, ModelSettings
from inference_club.protocol import (
    DEFAULT_INITIAL_WINDOW,
    MAX_BODY_CHUNK,
    MAX_FRAME_SIZE,
    PROTOCOL_VERSION,
    CloseCode,
    ModelCard,
    Models,
    Ping,
    Pong,
    Welcome,
    decode_message,
    encode,
    encode_batch,
)
from inference_club.protocol.websocket_frames import frame_header

from .fakes import TOKEN, WAIT, FakeGateway, start_server, wait_until


async def test_hello_announces_discovered_models_with_overrides(
    gateway_factory, backend_factory, agent_factory
):
    """The first frame carries the protocol version and every model, with config overrides."""
    gateway = await gateway_factory(provider="brian-home")
    llm = await backend_factory()
    llm.models = [
        {"id": "llama-3b", "object": "model", "meta": {"n_ctx_train": 8192}},
        {"id": "qwen-7b", "object": "model", "max_model_len": 32768},
    ]
    speech = await backend_factory("piper-joe")
    speech.voices = {"piper-joe": ["joe", "amy"]}
    models = {
        "qwen-7b": ModelSettings(
            context_length=4096,
            max_concurrency=2,
            supported_features=("tools",),
            share=("network", "group:friends"),
        )
    }
    agent = await agent_factory(
        gateway,
        [llm, BackendSettings(speech.url, service_type="tts")],
        models=models,
    )
    peer = await gateway.next_peer()

    assert peer.hello.protocol_version == PROTOCOL_VERSION
    assert peer.hello.agent_version == __version__
    assert peer.hello.models == (
        ModelCard("llama-3b", context_length=8192),
        ModelCard("piper-joe", service_type="tts", voices=("joe", "amy")),
        ModelCard(
            "qwen-7b",
            context_length=4096,
            max_concurrency=2,
            supported_features=("tools",),
            visibility=("network", "group:friends"),
        ),
    )
    assert gateway.attempts[0]["path_qs"] == "/api/tunnel"
    assert gateway.attempts[0]["authorization"] == f"Bearer {TOKEN}"
    await asyncio.wait_for(agent.connected.wait(), WAIT)
    assert agent.provider == "brian-home"


async def test_model_list_changes_are_announced(gateway_factory, backend_factory, agent_factory):
    """A model appearing, and a backend going down, each send a new Models frame."""
    gateway = await gateway_factory()
    first = await backend_factory("alpha")
    second = await backend_factory("beta")
    await agent_factory(gateway, [first, second], rediscover_interval=0.05)
    peer = await gateway.next_peer()
    assert [card.id for card in peer.hello.models] == ["alpha", "beta"]

    first.models.append({"id": "alpha-2", "object": "model"})
    frame = await peer.next_control()
    assert isinstance(frame, Models)
    assert [card.id for card in frame.models] == ["alpha", "alpha-2", "beta"]

    await second.close()
    frame = await peer.next_control()
    assert isinstance(frame, Models)
    assert [card.id for card in frame.models] == ["alpha", "alpha-2"]


async def test_unchanged_models_are_not_reannounced(tunnel):
    """Rediscovery that finds the same models sends nothing."""
    peer, _, agent = tunnel
    await agent.rediscover()
    await agent.rediscover()

    assert peer.control.empty()


async def test_first_backend_wins_a_shared_model_id(
    gateway_factory, backend_factory, agent_factory, caplog
):
    """Two servers offering one id: requests go to the first, and a warning says so."""
    gateway = await gateway_factory()
    first = await backend_factory("same")
    second = await backend_factory("same")
    await agent_factory(gateway, [first, second])
    peer = await gateway.next_peer()

    relayed = await peer.collect(await peer.request("same", body=b'{"model": "same"}'))

    assert relayed.response is not None
    assert len(first.requests) == 1
    assert second.requests == []
    assert [card.id for card in peer.hello.models] == ["same"]
    assert any(
        record.levelno == logging.WARNING and record.model == "same" for record in caplog.records
    )


async def test_ping_is_answered_with_the_same_payload(tunnel):
    """Every Ping gets a Pong carrying its payload."""
    peer, _, _ = tunnel
    await peer.send(Ping(b"beat-1"))
    await peer.send(Ping(b"beat-2"))

    assert await peer.next_control() == Pong(b"beat-1")
    assert await peer.next_control() == Pong(b"beat-2")


async def test_silent_gateway_is_declared_dead_and_redialled(
    gateway_factory, backend_factory, agent_factory
):
    """With no frame for three heartbeat intervals the agent closes and reconnects."""
    gateway = await gateway_factory(heartbeat_interval=0.1)
    backend = await backend_factory("tiny-llm")
    await agent_factory(gateway, [backend])
    peer = await gateway.next_peer()
    opened = asyncio.get_running_loop().time()

    await asyncio.wait_for(peer.closed.wait(), WAIT)
    silent_for = asyncio.get_running_loop().time() - opened

    assert peer.close_code == CloseCode.HEARTBEAT_TIMEOUT
    assert 0.25 <= silent_for < 2.0
    again = await gateway.next_peer()
    assert [card.id for card in again.hello.models] == ["tiny-llm"]


async def test_heartbeats_keep_the_tunnel_alive(gateway_factory, backend_factory, agent_factory):
    """Pings more often than the dead-peer timeout keep one connection open."""
    gateway = await gateway_factory(heartbeat_interval=0.1)
    backend = await backend_factory("tiny-llm")
    agent = await agent_factory(gateway, [backend])
    peer = await gateway.next_peer()

    for beat in range(10):
        await peer.send(Ping(str(beat).encode()))
        await asyncio.sleep(0.08)

    assert not peer.closed.is_set()
    assert agent.connections == 1


async def test_a_malformed_message_closes_the_tunnel_as_a_protocol_error(tunnel, caplog):
    """A message the agent cannot read (an unknown frame type), handled as the socket reads
    it, fails the tunnel as one its serving task read would: closed with the malformed-frame
    code, the reason logged, and a new tunnel dialled."""
    peer, _, agent = tunnel
    connections = agent.connections
    caplog.set_level(logging.INFO, logger="inference_club")

    await peer.ws.send_bytes(b"\xee\x00\x00\x00\x00")
    await asyncio.wait_for(peer.closed.wait(), WAIT)

    assert peer.close_code == CloseCode.MALFORMED_FRAME
    await wait_until(lambda: agent.connections == connections + 1)
    assert any("protocol error" in str(vars(record)) for record in caplog.records)


async def test_a_message_begun_in_the_read_that_brought_the_welcome_is_read_whole(
    backend_factory, agent_factory
):
    """A gateway with requests waiting for the agent sends them right behind its welcome, so
    the read that brings the welcome may end inside the next message: that message, and
    every one after it, is read whole and answered."""
    pongs: list[bytes] = []
    answered = asyncio.Event()
    welcome = encode(
        Welcome(PROTOCOL_VERSION, "brian-home", MAX_BODY_CHUNK, DEFAULT_INITIAL_WINDOW, 30.0)
    )
    # Payloads that read as the header of a 65,535-byte frame, more than all that follows:
    # a reader that took one for a frame's start would wait for the rest forever.
    looks_like_a_header = bytes((0x02, 126, 0xFF, 0xFF)) * 12
    batch = encode_batch([Ping(b"%d:" % number + looks_like_a_header) for number in range(500)])
    last = encode(Ping(b"last"))
    wire = b"".join(frame_header(len(data)) + data for data in (welcome, batch, last))
    # Inside the batch's frame, where such a payload starts.
    cut = wire.index(looks_like_a_header, len(frame_header(len(welcome))) + len(welcome) + 1000)

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME_SIZE + 5, heartbeat=None)
        await ws.prepare(request)
        await ws.receive(timeout=WAIT)  # the hello
        assert request.transport is not None
        request.transport.write(wire[:cut])
        await asyncio.sleep(0.1)  # so the agent reads the first part alone
        request.transport.write(wire[cut:])
        async for message in ws:
            if message.type is WSMsgType.BINARY:
                pongs.extend(f.payload for f in decode_message(message.data) if isinstance(f, Pong))
                if pongs and pongs[-1] == b"last":
                    answered.set()
        return ws

    app = web.Application()
    app.router.add_get("/api/tunnel", handle)
    server = await start_server(app)
    try:
        backend = await backend_factory("tiny-llm")
        await agent_factory(str(server.make_url("")), [backend])
        await asyncio.wait_for(answered.wait(), WAIT)
    finally:
        await server.close()

    assert pongs == [b"%d:" % number + looks_like_a_header for number in range(500)] + [b"last"]


async def test_reconnects_and_reannounces_after_the_gateway_closes(tunnel):
    """A closed tunnel is redialled and the new hello carries the models again."""
    peer, _, agent = tunnel
    gateway_attempts = agent.connections

    await peer.ws.close(code=CloseCode.GOING_AWAY)
    await wait_until(lambda: agent.connections == gateway_attempts + 1)

    assert agent.connected.is_set()


async def test_keeps_dialling_until_the_gateway_is_up(backend_factory, agent_factory):
    """Refused connections are retried with backoff until a gateway listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = await backend_factory("tiny-llm")
    agent = await agent_factory(f"http://127.0.0.1:{port}", [backend])
    await asyncio.sleep(0.3)
    assert not agent.connected.is_set()

    gateway = await FakeGateway(port=port).start()
    try:
        peer = await gateway.next_peer()
        assert [card.id for card in peer.hello.models] == ["tiny-llm"]
        await asyncio.wait_for(agent.connected.wait(), WAIT)
    finally:
        await agent.stop()
        await gateway.close()


async def test_bad_token_logs_a_clear_error_and_retries_slowly(
    gateway_factory, backend_factory, agent_factory, caplog
):
    """An authentication close is logged without the token and retried only at the cap."""
    gateway = await gateway_factory(token="some-other-token")
    backend = await backend_factory("tiny-llm")
    agent = await agent_factory(gateway, [backend], backoff_cap=0.3)

    await wait_until(lambda: len(gateway.attempts) >= 3)

    starts = [attempt["at"] for attempt in gateway.attempts]
    assert all(later - earlier >= 0.29 for earlier, later in itertools.pairwise(starts))
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert errors
    assert "provider token" in errors[0].getMessage()
    assert errors[0].close_code == CloseCode.AUTHENTICATION_FAILED
    assert all(TOKEN not in record.getMessage() for record in caplog.records)
    assert not agent.connected.is_set()
    assert agent.connections == 0


async def test_unsupported_version_is_logged_as_such(
    gateway_factory, backend_factory, agent_factory, caplog
):
    """A version close says to upgrade, and the agent keeps running."""
    gateway = await gateway_factory(reject_code=CloseCode.UNSUPPORTED_VERSION)
    backend = await backend_factory("tiny-llm")
    agent = await agent_factory(gateway, [backend])

    await wait_until(lambda: any(r.levelno == logging.ERROR for r in caplog.records))

    error = next(record for record in caplog.records if record.levelno == logging.ERROR)
    assert "protocol version" in error.getMessage()
    assert "upgrade" in error.getMessage()
    assert agent.connections == 0


async def test_stop_closes_the_tunnel(tunnel):
    """Stopping the agent closes its WebSocket."""
    peer, _, agent = tunnel
    await agent.stop()

    await asyncio.wait_for(peer.closed.wait(), WAIT)
    assert not agent.connected.is_set()
