"""Super chats as the client and the fuller spec spell them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tajiri_live.core.clock import iso
from tajiri_live.questions.presenters import username_of
from tajiri_live.superchats.models import StreamSuperChat
from tajiri_live.users.presenters import Profile, user_dict

# What the REST answer and the event both carry (the event names the id `super_chat_id`).
SHOWN = (
    "stream_id",
    "user_id",
    "username",
    "message",
    "amount",
    "coins",
    "tier",
    "duration",
    "display_until",
    "user",
)


def super_chat_answer(
    *,
    chat_id: int,
    stream_id: int,
    user_id: int,
    sender: Profile | None,
    message: str,
    amount: int,
    coins: int,
    tier: str,
    duration: int,
    display_until: datetime,
    payment_method: str | None,
    payment_reference: str | None,
    comment_id: int | None,
    refunded_at: datetime | None,
    created_at: datetime,
    storage_base_url: str,
) -> dict[str, Any]:
    """`{id, stream_id, user_id, message, amount, tier, duration, created_at}` of the fuller
    spec, plus what it cost in coins, its payment fields, how long it shows, and its author.
    From its values: the payment batches have no ORM rows to hand."""
    return {
        "id": chat_id,
        "stream_id": stream_id,
        "user_id": user_id,
        "username": username_of(sender, user_id),
        "message": message,
        "amount": amount,
        "coins": coins,
        "tier": tier,
        "duration": duration,
        "display_until": iso(display_until),
        "user": user_dict(sender, storage_base_url=storage_base_url),
        "payment_method": payment_method,
        "payment_reference": payment_reference,
        "comment_id": comment_id,
        "refunded_at": iso(refunded_at),
        "created_at": iso(created_at),
    }


def super_chat_dict(chat: StreamSuperChat, *, storage_base_url: str) -> dict[str, Any]:
    return super_chat_answer(
        chat_id=chat.id,
        stream_id=chat.stream_id,
        user_id=chat.user_id,
        sender=chat.user,
        message=chat.message,
        amount=chat.amount,
        coins=chat.coins,
        tier=chat.tier,
        duration=chat.duration,
        display_until=chat.display_until,
        payment_method=chat.payment_method,
        payment_reference=chat.payment_reference,
        comment_id=chat.comment_id,
        refunded_at=chat.refunded_at,
        created_at=chat.created_at,
        storage_base_url=storage_base_url,
    )


def super_chat_event(answer: dict[str, Any], *, now: datetime) -> dict[str, Any]:
    """`super_chat_sent`: `user_id` int, `username` str, `message` str, `amount` num, `tier`
    str, `duration` int (what the client casts), with its id and the author's `user`."""
    return {
        "super_chat_id": answer["id"],
        **{name: answer[name] for name in SHOWN},
        "timestamp": iso(now),
    }
