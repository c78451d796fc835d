"""The gift catalog, sending gifts (paid with the concurrent ones, once per idempotency key)
and refunding them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from tajiri_live.core import idempotency
from tajiri_live.core.auth import Principal
from tajiri_live.core.errors import ApiError, forbidden, not_found
from tajiri_live.core.runtime import Runtime
from tajiri_live.gifts.models import StreamGift, VirtualGift
from tajiri_live.gifts.presenters import sent_gift_dict
from tajiri_live.gifts.writer import GiftOrder, PaymentWriter, Sent, enforce_gift_rate
from tajiri_live.realtime.events import GIFT_SENT, Event, stream_channel
from tajiri_live.streams.admission import StreamFacts
from tajiri_live.streams.lifecycle import StreamStatus
from tajiri_live.streams.models import LiveStream
from tajiri_live.wallet import service as wallet


async def has_gifts(session: AsyncSession, stream_id: int) -> bool:
    """Whether coins moved on the stream (its gifts are in the ledger, refunded or not)."""
    found = await session.scalar(select(StreamGift.id).where(StreamGift.stream_id == stream_id))
    return found is not None


async def active_catalog(session: AsyncSession) -> list[VirtualGift]:
    rows = await session.scalars(
        select(VirtualGift)
        .where(VirtualGift.is_active.is_(True))
        .order_by(VirtualGift.order, VirtualGift.id)
    )
    return list(rows)


async def send_gift(
    *,
    runtime: Runtime,
    writer: PaymentWriter,
    stream: StreamFacts,
    principal: Principal,
    gift_id: int,
    quantity: int,
    message: str | None,
    key: str | None = None,
    fingerprint: str = "",
) -> Sent:
    """Send a gift with the concurrent ones (gifts/writer.py: one transaction a batch); what
    needs the database (the stream still live, gifts on, bans, the catalog, the balance, the
    idempotency key) is decided there, under the batch's locks. With a key, an answer already
    recorded is replayed at once: not queued, not counted against the rate limit."""
    if key is not None:
        replay = await idempotency.answered(
            runtime, user_id=principal.user_id, key=key, fingerprint=fingerprint
        )
        if replay is not None:
            return Sent(replay.body, replayed=True)
    if stream.status != StreamStatus.LIVE:
        raise forbidden("Gifts can be sent only while the stream is live.")
    if stream.user_id == principal.user_id:
        raise forbidden("You cannot send a gift to your own stream.")
    if key is None:  # a gift with a key is counted in its batch, once it is no replay
        await enforce_gift_rate(runtime, stream.id, principal.user_id)
    sent = await writer.send(
        GiftOrder(
            stream_id=stream.id,
            sender_id=principal.user_id,
            gift_id=gift_id,
            quantity=quantity,
            message=message,
            created_at=runtime.clock.now(),
            key=key,
            fingerprint=fingerprint,
        )
    )
    if not sent.replayed:
        await _announce(runtime, sent.answer, principal)
    return sent


async def _announce(runtime: Runtime, answer: dict[str, Any], principal: Principal) -> None:
    await runtime.broker.publish(
        Event(
            channel=stream_channel(answer["stream_id"]),
            name=GIFT_SENT,
            data=answer,
            actor_id=principal.user_id,
        )
    )


async def _count(session: AsyncSession, stream_id: int, quantity: int, value: int) -> None:
    await session.execute(
        update(LiveStream)
        .where(LiveStream.id == stream_id)
        .values(
            gifts_count=LiveStream.gifts_count + quantity,
            gifts_value=LiveStream.gifts_value + value,
        )
        .execution_options(synchronize_session=False)
    )


async def _load(session: AsyncSession, sent_id: int) -> StreamGift:
    sent = await session.scalar(
        select(StreamGift)
        .where(StreamGift.id == sent_id)
        .options(selectinload(StreamGift.sender), selectinload(StreamGift.gift))
        .execution_options(populate_existing=True)  # rows were changed by SQL updates
    )
    if sent is None:
        raise not_found("Gift")
    return sent


async def refund(
    session: AsyncSession,
    *,
    runtime: Runtime,
    stream: LiveStream,
    sent_id: int,
    admin: Principal,
) -> dict[str, Any]:
    """Reverse a sent gift with new ledger entries (never an edit), once."""
    sent = await session.scalar(
        select(StreamGift).where(StreamGift.id == sent_id, StreamGift.stream_id == stream.id)
    )
    if sent is None:
        raise not_found("Gift")
    marked = await session.execute(
        update(StreamGift)
        .where(StreamGift.id == sent.id, StreamGift.refunded_at.is_(None))
        .values(refunded_at=runtime.clock.now())
        .execution_options(synchronize_session=False)
    )
    if getattr(marked, "rowcount", 0) != 1:
        await session.rollback()
        raise ApiError(409, "This gift was already refunded.")
    original = await wallet.entries_of_gift(session, sent.id)
    await wallet.reverse(session, original, "gift")
    await _count(session, stream.id, -sent.quantity, -sent.total_value)
    await wallet.record(
        session,
        kind="refund",
        actor_id=admin.user_id,
        idempotency_key=None,
        entries=[(wallet_id, -amount) for wallet_id, amount in original],
        stream_gift_id=sent.id,
    )
    await session.commit()
    return sent_gift_dict(await _load(session, sent.id), runtime.settings)


async def sent_on(session: AsyncSession, *, stream_id: int, limit: int) -> list[StreamGift]:
    """The stream's sent gifts, newest first, with their senders and catalog entries."""
    rows = await session.scalars(
        select(StreamGift)
        .where(StreamGift.stream_id == stream_id)
        .order_by(StreamGift.id.desc())
        .limit(limit)
        .options(selectinload(StreamGift.sender), selectinload(StreamGift.gift))
    )
    return list(rows)
