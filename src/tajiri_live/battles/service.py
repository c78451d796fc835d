"""PK battles: invite, accept, decline, end and forfeit; scores raised inside the gift
transaction; the end by time as a job any node may run.

Every change of status is a conditional update (`... WHERE status = :expected`): a job on
two nodes, a forfeit racing the clock or an accept sent twice change a battle once, and only
the caller that made the change announces it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from tajiri_live.battles.models import BattleStatus, EndReason, StreamBattle, StreamBattleSlot
from tajiri_live.battles.presenters import (
    Side,
    ended_event,
    opponent_event,
    score_event,
    scores_of,
)
from tajiri_live.core.auth import Principal
from tajiri_live.core.clock import iso
from tajiri_live.core.errors import ApiError, ValidationFailed, forbidden, not_found
from tajiri_live.core.runtime import Runtime
from tajiri_live.engagement.service import enforce_rate
from tajiri_live.realtime.events import (
    BATTLE_ACCEPTED,
    BATTLE_DECLINED,
    BATTLE_ENDED,
    BATTLE_INVITE,
    BATTLE_SCORE_UPDATE,
    Event,
    stream_channel,
)
from tajiri_live.streams.lifecycle import StreamStatus
from tajiri_live.streams.models import LiveStream
from tajiri_live.users.models import User
from tajiri_live.users.presenters import display_name

OPEN_STATUSES = (BattleStatus.PENDING.value, BattleStatus.ACTIVE.value)


@dataclass(frozen=True)
class Scores:
    """A battle's scores as one transaction left them (what its score events carry)."""

    battle_id: int
    stream_id_1: int
    stream_id_2: int
    score_1: int
    score_2: int


class BattleAct(Protocol):
    """What an owner does to a battle by its id (accept, decline, end, forfeit)."""

    async def __call__(
        self, session: AsyncSession, *, runtime: Runtime, battle_id: int, principal: Principal
    ) -> StreamBattle: ...


# --- reading -----------------------------------------------------------------------------


async def load_battle(session: AsyncSession, battle_id: int) -> StreamBattle:
    """The battle as committed now (scores change in SQL); 404 if there is none."""
    battle = await session.scalar(
        select(StreamBattle)
        .where(StreamBattle.id == battle_id)
        .execution_options(populate_existing=True)
    )
    if battle is None:
        raise not_found("Battle")
    return battle


async def sides_of(session: AsyncSession, battle: StreamBattle) -> tuple[Side, Side]:
    """Both streams with their owners' names, side 1 first."""
    rows = await session.execute(
        select(
            LiveStream.id,
            LiveStream.title,
            LiveStream.user_id,
            User.first_name,
            User.last_name,
            User.username,
        )
        .outerjoin(User, User.id == LiveStream.user_id)
        .where(LiveStream.id.in_([battle.stream_id_1, battle.stream_id_2]))
    )
    found = {
        int(sid): Side(int(sid), title, int(owner), display_name(int(owner), first, last, nick))
        for sid, title, owner, first, last, nick in rows
    }
    return found[battle.stream_id_1], found[battle.stream_id_2]


async def current_battle(session: AsyncSession, stream_id: int) -> StreamBattle | None:
    """The stream's open battle (pending or active), if any."""
    battle_id = await session.scalar(
        select(StreamBattleSlot.battle_id).where(StreamBattleSlot.stream_id == stream_id)
    )
    return None if battle_id is None else await load_battle(session, int(battle_id))


# --- invite, accept, decline -------------------------------------------------------------


async def invite(
    session: AsyncSession,
    *,
    runtime: Runtime,
    stream: LiveStream,
    opponent: LiveStream,
    principal: Principal,
) -> StreamBattle:
    """The owner of live `stream` invites the owner of live `opponent`; `battle_invite` to
    the invited owner's sockets once it is committed."""
    settings = runtime.settings
    if stream.user_id != principal.user_id:
        raise forbidden("Only the stream's owner can invite another stream to a battle.")
    if opponent.id == stream.id:
        raise ValidationFailed({"opponent_stream_id": ["A stream cannot battle itself."]})
    if opponent.user_id == principal.user_id:
        raise ValidationFailed(
            {"opponent_stream_id": ["You cannot battle yourself: that stream is yours too."]}
        )
    _ensure_live(stream, "Your stream")
    _ensure_live(opponent, "The opponent's stream")
    await enforce_rate(
        runtime,
        action="battle_invite",
        stream_id=stream.id,
        user_id=principal.user_id,
        limit=settings.battle_invite_limit,
        window=settings.battle_invite_window_seconds,
    )
    now = runtime.clock.now()
    stream_id, opponent_id = stream.id, opponent.id
    await _expire_pending(session, now=now, stream_ids=[stream_id, opponent_id])
    battle = StreamBattle(
        stream_id_1=stream_id,
        stream_id_2=opponent_id,
        invited_by=principal.user_id,
        status=BattleStatus.PENDING.value,
        score_1=0,
        score_2=0,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.battle_invite_ttl_seconds),
    )
    session.add(battle)
    await session.flush()
    battle_id = battle.id
    session.add_all(
        StreamBattleSlot(stream_id=sid, battle_id=battle_id) for sid in (stream_id, opponent_id)
    )
    try:
        await session.commit()  # the slots' primary key: one open battle per stream
    except IntegrityError:
        await session.rollback()
        busy = await session.scalar(
            select(StreamBattleSlot.stream_id).where(StreamBattleSlot.stream_id == stream_id)
        )
        whose = "Your stream" if busy is not None else "The opponent's stream"
        raise ApiError(409, f"{whose} is already in a battle or has an open invitation.") from None
    battle = await load_battle(session, battle_id)
    inviter, invited = await sides_of(session, battle)
    await _tell(runtime, BATTLE_INVITE, battle, invited, inviter, now, owner_only=True)
    return battle


async def _tell(
    runtime: Runtime,
    name: str,
    battle: StreamBattle,
    me: Side,
    opponent: Side,
    now: datetime,
    *,
    owner_only: bool,
) -> None:
    """An event about `opponent` on `me`'s channel: to everyone there, or its owner alone."""
    await runtime.broker.publish(
        Event(
            channel=stream_channel(me.stream_id),
            name=name,
            data=opponent_event(battle, me, opponent, now),
            to_users=(me.owner_id,) if owner_only else None,
        )
    )


def _ensure_live(stream: LiveStream, whose: str) -> None:
    if stream.status != StreamStatus.LIVE.value:
        raise ApiError(
            409,
            f"Battles are between live streams: {whose.lower()} is {stream.status}.",
            stream_id=stream.id,
            stream_status=stream.status,
        )


async def _owner_of(session: AsyncSession, stream_id: int) -> int | None:
    owner = await session.scalar(select(LiveStream.user_id).where(LiveStream.id == stream_id))
    return None if owner is None else int(owner)


async def _ensure_invited(
    session: AsyncSession, battle: StreamBattle, principal: Principal, action: str
) -> None:
    if await _owner_of(session, battle.stream_id_2) != principal.user_id:
        raise forbidden(f"Only the invited stream's owner can {action} this battle.")


def _not_pending(battle: StreamBattle, now: datetime) -> ApiError:
    """Why an answer to this invitation comes too late, in words."""
    status = battle.status_enum
    if status in (BattleStatus.ACTIVE, BattleStatus.ENDED):
        return ApiError(409, "This battle was already accepted.", battle_status=battle.status)
    if status is BattleStatus.DECLINED:
        return ApiError(409, "This invitation was declined.", battle_status=battle.status)
    if status is BattleStatus.CANCELLED:
        return ApiError(
            409, "This invitation was cancelled: a stream ended.", battle_status=battle.status
        )
    return ApiError(
        409,
        f"This invitation expired at {iso(battle.expires_at)}: ask for a new one.",
        battle_status=BattleStatus.EXPIRED.value,
        expired_at=iso(battle.expires_at),
    )


async def accept(
    session: AsyncSession, *, runtime: Runtime, battle_id: int, principal: Principal
) -> StreamBattle:
    """The invited owner accepts before the invitation expires; the battle starts now and
    `battle_accepted` goes to both streams."""
    battle = await load_battle(session, battle_id)
    await _ensure_invited(session, battle, principal, "accept")
    now = runtime.clock.now()
    if battle.status_enum is not BattleStatus.PENDING or battle.expires_at <= now:
        await _expire_pending(session, now=now, stream_ids=[battle.stream_id_2])
        await session.commit()
        raise _not_pending(battle, now)
    for stream_id, whose in (
        (battle.stream_id_1, "The inviting stream"),
        (battle.stream_id_2, "Your stream"),
    ):
        stream = await session.get(LiveStream, stream_id, populate_existing=True)
        if stream is not None:
            _ensure_live(stream, whose)
    started = await session.execute(
        update(StreamBattle)
        .where(
            StreamBattle.id == battle.id,
            StreamBattle.status == BattleStatus.PENDING.value,
            StreamBattle.expires_at > now,
        )
        .values(
            status=BattleStatus.ACTIVE.value,
            started_at=now,
            ends_at=now + timedelta(seconds=runtime.settings.battle_duration_seconds),
        )
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    battle = await load_battle(session, battle.id)
    if getattr(started, "rowcount", 0) != 1:  # another request answered first
        raise _not_pending(battle, now)
    one, two = await sides_of(session, battle)
    await _tell(runtime, BATTLE_ACCEPTED, battle, one, two, now, owner_only=False)
    await _tell(runtime, BATTLE_ACCEPTED, battle, two, one, now, owner_only=False)
    return battle


async def decline(
    session: AsyncSession, *, runtime: Runtime, battle_id: int, principal: Principal
) -> StreamBattle:
    """The invited owner says no; `battle_declined` to the inviting owner's sockets."""
    battle = await load_battle(session, battle_id)
    await _ensure_invited(session, battle, principal, "decline")
    now = runtime.clock.now()
    declined = await session.execute(
        update(StreamBattle)
        .where(
            StreamBattle.id == battle.id,
            StreamBattle.status == BattleStatus.PENDING.value,
            StreamBattle.expires_at > now,
        )
        .values(status=BattleStatus.DECLINED.value, ended_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(declined, "rowcount", 0) == 1:
        await _release(session, [battle.id])
    else:
        await _expire_pending(session, now=now, stream_ids=[battle.stream_id_2])
    await session.commit()
    battle = await load_battle(session, battle.id)
    if getattr(declined, "rowcount", 0) != 1:
        raise _not_pending(battle, now)
    inviter, invited = await sides_of(session, battle)
    await _tell(runtime, BATTLE_DECLINED, battle, inviter, invited, now, owner_only=True)
    return battle


async def _release(session: AsyncSession, battle_ids: Sequence[int]) -> None:
    """Free the battles' streams for their next battle."""
    if battle_ids:
        await session.execute(
            delete(StreamBattleSlot)
            .where(StreamBattleSlot.battle_id.in_(list(battle_ids)))
            .execution_options(synchronize_session=False)
        )


async def _expire_pending(
    session: AsyncSession, *, now: datetime, stream_ids: Sequence[int] | None = None
) -> list[int]:
    """Pending invitations past their time become `expired` (all, or those of these
    streams), in the caller's transaction; their streams are free again."""
    conditions = [
        StreamBattle.status == BattleStatus.PENDING.value,
        StreamBattle.expires_at <= now,
    ]
    if stream_ids is not None:
        conditions.append(
            or_(
                StreamBattle.stream_id_1.in_(list(stream_ids)),
                StreamBattle.stream_id_2.in_(list(stream_ids)),
            )
        )
    result = await session.execute(
        update(StreamBattle)
        .where(*conditions)
        .values(status=BattleStatus.EXPIRED.value, ended_at=StreamBattle.expires_at)
        .returning(StreamBattle.id)
        .execution_options(synchronize_session=False)
    )
    expired = [int(battle_id) for battle_id in result.scalars()]
    await _release(session, expired)
    return expired


# --- scores ------------------------------------------------------------------------------


async def record_coins_received(
    session: AsyncSession | AsyncConnection, *, stream_id: int, coins: int, now: datetime
) -> Scores | None:
    """Add `coins` received by `stream_id` to its side's score, in the caller's (the
    payment's) transaction, if the stream is in an active battle that has not run out.
    After the commit, hand the result to `announce_scores`."""
    battle_id = await session.scalar(
        select(StreamBattleSlot.battle_id).where(StreamBattleSlot.stream_id == stream_id)
    )
    if battle_id is None or coins <= 0:
        return None
    # On PostgreSQL the row stays locked until the payment commits: an end waits for it and
    # reads its coins, a payment after the end finds the battle ended. Scores are exact.
    result = await session.execute(
        update(StreamBattle)
        .where(
            StreamBattle.id == battle_id,
            StreamBattle.status == BattleStatus.ACTIVE.value,
            StreamBattle.ends_at > now,
        )
        .values(
            score_1=StreamBattle.score_1
            + case((StreamBattle.stream_id_1 == stream_id, coins), else_=0),
            score_2=StreamBattle.score_2
            + case((StreamBattle.stream_id_2 == stream_id, coins), else_=0),
        )
        .returning(
            StreamBattle.id,
            StreamBattle.stream_id_1,
            StreamBattle.stream_id_2,
            StreamBattle.score_1,
            StreamBattle.score_2,
        )
        .execution_options(synchronize_session=False)
    )
    row = result.one_or_none()
    if row is None:
        return None
    return Scores(*(int(value) for value in row))


async def announce_scores(
    runtime: Runtime, scores: Scores | None, *, at_once: bool = False
) -> None:
    """`battle_score_update` on both streams' channels, each from its own point of view,
    coalesced per tick. Scores only grow, so their sum orders the updates of a battle: the
    newest wins in the coalescer and in every hub, whichever node counted it."""
    if scores is None:
        return
    now = runtime.clock.now()
    sides = (
        (scores.stream_id_1, scores.score_1, scores.score_2),
        (scores.stream_id_2, scores.score_2, scores.score_1),
    )
    for stream_id, mine, theirs in sides:
        event = Event(
            channel=stream_channel(stream_id),
            name=BATTLE_SCORE_UPDATE,
            data=score_event(scores.battle_id, stream_id, mine, theirs, now),
            latest_key=f"{BATTLE_SCORE_UPDATE}:{scores.battle_id}:{stream_id}",
            version=scores.score_1 + scores.score_2,
        )
        # The final scores go before `battle_ended`; a worker has no coalescer.
        if at_once or runtime.coalescer is None:
            await runtime.broker.publish(event)
        else:
            runtime.coalescer.offer(event)


# --- the end -----------------------------------------------------------------------------


async def _finish(
    session: AsyncSession,
    *,
    battle_id: int,
    reason: EndReason,
    now: datetime,
    loser_stream_id: int | None = None,
) -> bool:
    """End an active battle in the caller's transaction; True if this call ended it. The
    winner is decided in SQL from the scores as they are when the row is locked."""
    if loser_stream_id is not None:
        winner = case(
            (StreamBattle.stream_id_1 == loser_stream_id, StreamBattle.stream_id_2),
            else_=StreamBattle.stream_id_1,
        )
    else:
        winner = case(
            (StreamBattle.score_1 > StreamBattle.score_2, StreamBattle.stream_id_1),
            (StreamBattle.score_2 > StreamBattle.score_1, StreamBattle.stream_id_2),
            else_=None,
        )
    # Ended by time: at its scheduled end, however late the job ran.
    ended_at = StreamBattle.ends_at if reason is EndReason.TIME else now
    result = await session.execute(
        update(StreamBattle)
        .where(StreamBattle.id == battle_id, StreamBattle.status == BattleStatus.ACTIVE.value)
        .values(
            status=BattleStatus.ENDED.value,
            ended_at=ended_at,
            end_reason=reason.value,
            winner_stream_id=winner,
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return False
    await _release(session, [battle_id])
    return True


async def announce_ended(runtime: Runtime, battle_ids: Sequence[int]) -> None:
    """`battle_ended` on both channels, each side's own view, read after the ending commit;
    and the final `battle_score_update`, so the last one every viewer gets is final."""
    if not battle_ids:
        return
    now = runtime.clock.now()
    async with runtime.sessions() as session:
        for battle_id in battle_ids:
            battle = await load_battle(session, battle_id)
            sides = await sides_of(session, battle)
            score_1, score_2 = scores_of(battle)
            await announce_scores(
                runtime,
                Scores(battle.id, battle.stream_id_1, battle.stream_id_2, score_1, score_2),
                at_once=True,
            )
            for index in (0, 1):
                await runtime.broker.publish(
                    Event(
                        channel=stream_channel(sides[index].stream_id),
                        name=BATTLE_ENDED,
                        data=ended_event(battle, sides, index, now),
                    )
                )


async def _side_of(session: AsyncSession, battle: StreamBattle, principal: Principal) -> int | None:
    """The stream of `battle` that `principal` owns, if any."""
    for stream_id in (battle.stream_id_1, battle.stream_id_2):
        if await _owner_of(session, stream_id) == principal.user_id:
            return stream_id
    return None


async def end(
    session: AsyncSession, *, runtime: Runtime, battle_id: int, principal: Principal
) -> StreamBattle:
    """Either owner (or an admin) ends an active battle now: the scores decide. Ending an
    ended battle changes nothing."""
    battle = await load_battle(session, battle_id)
    if not principal.is_admin and await _side_of(session, battle, principal) is None:
        raise forbidden("Only the battling streams' owners can end this battle.")
    if battle.status_enum is BattleStatus.ENDED:
        return battle
    if battle.status_enum is not BattleStatus.ACTIVE:
        raise ApiError(
            409,
            f"This battle is {battle.status}, not running: an invitation is declined, not ended.",
            battle_status=battle.status,
        )
    return await _end_now(session, runtime=runtime, battle=battle, reason=EndReason.ENDED)


async def forfeit(
    session: AsyncSession, *, runtime: Runtime, battle_id: int, principal: Principal
) -> StreamBattle:
    """A battling owner gives up: the other side wins, whatever the scores."""
    battle = await load_battle(session, battle_id)
    side = await _side_of(session, battle, principal)
    if side is None:
        raise forbidden("Only the battling streams' owners can forfeit this battle.")
    if battle.status_enum is not BattleStatus.ACTIVE:
        raise ApiError(
            409, f"This battle is {battle.status}, not running.", battle_status=battle.status
        )
    return await _end_now(
        session, runtime=runtime, battle=battle, reason=EndReason.FORFEIT, loser=side
    )


async def _end_now(
    session: AsyncSession,
    *,
    runtime: Runtime,
    battle: StreamBattle,
    reason: EndReason,
    loser: int | None = None,
) -> StreamBattle:
    battle_id = battle.id
    now = runtime.clock.now()
    if battle.ends_at is not None and battle.ends_at <= now:
        reason, loser = EndReason.TIME, None  # its time ran out first: the clock decided it
    ended = await _finish(
        session, battle_id=battle_id, reason=reason, now=now, loser_stream_id=loser
    )
    await session.commit()
    battle = await load_battle(session, battle_id)
    if not ended:
        raise ApiError(409, "This battle already ended.", battle_status=battle.status)
    await announce_ended(runtime, [battle_id])
    return battle


async def finish_due(runtime: Runtime) -> int:
    """The job: battles whose time ran out end (once, whichever node gets there first), and
    invitations past their time expire. Returns the battles this call ended."""
    now = runtime.clock.now()
    async with runtime.sessions() as session:
        await _expire_pending(session, now=now)
        await session.commit()
        due = list(
            await session.scalars(
                select(StreamBattle.id).where(
                    StreamBattle.status == BattleStatus.ACTIVE.value,
                    StreamBattle.ends_at <= now,
                )
            )
        )
    ended: list[int] = []
    for battle_id in due:
        async with runtime.sessions() as session:
            if await _finish(session, battle_id=battle_id, reason=EndReason.TIME, now=now):
                ended.append(battle_id)
            await session.commit()
    await announce_ended(runtime, ended)
    return len(ended)


async def forfeit_for_stream(session: AsyncSession, *, stream_id: int, now: datetime) -> list[int]:
    """The stream ended (in the caller's transaction): its active battle is forfeited and its
    pending invitations are cancelled. Announce the returned battles with `announce_ended`
    once the caller committed."""
    cancelled = await session.execute(
        update(StreamBattle)
        .where(
            StreamBattle.status == BattleStatus.PENDING.value,
            or_(StreamBattle.stream_id_1 == stream_id, StreamBattle.stream_id_2 == stream_id),
        )
        .values(status=BattleStatus.CANCELLED.value, ended_at=now)
        .returning(StreamBattle.id)
        .execution_options(synchronize_session=False)
    )
    await _release(session, [int(battle_id) for battle_id in cancelled.scalars()])
    active = await session.scalars(
        select(StreamBattle.id).where(
            StreamBattle.status == BattleStatus.ACTIVE.value,
            or_(StreamBattle.stream_id_1 == stream_id, StreamBattle.stream_id_2 == stream_id),
        )
    )
    ended: list[int] = []
    for battle_id in list(active):
        if await _finish(
            session,
            battle_id=int(battle_id),
            reason=EndReason.STREAM_ENDED,
            now=now,
            loser_stream_id=stream_id,
        ):
            ended.append(int(battle_id))
    return ended


# --- analytics ---------------------------------------------------------------------------


async def stream_stats(session: AsyncSession, stream_id: int) -> dict[str, int]:
    """Battles the stream fought (ended ones), won, and the points (coins) it scored in them."""
    mine = case(
        (StreamBattle.stream_id_1 == stream_id, StreamBattle.score_1), else_=StreamBattle.score_2
    )
    row = (
        await session.execute(
            select(
                func.count(StreamBattle.id),
                func.count(case((StreamBattle.winner_stream_id == stream_id, 1))),
                func.coalesce(func.sum(mine), 0),
            ).where(
                StreamBattle.status == BattleStatus.ENDED.value,
                or_(StreamBattle.stream_id_1 == stream_id, StreamBattle.stream_id_2 == stream_id),
            )
        )
    ).one()
    return {"fought": int(row[0]), "won": int(row[1]), "points": int(row[2])}
