"""The agent's settings: one frozen object, built at the edge from flags, env and file."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit, urlunsplit

from inference_club.agent.errors import ConfigError
from inference_club.protocol import SERVICE_TYPES

TUNNEL_PATH = "/api/tunnel"
_WEBSOCKET_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}


@dataclass(frozen=True, slots=True)
class BackendSettings:
    """One local model server, addressed by its OpenAI base URL (``http://127.0.0.1:8080/v1``)."""

    url: str
    api_key: str | None = field(default=None, repr=False)
    # Model ids to announce even when the server has no ``GET /models`` (some STT/TTS servers).
    models: tuple[str, ...] = ()
    # The service type of this server's models unless a model's own settings say otherwise.
    service_type: str | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            msg = f"backend URL must be an http:// or https:// URL, got {_redact(self.url)!r}"
            raise ConfigError(msg)
        if self.service_type is not None and self.service_type not in SERVICE_TYPES:
            msg = f"backend service_type must be one of {', '.join(SERVICE_TYPES)}"
            raise ConfigError(msg)
        object.__setattr__(self, "url", self.url.rstrip("/"))

    @property
    def label(self) -> str:
        """The URL as logs may show it: without any user:password part."""
        return _redact(self.url)

    def auth_headers(self) -> dict[str, str]:
        """The ``Authorization`` header this server expects, if it has a key."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """What the owner says about one model id; ``None`` leaves discovery's value or the default."""

    service_type: str | None = None
    input_modalities: tuple[str, ...] | None = None
    output_modalities: tuple[str, ...] | None = None
    supported_features: tuple[str, ...] | None = None
    context_length: int | None = None
    max_concurrency: int | None = None
    voices: tuple[str, ...] | None = None
    # Who may use the model: "private", "network" or "group:NAME" (the card's visibility).
    share: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """Everything one agent process needs; tests shrink the timings to milliseconds."""

    server_url: str
    token: str = field(repr=False)
    backends: tuple[BackendSettings, ...] = ()
    models: Mapping[str, ModelSettings] = field(default_factory=dict)
    rediscover_interval: float = 30.0
    # Requests of other members taken at once; None: the gateway's default (half the capacity).
    guest_concurrency: int | None = None
    # Per backend, for ``GET /models`` and ``GET /audio/voices``.
    discovery_timeout: float = 5.0
    # WebSocket upgrade, then the wait for the gateway's welcome.
    connect_timeout: float = 10.0
    # How long a closing handshake may take before the socket is simply dropped.
    close_timeout: float = 2.0
    # The tunnel is dead after this many heartbeat intervals without any frame.
    heartbeat_misses: float = 3.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    # A connection that lasted longer than this starts the next backoff from scratch.
    backoff_reset_after: float = 60.0
    request_log_level: str = "info"

    def __post_init__(self) -> None:
        to_tunnel_url(self.server_url)  # validates early, with a clear message
        if not self.token:
            msg = "a provider token is required (--token, INFERENCE_CLUB_TOKEN or `token`)"
            raise ConfigError(msg)
        for name in ("rediscover_interval", "discovery_timeout", "connect_timeout"):
            if getattr(self, name) <= 0:
                msg = f"{name} must be positive"
                raise ConfigError(msg)
        if self.backoff_base <= 0 or self.backoff_cap < self.backoff_base:
            msg = "backoff_base must be positive and backoff_cap at least backoff_base"
            raise ConfigError(msg)
        object.__setattr__(self, "models", MappingProxyType(dict(self.models)))

    @property
    def tunnel_url(self) -> str:
        """The gateway's tunnel endpoint as a ws:// or wss:// URL."""
        return to_tunnel_url(self.server_url)


def to_tunnel_url(server_url: str) -> str:
    """``<server>/api/tunnel`` with http mapped to ws and https to wss."""
    parts = urlsplit(server_url.strip())
    scheme = _WEBSOCKET_SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        msg = f"server must be an http(s):// or ws(s):// URL, got {_redact(server_url)!r}"
        raise ConfigError(msg)
    if parts.username or parts.password:
        msg = "server URL must not carry credentials; use the provider token"
        raise ConfigError(msg)
    path = parts.path.rstrip("/")
    if not path.endswith(TUNNEL_PATH):
        path += TUNNEL_PATH
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def _redact(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
