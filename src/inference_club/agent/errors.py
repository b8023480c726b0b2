"""The agent's exception tree.

AgentError(Exception)
├── ConfigError(AgentError, ValueError)        a setting, flag or config file entry is invalid
├── TunnelRejected(AgentError, ConnectionError)
│                                              the gateway refused this agent (bad provider
│                                              token, unsupported protocol version); retrying
│                                              soon will not help
└── BackendError(AgentError)                   a model server could not be reached or answered
    ├── CannotConnect                          badly (backend_connection.py); the relay turns
    ├── ServerDisconnected                     each into an error frame for the gateway
    └── InvalidResponse
"""


class AgentError(Exception):
    """Base class of every error the agent raises on purpose."""


class ConfigError(AgentError, ValueError):
    """A setting is invalid; the message names the offending key and never its secret value."""


class TunnelRejected(AgentError, ConnectionError):
    """The gateway closed the tunnel on purpose; ``code`` is the WebSocket close code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
