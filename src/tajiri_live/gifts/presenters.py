"""Gifts as the client contract spells them."""

from __future__ import annotations

from typing import Any

from tajiri_live.gifts.models import VirtualGift


def gift_dict(gift: VirtualGift) -> dict[str, Any]:
    return {
        "id": gift.id,
        "name": gift.name,
        "slug": gift.slug,
        "icon_path": gift.icon_path,
        "animation_path": gift.animation_path,
        "price": gift.price,
        "creator_share": gift.creator_share,
        "is_active": gift.is_active,
        "order": gift.order,
    }
