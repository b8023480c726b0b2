"""The gateway's tunnel endpoint refuses bad peers with a clear close reason and stays up."""

import asyncio
import struct

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from inference_club.protocol import (
    MAX_BODY_CHUNK,
    PROTOCOL_VERSION,
    CloseCode,
    FrameType,
    Hello,
    ModelCard,
    Models,
    Ping,
    Pong,
    Welcome,
    decode,
    encode,
)
from tests.support.processes import Gateway, wait_for_models


def connect(gateway: Gateway, token: str) -> websockets.asyncio.client.connect:
    return websockets.asyncio.client.connect(
        f"ws://127.0.0.1:{gateway.port}/api/tunnel",
        additional_headers={"Authorization": f"Bearer {token}"},
        max_size=None,
    )


async def closed_with(ws: ClientConnection) -> tuple[int, str]:
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason or ""


async def hello(ws: ClientConnection, *models: str) -> Welcome:
    await ws.send(encode(Hello(PROTOCOL_VERSION, "test", tuple(ModelCard(m) for m in models))))
    welcome = decode(await asyncio.wait_for(ws.recv(), 5))  # type: ignore[arg-type]
    assert isinstance(welcome, Welcome)
    return welcome


async def test_bad_token_is_closed_with_authentication_failed(gateway: Gateway) -> None:
    """A wrong provider token is refused with close code 4003."""
    async with connect(gateway, "icp_wrong") as ws:
        code, reason = await closed_with(ws)
    assert code == CloseCode.AUTHENTICATION_FAILED
    assert reason == "invalid provider token"


async def test_an_api_key_cannot_register_a_provider(gateway: Gateway) -> None:
    """Member API keys and provider tokens are not interchangeable."""
    key = gateway.add_user("alice")
    async with connect(gateway, key) as ws:
        code, _reason = await closed_with(ws)
    assert code == CloseCode.AUTHENTICATION_FAILED


async def test_wrong_protocol_version_is_refused(gateway: Gateway) -> None:
    """An agent speaking another protocol version is told which one the gateway speaks."""
    gateway.add_user("alice")
    token = gateway.add_provider("alice", "home")
    async with connect(gateway, token) as ws:
        await ws.send(encode(Hello(99, "test", ())))
        code, reason = await closed_with(ws)
    assert code == CloseCode.UNSUPPORTED_VERSION
    assert f"speaks {PROTOCOL_VERSION}" in reason


@pytest.mark.parametrize(
    ("message", "expected_code", "expected_reason"),
    [
        (b"\x7f\x00\x00\x00\x01", CloseCode.MALFORMED_FRAME, "unknown frame type"),
        (
            bytes([FrameType.BODY]) + struct.pack(">I", 1) + b"x" * (MAX_BODY_CHUNK + 1),
            CloseCode.MESSAGE_TOO_BIG,
            "exceeds",
        ),
        (
            bytes([FrameType.MODELS]) + struct.pack(">I", 0) + b"{",
            CloseCode.MALFORMED_FRAME,
            "not JSON",
        ),
        (
            encode(Hello(PROTOCOL_VERSION, "again", ())),
            CloseCode.MALFORMED_FRAME,
            "may not send hello",
        ),
        ("a text message", CloseCode.MALFORMED_FRAME, "text messages are not frames"),
    ],
)
async def test_malformed_frame_closes_only_that_tunnel(
    gateway: Gateway, message: bytes | str, expected_code: int, expected_reason: str
) -> None:
    """A bad frame closes the tunnel with a clear reason; the gateway keeps serving."""
    key = gateway.add_user("alice")
    token = gateway.add_provider("alice", "home")
    async with connect(gateway, token) as ws:
        await hello(ws, "m1")
        await asyncio.to_thread(wait_for_models, gateway.v1, key, {"m1"})
        await ws.send(message)
        code, reason = await closed_with(ws)
    assert code == expected_code
    assert expected_reason in reason
    # The provider is offline now and the gateway is still healthy.
    await asyncio.to_thread(wait_for_models, gateway.v1, key, set())
    assert httpx.get(f"{gateway.url}/healthz", timeout=5).status_code == 200


async def test_models_can_change_while_connected_and_ping_is_answered(gateway: Gateway) -> None:
    """A models frame replaces the announced list at once; a ping gets its pong."""
    key = gateway.add_user("alice")
    token = gateway.add_provider("alice", "home")
    async with connect(gateway, token) as ws:
        welcome = await hello(ws, "m1")
        assert welcome.provider == "home"
        await asyncio.to_thread(wait_for_models, gateway.v1, key, {"m1"})
        await ws.send(encode(Models((ModelCard("m2"), ModelCard("m3")))))
        await asyncio.to_thread(wait_for_models, gateway.v1, key, {"m2", "m3"})
        await ws.send(encode(Ping(b"abc")))
        while True:
            frame = decode(await asyncio.wait_for(ws.recv(), 5))  # type: ignore[arg-type]
            if isinstance(frame, Pong):
                assert frame.payload == b"abc"
                break


async def test_silent_agent_is_dropped_after_missed_heartbeats(gateway: Gateway) -> None:
    """An agent that never answers pings is disconnected within a few heartbeats (0.5 s here)."""
    key = gateway.add_user("alice")
    token = gateway.add_provider("alice", "home")
    async with connect(gateway, token) as ws:
        await hello(ws, "m1")
        # Read nothing and answer nothing; websockets still answers protocol-level pings,
        # so only the tunnel's own heartbeat can notice.
        await asyncio.sleep(0.2)
        await asyncio.to_thread(wait_for_models, gateway.v1, key, set(), 10.0)
        code, reason = await closed_with(ws)
    assert code == CloseCode.HEARTBEAT_TIMEOUT
    assert "heartbeat" in reason
