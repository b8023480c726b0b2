"""What the registry remembers about all providers is forgotten whenever they change."""

import asyncio
from collections.abc import Awaitable, Callable

from inference_club.gateway.connection import ProviderConnection
from inference_club.gateway.registry import Caller, ProviderRegistry
from inference_club.protocol import End, ModelCard, Models, encode


async def _nothing(*_args: object) -> None:
    return None


def _connection(
    provider_id: int,
    *models: str,
    send_bytes: Callable[[bytes], Awaitable[None]] = _nothing,
    close_socket: Callable[[int, str], Awaitable[None]] = _nothing,
) -> ProviderConnection:
    return ProviderConnection(
        provider_id=provider_id,
        provider_name=f"home-{provider_id}",
        owner_id=1,
        models=tuple(ModelCard(model) for model in models),
        send_bytes=send_bytes,
        close_socket=close_socket,
    )


async def test_memo_is_dropped_when_a_provider_joins_leaves_or_reannounces() -> None:
    """The same key is recomputed after add, remove and a new model list, and only then."""
    registry = ProviderRegistry()
    computed: list[list[str]] = []

    def models() -> list[str]:
        names = sorted(m for c in registry.connections() for m in c.models)
        computed.append(names)
        return names

    first = _connection(1, "llama")
    registry.add(first)
    assert registry.memo("k", models) == ["llama"]
    assert registry.memo("k", models) == ["llama"]  # remembered
    second = _connection(2, "whisper")
    registry.add(second)
    assert registry.memo("k", models) == ["llama", "whisper"]
    second.handle_message(_models_message("whisper", "piper"))
    assert registry.memo("k", models) == ["llama", "piper", "whisper"]
    registry.remove(first)
    assert registry.memo("k", models) == ["piper", "whisper"]
    assert len(computed) == 4


def _models_message(*models: str) -> bytes:
    return encode(Models(tuple(ModelCard(model) for model in models)))


async def test_a_closing_tunnel_leaves_the_model_list_before_its_socket_is_closed() -> None:
    """While a tunnel's socket is still closing, the remembered list already lacks it."""
    registry = ProviderRegistry()
    socket_closing = asyncio.Event()
    finish_close = asyncio.Event()

    async def slow_close(*_args: object) -> None:
        socket_closing.set()
        await finish_close.wait()

    closing = _connection(1, "llama", close_socket=slow_close)
    registry.add(closing)
    registry.add(_connection(2, "whisper"))

    def models() -> list[str]:
        return sorted(m for c in registry.connections() for m in c.models)

    assert registry.memo("k", models) == ["llama", "whisper"]
    close = asyncio.create_task(closing.close(1000, "bye"))
    await socket_closing.wait()
    assert registry.memo("k", models) == ["whisper"]
    assert registry.get(1) is None
    finish_close.set()
    await close


async def test_a_lost_socket_drops_the_provider_from_routing_at_once() -> None:
    """A failed write removes the provider without waiting for its handler to finish."""
    registry = ProviderRegistry()

    async def broken(_data: bytes) -> None:
        raise ConnectionResetError("gone")

    lost = _connection(7, "llama", send_bytes=broken)
    registry.add(lost)
    await lost.send(End(1))
    for _ in range(5):
        await asyncio.sleep(0)
    await lost.send(End(2))  # the failure is seen at this send

    assert lost.closed
    assert registry.get(7) is None
    assert registry.candidates(Caller(1), "llama") == []
