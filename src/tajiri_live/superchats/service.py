"""Super chats: a viewer pays coins for a highlighted message. The message is moderated
first (a refused message costs nothing); the payment, the super chat, the comment that shows
it to late joiners and the ledger transaction are one database transaction, split like a
gift's; `super_chat_sent` goes out once it is committed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from tajiri_live.battles import service as battles
from tajiri_live.core import idempotency
from tajiri_live.core.auth import Principal
from tajiri_live.core.errors import ApiError, ValidationFailed, forbidden, not_found
from tajiri_live.core.runtime import Runtime
from tajiri_live.engagement.models import StreamComment
from tajiri_live.engagement.service import enforce_rate
from tajiri_live.gifts import service as gifts
from tajiri_live.moderation import service as moderation
from tajiri_live.realtime.events import SUPER_CHAT_SENT, Event, stream_channel
from tajiri_live.streams.lifecycle import StreamStatus
from tajiri_live.streams.models import LiveStream
from tajiri_live.streams.presenters import storage_base_url
from tajiri_live.superchats.models import StreamSuperChat
from tajiri_live.superchats.presenters import super_chat_dict, super_chat_event
from tajiri_live.wallet import service as wallet

MAX_LISTED = 200


@dataclass(frozen=True)
class Tier:
    name: str
    floor: int  # TZS, inclusive
    seconds: int  # how long the client shows it


# The fuller spec's tiers, highest first; below the lowest floor is refused.
TIERS = (Tier("high", 10_000, 15), Tier("medium", 3_000, 10), Tier("low", 1_000, 5))


def tier_of(amount: int) -> Tier:
    """The tier of an amount in TZS (the schema already refused less than the lowest)."""
    for tier in TIERS:
        if amount >= tier.floor:
            return tier
    raise ValidationFailed({"amount": [f"The amount must be at least {TIERS[-1].floor} TZS."]})


@dataclass(frozen=True)
class SuperChatRequest:
    message: str
    amount: int  # TZS
    payment_method: str | None = None
    payment_reference: str | None = None


def _ensure_open(stream: LiveStream, principal: Principal) -> None:
    if not principal.verified:  # a claimed id (legacy client rules) never pays
        raise ApiError(401, "Paying needs a signed-in token (Authorization: Bearer <token>).")
    _ensure_accepting(
        stream.status, allow_gifts=stream.allow_gifts, allow_comments=stream.allow_comments
    )
    if stream.user_id == principal.user_id:
        raise forbidden("You cannot send a super chat to your own stream.")


def _ensure_accepting(status: str, *, allow_gifts: bool, allow_comments: bool) -> None:
    if status != StreamStatus.LIVE:
        raise forbidden("Super chats can be sent only while the stream is live.")
    if not allow_gifts:
        raise forbidden("Paid messages are turned off for this stream.")
    if not allow_comments:
        raise forbidden("Comments are turned off for this stream.")


async def _ensure_still_accepting(session: AsyncSession, stream_id: int) -> None:
    """The stream as it is now, locked until the commit (after the wallets, as every payment
    locks them): one that ended or stopped paid messages since the request read it is not
    paid. Refused: rolled back, nothing charged."""
    row = (
        await session.execute(
            select(LiveStream.status, LiveStream.allow_gifts, LiveStream.allow_comments)
            .where(LiveStream.id == stream_id, LiveStream.deleted_at.is_(None))
            .with_for_update()
        )
    ).one_or_none()
    try:
        if row is None:
            raise not_found()
        _ensure_accepting(
            row.status, allow_gifts=row.allow_gifts, allow_comments=row.allow_comments
        )
    except ApiError:
        await session.rollback()
        raise


async def send(
    session: AsyncSession,
    *,
    runtime: Runtime,
    stream: LiveStream,
    principal: Principal,
    request: SuperChatRequest,
    claim: idempotency.Claim | None = None,
) -> dict[str, Any]:
    """Check, moderate, pay and publish a super chat; with an idempotency `claim`, its answer
    is recorded with the payment (retries replay it and never reach this function)."""
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
    await moderation.admit_commenter(  # a ban or mute says why
        session,
        runtime=runtime,
        stream_id=stream.id,
        user_id=principal.user_id,
        content=request.message,
        action="super_chat",
    )
    await enforce_rate(
        runtime,
        action="super chat",
        stream_id=stream.id,
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
    answer, event = await _pay(
        session,
        runtime=runtime,
        stream=stream,
        principal=principal,
        request=request,
        text=text,
        claim=claim,
    )
    await runtime.broker.publish(
        Event(
            channel=stream_channel(stream.id),
            name=SUPER_CHAT_SENT,
            data=event,
            actor_id=principal.user_id,
        )
    )
    return answer


async def _pay(
    session: AsyncSession,
    *,
    runtime: Runtime,
    stream: LiveStream,
    principal: Principal,
    request: SuperChatRequest,
    text: str,
    claim: idempotency.Claim | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Debit, credit, store and commit in one database transaction; returns the REST answer
    and the event's data."""
    settings = runtime.settings
    tier = tier_of(request.amount)
    coins = request.amount * settings.coins_per_tzs
    creator_amount, entries = await gifts.pay_stream(
        session,
        stream=stream,
        payer_id=principal.user_id,
        total=coins,
        creator_share=settings.super_chat_creator_share,
        what="this super chat",
    )
    await _ensure_still_accepting(session, stream.id)
    now = runtime.clock.now()
    until = now + timedelta(seconds=tier.seconds)
    comment = StreamComment(
        stream_id=stream.id,
        user_id=principal.user_id,
        content=text,
        is_pinned=False,
        is_highlighted=True,
        pinned_until=until,
        created_at=now,
        updated_at=now,
    )
    session.add(comment)
    await session.flush()
    await _count_comment(session, stream.id, 1)
    transaction = await wallet.record(
        session,
        kind="super_chat",
        actor_id=principal.user_id,
        idempotency_key=None,
        entries=entries,
    )
    chat = StreamSuperChat(
        stream_id=stream.id,
        user_id=principal.user_id,
        message=text,
        amount=request.amount,
        coins=coins,
        creator_amount=creator_amount,
        tier=tier.name,
        duration=tier.seconds,
        payment_method=request.payment_method,
        payment_reference=request.payment_reference,
        comment_id=comment.id,
        transaction_id=transaction.id,
        display_until=until,
        created_at=now,
    )
    session.add(chat)
    await session.flush()
    chat = await load(session, stream_id=stream.id, chat_id=chat.id)
    base = storage_base_url(settings)
    answer = super_chat_dict(chat, storage_base_url=base)
    transaction.response = answer
    if claim is not None:
        await claim.record(session, 201, answer)
    # A battle's score moves with the coins, in this transaction: never one without the other.
    scores = await battles.record_coins_received(session, stream_id=stream.id, coins=coins, now=now)
    await session.commit()
    await battles.announce_scores(runtime, scores)
    return answer, super_chat_event(chat, storage_base_url=base, now=now)


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
