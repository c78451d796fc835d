"""Live polls (one vote per user per poll), Q&A (one upvote per user per question), stream
health (running averages on the stream, samples for the report), and the question a
moderation entry concerns.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def _fk(column: str, target: str, table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "stream_polls",
        sa.Column("id", ID, nullable=False),
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
        sa.Column("question", sa.String(length=255), nullable=False),
        sa.Column("is_closed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("closed_at", WHEN, nullable=True),
        _fk("created_by", "users", "stream_polls"),
        _fk("stream_id", "live_streams", "stream_polls"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_polls")),
    )
    op.create_index(
        "ix_stream_polls_stream_id_is_closed", "stream_polls", ["stream_id", "is_closed"]
    )
    op.create_table(
        "stream_poll_options",
        sa.Column("id", ID, nullable=False),
        sa.Column("poll_id", sa.BigInteger(), nullable=False),
        sa.Column("text", sa.String(length=100), nullable=False),
        sa.Column("votes", sa.Integer(), server_default="0", nullable=False),
        _fk("poll_id", "stream_polls", "stream_poll_options"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_poll_options")),
    )
    op.create_index(op.f("ix_stream_poll_options_poll_id"), "stream_poll_options", ["poll_id"])
    op.create_table(
        "stream_poll_votes",
        sa.Column("id", ID, nullable=False),
        sa.Column("poll_id", sa.BigInteger(), nullable=False),
        sa.Column("option_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        _fk("option_id", "stream_poll_options", "stream_poll_votes"),
        _fk("poll_id", "stream_polls", "stream_poll_votes"),
        _fk("user_id", "users", "stream_poll_votes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_poll_votes")),
        sa.UniqueConstraint(
            "poll_id", "user_id", name=op.f("uq_stream_poll_votes_poll_id_user_id")
        ),
    )
    op.create_index(op.f("ix_stream_poll_votes_option_id"), "stream_poll_votes", ["option_id"])
    op.create_index(op.f("ix_stream_poll_votes_user_id"), "stream_poll_votes", ["user_id"])

    op.create_table(
        "stream_questions",
        sa.Column("id", ID, nullable=False),
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("upvotes", sa.Integer(), server_default="0", nullable=False),
        sa.Column("is_answered", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("answered_at", WHEN, nullable=True),
        sa.Column("dismissed_at", WHEN, nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        _fk("stream_id", "live_streams", "stream_questions"),
        _fk("user_id", "users", "stream_questions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_questions")),
    )
    op.create_index(
        "ix_stream_questions_stream_id_is_answered_upvotes",
        "stream_questions",
        ["stream_id", "is_answered", "upvotes"],
    )
    op.create_index(
        "ix_stream_questions_stream_id_user_id_created_at",
        "stream_questions",
        ["stream_id", "user_id", "created_at"],
    )
    op.create_table(
        "stream_question_upvotes",
        sa.Column("id", ID, nullable=False),
        sa.Column("question_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        _fk("question_id", "stream_questions", "stream_question_upvotes"),
        _fk("user_id", "users", "stream_question_upvotes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_question_upvotes")),
        sa.UniqueConstraint(
            "question_id",
            "user_id",
            name=op.f("uq_stream_question_upvotes_question_id_user_id"),
        ),
    )
    op.create_index(
        op.f("ix_stream_question_upvotes_user_id"), "stream_question_upvotes", ["user_id"]
    )

    op.create_table(
        "stream_health_samples",
        sa.Column("id", ID, nullable=False),
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("network_quality", sa.String(length=20), nullable=False),
        sa.Column("bitrate", sa.Integer(), nullable=True),
        sa.Column("fps", sa.Float(), nullable=True),
        sa.Column("dropped_frames", sa.Integer(), nullable=True),
        sa.Column("latency", sa.Float(), nullable=True),
        sa.Column("recorded_at", WHEN, nullable=False),
        sa.CheckConstraint(
            "network_quality IN ('excellent', 'good', 'poor')",
            name=op.f("ck_stream_health_samples_quality"),
        ),
        sa.CheckConstraint(
            "source IN ('encoder', 'ingest')", name=op.f("ck_stream_health_samples_source")
        ),
        _fk("stream_id", "live_streams", "stream_health_samples"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_health_samples")),
    )
    op.create_index(
        "ix_stream_health_samples_stream_id_recorded_at",
        "stream_health_samples",
        ["stream_id", "recorded_at"],
    )

    with op.batch_alter_table("live_streams") as batch_op:
        batch_op.add_column(
            sa.Column(
                "network_quality", sa.String(length=20), server_default="good", nullable=False
            )
        )
        for name in ("average_bitrate", "average_fps", "average_latency"):
            batch_op.add_column(sa.Column(name, sa.Float(), server_default="0", nullable=False))
        for name in ("bitrate_samples", "fps_samples", "latency_samples"):
            batch_op.add_column(sa.Column(name, sa.Integer(), server_default="0", nullable=False))
        for name in ("total_dropped_frames", "encoder_dropped_frames"):
            batch_op.add_column(
                sa.Column(name, sa.BigInteger(), server_default="0", nullable=False)
            )

    with op.batch_alter_table("moderation_actions") as batch_op:
        batch_op.add_column(sa.Column("question_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("moderation_actions") as batch_op:
        batch_op.drop_column("question_id")
    with op.batch_alter_table("live_streams") as batch_op:
        for name in (
            "encoder_dropped_frames",
            "total_dropped_frames",
            "latency_samples",
            "fps_samples",
            "bitrate_samples",
            "average_latency",
            "average_fps",
            "average_bitrate",
            "network_quality",
        ):
            batch_op.drop_column(name)
    op.drop_table("stream_health_samples")
    op.drop_table("stream_question_upvotes")
    op.drop_table("stream_questions")
    op.drop_table("stream_poll_votes")
    op.drop_table("stream_poll_options")
    op.drop_table("stream_polls")
