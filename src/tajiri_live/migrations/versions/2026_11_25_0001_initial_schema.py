"""Initial schema: the seed's eight tables plus users and follows; statuses scheduled/live/ended.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=True),
        sa.Column("last_name", sa.String(length=100), nullable=True),
        sa.Column("username", sa.String(length=100), nullable=True),
        sa.Column("profile_photo_path", sa.String(length=500), nullable=True),
        sa.Column("is_admin", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_username"), ["username"], unique=False)

    op.create_table(
        "virtual_gifts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("icon_path", sa.String(length=500), nullable=True),
        sa.Column("animation_path", sa.String(length=500), nullable=True),
        sa.Column("price", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("creator_share", sa.Integer(), server_default="70", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("order", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_virtual_gifts")),
        sa.UniqueConstraint("slug", name=op.f("uq_virtual_gifts_slug")),
    )
    op.create_table(
        "follows",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("follower_id", sa.BigInteger(), nullable=False),
        sa.Column("followed_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["followed_id"],
            ["users.id"],
            name=op.f("fk_follows_followed_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["follower_id"],
            ["users.id"],
            name=op.f("fk_follows_follower_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follows")),
        sa.UniqueConstraint(
            "follower_id", "followed_id", name=op.f("uq_follows_follower_id_followed_id")
        ),
    )
    with op.batch_alter_table("follows", schema=None) as batch_op:
        batch_op.create_index("ix_follows_followed_id", ["followed_id"], unique=False)

    op.create_table(
        "live_streams",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("stream_key", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("thumbnail_path", sa.String(length=500), nullable=True),
        sa.Column("category", sa.String(length=100), nullable=True),
        sa.Column("tags", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("privacy", sa.String(length=20), server_default="public", nullable=False),
        sa.Column("recording_path", sa.String(length=500), nullable=True),
        sa.Column("is_recorded", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("allow_comments", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("allow_gifts", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("allow_co_hosts", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("current_viewers", sa.Integer(), server_default="0", nullable=False),
        sa.Column("peak_viewers", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total_viewers", sa.Integer(), server_default="0", nullable=False),
        sa.Column("unique_viewers", sa.Integer(), server_default="0", nullable=False),
        sa.Column("likes_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("comments_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("gifts_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("shares_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("gifts_value", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "privacy IN ('public', 'friends', 'private')", name=op.f("ck_live_streams_privacy")
        ),
        sa.CheckConstraint(
            "status IN ('scheduled', 'live', 'ended')", name=op.f("ck_live_streams_status")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_live_streams_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_streams")),
        sa.UniqueConstraint("stream_key", name=op.f("uq_live_streams_stream_key")),
    )
    with op.batch_alter_table("live_streams", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_live_streams_category"), ["category"], unique=False)
        batch_op.create_index(
            "ix_live_streams_status_scheduled_at", ["status", "scheduled_at"], unique=False
        )
        batch_op.create_index(
            "ix_live_streams_user_id_created_at", ["user_id", "created_at"], unique=False
        )

    op.create_table(
        "stream_analytics",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("viewers_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("likes_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("comments_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("gifts_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("data", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["live_streams.id"],
            name=op.f("fk_stream_analytics_stream_id_live_streams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_analytics")),
    )
    with op.batch_alter_table("stream_analytics", schema=None) as batch_op:
        batch_op.create_index(
            "ix_stream_analytics_stream_id_recorded_at", ["stream_id", "recorded_at"], unique=False
        )

    op.create_table(
        "stream_co_hosts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('invited', 'accepted', 'declined', 'removed', 'left')",
            name=op.f("ck_stream_co_hosts_status"),
        ),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["live_streams.id"],
            name=op.f("fk_stream_co_hosts_stream_id_live_streams"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_stream_co_hosts_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_co_hosts")),
        sa.UniqueConstraint(
            "stream_id", "user_id", name=op.f("uq_stream_co_hosts_stream_id_user_id")
        ),
    )
    with op.batch_alter_table("stream_co_hosts", schema=None) as batch_op:
        batch_op.create_index("ix_stream_co_hosts_user_id", ["user_id"], unique=False)

    op.create_table(
        "stream_comments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("is_pinned", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("is_highlighted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["live_streams.id"],
            name=op.f("fk_stream_comments_stream_id_live_streams"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_stream_comments_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_comments")),
    )
    with op.batch_alter_table("stream_comments", schema=None) as batch_op:
        batch_op.create_index("ix_stream_comments_stream_id_id", ["stream_id", "id"], unique=False)
        batch_op.create_index("ix_stream_comments_user_id", ["user_id"], unique=False)

    op.create_table(
        "stream_gifts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
        sa.Column("sender_id", sa.BigInteger(), nullable=False),
        sa.Column("gift_id", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("total_value", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("message", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["gift_id"],
            ["virtual_gifts.id"],
            name=op.f("fk_stream_gifts_gift_id_virtual_gifts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"],
            ["users.id"],
            name=op.f("fk_stream_gifts_sender_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["live_streams.id"],
            name=op.f("fk_stream_gifts_stream_id_live_streams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_gifts")),
    )
    with op.batch_alter_table("stream_gifts", schema=None) as batch_op:
        batch_op.create_index("ix_stream_gifts_sender_id", ["sender_id"], unique=False)
        batch_op.create_index(
            "ix_stream_gifts_stream_id_created_at", ["stream_id", "created_at"], unique=False
        )

    op.create_table(
        "stream_notifications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["live_streams.id"],
            name=op.f("fk_stream_notifications_stream_id_live_streams"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_stream_notifications_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_notifications")),
    )
    with op.batch_alter_table("stream_notifications", schema=None) as batch_op:
        batch_op.create_index("ix_stream_notifications_stream_id", ["stream_id"], unique=False)
        batch_op.create_index(
            "ix_stream_notifications_user_id_created_at", ["user_id", "created_at"], unique=False
        )

    op.create_table(
        "stream_viewers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("watch_duration", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["live_streams.id"],
            name=op.f("fk_stream_viewers_stream_id_live_streams"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_stream_viewers_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_viewers")),
    )
    with op.batch_alter_table("stream_viewers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_stream_viewers_stream_id_joined_at", ["stream_id", "joined_at"], unique=False
        )
        batch_op.create_index("ix_stream_viewers_user_id", ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("stream_viewers", schema=None) as batch_op:
        batch_op.drop_index("ix_stream_viewers_user_id")
        batch_op.drop_index("ix_stream_viewers_stream_id_joined_at")

    op.drop_table("stream_viewers")
    with op.batch_alter_table("stream_notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_stream_notifications_user_id_created_at")
        batch_op.drop_index("ix_stream_notifications_stream_id")

    op.drop_table("stream_notifications")
    with op.batch_alter_table("stream_gifts", schema=None) as batch_op:
        batch_op.drop_index("ix_stream_gifts_stream_id_created_at")
        batch_op.drop_index("ix_stream_gifts_sender_id")

    op.drop_table("stream_gifts")
    with op.batch_alter_table("stream_comments", schema=None) as batch_op:
        batch_op.drop_index("ix_stream_comments_user_id")
        batch_op.drop_index("ix_stream_comments_stream_id_id")

    op.drop_table("stream_comments")
    with op.batch_alter_table("stream_co_hosts", schema=None) as batch_op:
        batch_op.drop_index("ix_stream_co_hosts_user_id")

    op.drop_table("stream_co_hosts")
    with op.batch_alter_table("stream_analytics", schema=None) as batch_op:
        batch_op.drop_index("ix_stream_analytics_stream_id_recorded_at")

    op.drop_table("stream_analytics")
    with op.batch_alter_table("live_streams", schema=None) as batch_op:
        batch_op.drop_index("ix_live_streams_user_id_created_at")
        batch_op.drop_index("ix_live_streams_status_scheduled_at")
        batch_op.drop_index(batch_op.f("ix_live_streams_category"))

    op.drop_table("live_streams")
    with op.batch_alter_table("follows", schema=None) as batch_op:
        batch_op.drop_index("ix_follows_followed_id")

    op.drop_table("follows")
    op.drop_table("virtual_gifts")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_username"))

    op.drop_table("users")
