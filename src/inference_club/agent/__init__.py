"""The agent: runs on a member's GPU machine and relays the gateway's requests to local servers.

What is exported here (settings, config files, errors) is light to import, so the command line
can describe and check the agent's options without loading its HTTP stack; the running agent
is ``inference_club.agent.core``.
"""

from inference_club.agent.config import AgentConfig, build_settings, load_config, parse_config
from inference_club.agent.errors import AgentError, ConfigError, TunnelRejected
from inference_club.agent.settings import AgentSettings, BackendSettings, ModelSettings

__all__ = [
    "AgentConfig",
    "AgentError",
    "AgentSettings",
    "BackendSettings",
    "ConfigError",
    "ModelSettings",
    "TunnelRejected",
    "build_settings",
    "load_config",
    "parse_config",
]
