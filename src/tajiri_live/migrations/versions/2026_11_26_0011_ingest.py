"""Ingest: key revocation and rotation, the current publisher, playback readiness, health,
live thumbnails and the recording claim.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPS = (
    "stream_key_expires_at",
    "publisher_seen_at",
    "playback_ready_at",
    "live_thumbnail_at",
    "recording_claimed_at",
)


def upgrade() -> None:
    with op.batch_alter_table("live_streams") as batch_op:
        for name in TIMESTAMPS:
            batch_op.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("publish_count", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("publisher_client", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("ingest_control_url", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("ingest_media_url", sa.String(length=500), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_live_streams_publisher_client"), ["publisher_client"], unique=False
        )
        batch_op.add_column(
            sa.Column(
                "ingest_health",
                sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("live_streams") as batch_op:
        batch_op.drop_index(batch_op.f("ix_live_streams_publisher_client"))
        for name in (
            "ingest_media_url",
            "ingest_control_url",
            "ingest_health",
            "publisher_client",
            "publish_count",
            *TIMESTAMPS,
        ):
            batch_op.drop_column(name)
