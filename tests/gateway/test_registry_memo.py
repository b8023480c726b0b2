"""What the registry remembers about all providers is forgotten whenever they change."""

from inference_club.gateway.connection import ProviderConnection
from inference_club.gateway.registry import ProviderRegistry
from inference_club.protocol import ModelCard, Models, encode


async def _nothing(*_args: object) -> None:
    return None


def _connection(provider_id: int, *models: str) -> ProviderConnection:
    return ProviderConnection(
        provider_id=provider_id,
        provider_name=f"home-{provider_id}",
        owner_id=1,
        models=tuple(ModelCard(model) for model in models),
        send_bytes=_nothing,
        close_socket=_nothing,
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
    await second.handle_message(_models_message("whisper", "piper"))
    assert registry.memo("k", models) == ["llama", "piper", "whisper"]
    registry.remove(first)
    assert registry.memo("k", models) == ["piper", "whisper"]
    assert len(computed) == 4


def _models_message(*models: str) -> bytes:
    return encode(Models(tuple(ModelCard(model) for model in models)))
