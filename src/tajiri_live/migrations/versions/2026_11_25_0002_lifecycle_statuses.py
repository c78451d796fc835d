"""Upgrade the lifecycle: statuses pre_live, ending and cancelled, with their time columns.

Existing rows are converted: `live` and `ended` rows get `live_started_at` from `started_at`;
an `ended` row that never started was in fact called off and becomes `cancelled`; an `ended`
row without `duration` gets it from its timestamps.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_COLUMNS = (
    "pre_live_started_at",
    "live_started_at",
    "ending_started_at",
    "ending_deadline",
    "cancelled_at",
)
ALL_STATUSES = "('scheduled', 'pre_live', 'live', 'ending', 'ended', 'cancelled')"
OLD_STATUSES = "('scheduled', 'live', 'ended')"


def _seconds_between(start: str, end: str) -> str:
    if op.get_bind().dialect.name == "sqlite":
        return f"CAST(ROUND((julianday({end}) - julianday({start})) * 86400) AS INTEGER)"
    return f"CAST(ROUND(EXTRACT(EPOCH FROM ({end} - {start}))) AS INTEGER)"


def _replace_status_check(statuses: str) -> None:
    with op.batch_alter_table("live_streams") as batch_op:
        batch_op.drop_constraint(op.f("ck_live_streams_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_live_streams_status"), f"status IN {statuses}")


def upgrade() -> None:
    with op.batch_alter_table("live_streams") as batch_op:
        for name in NEW_COLUMNS:
            batch_op.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    _replace_status_check(ALL_STATUSES)

    op.execute(
        "UPDATE live_streams SET started_at = COALESCE(started_at, updated_at) "
        "WHERE status = 'live'"
    )
    op.execute(
        "UPDATE live_streams SET live_started_at = started_at "
        "WHERE status IN ('live', 'ended') AND started_at IS NOT NULL"
    )
    op.execute(
        "UPDATE live_streams SET status = 'cancelled', "
        "cancelled_at = COALESCE(ended_at, updated_at) "
        "WHERE status = 'ended' AND started_at IS NULL"
    )
    op.execute(
        "UPDATE live_streams SET ended_at = COALESCE(ended_at, updated_at) WHERE status = 'ended'"
    )
    op.execute(
        f"UPDATE live_streams SET duration = {_seconds_between('started_at', 'ended_at')} "
        "WHERE status = 'ended' AND duration IS NULL"
    )


def downgrade() -> None:
    # Fold the new statuses back into the three the first schema knew.
    op.execute("UPDATE live_streams SET status = 'scheduled' WHERE status = 'pre_live'")
    op.execute(
        "UPDATE live_streams SET status = 'ended', "
        "ended_at = COALESCE(ended_at, ending_started_at, updated_at) WHERE status = 'ending'"
    )
    op.execute(
        "UPDATE live_streams SET status = 'ended', ended_at = COALESCE(ended_at, cancelled_at) "
        "WHERE status = 'cancelled'"
    )
    _replace_status_check(OLD_STATUSES)
    with op.batch_alter_table("live_streams") as batch_op:
        for name in reversed(NEW_COLUMNS):
            batch_op.drop_column(name)
