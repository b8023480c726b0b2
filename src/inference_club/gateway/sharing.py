"""Who may use which provider's model: the sharing settings, reloaded when they change."""

import asyncio
from typing import Protocol

from inference_club.protocol import ModelCard

PRIVATE = ("private",)


class SharingSource(Protocol):
    """Where sharing settings come from (the store)."""

    async def model_shares(self) -> dict[tuple[int, str], tuple[str, ...]]:
        """Explicit shares set on the gateway."""

    async def group_memberships(self) -> dict[int, frozenset[str]]:
        """Each user's groups."""


class SharingView:
    """A snapshot of shares and group memberships, reloaded when the store's revision moves.

    The revision arrives with every API-key check, so a change made by any node or by the CLI
    is seen on the next request without an extra query when nothing changed.
    """

    def __init__(self) -> None:
        self.revision = -1
        self._shares: dict[tuple[int, str], tuple[str, ...]] = {}
        self._memberships: dict[int, frozenset[str]] = {}
        self._lock = asyncio.Lock()

    async def refresh(self, source: SharingSource, revision: int) -> None:
        """Reload if ``revision`` differs from the one this snapshot was taken at."""
        if revision == self.revision:
            return
        async with self._lock:
            if revision == self.revision:
                return
            shares = await source.model_shares()
            memberships = await source.group_memberships()
            self._shares, self._memberships = shares, memberships
            self.revision = revision

    def is_current(self, revision: int) -> bool:
        """Whether this snapshot was taken at ``revision`` (``refresh`` would do nothing)."""
        return revision == self.revision

    def groups_of(self, user_id: int) -> frozenset[str]:
        """The groups a user belongs to."""
        return self._memberships.get(user_id, frozenset())

    def visibility(self, provider_id: int, card: ModelCard) -> tuple[str, ...]:
        """The gateway's override if an admin set one, else what the owner's agent announced."""
        explicit = self._shares.get((provider_id, card.id))
        if explicit:
            return explicit
        return card.visibility or PRIVATE

    def shared_with(self, provider_id: int, card: ModelCard, groups: frozenset[str]) -> bool:
        """Whether someone other than the owner, in ``groups``, may use the model."""
        visibility = self.visibility(provider_id, card)
        if "network" in visibility:
            return True
        return any(value[6:] in groups for value in visibility if value.startswith("group:"))
