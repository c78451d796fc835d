"""Super chats: a viewer pays coins for a highlighted message. The message is moderated
first (a refused message costs nothing); the payment, the super chat, the comment that shows
it to late joiners and the ledger transaction are written in one database transaction, split
like a gift's and batched with the concurrent gifts and super chats (gifts/writer.py);
`super_chat_sent` goes out once it is committed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from tajiri_live.core import idempotency
from tajiri_live.core.auth import Principal
from tajiri_live.core.errors import ApiError, ValidationFailed, forbidden, not_found
from tajiri_live.core.runtime import Runtime
from tajiri_live.engagement.models import StreamComment
from tajiri_live.engagement.service import enforce_rate
from tajiri_live.gifts.writer import PaymentWriter, Sent, SuperChatOrder
from tajiri_live.moderation import service as moderation
from tajiri_live.realtime.events import SUPER_CHAT_SENT, Event, stream_channel
from tajiri_live.streams.models import LiveStream
from tajiri_live.streams.presenters import storage_base_url
from tajiri_live.superchats import rules
from tajiri_live.superchats.models import StreamSuperChat
from tajiri_live.superchats.presenters import super_chat_dict, super_chat_event
from tajiri_live.wallet import service as wallet

MAX_LISTED = 200


@dataclass(frozen=True)
class SuperChatRequest:
    message: str
    amount: int  # TZS
    payment_method: str | None = None
    payment_reference: str | None = None


def _ensure_open(stream: LiveStream, principal: Principal) -> None:
    if not principal.verified:  # a claimed id (legacy client rules) never pays
        raise ApiError(401, "Paying needs a signed-in token (Authorization: Bearer <token>).")
    refused = rules.refusal(
        stream.status, allow_gifts=stream.allow_gifts, allow_comments=stream.allow_comments
    )
    if refused is not None:
        raise refused
    if stream.user_id == principal.user_id:
        raise forbidden(rules.OWN_STREAM)


async def send(
    session: AsyncSession,
    *,
    runtime: Runtime,
    writer: PaymentWriter,
    stream: LiveStream,
    principal: Principal,
    request: SuperChatRequest,
    key: str | None = None,
    fingerprint: str = "",
) -> Sent:
    """Check, moderate, pay (with the concurrent gifts and super chats: gifts/writer.py) and
    publish a super chat. With a key, an answer already recorded is replayed at once; else
    the key is claimed in the payment's batch and keeps its answer."""
    # The stream row was read in `session`: its connection goes back to the pool before
    # anything else needs one (a burst would otherwise hold every connection and wait).
    await session.commit()
    if key is not None:
        replay = await idempotency.answered(
            runtime, user_id=principal.user_id, key=key, fingerprint=fingerprint
        )
        if replay is not None:
            return Sent(replay.body, replayed=True)
    settings = runtime.settings
    _ensure_open(stream, principal)
    if request.amount > settings.super_chat_max_tzs:
        raise ValidationFailed(
            {"amount": [f"The amount may not be greater than {settings.super_chat_max_tzs} TZS."]}
        )
    if len(request.message) > settings.super_chat_max_length:
        raise ValidationFailed(
            {
                "message": [
                    "The message may not be greater than "
                    f"{settings.super_chat_max_length} characters."
                ]
            }
        )
    stream_id = stream.id
    await moderation.admit_commenter(  # a ban or mute says why
        session,
        runtime=runtime,
        stream_id=stream_id,
        user_id=principal.user_id,
        content=request.message,
        action="super_chat",
    )
    if key is None:  # a super chat with a key is counted in its batch, once it is no replay
        await enforce_rate(
            runtime,
            action="super chat",
            stream_id=stream_id,
            user_id=principal.user_id,
            limit=settings.super_chat_limit,
            window=settings.super_chat_window_seconds,
        )
    # Links and the word filter, as for comments; a repeat is paid for again, not spam.
    text = await moderation.screen_text(
        session,
        runtime=runtime,
        stream=stream,
        principal=principal,
        text=request.message,
        repeated=False,
        field="message",
        blocked="super_chat_blocked",
    )
    tier = rules.tier_of(request.amount)
    await session.commit()  # no connection is held while the payment waits for its batch
    sent = await writer.send(
        SuperChatOrder(
            stream_id=stream_id,
            sender_id=principal.user_id,
            amount=request.amount,
            coins=request.amount * settings.coins_per_tzs,
            creator_share=settings.super_chat_creator_share,
            tier=tier.name,
            seconds=tier.seconds,
            message=text,
            payment_method=request.payment_method,
            payment_reference=request.payment_reference,
            created_at=runtime.clock.now(),
            key=key,
            fingerprint=fingerprint,
        )
    )
    if not sent.replayed:
        await runtime.broker.publish(
            Event(
                channel=stream_channel(stream_id),
                name=SUPER_CHAT_SENT,
                data=super_chat_event(sent.answer, now=runtime.clock.now()),
                actor_id=principal.user_id,
            )
        )
    return sent


async def _count_comment(session: AsyncSession, stream_id: int, delta: int) -> None:
    await session.execute(
        update(LiveStream)
        .where(LiveStream.id == stream_id)
        .values(comments_count=LiveStream.comments_count + delta)
        .execution_options(synchronize_session=False)
    )


async def load(session: AsyncSession, *, stream_id: int, chat_id: int) -> StreamSuperChat:
    chat = await session.scalar(
        select(StreamSuperChat)
        .where(StreamSuperChat.id == chat_id, StreamSuperChat.stream_id == stream_id)
        .options(selectinload(StreamSuperChat.user))
        .execution_options(populate_existing=True)
    )
    if chat is None:
        raise not_found("Super chat")
    return chat


async def refund(
    session: AsyncSession, *, runtime: Runtime, stream: LiveStream, chat_id: int, admin: Principal
) -> dict[str, Any]:
    """Reverse a super chat with new ledger entries (never an edit), once; its comment is
    taken down with it."""
    chat = await load(session, stream_id=stream.id, chat_id=chat_id)
    now = runtime.clock.now()
    marked = await session.execute(
        update(StreamSuperChat)
        .where(StreamSuperChat.id == chat.id, StreamSuperChat.refunded_at.is_(None))
        .values(refunded_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(marked, "rowcount", 0) != 1:
        await session.rollback()
        raise ApiError(409, "This super chat was already refunded.")
    original = await wallet.entries_of(session, chat.transaction_id)
    await wallet.reverse(session, original, "super chat")
    reversal = await wallet.record(
        session,
        kind="refund",
        actor_id=admin.user_id,
        idempotency_key=None,
        entries=[(wallet_id, -amount) for wallet_id, amount in original],
    )
    await session.execute(
        update(StreamSuperChat)
        .where(StreamSuperChat.id == chat.id)
        .values(refund_transaction_id=reversal.id)
        .execution_options(synchronize_session=False)
    )
    if chat.comment_id is not None:
        removed = await session.execute(
            update(StreamComment)
            .where(StreamComment.id == chat.comment_id, StreamComment.deleted_at.is_(None))
            .values(deleted_at=now, pinned_until=None)
            .execution_options(synchronize_session=False)
        )
        if getattr(removed, "rowcount", 0) == 1:
            await _count_comment(session, stream.id, -1)
    await session.commit()
    chat = await load(session, stream_id=stream.id, chat_id=chat.id)
    return super_chat_dict(chat, storage_base_url=storage_base_url(runtime.settings))


async def list_for_stream(
    session: AsyncSession, *, runtime: Runtime, stream_id: int, on_screen: bool, limit: int
) -> list[StreamSuperChat]:
    """The stream's super chats, newest first (refunded ones left out); `on_screen`: only
    those whose display time is still running."""
    query = (
        select(StreamSuperChat)
        .where(StreamSuperChat.stream_id == stream_id, StreamSuperChat.refunded_at.is_(None))
        .options(selectinload(StreamSuperChat.user))
        .order_by(StreamSuperChat.id.desc())
        .limit(limit)
    )
    if on_screen:
        query = query.where(StreamSuperChat.display_until > runtime.clock.now())
    return list(await session.scalars(query))


@dataclass(frozen=True)
class Revenue:
    count: int
    coins: int  # gross
    creator_amount: int
    tzs: int


async def revenue(session: AsyncSession, stream_id: int) -> Revenue:
    """What the stream's super chats brought in, refunded ones left out."""
    row = (
        await session.execute(
            select(
                func.count(StreamSuperChat.id),
                func.coalesce(func.sum(StreamSuperChat.coins), 0),
                func.coalesce(func.sum(StreamSuperChat.creator_amount), 0),
                func.coalesce(func.sum(StreamSuperChat.amount), 0),
            ).where(StreamSuperChat.stream_id == stream_id, StreamSuperChat.refunded_at.is_(None))
        )
    ).one()
    return Revenue(int(row[0]), int(row[1]), int(row[2]), int(row[3]))
