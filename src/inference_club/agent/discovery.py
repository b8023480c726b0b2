"""Model discovery: ask each local server what it serves and build the cards to announce."""

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson

from inference_club.agent.backend_client import BackendClient, BackendError
from inference_club.agent.settings import AgentSettings, BackendSettings, ModelSettings
from inference_club.protocol import ModelCard

logger = logging.getLogger(__name__)

# Where OpenAI-compatible servers put a model's context size: vLLM, LM Studio, llama.cpp.
_CONTEXT_KEYS = ("context_length", "max_model_len", "max_context_length", "context_window")
_META_CONTEXT_KEYS = ("n_ctx", "n_ctx_train")


@dataclass(frozen=True, slots=True)
class Catalog:
    """The models to announce and the backend that serves each one."""

    cards: tuple[ModelCard, ...] = ()
    routes: Mapping[str, BackendSettings] = field(default_factory=dict)

    def backend_for(self, model: str) -> BackendSettings | None:
        """The backend serving ``model``, or None when no local server offers it."""
        return self.routes.get(model)


@dataclass(frozen=True, slots=True)
class _Listed:
    """One model id as a backend listed it."""

    id: str
    context_length: int | None = None


class Discovery:
    """Polls the backends and builds a Catalog; logs a backend's state only when it changes."""

    def __init__(self, settings: AgentSettings, http: BackendClient) -> None:
        self._settings = settings
        self._http = http
        self._states: dict[str, str] = {}
        self._warned_duplicates: set[tuple[str, str]] = set()

    async def discover(self) -> Catalog:
        """Ask every backend at once; a backend that is down contributes no models."""
        backends = self._settings.backends
        listings = await asyncio.gather(*(self._list(backend) for backend in backends))
        routes: dict[str, BackendSettings] = {}
        listed: dict[str, _Listed] = {}
        for backend, models in zip(backends, listings, strict=True):
            for model in models:
                winner = routes.setdefault(model.id, backend)
                if winner is backend:
                    listed.setdefault(model.id, model)
                elif (model.id, backend.url) not in self._warned_duplicates:
                    self._warned_duplicates.add((model.id, backend.url))
                    logger.warning(
                        "two backends serve the same model; the first one listed wins",
                        extra={"model": model.id, "used": winner.label, "ignored": backend.label},
                    )
        cards = await asyncio.gather(
            *(self._card(listed[model_id], routes[model_id]) for model_id in sorted(routes))
        )
        usable = tuple(card for card in cards if card is not None)
        kept = {card.id: routes[card.id] for card in usable}
        return Catalog(usable, kept)

    async def _list(self, backend: BackendSettings) -> list[_Listed]:
        try:
            status, body = await self._get(backend, "/models")
        except (BackendError, OSError):  # TimeoutError is an OSError
            self._set_state(backend, "down")
            return []
        models: list[_Listed] = []
        if status == 200:
            parsed = _parse_model_list(body)
            self._set_state(backend, "up" if parsed is not None else "malformed /models")
            models = parsed or []
        else:
            # Answering at all means the server is up; it may simply lack GET /models.
            self._set_state(backend, "up" if backend.models else f"/models status {status}")
        known = {model.id for model in models}
        models.extend(_Listed(model_id) for model_id in backend.models if model_id not in known)
        return models

    async def _card(self, listed: _Listed, backend: BackendSettings) -> ModelCard | None:
        wanted = self._settings.models.get(listed.id, ModelSettings())
        service_type = wanted.service_type or backend.service_type or "llm"
        voices = wanted.voices
        if voices is None and service_type == "tts":
            voices = await self._voices(backend, listed.id)
        try:
            return ModelCard(
                id=listed.id,
                service_type=service_type,
                input_modalities=wanted.input_modalities or (),
                output_modalities=wanted.output_modalities or (),
                supported_features=wanted.supported_features or (),
                context_length=wanted.context_length or listed.context_length,
                max_concurrency=wanted.max_concurrency or 8,
                voices=voices or (),
                visibility=wanted.share or (),
            )
        except ValueError as exc:
            logger.warning("model not announced", extra={"model": listed.id[:80], "reason": exc})
            return None

    async def _voices(self, backend: BackendSettings, model_id: str) -> tuple[str, ...]:
        """``GET <base>/audio/voices?model=<id>``, the voice list of a TTS server, if it has one."""
        try:
            status, body = await self._get(
                backend, "/audio/voices?" + urlencode({"model": model_id})
            )
            if status != 200:
                return ()
            data = orjson.loads(body)
        except (BackendError, OSError, orjson.JSONDecodeError):
            return ()
        voices = data.get("voices") if isinstance(data, dict) else None
        if not isinstance(voices, list):
            return ()
        return tuple(name for item in voices if (name := _voice_name(item)))

    async def _get(self, backend: BackendSettings, path: str) -> tuple[int, bytes]:
        """Status and body of ``GET <base><path>``, within the discovery timeout."""
        async with asyncio.timeout(self._settings.discovery_timeout):
            response = await self._http.request(
                "GET", f"{backend.url}{path}", backend.auth_headers().items()
            )
            try:
                return response.status, await response.read_all()
            finally:
                response.release()

    def _set_state(self, backend: BackendSettings, state: str) -> None:
        previous = self._states.get(backend.url)
        self._states[backend.url] = state
        if state == previous:
            return
        if state == "up":
            logger.info("backend is up", extra={"backend": backend.label})
        else:
            logger.warning("backend unavailable", extra={"backend": backend.label, "state": state})


def _parse_model_list(body: bytes) -> list[_Listed] | None:
    """Models from an OpenAI ``{"data": [{"id": ...}]}`` list; None when it is not one."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list):
        return None
    models: list[_Listed] = []
    for entry in data:
        if isinstance(entry, dict) and isinstance(entry.get("id"), str) and entry["id"]:
            models.append(_Listed(entry["id"], _context_length(entry)))
    return models


def _context_length(entry: Mapping[str, Any]) -> int | None:
    candidates = [entry.get(key) for key in _CONTEXT_KEYS]
    meta = entry.get("meta")
    if isinstance(meta, dict):
        candidates.extend(meta.get(key) for key in _META_CONTEXT_KEYS)
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _voice_name(item: Any) -> str | None:
    if isinstance(item, str):
        return item or None
    if isinstance(item, dict):
        for key in ("id", "name"):
            if isinstance(item.get(key), str) and item[key]:
                return str(item[key])
    return None
