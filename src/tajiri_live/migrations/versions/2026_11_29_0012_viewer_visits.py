"""Viewer visits: session rows carry their visit's key (any node closes them by it), and open
sessions are indexed (a starting node checks them against presence).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stream_viewers") as batch_op:
        batch_op.add_column(sa.Column("visit_key", sa.String(length=32), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_stream_viewers_visit_key"), ["visit_key"])
        batch_op.create_index(
            "ix_stream_viewers_open",
            ["stream_id"],
            unique=False,
            postgresql_where=sa.text("left_at IS NULL"),
            sqlite_where=sa.text("left_at IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("stream_viewers") as batch_op:
        batch_op.drop_index(
            "ix_stream_viewers_open",
            postgresql_where=sa.text("left_at IS NULL"),
            sqlite_where=sa.text("left_at IS NULL"),
        )
        batch_op.drop_constraint(batch_op.f("uq_stream_viewers_visit_key"), type_="unique")
        batch_op.drop_column("visit_key")
