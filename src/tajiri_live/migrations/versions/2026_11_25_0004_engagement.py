"""Engagement: likes (one per user and stream), exact reaction counts, soft-deleted comments.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "stream_likes",
        sa.Column("id", ID, nullable=False),
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["live_streams.id"],
            name=op.f("fk_stream_likes_stream_id_live_streams"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_stream_likes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_likes")),
        sa.UniqueConstraint("stream_id", "user_id", name=op.f("uq_stream_likes_stream_id_user_id")),
    )
    with op.batch_alter_table("stream_likes") as batch_op:
        batch_op.create_index("ix_stream_likes_user_id", ["user_id"], unique=False)
    op.create_table(
        "stream_reaction_counts",
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
        sa.Column("reaction_type", sa.String(length=20), nullable=False),
        sa.Column("count", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["live_streams.id"],
            name=op.f("fk_stream_reaction_counts_stream_id_live_streams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "stream_id", "reaction_type", name=op.f("pk_stream_reaction_counts")
        ),
    )
    with op.batch_alter_table("stream_comments") as batch_op:
        batch_op.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stream_comments") as batch_op:
        batch_op.drop_column("deleted_at")
    op.drop_table("stream_reaction_counts")
    with op.batch_alter_table("stream_likes") as batch_op:
        batch_op.drop_index("ix_stream_likes_user_id")
    op.drop_table("stream_likes")
