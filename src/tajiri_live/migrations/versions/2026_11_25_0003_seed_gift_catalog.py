"""Seed the virtual gift catalog with a starter set priced in TZS coins.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (slug, name, price in TZS, order)
STARTER_GIFTS = (
    ("rose", "Waridi", 100, 1),
    ("heart", "Moyo", 250, 2),
    ("coffee", "Kahawa", 500, 3),
    ("lion", "Simba", 2_000, 4),
    ("kilimanjaro", "Kilimanjaro", 5_000, 5),
    ("crown", "Taji", 10_000, 6),
)

gifts = sa.table(
    "virtual_gifts",
    sa.column("name", sa.String),
    sa.column("slug", sa.String),
    sa.column("icon_path", sa.String),
    sa.column("animation_path", sa.String),
    sa.column("price", sa.BigInteger),
    sa.column("creator_share", sa.Integer),
    sa.column("is_active", sa.Boolean),
    sa.column("order", sa.Integer),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    bind = op.get_bind()
    existing = {row[0] for row in bind.execute(sa.select(gifts.c.slug))}
    now = datetime.now(UTC)
    if bind.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    rows = [
        {
            "name": name,
            "slug": slug,
            "icon_path": f"gifts/{slug}.png",
            "animation_path": f"gifts/{slug}.json",
            "price": price,
            "creator_share": 70,
            "is_active": True,
            "order": order,
            "created_at": now,
            "updated_at": now,
        }
        for slug, name, price, order in STARTER_GIFTS
        if slug not in existing
    ]
    if rows:
        op.bulk_insert(gifts, rows)


def downgrade() -> None:
    # Gifts that were already sent stay: the ledger refers to them.
    slugs = ", ".join(f"'{slug}'" for slug, *_ in STARTER_GIFTS)
    op.execute(
        f"DELETE FROM virtual_gifts WHERE slug IN ({slugs}) AND NOT EXISTS "
        "(SELECT 1 FROM stream_gifts WHERE stream_gifts.gift_id = virtual_gifts.id)"
    )
