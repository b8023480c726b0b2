"""The long-lived parts of a running gateway, made in the lifespan and shared by handlers."""

from dataclasses import dataclass

from inference_club.gateway.admission import Admission
from inference_club.gateway.assets import AssetStore
from inference_club.gateway.heartbeats import Heartbeats
from inference_club.gateway.metering import UsageWriter
from inference_club.gateway.presence import PresenceWriter
from inference_club.gateway.quotas import QuotaLedger
from inference_club.gateway.ratelimit import RateCounter
from inference_club.gateway.registry import ProviderRegistry
from inference_club.gateway.settings import GatewaySettings
from inference_club.gateway.tunnel_heap import TunnelHeap
from inference_club.store import Store


@dataclass(slots=True)
class Services:
    """Everything a request handler may need beyond the request itself."""

    settings: GatewaySettings
    store: Store
    registry: ProviderRegistry
    usage: UsageWriter
    assets: AssetStore
    rate_counter: RateCounter
    admission: Admission
    quotas: QuotaLedger
    presence: PresenceWriter
    heartbeats: Heartbeats
    tunnel_heap: TunnelHeap
