"""Invites: an admin flag, an expiry, and no creator for invites the operator makes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-01-03 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``is_admin`` and ``expires_at``; let ``created_by`` be empty."""
    # Batch mode copies the table on SQLite, which cannot alter a column in place.
    with op.batch_alter_table("invites") as batch:
        batch.add_column(
            sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.alter_column("created_by", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    """Drop the new columns; operator-made invites cannot keep an empty creator, so they go."""
    op.execute(sa.text("DELETE FROM invites WHERE created_by IS NULL"))
    with op.batch_alter_table("invites") as batch:
        batch.alter_column("created_by", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("expires_at")
        batch.drop_column("is_admin")
