"""The gateway: the public /v1 API, the provider tunnel endpoint, metering and the store."""

from inference_club.gateway.app import GatewayApp, create_app
from inference_club.gateway.settings import GatewaySettings

__all__ = ["GatewayApp", "GatewaySettings", "create_app"]
