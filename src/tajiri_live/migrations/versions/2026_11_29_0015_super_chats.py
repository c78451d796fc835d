"""Super chats (paid messages, each with the ledger transaction that paid for it and the
comment that shows it while it is on screen), and the main app's deposits of coins.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def _fk(column: str, target: str, table: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def _coins(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), server_default="0", nullable=False)


def upgrade() -> None:
    table = "stream_super_chats"
    op.create_table(
        table,
        sa.Column("id", ID, nullable=False),
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        _coins("amount"),
        _coins("coins"),
        _coins("creator_amount"),
        sa.Column("tier", sa.String(length=10), nullable=False),
        sa.Column("duration", sa.Integer(), nullable=False),
        sa.Column("payment_method", sa.String(length=50), nullable=True),
        sa.Column("payment_reference", sa.String(length=100), nullable=True),
        sa.Column("comment_id", sa.BigInteger(), nullable=True),
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("refund_transaction_id", sa.BigInteger(), nullable=True),
        sa.Column("display_until", WHEN, nullable=False),
        sa.Column("refunded_at", WHEN, nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.CheckConstraint("amount > 0 AND coins > 0", name=op.f(f"ck_{table}_paid")),
        sa.CheckConstraint("tier IN ('low', 'medium', 'high')", name=op.f(f"ck_{table}_tier")),
        _fk("comment_id", "stream_comments", table, "SET NULL"),
        _fk("refund_transaction_id", "ledger_transactions", table, "RESTRICT"),
        _fk("stream_id", "live_streams", table, "CASCADE"),
        _fk("transaction_id", "ledger_transactions", table, "RESTRICT"),
        _fk("user_id", "users", table, "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    )
    op.create_index(f"ix_{table}_stream_id_created_at", table, ["stream_id", "created_at"])
    op.create_index(f"ix_{table}_user_id", table, ["user_id"])

    table = "wallet_deposits"
    op.create_table(
        table,
        sa.Column("id", ID, nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        _coins("amount"),
        _coins("balance_after"),
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        _fk("transaction_id", "ledger_transactions", table, "RESTRICT"),
        _fk("user_id", "users", table, "RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
        sa.UniqueConstraint("reference", name=op.f(f"uq_{table}_reference")),
    )

    with op.batch_alter_table("stream_comments") as batch_op:
        batch_op.add_column(sa.Column("pinned_until", WHEN, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stream_comments") as batch_op:
        batch_op.drop_column("pinned_until")
    op.drop_table("wallet_deposits")
    op.drop_index("ix_stream_super_chats_user_id", table_name="stream_super_chats")
    op.drop_index("ix_stream_super_chats_stream_id_created_at", table_name="stream_super_chats")
    op.drop_table("stream_super_chats")
