"""Model discovery: what each local server offers, merged with the owner's settings."""

import logging
import socket

import pytest

from inference_club.agent import BackendSettings, ModelSettings
from inference_club.agent.backend_client import BackendClient
from inference_club.agent.discovery import Discovery
from inference_club.protocol import ModelCard

from .conftest import agent_settings
from .fakes import FakeBackend


@pytest.fixture
async def http():
    client = BackendClient(connect_timeout=2.0)
    yield client
    client.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def discover(http, backends, models=None):
    discovery = Discovery(agent_settings("http://127.0.0.1:1", backends, models), http)
    return discovery, await discovery.discover()


async def test_context_length_is_read_from_server_specific_fields(http, backend_factory):
    """llama.cpp, vLLM and LM Studio fields fill context_length; nonsense values do not."""
    backend = await backend_factory()
    backend.models = [
        {"id": "llamacpp", "meta": {"n_ctx_train": 8192, "n_vocab": 32000}},
        {"id": "vllm", "max_model_len": 16384},
        {"id": "lmstudio", "max_context_length": 4096},
        {"id": "plain", "context_length": 2048},
        {"id": "odd", "context_length": True, "max_model_len": -5},
        {"id": ""},
        "not an object",
    ]
    _, catalog = await discover(http, [backend])

    lengths = {card.id: card.context_length for card in catalog.cards}
    assert lengths == {
        "llamacpp": 8192,
        "vllm": 16384,
        "lmstudio": 4096,
        "plain": 2048,
        "odd": None,
    }
    assert all(catalog.backend_for(model).url == backend.url for model in lengths)


async def test_owner_settings_override_what_discovery_found(http, backend_factory):
    """Per-model settings win over the server's values and the backend's service type."""
    backend = await backend_factory()
    backend.models = [{"id": "vision", "context_length": 8192}, {"id": "other"}]
    models = {
        "vision": ModelSettings(
            context_length=4096,
            input_modalities=("text", "image"),
            max_concurrency=3,
            share=("private",),
        ),
        "other": ModelSettings(service_type="image"),
    }
    settings_backend = BackendSettings(backend.url, service_type="stt")
    _, catalog = await discover(http, [settings_backend], models)

    assert catalog.cards == (
        ModelCard("other", service_type="image"),
        ModelCard(
            "vision",
            service_type="stt",
            input_modalities=("text", "image"),
            context_length=4096,
            max_concurrency=3,
            visibility=("private",),
        ),
    )


async def test_static_models_cover_servers_without_a_model_list(http, backend_factory):
    """Configured ids are announced when GET /models is missing, and added to a listed set."""
    bare = await backend_factory()
    bare.models_status = 404
    listing = await backend_factory("listed")
    backends = [
        BackendSettings(bare.url, models=("whisper-small",), service_type="stt"),
        BackendSettings(listing.url, models=("extra", "listed")),
    ]
    _, catalog = await discover(http, backends)

    assert [(card.id, card.service_type) for card in catalog.cards] == [
        ("extra", "llm"),
        ("listed", "llm"),
        ("whisper-small", "stt"),
    ]


async def test_a_backend_that_is_down_contributes_nothing_until_it_is_back(http, caplog):
    """Refused connections hide even static models; the same server listening again shows them."""
    caplog.set_level(logging.INFO, logger="inference_club")
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    discovery = Discovery(
        agent_settings("http://127.0.0.1:1", [BackendSettings(url, models=("static",))]), http
    )

    assert (await discovery.discover()).cards == ()
    assert (await discovery.discover()).cards == ()
    backend = await FakeBackend("listed", port=port).start()
    try:
        catalog = await discovery.discover()
    finally:
        await backend.close()

    assert [card.id for card in catalog.cards] == ["listed", "static"]
    states = [record.getMessage() for record in caplog.records if hasattr(record, "backend")]
    assert states == ["backend unavailable", "backend is up"]


async def test_tts_voices_come_from_the_server_unless_configured(http, backend_factory):
    """A TTS model's voices are asked from GET /audio/voices; configured voices win."""
    backend = await backend_factory("piper", "kokoro")
    backend.voices = {"piper": ["joe", {"id": "amy"}, {"name": "lessac"}], "kokoro": ["af"]}
    models = {"kokoro": ModelSettings(voices=("bella",))}
    _, catalog = await discover(http, [BackendSettings(backend.url, service_type="tts")], models)

    voices = {card.id: card.voices for card in catalog.cards}
    assert voices == {"kokoro": ("bella",), "piper": ("joe", "amy", "lessac")}


async def test_malformed_model_list_and_invalid_ids_are_skipped(http, backend_factory, caplog):
    """A list not in OpenAI's shape yields nothing; a too-long id is left out with a warning."""
    broken = await backend_factory()
    broken.models = {"not": "a list"}
    good = await backend_factory("fine", "x" * 300)
    _, catalog = await discover(http, [broken, good])

    assert [card.id for card in catalog.cards] == ["fine"]
    assert any(record.getMessage() == "model not announced" for record in caplog.records)
