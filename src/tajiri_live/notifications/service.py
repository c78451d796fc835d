"""Notifications: triggers written beside the transitions, turned into one row per recipient
and one outbox row per device by the worker, then pushed in batches.

Exactly once per stream, user and type: the trigger's `dedupe_key` and the unique
(stream, user, type) of `stream_notifications` make every step idempotent; the outbox is
claimed with a lease, so a worker that dies mid-batch leaves its rows to the next one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, func, literal, or_, select, union, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from tajiri_live.core.batches import is_data_error, quarantine, write_in_halves
from tajiri_live.core.db import dialect_insert
from tajiri_live.core.runtime import Runtime
from tajiri_live.notifications import messages
from tajiri_live.notifications.models import (
    Device,
    NotificationPreference,
    NotificationTrigger,
    PushOutbox,
    StreamNotification,
)
from tajiri_live.notifications.push import Outcome, PushMessage, PushSender, SendResult
from tajiri_live.streams.lifecycle import StreamStatus
from tajiri_live.streams.models import LiveStream, StreamViewer
from tajiri_live.users.models import Follow, User
from tajiri_live.users.presenters import display_name

log = logging.getLogger(__name__)

TRIGGERS_PER_RUN = 20
MAX_BACKOFF_SECONDS = 3600.0
# Lifecycle statuses that tell followers something.
TYPE_OF_STATUS = {
    StreamStatus.PRE_LIVE: messages.STARTING_SOON,
    StreamStatus.LIVE: messages.NOW_LIVE,
    StreamStatus.ENDED: messages.ENDED,
}


# --- triggers ------------------------------------------------------------------------------------


async def enqueue(
    session: AsyncSession, *, stream: LiveStream, kind: str, now: datetime, key: str | None = None
) -> None:
    """Record that followers should hear `kind` about `stream` (once; the caller commits)."""
    insert = dialect_insert(session)
    await session.execute(
        insert(NotificationTrigger)
        .values(
            dedupe_key=key or f"{stream.id}:{kind}",
            stream_id=stream.id,
            streamer_id=stream.user_id,
            type=kind,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
    )


async def on_transition(
    session: AsyncSession, *, stream: LiveStream, target: StreamStatus, now: datetime
) -> None:
    kind = TYPE_OF_STATUS.get(target)
    if kind is not None:
        await enqueue(session, stream=stream, kind=kind, now=now)


def _preference(user: Any, streamer_id: int, kind: str) -> ColumnElement[Any]:
    """The user's most specific choice for this streamer and type, else the type's default."""
    prefs = NotificationPreference

    def choice(streamer: Any, type_: Any) -> Any:
        return (
            select(prefs.enabled)
            .where(
                prefs.user_id == user,
                prefs.streamer_id.is_(None) if streamer is None else prefs.streamer_id == streamer,
                prefs.type.is_(None) if type_ is None else prefs.type == type_,
            )
            .limit(1)
            .scalar_subquery()
        )

    chosen = func.coalesce(
        choice(streamer_id, kind),
        choice(streamer_id, None),
        choice(None, kind),
        choice(None, None),
        literal(messages.DEFAULT_ENABLED[kind]),
    )
    # Most people never set a preference: one index probe settles them.
    has_any = select(prefs.id).where(prefs.user_id == user).exists()
    return case((has_any, chosen), else_=literal(messages.DEFAULT_ENABLED[kind]))


def recipients(trigger: NotificationTrigger) -> Any:
    """The user ids a trigger reaches, preferences applied (a select of one column)."""
    kind, streamer = trigger.type, trigger.streamer_id
    if kind == messages.ENDED:
        base = (
            select(StreamViewer.user_id.label("user_id"))
            .where(StreamViewer.stream_id == trigger.stream_id, StreamViewer.user_id.is_not(None))
            .distinct()
        )
    else:
        base = select(Follow.follower_id.label("user_id")).where(Follow.followed_id == streamer)
    people = base.subquery()
    chosen = select(people.c.user_id).where(
        people.c.user_id != streamer,
        _preference(people.c.user_id, streamer, kind) == literal(True),
    )
    if kind == messages.STARTING_SOON:  # the streamer is told too: time to set up
        return union(chosen, select(literal(streamer).label("user_id"))).subquery()
    return chosen.subquery()


async def _in_quiet_period(
    session: AsyncSession, trigger: NotificationTrigger, quiet: float
) -> bool:
    """A `now_live` from the same streamer went out within the quiet period."""
    since = trigger.created_at - timedelta(seconds=quiet)
    earlier = await session.scalar(
        select(NotificationTrigger.id)
        .where(
            NotificationTrigger.streamer_id == trigger.streamer_id,
            NotificationTrigger.type == messages.NOW_LIVE,
            NotificationTrigger.id != trigger.id,
            NotificationTrigger.processed_at.is_not(None),
            NotificationTrigger.skipped.is_(None),
            NotificationTrigger.created_at >= since,
        )
        .limit(1)
    )
    return earlier is not None


async def process_trigger(runtime: Runtime, trigger_id: int) -> int:
    """Turn one trigger into notification rows and outbox rows, in one transaction."""
    now = runtime.clock.now()
    async with runtime.sessions() as session:
        trigger = await session.get(NotificationTrigger, trigger_id)
        if trigger is None or trigger.processed_at is not None:
            return 0
        stream = await session.get(LiveStream, trigger.stream_id)
        streamer = await session.get(User, trigger.streamer_id)
        quiet = runtime.settings.notify_quiet_minutes * 60
        if stream is None or (
            trigger.type == messages.NOW_LIVE and await _in_quiet_period(session, trigger, quiet)
        ):
            trigger.processed_at, trigger.recipients = now, 0
            trigger.skipped = "stream gone" if stream is None else "quiet period"
            await session.commit()
            return 0
        name = (
            display_name(streamer.id, streamer.first_name, streamer.last_name, streamer.username)
            if streamer is not None
            else f"user{trigger.streamer_id}"
        )
        title, body = messages.render(trigger.type, None, name=name, title=stream.title)
        data = messages.payload(
            trigger.type, stream_id=stream.id, has_replay=bool(stream.recording_path)
        )
        people = recipients(trigger)
        insert = dialect_insert(session)
        rows = insert(StreamNotification).from_select(
            [
                "stream_id",
                "user_id",
                "type",
                "title",
                "message",
                "data",
                "created_at",
                "trigger_id",
            ],
            select(
                literal(stream.id),
                people.c.user_id,
                literal(trigger.type),
                literal(title),
                literal(body),
                literal(data, StreamNotification.data.type),
                literal(now, StreamNotification.created_at.type),
                literal(trigger.id),
            ).where(people.c.user_id.is_not(None)),
        )
        keys = ["stream_id", "user_id", "type"]
        if trigger.type == messages.REMINDER:  # a new reminder re-notifies
            excluded = rows.excluded
            rows = rows.on_conflict_do_update(
                index_elements=keys,
                set_={
                    "created_at": excluded.created_at,
                    "trigger_id": excluded.trigger_id,
                    "read_at": None,
                    "sent_at": None,
                },
            )
        else:
            rows = rows.on_conflict_do_nothing(index_elements=keys)
        await session.execute(rows)
        await session.execute(
            insert(PushOutbox)
            .from_select(
                [
                    "notification_id",
                    "trigger_id",
                    "device_id",
                    "status",
                    "attempts",
                    "next_attempt_at",
                    "created_at",
                ],
                select(
                    StreamNotification.id,
                    literal(trigger.id),
                    Device.id,
                    literal("pending"),
                    literal(0),
                    literal(now, PushOutbox.next_attempt_at.type),
                    literal(now, PushOutbox.created_at.type),
                )
                .join(Device, Device.user_id == StreamNotification.user_id)
                .where(StreamNotification.trigger_id == trigger.id),
            )
            .on_conflict_do_nothing(index_elements=["notification_id", "device_id", "trigger_id"])
        )
        made = await session.scalar(
            select(func.count()).where(StreamNotification.trigger_id == trigger.id)
        )
        trigger.processed_at, trigger.recipients = now, int(made or 0)
        await session.commit()
        return int(made or 0)


async def withdraw(session: AsyncSession, *, stream_id: int) -> None:
    """The stream is gone (soft-deleted): its triggers, notifications and pending pushes go
    too, as a deletion would have taken them (the caller commits)."""
    await session.execute(
        delete(StreamNotification).where(StreamNotification.stream_id == stream_id)
    )
    await session.execute(
        delete(NotificationTrigger).where(NotificationTrigger.stream_id == stream_id)
    )


async def process_triggers(runtime: Runtime) -> int:
    async with runtime.sessions() as session:
        waiting = (
            await session.scalars(
                select(NotificationTrigger.id)
                .where(NotificationTrigger.processed_at.is_(None))
                .order_by(NotificationTrigger.id)
                .limit(TRIGGERS_PER_RUN)
            )
        ).all()
    made = 0
    for trigger_id in waiting:
        try:
            made += await process_trigger(runtime, trigger_id)
        except Exception as exc:
            if not is_data_error(exc):
                raise  # the database is away: the trigger waits for the next run
            # A trigger the database refuses would otherwise come first in every run and
            # hold back every later one: set it aside, marked, and go on.
            quarantine("notification_triggers", f"notification trigger {trigger_id}", exc)
            await _set_aside(runtime, trigger_id, exc)
    return made


async def _set_aside(runtime: Runtime, trigger_id: int, exc: Exception) -> None:
    async with runtime.sessions() as session:
        await session.execute(
            update(NotificationTrigger)
            .where(NotificationTrigger.id == trigger_id)
            .values(
                processed_at=runtime.clock.now(),
                recipients=0,
                skipped=f"failed: {type(exc).__name__}"[:64],
            )
            .execution_options(synchronize_session=False)
        )
        await session.commit()


# --- delivery ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    outbox_id: int
    notification_id: int
    device_id: int
    attempts: int
    message: PushMessage


async def claim(runtime: Runtime, limit: int) -> list[Claimed]:
    """Lease up to `limit` due pushes (SKIP LOCKED on PostgreSQL: workers never share one)."""
    settings = runtime.settings
    now = runtime.clock.now()
    async with runtime.sessions() as session:
        due = (
            select(PushOutbox.id)
            .where(
                PushOutbox.status == "pending",
                PushOutbox.next_attempt_at <= now,
                or_(PushOutbox.lease_until.is_(None), PushOutbox.lease_until < now),
            )
            .order_by(PushOutbox.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        leased = (
            (
                await session.execute(
                    update(PushOutbox)
                    .where(PushOutbox.id.in_(due.scalar_subquery()))
                    .values(
                        lease_until=now + timedelta(seconds=settings.push_lease_seconds),
                        attempts=PushOutbox.attempts + 1,
                    )
                    .returning(PushOutbox.id)
                    .execution_options(synchronize_session=False)
                )
            )
            .scalars()
            .all()
        )
        await session.commit()
        if not leased:
            return []
        streamer = User.__table__.alias("streamer")
        rows = await session.execute(
            select(
                PushOutbox.id,
                PushOutbox.notification_id,
                PushOutbox.device_id,
                PushOutbox.attempts,
                Device.token,
                Device.locale,
                StreamNotification.type,
                LiveStream.id,
                LiveStream.title,
                LiveStream.recording_path,
                LiveStream.user_id,
                streamer.c.first_name,
                streamer.c.last_name,
                streamer.c.username,
            )
            .join(Device, Device.id == PushOutbox.device_id)
            .join(StreamNotification, StreamNotification.id == PushOutbox.notification_id)
            .join(LiveStream, LiveStream.id == StreamNotification.stream_id)
            .join(streamer, streamer.c.id == LiveStream.user_id)
            .where(PushOutbox.id.in_(leased))
            .order_by(PushOutbox.id)
        )
        claimed = []
        for (oid, nid, did, attempts, token, locale, kind, sid, title, recording, uid,
             first, last, username) in rows:  # fmt: skip
            name = display_name(uid, first, last, username)
            head, body = messages.render(kind, locale, name=name, title=title)
            data = messages.payload(kind, stream_id=sid, has_replay=bool(recording))
            claimed.append(Claimed(oid, nid, did, attempts, PushMessage(token, head, body, data)))
        return claimed


def backoff_seconds(attempts: int, retry_after: float | None) -> float:
    return retry_after if retry_after else min(MAX_BACKOFF_SECONDS, 2.0**attempts)


class ResultWriter:
    """Writes outcomes as they come: a push FCM accepted is marked sent within
    `flush_seconds`, so a crash can repeat at most that last moment's pushes."""

    def __init__(self, runtime: Runtime, flush_seconds: float = 0.05) -> None:
        self.runtime = runtime
        self.flush_seconds = flush_seconds
        self.pending: list[tuple[Claimed, SendResult]] = []
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None

    async def add(self, claimed: Claimed, result: SendResult) -> None:
        self.pending.append((claimed, result))
        if self._timer is None:
            self._timer = asyncio.create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.flush_seconds)
        self._timer = None
        await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            batch, self.pending = self.pending, []
            if batch:
                await write_results(self.runtime, batch)

    async def close(self) -> None:
        timer = self._timer
        if timer is not None:
            await timer  # never cancelled mid-write: that could lose written-off pushes
        await self.flush()


async def write_results(runtime: Runtime, results: list[tuple[Claimed, SendResult]]) -> None:
    """Write outcomes in one transaction; a batch the database refuses is split so that one
    bad outcome is set aside (it is retried when its lease ends) and the others land."""

    async def write(part: Sequence[tuple[Claimed, SendResult]]) -> None:
        await _write_results(runtime, part)

    await write_in_halves(
        results,
        write,
        writer="push_results",
        describe=lambda pair: f"the outcome of push {pair[0].outbox_id}",
    )


async def _write_results(runtime: Runtime, results: Sequence[tuple[Claimed, SendResult]]) -> None:
    now = runtime.clock.now()
    max_attempts = runtime.settings.push_max_attempts
    sent = [c for c, r in results if r.outcome is Outcome.SENT]
    dead = [c for c, r in results if r.outcome is Outcome.DEAD_TOKEN]
    async with runtime.sessions() as session:
        if sent:
            await session.execute(
                update(PushOutbox)
                .where(PushOutbox.id.in_([c.outbox_id for c in sent]))
                .values(status="sent", sent_at=now, lease_until=None)
                .execution_options(synchronize_session=False)
            )
            await session.execute(
                update(StreamNotification)
                .where(
                    StreamNotification.id.in_({c.notification_id for c in sent}),
                    StreamNotification.sent_at.is_(None),
                )
                .values(sent_at=now)
                .execution_options(synchronize_session=False)
            )
        for claimed, result in results:
            if result.outcome is Outcome.RETRY and claimed.attempts < max_attempts:
                delay = backoff_seconds(claimed.attempts, result.retry_after)
                values: dict[str, Any] = {
                    "next_attempt_at": now + timedelta(seconds=delay),
                    "lease_until": None,
                    "last_error": (result.error or "")[:255],
                }
            elif result.outcome in (Outcome.RETRY, Outcome.FAILED):
                values = {"status": "failed", "lease_until": None,
                          "last_error": (result.error or "")[:255]}  # fmt: skip
            else:
                continue
            await session.execute(
                update(PushOutbox)
                .where(PushOutbox.id == claimed.outbox_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        if dead:  # FCM says the token is gone: forget the device (and its pending pushes)
            await session.execute(delete(Device).where(Device.id.in_({c.device_id for c in dead})))
            log.info("removed %d devices FCM no longer knows", len({c.device_id for c in dead}))
        await session.commit()


async def deliver(runtime: Runtime, sender: PushSender) -> int:
    """Send every due push, `push_concurrency` at a time; returns how many were handed to the
    sender. The next batch is claimed as soon as the last one has all started, so the pipe to
    FCM never drains between batches."""
    settings = runtime.settings
    gate = asyncio.Semaphore(settings.push_concurrency)
    writer = ResultWriter(runtime)
    running: set[asyncio.Task[None]] = set()
    handed = 0

    async def push(claimed: Claimed) -> None:
        try:
            result = await sender.send(claimed.message)
        finally:
            gate.release()
        await writer.add(claimed, result)

    try:
        while batch := await claim(runtime, settings.push_batch_size):
            for claimed in batch:
                await gate.acquire()
                task = asyncio.create_task(push(claimed))
                running.add(task)
                task.add_done_callback(running.discard)
            handed += len(batch)
        if running:
            await asyncio.gather(*running)
    finally:
        await writer.close()
    return handed


# --- reading and preferences ------------------------------------------------------------


async def unread_count(session: AsyncSession, user_id: int) -> int:
    count = await session.scalar(
        select(func.count()).where(
            StreamNotification.user_id == user_id, StreamNotification.read_at.is_(None)
        )
    )
    return int(count or 0)


async def mark_read(
    session: AsyncSession, *, user_id: int, now: datetime, notification_id: int | None = None
) -> int:
    conditions = [StreamNotification.user_id == user_id, StreamNotification.read_at.is_(None)]
    if notification_id is not None:
        conditions.append(StreamNotification.id == notification_id)
    result = await session.execute(
        update(StreamNotification)
        .where(and_(*conditions))
        .values(read_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


async def follower_count(session: AsyncSession, streamer_id: int) -> int:
    count = await session.scalar(select(func.count()).where(Follow.followed_id == streamer_id))
    return int(count or 0)
