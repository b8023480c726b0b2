"""Which providers are online, what they serve, and who may reach what.

This lives in one process's memory. With several gateway nodes, the part that must be shared
(which node holds which provider's tunnel) moves behind the same methods backed by Redis.
"""

import logging
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from inference_club.gateway.connection import ProviderConnection
from inference_club.gateway.sharing import SharingView
from inference_club.protocol import ModelCard

logger = logging.getLogger(__name__)

T = TypeVar("T")
# Distinct callers' views kept at once; past it the memo starts over.
_MAX_MEMO = 256


# Not frozen: made per request (``inference_club.protocol.frames`` says what that saves).
@dataclass(slots=True)
class Caller:
    """Who is asking: enough to decide what they may reach."""

    user_id: int
    groups: frozenset[str] = frozenset()


# Not frozen: made per request (``inference_club.protocol.frames`` says what that saves).
@dataclass(slots=True)
class Candidate:
    """One provider that may serve a request, with its card for the model."""

    connection: ProviderConnection
    card: ModelCard


class ProviderRegistry:
    """Online providers indexed by model id, so routing cost does not grow with the network."""

    def __init__(self, sharing: SharingView | None = None) -> None:
        self.sharing = sharing or SharingView()
        self._connections: dict[int, ProviderConnection] = {}
        self._by_model: dict[str, dict[int, ProviderConnection]] = {}
        self._turn = 0
        self._indexed: dict[int, tuple[str, ...]] = {}
        # Called when capacity may have appeared (a provider joined or changed its models).
        self.on_capacity: Callable[[], None] = lambda: None
        # Results derived from the whole set of providers, dropped whenever that set changes.
        self._memo: dict[Hashable, object] = {}

    def __len__(self) -> int:
        return len(self._connections)

    def get(self, provider_id: int) -> ProviderConnection | None:
        """The live connection of a provider, if it is online."""
        return self._connections.get(provider_id)

    def connections(self) -> Iterator[ProviderConnection]:
        """Every live connection."""
        return iter(list(self._connections.values()))

    def memo(self, key: Hashable, make: Callable[[], T]) -> T:
        """``make()``, remembered under ``key`` until a provider joins, leaves or re-announces.

        For answers that walk every provider (the model list): with thousands of providers
        they cost milliseconds each, while the set of providers changes far less often.
        """
        if key in self._memo:
            return self._memo[key]  # type: ignore[return-value]
        value = make()
        if len(self._memo) >= _MAX_MEMO:
            self._memo.clear()
        self._memo[key] = value
        return value

    def add(self, connection: ProviderConnection) -> ProviderConnection | None:
        """Register a new tunnel; returns the one it replaces for the same provider, if any."""
        self._memo.clear()
        previous = self._connections.get(connection.provider_id)
        if previous is not None:
            self._unindex(previous)
        self._connections[connection.provider_id] = connection
        self._index(connection)
        connection.on_models = self.models_changed
        # Gone from routing and the model list the moment it closes, not when its handler ends.
        connection.on_closed = self.remove
        self.on_capacity()
        return previous

    def remove(self, connection: ProviderConnection) -> None:
        """Forget a tunnel that closed (unless a newer one already replaced it)."""
        if self._connections.get(connection.provider_id) is connection:
            del self._connections[connection.provider_id]
            self._unindex(connection)
            self._memo.clear()

    def models_changed(self, connection: ProviderConnection) -> None:
        """Re-index a provider after it announced a new model list."""
        if self._connections.get(connection.provider_id) is not connection:
            return
        self._memo.clear()
        self._unindex(connection)
        self._index(connection)
        self.on_capacity()
        logger.info(
            "models announced",
            extra={"provider": connection.provider_name, "models": len(connection.models)},
        )

    def _index(self, connection: ProviderConnection) -> None:
        models = tuple(connection.models)
        for model_id in models:
            self._by_model.setdefault(model_id, {})[connection.provider_id] = connection
        # Remembered per connection: its model list may be replaced before it is unindexed.
        self._indexed[id(connection)] = models

    def _unindex(self, connection: ProviderConnection) -> None:
        for model_id in self._indexed.pop(id(connection), ()):
            providers = self._by_model.get(model_id)
            if providers is not None and providers.get(connection.provider_id) is connection:
                del providers[connection.provider_id]
                if not providers:
                    del self._by_model[model_id]

    def candidates(self, caller: Caller, model: str) -> list[Candidate]:
        """Providers the caller may use for ``model``, least loaded first."""
        providers = self._by_model.get(model)
        if not providers:
            return []
        found = [
            Candidate(connection, connection.models[model])
            for connection in providers.values()
            if not connection.closed and self.may_use(caller, connection, connection.models[model])
        ]
        # Least in flight relative to capacity; ties go to the caller's own provider, then take
        # turns, so sequential requests spread over equally idle providers.
        if len(found) > 1:
            self._turn += 1
            shift = self._turn % len(found)
            found = found[shift:] + found[:shift]
            found.sort(
                key=lambda c: (
                    c.connection.active.get(model, 0) / c.card.max_concurrency,
                    c.connection.owner_id != caller.user_id,
                )
            )
        return found

    def may_use(self, caller: Caller, connection: ProviderConnection, card: ModelCard) -> bool:
        """Whether the caller may reach this provider's model: their own, or shared with them."""
        if connection.owner_id == caller.user_id:
            return True
        return self.sharing.shared_with(connection.provider_id, card, caller.groups)

    def visible(self, caller: Caller) -> Iterable[Candidate]:
        """Every (provider, model) the caller may use."""
        for connection in list(self._connections.values()):
            if connection.closed:
                continue
            for card in connection.models.values():
                if self.may_use(caller, connection, card):
                    yield Candidate(connection, card)
