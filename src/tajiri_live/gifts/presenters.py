"""Gifts as the client contract spells them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from tajiri_live.core.clock import iso
from tajiri_live.core.settings import Settings
from tajiri_live.gifts.models import StreamGift
from tajiri_live.streams.presenters import storage_base_url
from tajiri_live.users.presenters import Profile, user_dict


class CatalogGift(Protocol):
    """A catalog entry: a `virtual_gifts` row, or the columns read of it."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def slug(self) -> str: ...
    @property
    def icon_path(self) -> str | None: ...
    @property
    def animation_path(self) -> str | None: ...
    @property
    def price(self) -> int: ...
    @property
    def creator_share(self) -> int: ...
    @property
    def is_active(self) -> bool: ...
    @property
    def order(self) -> int: ...


def gift_dict(gift: CatalogGift) -> dict[str, Any]:
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
    return sent_gift_answer(
        sent_id=sent.id,
        stream_id=sent.stream_id,
        sender_id=sent.sender_id,
        gift=gift_dict(sent.gift),
        quantity=sent.quantity,
        total_value=sent.total_value,
        message=sent.message,
        created_at=sent.created_at,
        refunded_at=sent.refunded_at,
        sender=sent.sender,
        storage_base_url=storage_base_url(settings),
    )


def sent_gift_answer(
    *,
    sent_id: int,
    stream_id: int,
    sender_id: int,
    gift: dict[str, Any],
    quantity: int,
    total_value: int,
    message: str | None,
    created_at: datetime,
    refunded_at: datetime | None,
    sender: Profile | None,
    storage_base_url: str,
) -> dict[str, Any]:
    """A sent gift from its values (the group commit has no ORM rows to hand)."""
    return {
        "id": sent_id,
        "stream_id": stream_id,
        "sender_id": sender_id,
        "gift_id": gift["id"],
        "quantity": quantity,
        "total_value": total_value,
        "message": message,
        "created_at": iso(created_at),
        "refunded_at": iso(refunded_at),
        "sender": user_dict(sender, storage_base_url=storage_base_url),
        "gift": gift,
    }
