"""The gateway's settings: one frozen object per process, built at the edge and passed in."""

from dataclasses import dataclass, field
from pathlib import Path

from inference_club.gateway.redis_client import parse_redis_url

DEFAULT_MAX_REQUEST_BYTES = 25 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Everything the gateway process reads from its environment, in one place."""

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = field(default_factory=lambda: Path("./data"))
    # None means SQLite in the data directory. Out of the repr: it may carry a password.
    database_url: str | None = field(default=None, repr=False)
    # Where clients reach this gateway; asset URLs are built from it. None: http://host:port.
    public_url: str | None = None
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    log_level: str = "info"
    # Seconds to wait for a provider's response head before answering 502.
    upstream_timeout: float = 120.0
    # Seconds between heartbeats on each tunnel; a peer silent for three of them is dead.
    heartbeat_interval: float = 5.0
    # How many providers one request may try before the first response byte.
    max_attempts: int = 3
    # The most images one generation or edit request may ask for; a larger ``n`` is clamped.
    max_images_per_request: int = 4
    # Seconds a request waits for a busy provider before 503 overloaded.
    queue_timeout: float = 30.0
    # Requests per minute per API key, unless an admin set another limit for the user.
    requests_per_minute: int = 600
    # Redis shared by gateway nodes for rate-limit counters; None keeps them in memory. Out of
    # the repr: it may carry a password.
    redis_url: str | None = field(default=None, repr=False)
    # Signs dashboard session cookies; None: a random one kept in <data_dir>/session-secret.
    session_secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.session_secret is not None and len(self.session_secret) < 32:
            msg = "the session secret must have at least 32 characters"
            raise ValueError(msg)
        if not 0 <= self.port <= 65535:
            msg = f"port must be 0-65535, got {self.port}"
            raise ValueError(msg)
        if self.max_request_bytes < 1024:
            msg = "max request size must be at least 1024 bytes"
            raise ValueError(msg)
        if self.upstream_timeout <= 0 or self.heartbeat_interval <= 0 or self.queue_timeout <= 0:
            msg = "timeouts must be positive"
            raise ValueError(msg)
        if self.requests_per_minute < 1:
            msg = "requests per minute must be at least 1"
            raise ValueError(msg)
        if self.max_attempts < 1:
            msg = "max attempts must be at least 1"
            raise ValueError(msg)
        if self.max_images_per_request < 1:
            msg = "max images per request must be at least 1"
            raise ValueError(msg)
        if self.redis_url:  # empty: counters in memory, as when unset
            parse_redis_url(self.redis_url)  # a ValueError that names what is wrong

    @property
    def secure_cookies(self) -> bool:
        """Whether cookies must only travel over HTTPS (the public URL is https)."""
        return self.base_url.startswith("https://")

    @property
    def base_url(self) -> str:
        """The public base URL without a trailing slash."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.host}:{self.port}"
