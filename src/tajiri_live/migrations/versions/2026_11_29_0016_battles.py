"""PK battles between two live streams, and the slot that keeps a stream to one battle.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)
STATUSES = "'pending', 'active', 'declined', 'expired', 'cancelled', 'ended'"
REASONS = "'time', 'ended', 'forfeit', 'stream_ended'"


def _fk(column: str, target: str, table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "stream_battles",
        sa.Column("id", ID, nullable=False),
        sa.Column("stream_id_1", sa.BigInteger(), nullable=False),
        sa.Column("stream_id_2", sa.BigInteger(), nullable=False),
        sa.Column("invited_by", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("score_1", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("score_2", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("started_at", WHEN, nullable=True),
        sa.Column("ends_at", WHEN, nullable=True),
        sa.Column("ended_at", WHEN, nullable=True),
        sa.Column("end_reason", sa.String(length=20), nullable=True),
        sa.Column("winner_stream_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(f"status IN ({STATUSES})", name=op.f("ck_stream_battles_status")),
        sa.CheckConstraint(f"end_reason IN ({REASONS})", name=op.f("ck_stream_battles_end_reason")),
        _fk("stream_id_1", "live_streams", "stream_battles"),
        _fk("stream_id_2", "live_streams", "stream_battles"),
        _fk("invited_by", "users", "stream_battles"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_battles")),
    )
    op.create_index(op.f("ix_stream_battles_stream_id_1"), "stream_battles", ["stream_id_1"])
    op.create_index(op.f("ix_stream_battles_stream_id_2"), "stream_battles", ["stream_id_2"])
    op.create_index("ix_stream_battles_status_ends_at", "stream_battles", ["status", "ends_at"])
    op.create_index(
        "ix_stream_battles_status_expires_at", "stream_battles", ["status", "expires_at"]
    )
    op.create_table(
        "stream_battle_slots",
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
        sa.Column("battle_id", sa.BigInteger(), nullable=False),
        _fk("stream_id", "live_streams", "stream_battle_slots"),
        _fk("battle_id", "stream_battles", "stream_battle_slots"),
        sa.PrimaryKeyConstraint("stream_id", name=op.f("pk_stream_battle_slots")),
    )
    op.create_index(op.f("ix_stream_battle_slots_battle_id"), "stream_battle_slots", ["battle_id"])


def downgrade() -> None:
    op.drop_table("stream_battle_slots")
    op.drop_table("stream_battles")
