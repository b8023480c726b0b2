"""The tables, as SQLAlchemy Core metadata; the migrations create exactly this."""

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    false,
)
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names, so later migrations can alter them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
NAME_LENGTH = 64
MODEL_LENGTH = 256

metadata = MetaData(naming_convention=NAMING_CONVENTION)


# ``UtcDateTime.sqlite_text``'s text of each second seen lately, by the second's fields.
_second_texts: dict[tuple[int, int, int, int, int, int], str] = {}
_SECOND_TEXTS_KEPT = 256


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, also on SQLite, which stores no offset."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes; store UTC (without offset on SQLite, which would drop it)."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime: the store needs timezone-aware datetimes")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    @staticmethod
    def sqlite_text(value: datetime) -> str:
        """What SQLAlchemy stores on SQLite for ``value``, made without its per-value layers."""
        if value.tzinfo is not UTC:  # the gateway's own timestamps need no conversion
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError("naive datetime: the store needs timezone-aware datetimes")
            value = value.astimezone(UTC)
        # What ``isoformat(" ", "microseconds")`` gives. Formatting the date and time is most
        # of the cost, and a batch's timestamps share a handful of seconds: each second's
        # text is made once, and only the microseconds for every value.
        second = (value.year, value.month, value.day, value.hour, value.minute, value.second)
        head = _second_texts.get(second)
        if head is None:
            if len(_second_texts) >= _SECOND_TEXTS_KEPT:
                _second_texts.clear()
            head = _second_texts[second] = "%04d-%02d-%02d %02d:%02d:%02d." % second  # noqa: UP031
        return head + str(1_000_000 + value.microsecond)[1:]

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Always hand back an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY, so big ids fall back to it there.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def _user_fk(*, nullable: bool = False, name: str = "user_id") -> Column[int]:
    return Column(
        name, Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=nullable, index=True
    )


users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(NAME_LENGTH), nullable=False, unique=True),
    Column("is_admin", Boolean, nullable=False),
    Column("password_hash", String(255), nullable=True),
    Column("requests_per_minute", Integer, nullable=True),
    Column("daily_tokens", BigInteger, nullable=True),
    Column("daily_audio_seconds", Float, nullable=True),
    Column("daily_images", Integer, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    _user_fk(),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("prefix", String(16), nullable=False, index=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
)

providers = Table(
    "providers",
    metadata,
    Column("id", Integer, primary_key=True),
    _user_fk(name="owner_id"),
    Column("name", String(NAME_LENGTH), nullable=False, unique=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("token_prefix", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=True),
)

usage_records = Table(
    "usage_records",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("api_key_id", Integer, ForeignKey("api_keys.id", ondelete="SET NULL"), nullable=True),
    Column("model", String(MODEL_LENGTH), nullable=False),
    Column("provider_id", Integer, ForeignKey("providers.id", ondelete="SET NULL"), nullable=True),
    Column("endpoint", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime, nullable=False),
    Column("ttfb_ms", Float, nullable=True),
    Column("prompt_tokens", Integer, nullable=True),
    Column("completion_tokens", Integer, nullable=True),
    Column("audio_seconds", Float, nullable=True),
    Column("image_count", Integer, nullable=True),
    Column("error_type", String(64), nullable=True),
    Index(None, "user_id", "started_at"),
    Index(None, "provider_id", "started_at"),
)

# Each member's usage per UTC day, added to in the transaction that writes the records, so a
# daily quota is one row to read however many requests the day held.
usage_daily = Table(
    "usage_daily",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("requests", BigInteger, nullable=False),
    Column("errors", BigInteger, nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("audio_seconds", Float, nullable=False),
    Column("images", BigInteger, nullable=False),
)

groups = Table(
    "groups",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(NAME_LENGTH), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", Integer, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "user_id",
        Integer,
        ForeignKey("users.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)

model_shares = Table(
    "model_shares",
    metadata,
    Column(
        "provider_id", Integer, ForeignKey("providers.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("model", String(MODEL_LENGTH), primary_key=True),
    # "private", "network" or "group:NAME"
    Column("visibility", String(NAME_LENGTH + 8), primary_key=True),
)

assets = Table(
    "assets",
    metadata,
    Column("id", String(64), primary_key=True),
    _user_fk(),
    Column(
        "usage_record_id",
        BigId,
        ForeignKey("usage_records.id", ondelete="SET NULL"),
        nullable=True,
    ),
    Column("kind", String(16), nullable=False),
    Column("content_type", String(128), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("path", String(512), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

invites = Table(
    "invites",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    # NULL: made by the operator with the CLI rather than by an admin in the dashboard.
    Column("created_by", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    Column("is_admin", Boolean, nullable=False, server_default=false()),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("used_at", UtcDateTime, nullable=True),
    Column("used_by", Integer, ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
)


# Counters bumped by every change the gateway must see on its next request (sharing, groups,
# limits); the gateway reads them with each API-key check and reloads what changed.
revisions = Table(
    "revisions",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)
