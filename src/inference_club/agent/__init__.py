"""The agent: runs on a member's GPU machine and relays the gateway's requests to local servers."""

from inference_club.agent.config import AgentConfig, build_settings, load_config, parse_config
from inference_club.agent.core import Agent, run_agent
from inference_club.agent.discovery import Catalog
from inference_club.agent.errors import AgentError, ConfigError, TunnelRejected
from inference_club.agent.settings import AgentSettings, BackendSettings, ModelSettings

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentError",
    "AgentSettings",
    "BackendSettings",
    "Catalog",
    "ConfigError",
    "ModelSettings",
    "TunnelRejected",
    "build_settings",
    "load_config",
    "parse_config",
    "run_agent",
]
