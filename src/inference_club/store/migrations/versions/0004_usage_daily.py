"""Usage per member and UTC day, kept beside the records so a daily quota is one row to read.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    "user_id",
    "day",
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "audio_seconds",
    "images",
)


def upgrade() -> None:
    """Create ``usage_daily`` and fill it from the records already written."""
    op.create_table(
        "usage_daily",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("audio_seconds", sa.Float(), nullable=False),
        sa.Column("images", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_usage_daily_user_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "day", name="pk_usage_daily"),
    )
    records = sa.table(
        "usage_records",
        *(
            sa.column(name)
            for name in (
                "user_id",
                "started_at",
                "status_code",
                "prompt_tokens",
                "completion_tokens",
                "audio_seconds",
                "image_count",
            )
        ),
    )
    # The UTC day of a record's start: SQLite keeps naive UTC text, PostgreSQL a timestamptz.
    day: sa.ColumnElement[object]
    if op.get_bind().dialect.name == "sqlite":
        day = sa.func.date(records.c.started_at)
    else:
        day = sa.cast(sa.func.timezone("UTC", records.c.started_at), sa.Date)
    sums = sa.select(
        records.c.user_id,
        day,
        sa.func.count(),
        sa.func.sum(sa.case((records.c.status_code >= 400, 1), else_=0)),
        sa.func.coalesce(sa.func.sum(records.c.prompt_tokens), 0),
        sa.func.coalesce(sa.func.sum(records.c.completion_tokens), 0),
        sa.func.coalesce(sa.func.sum(records.c.audio_seconds), 0.0),
        sa.func.coalesce(sa.func.sum(records.c.image_count), 0),
    ).group_by(records.c.user_id, day)
    daily = sa.table("usage_daily", *(sa.column(name) for name in _COLUMNS))
    op.execute(sa.insert(daily).from_select(list(_COLUMNS), sums))


def downgrade() -> None:
    """Drop ``usage_daily``; the records it summed stay."""
    op.drop_table("usage_daily")
