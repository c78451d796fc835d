"""Index for the spam check: a user's recent comments on a stream.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stream_comments") as batch_op:
        batch_op.create_index(
            "ix_stream_comments_stream_id_user_id_created_at",
            ["stream_id", "user_id", "created_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("stream_comments") as batch_op:
        batch_op.drop_index("ix_stream_comments_stream_id_user_id_created_at")
