"""Streams may split the creator's share of gifts with their accepted co-hosts.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("live_streams") as batch_op:
        batch_op.add_column(
            sa.Column(
                "split_gifts_with_cohosts", sa.Boolean(), server_default=sa.false(), nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("live_streams") as batch_op:
        batch_op.drop_column("split_gifts_with_cohosts")
