"""Super chats as the client and the fuller spec spell them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tajiri_live.core.clock import iso
from tajiri_live.questions.presenters import username_of
from tajiri_live.superchats.models import StreamSuperChat
from tajiri_live.users.presenters import user_dict


def _shown(chat: StreamSuperChat, storage_base_url: str) -> dict[str, Any]:
    """What the REST answer and the event both carry."""
    return {
        "stream_id": chat.stream_id,
        "user_id": chat.user_id,
        "username": username_of(chat.user, chat.user_id),
        "message": chat.message,
        "amount": chat.amount,
        "coins": chat.coins,
        "tier": chat.tier,
        "duration": chat.duration,
        "display_until": iso(chat.display_until),
        "user": user_dict(chat.user, storage_base_url=storage_base_url),
    }


def super_chat_dict(chat: StreamSuperChat, *, storage_base_url: str) -> dict[str, Any]:
    """`{id, stream_id, user_id, message, amount, tier, duration, created_at}` of the fuller
    spec, plus what it cost in coins, its payment fields, how long it shows, and its author."""
    return {
        "id": chat.id,
        **_shown(chat, storage_base_url),
        "payment_method": chat.payment_method,
        "payment_reference": chat.payment_reference,
        "comment_id": chat.comment_id,
        "refunded_at": iso(chat.refunded_at),
        "created_at": iso(chat.created_at),
    }


def super_chat_event(
    chat: StreamSuperChat, *, storage_base_url: str, now: datetime
) -> dict[str, Any]:
    """`super_chat_sent`: `user_id` int, `username` str, `message` str, `amount` num, `tier`
    str, `duration` int (what the client casts), with its id and the author's `user`."""
    return {
        "super_chat_id": chat.id,
        **_shown(chat, storage_base_url),
        "timestamp": iso(now),
    }
