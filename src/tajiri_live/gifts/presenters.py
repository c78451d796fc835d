"""Gifts as the client contract spells them."""

from __future__ import annotations

from typing import Any

from tajiri_live.core.clock import iso
from tajiri_live.core.settings import Settings
from tajiri_live.gifts.models import StreamGift, VirtualGift
from tajiri_live.streams.presenters import storage_base_url
from tajiri_live.users.presenters import user_dict


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


def sent_gift_dict(sent: StreamGift, settings: Settings) -> dict[str, Any]:
    return {
        "id": sent.id,
        "stream_id": sent.stream_id,
        "sender_id": sent.sender_id,
        "gift_id": sent.gift_id,
        "quantity": sent.quantity,
        "total_value": sent.total_value,
        "message": sent.message,
        "created_at": iso(sent.created_at),
        "refunded_at": iso(sent.refunded_at),
        "sender": user_dict(sent.sender, storage_base_url=storage_base_url(settings)),
        "gift": gift_dict(sent.gift),
    }
