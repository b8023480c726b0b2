"""Revision counters the gateway checks on every request to see sharing changes at once.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the revisions table with the sharing counter at 0."""
    table = op.create_table(
        "revisions",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(table, [{"name": "sharing", "value": 0}])


def downgrade() -> None:
    """Drop the revisions table."""
    op.drop_table("revisions")
