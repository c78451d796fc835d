"""The gift catalog."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tajiri_live.gifts.models import VirtualGift


async def active_catalog(session: AsyncSession) -> list[VirtualGift]:
    rows = await session.scalars(
        select(VirtualGift)
        .where(VirtualGift.is_active.is_(True))
        .order_by(VirtualGift.order, VirtualGift.id)
    )
    return list(rows)
