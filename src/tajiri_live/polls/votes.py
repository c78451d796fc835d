"""Votes: checked in memory, written in batches, totals published once per option per tick.

Ten thousand viewers voting within a few seconds must cost neither a transaction nor a
fan-out frame per vote. A vote is checked against what never changes about its poll (its
stream, its options; cached per process) and queued; the writer stores whatever queued while
the previous batch was being written in one transaction:

1. lock the batch's polls if they are still open (PostgreSQL: `FOR SHARE`, which a close's
   `UPDATE` waits for, so a close reads final totals that no later batch changes; SQLite: a
   no-op `UPDATE`, which takes the database's write lock first);
2. leave out the votes of voters banned or muted on those streams;
3. insert the votes with `ON CONFLICT (poll_id, user_id) DO NOTHING RETURNING`: the unique
   constraint decides who voted first, whatever node the other vote came to;
4. raise the options' totals by what was let in (`votes = votes + n RETURNING votes`).

On PostgreSQL the four are one statement (data-modifying CTEs over the batch as arrays): one
round trip, which matters on a busy event loop where every round trip waits for a turn of
the loop. On SQLite they are four statements in one transaction.

Each request answers once its batch committed. The new totals go to the coalescer: one
`poll_vote` per option per tick, carrying the option's total (which is what the client
reads) and its last voter.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, case, false, or_, select, text, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tajiri_live.core.clock import Clock, iso
from tajiri_live.core.db import UTCDateTime
from tajiri_live.core.errors import ApiError, ValidationFailed, not_found
from tajiri_live.core.ratelimit import MemoryRateLimiter
from tajiri_live.core.runtime import Runtime
from tajiri_live.engagement.service import enforce_rate
from tajiri_live.moderation.models import StreamRestriction
from tajiri_live.moderation.service import restriction_error
from tajiri_live.polls.models import StreamPoll, StreamPollOption, StreamPollVote
from tajiri_live.realtime.coalesce import Coalescer
from tajiri_live.realtime.events import POLL_VOTE, Event, stream_channel

MAX_BATCH = 500
POLLS = cast(Table, StreamPoll.__table__)
OPTIONS = cast(Table, StreamPollOption.__table__)
VOTES = cast(Table, StreamPollVote.__table__)
RESTRICTIONS = cast(Table, StreamRestriction.__table__)
MAX_CACHED_POLLS = 10_000


class Outcome(enum.Enum):
    COUNTED = "counted"
    DUPLICATE = "duplicate"  # this user's vote in this poll was already counted
    CLOSED = "closed"  # the poll closed (or vanished) before the vote was written
    RESTRICTED = "restricted"  # the voter is banned or muted on the stream


@dataclass(frozen=True)
class Restriction:
    kind: str
    reason: str | None
    expires_at: datetime | None


@dataclass
class PendingVote:
    stream_id: int
    poll_id: int
    option_id: int
    user_id: int
    outcome: Outcome = Outcome.CLOSED
    restriction: Restriction | None = None
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(frozen=True)
class Counted:
    """An option's total after a batch, and the last voter the batch counted for it."""

    stream_id: int
    poll_id: int
    option_id: int
    votes: int
    user_id: int
    at: datetime


class VoteWriter:
    """Group commit of votes (the comment writer's design: a batch is whatever arrived while
    the previous one was written, so a lone vote is written at once)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Clock,
        on_counted: Callable[[list[Counted]], None],
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.on_counted = on_counted
        self._queue: asyncio.Queue[PendingVote] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # transactions written (metrics, the benchmark, tests)
        self.counted = 0  # votes stored

    async def write(self, vote: PendingVote) -> PendingVote:
        """Store the vote; returns it with its outcome once its batch committed."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="polls.vote-writer")
        self._queue.put_nowait(vote)
        await vote.done
        return vote

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                for vote in batch:
                    if not vote.done.done():
                        vote.done.cancel()
                raise
            except Exception as exc:
                # One bad row (its poll deleted meanwhile) must not fail the others.
                if len(batch) == 1:
                    _fail(batch[0], exc)
                    continue
                for vote in batch:
                    try:
                        await self._write([vote])
                    except Exception as one:  # handed to the request that waits for it
                        _fail(vote, one)

    async def _write(self, batch: list[PendingVote]) -> None:
        if self.engine.dialect.name == "postgresql":
            await self._write_in_one_statement(batch)
        else:
            await self._write_in_steps(batch)

    async def _write_in_one_statement(self, batch: list[PendingVote]) -> None:
        """PostgreSQL: the batch is one statement (data-modifying CTEs), so one round trip;
        on a busy event loop each round trip waits for a turn of the loop."""
        now = self.clock.now()
        firsts: list[PendingVote] = []
        repeats: list[tuple[PendingVote, PendingVote]] = []  # (a second vote, the first)
        first_of: dict[tuple[int, int], PendingVote] = {}
        for vote in sorted(batch, key=lambda v: (v.poll_id, v.user_id)):
            key = (vote.poll_id, vote.user_id)
            if key in first_of:
                repeats.append((vote, first_of[key]))
            else:
                first_of[key] = vote
                firsts.append(vote)
        async with self.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            result = await autocommit.execute(
                BATCH,
                {
                    "poll_ids": sorted({v.poll_id for v in firsts}),
                    "stream_ids": sorted({v.stream_id for v in firsts}),
                    "polls": [v.poll_id for v in firsts],
                    "options": [v.option_id for v in firsts],
                    "users": [v.user_id for v in firsts],
                    "streams": [v.stream_id for v in firsts],
                    "now": now,
                },
            )
            open_polls: set[int] = set()
            restricted: dict[tuple[int, int], Restriction] = {}
            inserted: set[tuple[int, int]] = set()
            totals: dict[int, int] = {}
            for kind, a, b, c, reason, expires_at in result:
                if kind == "open":
                    open_polls.add(int(a))
                elif kind == "restricted":
                    key = (int(a), int(b))
                    if c == "ban" or key not in restricted:
                        restricted[key] = Restriction(str(c), reason, expires_at)
                elif kind == "inserted":
                    inserted.add((int(a), int(b)))
                else:
                    totals[int(a)] = int(b)
        per_option: dict[int, list[PendingVote]] = {}
        for vote in firsts:
            found = restricted.get((vote.stream_id, vote.user_id))
            if vote.poll_id not in open_polls:
                vote.outcome = Outcome.CLOSED
            elif found is not None:
                vote.outcome, vote.restriction = Outcome.RESTRICTED, found
            elif (vote.poll_id, vote.user_id) in inserted:
                vote.outcome = Outcome.COUNTED
                per_option.setdefault(vote.option_id, []).append(vote)
            else:
                vote.outcome = Outcome.DUPLICATE
        for vote, first in repeats:
            counted_first = first.outcome in (Outcome.COUNTED, Outcome.DUPLICATE)
            vote.outcome = Outcome.DUPLICATE if counted_first else first.outcome
            vote.restriction = first.restriction
        self._finish(batch, per_option, totals, now)

    def _finish(
        self,
        batch: list[PendingVote],
        per_option: dict[int, list[PendingVote]],
        totals: dict[int, int],
        now: datetime,
    ) -> None:
        """Answer the batch's votes and hand the new totals to the coalescer."""
        counted = [
            Counted(
                votes[-1].stream_id,
                votes[-1].poll_id,
                option_id,
                totals[option_id],
                votes[-1].user_id,
                now,
            )
            for option_id, votes in sorted(per_option.items())
            if option_id in totals
        ]
        self.batches += 1
        self.counted += sum(len(v) for v in per_option.values())
        for vote in batch:
            if not vote.done.done():
                vote.done.set_result(None)
        if counted:
            self.on_counted(counted)

    async def _write_in_steps(self, batch: list[PendingVote]) -> None:
        """SQLite: the same steps one statement at a time, the first a write (the lock)."""
        now = self.clock.now()
        async with self.engine.begin() as connection:
            open_polls = await _lock_open_polls(connection, sorted({v.poll_id for v in batch}))
            restricted = await _restrictions(connection, batch, now)
            rows: list[PendingVote] = []
            seen: set[tuple[int, int]] = set()
            for vote in sorted(batch, key=lambda v: (v.poll_id, v.user_id)):
                found = restricted.get((vote.stream_id, vote.user_id))
                if vote.poll_id not in open_polls:
                    vote.outcome = Outcome.CLOSED
                elif found is not None:
                    vote.outcome, vote.restriction = Outcome.RESTRICTED, found
                elif (vote.poll_id, vote.user_id) in seen:
                    vote.outcome = Outcome.DUPLICATE
                else:
                    seen.add((vote.poll_id, vote.user_id))
                    rows.append(vote)
            inserted = await _insert_votes(connection, rows, now) if rows else set()
            per_option: dict[int, list[PendingVote]] = {}
            for vote in rows:
                if (vote.poll_id, vote.user_id) in inserted:
                    vote.outcome = Outcome.COUNTED
                    per_option.setdefault(vote.option_id, []).append(vote)
                else:
                    vote.outcome = Outcome.DUPLICATE
            totals: dict[int, int] = {}
            if per_option:
                # every option of the batch in one statement: votes = votes + its count
                raised = case({o: len(v) for o, v in per_option.items()}, value=OPTIONS.c.id)
                result = await connection.execute(
                    update(OPTIONS)
                    .where(OPTIONS.c.id.in_(sorted(per_option)))
                    .values(votes=OPTIONS.c.votes + raised)
                    .returning(OPTIONS.c.id, OPTIONS.c.votes)
                )
                totals = {int(option_id): int(total) for option_id, total in result}
        self._finish(batch, per_option, totals, now)


# PostgreSQL: a whole batch in one statement, whatever its size (prepared once). The open
# polls are locked FOR SHARE (a close's UPDATE waits for the batch; a batch after a close
# finds the poll closed), the voters' bans and mutes keep their votes out, the unique key
# refuses second votes, and the options' totals rise by what was let in. Rows tell the
# writer which is which.
BATCH = text(
    """
WITH open_polls AS (
    SELECT id FROM stream_polls
    WHERE id = ANY(CAST(:poll_ids AS BIGINT[])) AND NOT is_closed
    ORDER BY id FOR SHARE
), restricted AS (
    SELECT stream_id, user_id, kind, reason, expires_at FROM stream_restrictions
    WHERE stream_id = ANY(CAST(:stream_ids AS BIGINT[]))
      AND user_id = ANY(CAST(:users AS BIGINT[]))
      AND (expires_at IS NULL OR expires_at > :now)
), inserted AS (
    INSERT INTO stream_poll_votes (poll_id, option_id, user_id, created_at)
    SELECT v.poll_id, v.option_id, v.user_id, :now
    FROM unnest(
        CAST(:polls AS BIGINT[]), CAST(:options AS BIGINT[]),
        CAST(:users AS BIGINT[]), CAST(:streams AS BIGINT[])
    ) AS v(poll_id, option_id, user_id, stream_id)
    WHERE v.poll_id IN (SELECT id FROM open_polls)
      AND NOT EXISTS (
          SELECT 1 FROM restricted r
          WHERE r.stream_id = v.stream_id AND r.user_id = v.user_id
      )
    ON CONFLICT (poll_id, user_id) DO NOTHING
    RETURNING poll_id, option_id, user_id
), raised AS (
    UPDATE stream_poll_options AS o SET votes = o.votes + c.n
    FROM (SELECT option_id, count(*) AS n FROM inserted GROUP BY option_id) AS c
    WHERE o.id = c.option_id
    RETURNING o.id, o.votes
)
SELECT 'open', id, NULL::BIGINT, NULL::TEXT, NULL::TEXT, NULL::TIMESTAMPTZ FROM open_polls
UNION ALL
SELECT 'restricted', stream_id, user_id, kind, reason, expires_at FROM restricted
UNION ALL
SELECT 'inserted', poll_id, user_id, NULL, NULL, NULL FROM inserted
UNION ALL
SELECT 'total', id, votes, NULL, NULL, NULL FROM raised
"""
).bindparams(bindparam("now", type_=UTCDateTime()))


async def _insert_votes(
    connection: AsyncConnection, rows: list[PendingVote], now: datetime
) -> set[tuple[int, int]]:
    """SQLite: insert what the unique key lets in; returns the (poll, user) pairs let in."""
    result = await connection.execute(
        sqlite_insert(VOTES)
        .on_conflict_do_nothing(index_elements=["poll_id", "user_id"])
        .returning(VOTES.c.poll_id, VOTES.c.user_id),
        [
            {
                "poll_id": v.poll_id,
                "option_id": v.option_id,
                "user_id": v.user_id,
                "created_at": now,
            }
            for v in rows
        ],
    )
    return {(int(p), int(u)) for p, u in result}


async def _lock_open_polls(connection: AsyncConnection, poll_ids: list[int]) -> set[int]:
    """SQLite: the batch's open polls, by a no-op write that takes the database's write lock
    for the whole transaction (a close waits for the batch, or the batch for the close)."""
    still_open = (POLLS.c.id.in_(poll_ids), POLLS.c.is_closed == false())
    result = await connection.execute(
        update(POLLS).where(*still_open).values(is_closed=POLLS.c.is_closed).returning(POLLS.c.id)
    )
    return set(result.scalars())


async def _restrictions(
    connection: AsyncConnection, batch: list[PendingVote], now: datetime
) -> dict[tuple[int, int], Restriction]:
    """The batch's voters' active bans and mutes, by (stream, user); a ban wins."""
    r = RESTRICTIONS.c
    rows = await connection.execute(
        select(r.stream_id, r.user_id, r.kind, r.reason, r.expires_at).where(
            r.stream_id.in_({v.stream_id for v in batch}),
            r.user_id.in_({v.user_id for v in batch}),
            or_(r.expires_at.is_(None), r.expires_at > now),
        )
    )
    found: dict[tuple[int, int], Restriction] = {}
    for stream_id, user_id, kind, reason, expires_at in rows:
        key = (int(stream_id), int(user_id))
        if kind == "ban" or key not in found:
            found[key] = Restriction(kind, reason, expires_at)
    return found


def _fail(vote: PendingVote, exc: BaseException) -> None:
    if not vote.done.done():
        vote.done.set_exception(exc)


@dataclass(frozen=True)
class PollFacts:
    """What never changes about a poll (its stream, its options), and whether it is known to
    be closed (a poll never reopens; "open" here is only a hint the writer checks)."""

    stream_id: int
    option_ids: frozenset[int]
    closed: bool


def already_voted() -> ApiError:
    return ApiError(409, "You have already voted in this poll.")


def poll_closed() -> ApiError:
    return ApiError(409, "This poll is closed.")


class VoteCounter:
    """This process's vote path: the checks that need no database, the writer, the cache of
    poll facts and of who already voted here, and the coalesced totals."""

    def __init__(self, runtime: Runtime, coalescer: Coalescer) -> None:
        self.runtime = runtime
        self.coalescer = coalescer
        self.writer = VoteWriter(runtime.engine, clock=runtime.clock, on_counted=self._counted)
        self._facts: dict[int, PollFacts] = {}
        self._loading: dict[int, asyncio.Future[PollFacts | None]] = {}
        self._voted: dict[int, set[int]] = {}  # poll -> users whose vote is stored
        # Vote attempts are limited per node, in memory: the unique key already holds a user
        # to one vote per poll cluster-wide, and a shared limit in Redis would cost a round
        # trip per vote (most of a vote's CPU) for no further protection.
        self._attempts = MemoryRateLimiter()

    async def vote(self, *, stream_id: int, poll_id: int, option_id: int, user_id: int) -> None:
        """Count one vote (or raise the 4xx that says why not), shared by REST and sockets."""
        settings = self.runtime.settings
        await enforce_rate(  # every attempt counts, whatever becomes of it
            self.runtime,
            action="vote",
            stream_id=stream_id,
            user_id=user_id,
            limit=settings.poll_vote_limit,
            window=settings.poll_vote_window_seconds,
            limiter=self._attempts,
        )
        facts = await self.facts(poll_id)
        if facts is None or facts.stream_id != stream_id:
            raise not_found("Poll")
        if option_id not in facts.option_ids:
            raise ValidationFailed(
                {"option_id": ["The selected option is not one of this poll's options."]}
            )
        if facts.closed:
            raise poll_closed()
        if user_id in self._voted.get(poll_id, ()):
            raise already_voted()
        vote = await self.writer.write(PendingVote(stream_id, poll_id, option_id, user_id))
        if vote.outcome is Outcome.CLOSED:
            self.closed(poll_id)
            raise poll_closed()
        if vote.outcome is Outcome.RESTRICTED and vote.restriction is not None:
            found = vote.restriction
            raise restriction_error(
                found.kind,
                reason=found.reason,
                expires_at=found.expires_at,
                now=self.runtime.clock.now(),
            )
        if poll_id in self._facts:
            self._voted.setdefault(poll_id, set()).add(user_id)
        if vote.outcome is Outcome.DUPLICATE:
            raise already_voted()

    async def facts(self, poll_id: int) -> PollFacts | None:
        """From the cache, or read once however many votes ask at the same moment."""
        known = self._facts.get(poll_id)
        if known is not None:
            return known
        loading = self._loading.get(poll_id)
        if loading is not None:
            return await asyncio.shield(loading)
        future: asyncio.Future[PollFacts | None] = asyncio.get_running_loop().create_future()
        self._loading[poll_id] = future
        try:
            facts = await self._read_facts(poll_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the waiters re-raise it
            raise
        finally:
            del self._loading[poll_id]
        future.set_result(facts)
        if facts is not None:
            if len(self._facts) >= MAX_CACHED_POLLS:
                oldest = next(iter(self._facts))
                del self._facts[oldest]
                self._voted.pop(oldest, None)
            self._facts[poll_id] = facts
        return facts

    async def _read_facts(self, poll_id: int) -> PollFacts | None:
        async with self.runtime.sessions() as session:
            poll = (
                await session.execute(
                    select(StreamPoll.stream_id, StreamPoll.is_closed).where(
                        StreamPoll.id == poll_id
                    )
                )
            ).one_or_none()
            if poll is None:
                return None
            options = await session.scalars(
                select(StreamPollOption.id).where(StreamPollOption.poll_id == poll_id)
            )
            return PollFacts(int(poll[0]), frozenset(int(o) for o in options), bool(poll[1]))

    def closed(self, poll_id: int) -> None:
        """The poll closed: refuse its votes here without asking the database, and drop its
        pending totals (the `poll_closed` event carries the final ones)."""
        facts = self._facts.get(poll_id)
        if facts is not None:
            self._facts[poll_id] = PollFacts(facts.stream_id, facts.option_ids, closed=True)
        self._voted.pop(poll_id, None)
        self.coalescer.discard(f"{POLL_VOTE}:{poll_id}:")

    def _counted(self, options: list[Counted]) -> None:
        for option in options:
            self.coalescer.offer(
                Event(
                    channel=stream_channel(option.stream_id),
                    name=POLL_VOTE,
                    data={
                        "poll_id": option.poll_id,
                        "stream_id": option.stream_id,
                        "option_id": option.option_id,
                        "user_id": option.user_id,
                        "votes": option.votes,
                        "timestamp": iso(option.at),
                    },
                    latest_key=f"{POLL_VOTE}:{option.poll_id}:{option.option_id}",
                    version=option.votes,
                )
            )

    async def close(self) -> None:
        await self.writer.close()
