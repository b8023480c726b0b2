"""The models a member can use right now, gathered from the online providers."""

from collections.abc import Iterable
from dataclasses import dataclass

from inference_club.gateway.connection import ProviderConnection
from inference_club.gateway.services import Services
from inference_club.gateway.sharing import SharingView
from inference_club.protocol import SERVICE_TYPES, ModelCard


@dataclass(frozen=True, slots=True)
class Offer:
    """One provider serving a model."""

    provider_id: int
    provider_name: str
    own: bool
    in_flight: int
    # Who may use it besides the owner, as the gateway decides today.
    visibility: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CatalogModel:
    """A model id with every provider of it the member may use."""

    card: ModelCard
    offers: tuple[Offer, ...]
    # Every voice any of its providers announced.
    voices: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """The model id clients ask for."""
        return self.card.id

    @property
    def service_type(self) -> str:
        """``llm``, ``stt``, ``tts`` or ``image``."""
        return self.card.service_type

    @property
    def own_offers(self) -> tuple[Offer, ...]:
        """The member's own providers of this model, whose sharing they control."""
        return tuple(offer for offer in self.offers if offer.own)


async def fresh_sharing(services: Services) -> SharingView:
    """The sharing settings as stored now.

    The registry's own snapshot is refreshed by API requests; a page may be the first thing
    to run after a change, so it reads the settings afresh.
    """
    view = SharingView()
    await view.refresh(services.store, revision=0)
    return view


async def usable_models(services: Services, user_id: int) -> list[CatalogModel]:
    """Every model the member may use, by type then id (their own and those shared with them)."""
    sharing = await fresh_sharing(services)
    groups = sharing.groups_of(user_id)
    found: dict[str, list[tuple[ModelCard, Offer]]] = {}
    for connection in _online(services.registry.connections()):
        own = connection.owner_id == user_id
        for card in connection.models.values():
            # The rule of ProviderRegistry.may_use, on the fresh snapshot.
            if not own and not sharing.shared_with(connection.provider_id, card, groups):
                continue
            offer = Offer(
                provider_id=connection.provider_id,
                provider_name=connection.provider_name,
                own=own,
                in_flight=connection.in_flight,
                visibility=sharing.visibility(connection.provider_id, card),
            )
            found.setdefault(card.id, []).append((card, offer))
    models = [_merge(served) for served in found.values()]
    order = {kind: index for index, kind in enumerate(SERVICE_TYPES)}
    models.sort(key=lambda model: (order.get(model.service_type, 99), model.id))
    return models


def _online(connections: Iterable[ProviderConnection]) -> Iterable[ProviderConnection]:
    return (connection for connection in connections if not connection.closed)


def _merge(served: list[tuple[ModelCard, Offer]]) -> CatalogModel:
    # The member's own provider describes the model when there is one, as on /v1/models.
    served.sort(key=lambda pair: (not pair[1].own, pair[1].provider_name))
    voices = sorted({voice for card, _offer in served for voice in card.voices})
    return CatalogModel(
        card=served[0][0],
        offers=tuple(offer for _card, offer in served),
        voices=tuple(voices),
    )
