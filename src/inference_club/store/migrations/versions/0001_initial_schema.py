"""Initial schema: users, API keys, providers, usage, groups, sharing, assets, invites.

Revision ID: 0001
Revises:
Create Date: 2026-01-01 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Migrations are frozen history: they spell out their types instead of importing schema.py.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _foreign_key(
    table: str, column: str, target: str, *, ondelete: str = "CASCADE"
) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete=ondelete,
    )


def _index(table: str, *columns: str) -> None:
    op.create_index(op.f(f"ix_{table}_{'_'.join(columns)}"), table, list(columns))


def upgrade() -> None:
    """Create every table."""
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("requests_per_minute", sa.Integer(), nullable=True),
        sa.Column("daily_tokens", sa.BigInteger(), nullable=True),
        sa.Column("daily_audio_seconds", sa.Float(), nullable=True),
        sa.Column("daily_images", sa.Integer(), nullable=True),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_groups")),
        sa.UniqueConstraint("name", name=op.f("uq_groups_name")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        _timestamp("created_at"),
        _timestamp("last_used_at", nullable=True),
        _timestamp("revoked_at", nullable=True),
        _foreign_key("api_keys", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    _index("api_keys", "prefix")
    _index("api_keys", "user_id")
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        _foreign_key("group_members", "group_id", "groups"),
        _foreign_key("group_members", "user_id", "users"),
        sa.PrimaryKeyConstraint("group_id", "user_id", name=op.f("pk_group_members")),
    )
    _index("group_members", "user_id")
    op.create_table(
        "invites",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        _timestamp("created_at"),
        _timestamp("used_at", nullable=True),
        sa.Column("used_by", sa.Integer(), nullable=True),
        _foreign_key("invites", "created_by", "users"),
        _foreign_key("invites", "used_by", "users", ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_invites")),
    )
    op.create_table(
        "providers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("token_prefix", sa.String(length=16), nullable=False),
        _timestamp("created_at"),
        _timestamp("last_seen_at", nullable=True),
        _foreign_key("providers", "owner_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_providers")),
        sa.UniqueConstraint("name", name=op.f("uq_providers_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_providers_token_hash")),
    )
    _index("providers", "owner_id")
    op.create_table(
        "model_shares",
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("visibility", sa.String(length=72), nullable=False),
        _foreign_key("model_shares", "provider_id", "providers"),
        sa.PrimaryKeyConstraint("provider_id", "model", "visibility", name=op.f("pk_model_shares")),
    )
    op.create_table(
        "usage_records",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=True),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=True),
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        _timestamp("started_at"),
        _timestamp("ended_at"),
        sa.Column("ttfb_ms", sa.Float(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("audio_seconds", sa.Float(), nullable=True),
        sa.Column("image_count", sa.Integer(), nullable=True),
        sa.Column("error_type", sa.String(length=64), nullable=True),
        _foreign_key("usage_records", "api_key_id", "api_keys", ondelete="SET NULL"),
        _foreign_key("usage_records", "provider_id", "providers", ondelete="SET NULL"),
        _foreign_key("usage_records", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_records")),
    )
    _index("usage_records", "provider_id", "started_at")
    _index("usage_records", "user_id", "started_at")
    op.create_table(
        "assets",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("usage_record_id", BIG_ID, nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("content_type", sa.String(length=128), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        _timestamp("created_at"),
        _foreign_key("assets", "usage_record_id", "usage_records", ondelete="SET NULL"),
        _foreign_key("assets", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assets")),
    )
    _index("assets", "user_id")


def downgrade() -> None:
    """Drop every table, dependents first."""
    for table in (
        "assets",
        "usage_records",
        "model_shares",
        "providers",
        "invites",
        "group_members",
        "api_keys",
        "groups",
        "users",
    ):
        op.drop_table(table)
