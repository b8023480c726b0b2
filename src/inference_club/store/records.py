"""Plain frozen records the store returns; callers never see ORM objects or sessions."""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class User:
    """A member of the club; ``None`` limits mean the gateway's defaults apply."""

    id: int
    name: str
    is_admin: bool
    requests_per_minute: int | None
    daily_tokens: int | None
    daily_audio_seconds: float | None
    daily_images: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKey:
    """An API key as listings show it: never the key itself, only its display prefix."""

    id: int
    user_id: int
    user_name: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyIdentity:
    """Who an authenticated API key belongs to, with what the hot path needs to decide."""

    key_id: int
    key_prefix: str
    user_id: int
    user_name: str
    is_admin: bool
    requests_per_minute: int | None
    # Changes whenever sharing, groups or limits change; the gateway reloads them then.
    sharing_revision: int = 0
    # Daily quotas; None means no quota.
    daily_tokens: int | None = None
    daily_audio_seconds: float | None = None
    daily_images: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Provider:
    """A machine running an agent; its name is the ``owned_by`` of its models."""

    id: int
    name: str
    owner_id: int
    owner_name: str
    token_prefix: str
    created_at: datetime
    last_seen_at: datetime | None


# Not frozen: made per request (``inference_club.protocol.frames`` says what that saves).
@dataclass(slots=True, kw_only=True)
class UsageRecord:
    """One request as metered; ``id`` is ``None`` until the record is stored."""

    user_id: int
    model: str
    endpoint: str
    status_code: int
    started_at: datetime
    ended_at: datetime
    api_key_id: int | None = None
    provider_id: int | None = None
    ttfb_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    audio_seconds: float | None = None
    image_count: int | None = None
    error_type: str | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Group:
    """A named set of users that models can be shared with."""

    id: int
    name: str
    members: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Asset:
    """A stored image or audio file; ``path`` is relative to the data directory."""

    id: str
    user_id: int
    usage_record_id: int | None
    kind: str
    content_type: str
    size_bytes: int
    path: str
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageTotal:
    """Sums of usage records for one user or provider (``who``) and one model."""

    who: str
    model: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    audio_seconds: float
    images: int
    # For providers: requests served for members other than the owner.
    for_others: int = 0

    @property
    def tokens(self) -> int:
        """Prompt and completion tokens together."""
        return self.prompt_tokens + self.completion_tokens
