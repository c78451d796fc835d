"""Group commit for gifts: the gifts that concurrent requests send are paid in one transaction.

Every gift locks its sender's, its creators' and the platform's wallets until its commit, so
one transaction per gift makes a big room's gifts serial: the next waits for the last commit.
Here a batch (core/groupcommit.py) takes the wallets of all its gifts once, in id order as
every transfer does, and decides each gift in arrival order on the locked balances, exactly
as if they ran one after another: a sender short of coins gets their own 402 and the gifts
after theirs still go through. The ledger gets each gift's own transaction and entries; the
wallets, the streams' counters and a battle's score are updated once per batch. Each request
answers only after the batch that holds its gift is committed.

Locks are taken in the order every payment takes them (wallets, then the stream row, then a
battle), so a batch never deadlocks with a super chat or a refund. The stream row is read
again under its lock: a gift never lands on a stream that ended, or stopped gifts, meanwhile.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from tajiri_live.battles import service as battles
from tajiri_live.core import idempotency
from tajiri_live.core.db import dialect_insert
from tajiri_live.core.errors import ApiError, ValidationFailed, forbidden, not_found
from tajiri_live.core.groupcommit import GroupCommit
from tajiri_live.core.runtime import Runtime
from tajiri_live.engagement.service import enforce_rate
from tajiri_live.gifts.models import StreamGift, VirtualGift
from tajiri_live.gifts.presenters import gift_dict, sent_gift_answer
from tajiri_live.gifts.shares import creator_shares, split
from tajiri_live.moderation import service as moderation
from tajiri_live.moderation.models import StreamRestriction
from tajiri_live.streams.lifecycle import StreamStatus
from tajiri_live.streams.models import LiveStream, StreamCoHost
from tajiri_live.streams.presenters import storage_base_url
from tajiri_live.users.models import User
from tajiri_live.users.presenters import UserProfile
from tajiri_live.wallet.models import PLATFORM, USER, LedgerEntry, LedgerTransaction, Wallet

WRITER = "gifts"
STREAMS = cast(Table, LiveStream.__table__)
WALLETS = cast(Table, Wallet.__table__)
CATALOG = cast(Table, VirtualGift.__table__)
RESTRICTIONS = cast(Table, StreamRestriction.__table__)
GIFTS_SENT = cast(Table, StreamGift.__table__)
TRANSACTIONS = cast(Table, LedgerTransaction.__table__)
ENTRIES = cast(Table, LedgerEntry.__table__)

# One statement each, built once: a balance moves, a stream's counters move.
_MOVE = (
    update(WALLETS)
    .where(WALLETS.c.id == bindparam("wallet_id"))
    .values(balance=WALLETS.c.balance + bindparam("delta"))
)
_COUNT = (
    update(STREAMS)
    .where(STREAMS.c.id == bindparam("stream_id"))
    .values(
        gifts_count=STREAMS.c.gifts_count + bindparam("quantity"),
        gifts_value=STREAMS.c.gifts_value + bindparam("value"),
    )
)


@dataclass(frozen=True)
class GiftOrder:
    """A gift a request asks for, its checks that need no database already passed."""

    stream_id: int
    sender_id: int
    gift_id: int
    quantity: int
    message: str | None
    created_at: datetime
    key: str | None = None  # the Idempotency-Key, and what makes two requests the same
    fingerprint: str = ""


@dataclass(frozen=True)
class Sent:
    """A paid gift as the client reads it; `replayed` when its key had been paid before."""

    answer: dict[str, Any]
    replayed: bool = False


Outcome = Sent | ApiError  # the gift, or why it was refused

KEYS = cast(Table, idempotency.IdempotencyKey.__table__)
_ANSWER_KEY = (
    update(KEYS)
    .where(KEYS.c.id == bindparam("claim"))
    .values(state=idempotency.DONE, status_code=201, response=bindparam("answer"))
)


async def enforce_gift_rate(runtime: Runtime, stream_id: int, user_id: int) -> None:
    settings = runtime.settings
    await enforce_rate(
        runtime,
        action="gift",
        stream_id=stream_id,
        user_id=user_id,
        limit=settings.gift_limit,
        window=settings.gift_window_seconds,
    )


class GiftWriter:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._platform_wallet: int | None = None  # made by the migrations, never changes
        # A keyed gift's rate-limit verdict, by the order's identity, while its request waits:
        # a batch written again in halves (core/batches.py) must not count it again.
        self._rate_verdicts: dict[int, ApiError | None] = {}
        # A gift the database refuses alone (a row it cannot hold) is answered alone; the
        # rest of its batch is paid.
        self._batches: GroupCommit[GiftOrder, Outcome] = GroupCommit(
            WRITER,
            self._write,
            describe=_describe,
            refused=lambda _, __: ApiError(
                409, "The gift could not be stored and nothing was charged: try again."
            ),
        )

    async def send(self, order: GiftOrder) -> Sent:
        """The sent gift, once paid and committed; else its refusal (raised)."""
        try:
            outcome = await self._batches.write(order)
        finally:
            self._rate_verdicts.pop(id(order), None)
        if isinstance(outcome, ApiError):
            raise outcome
        return outcome

    @property
    def batches(self) -> GroupCommit[GiftOrder, Outcome]:
        """The group commit (its `batches` and `items` say how much each batch held)."""
        return self._batches

    async def close(self) -> None:
        await self._batches.close()

    async def _write(self, batch: Sequence[GiftOrder]) -> list[Outcome]:
        # Core on a connection: a batch is a dozen statements, and the ORM session's
        # bookkeeping around each cost more than the statement.
        async with self.runtime.engine.begin() as connection:
            settled = _Batch(self.runtime, connection, batch, self._rate_verdicts)
            outcomes = await settled.pay(await self._platform(connection))
        for scores in settled.scores:
            await battles.announce_scores(self.runtime, scores)
        return outcomes

    async def _platform(self, connection: AsyncConnection) -> int:
        if self._platform_wallet is None:
            found = await connection.scalar(select(WALLETS.c.id).where(WALLETS.c.kind == PLATFORM))
            if found is None:
                raise RuntimeError("the platform wallet is missing: run the migrations")
            self._platform_wallet = int(found)
        return self._platform_wallet


@dataclass(frozen=True, slots=True)
class _Paid:
    """A gift the batch pays: where its request waits, and what it moves."""

    index: int  # in the batch
    order: GiftOrder
    total: int
    creator_amount: int
    moves: list[tuple[int, int]]  # (wallet id, coins), summing to zero


@dataclass(frozen=True, slots=True)
class _Stream:
    owner: int
    status: str
    allow_gifts: bool


@dataclass
class _Batch:
    """One batch in one transaction: read what the gifts need, lock, decide, write."""

    runtime: Runtime
    connection: AsyncConnection
    orders: Sequence[GiftOrder]
    rate_verdicts: dict[int, ApiError | None]  # the writer's, across attempts
    outcomes: list[Outcome | None] = field(init=False)
    scores: list[battles.Scores] = field(default_factory=list)
    claims: dict[int, int] = field(default_factory=dict)  # order -> its key's claim
    # A retry in the same batch as its first request: answered as that one is.
    followers: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.outcomes = [None] * len(self.orders)

    async def pay(self, platform_wallet: int) -> list[Outcome]:
        # Keys first, before any wallet is locked and in one order: a key another
        # transaction holds is waited for without holding anything anyone waits for.
        await self._claim_keys()
        await self._limit_keyed()
        stream_ids = sorted({order.stream_id for order in self.orders})
        owners = await self._owners(stream_ids)
        cohosts = await self._cohosts(stream_ids)
        catalog = await self._catalog({order.gift_id for order in self.orders})
        self._refuse_early(owners, catalog)
        await self._refuse_banned(stream_ids)
        people = {order.sender_id for order, _ in self._pending()}
        for stream_id in {order.stream_id for order, _ in self._pending()}:
            people.add(owners[stream_id])
            people.update(cohosts.get(stream_id, ()))
        wallets = await self._wallets(people)
        balances = await self._lock([platform_wallet, *wallets.values()])
        streams = await self._lock_streams({order.stream_id for order, _ in self._pending()})
        profiles = await self._profiles({order.sender_id for order, _ in self._pending()})
        base_url = storage_base_url(self.runtime.settings)

        paid: list[_Paid] = []
        for order, index in self._pending():
            stream = streams.get(order.stream_id)
            refusal = _stream_refusal(stream)
            if refusal is not None:
                self.outcomes[index] = refusal
                continue
            gift = catalog[order.gift_id]
            total = gift.price * order.quantity
            payer = wallets[order.sender_id]
            if balances[payer] < total:
                self.outcomes[index] = ApiError(
                    402,
                    f"Not enough coins: this gift costs {total} and your balance is "
                    f"{balances[payer]}.",
                    required=total,
                    balance=balances[payer],
                )
                continue
            creator_amount, platform_amount = split(total, gift.creator_share)
            shares = creator_shares(
                owners[order.stream_id],
                cohosts.get(order.stream_id, ()),
                creator_amount,
                sender_id=order.sender_id,
            )
            entries = [
                (payer, -total),
                *((wallets[user_id], amount) for user_id, amount in shares.items()),
                (platform_wallet, platform_amount),
            ]
            for wallet_id, amount in entries:
                balances[wallet_id] += amount
            paid.append(_Paid(index, order, total, creator_amount, entries))

        if paid:
            gift_ids = await self._insert_gifts(paid)
            answers = {
                gift.index: sent_gift_answer(
                    sent_id=sent_id,
                    stream_id=gift.order.stream_id,
                    sender_id=gift.order.sender_id,
                    gift=gift_dict(catalog[gift.order.gift_id]),
                    quantity=gift.order.quantity,
                    total_value=gift.total,
                    message=gift.order.message,
                    created_at=gift.order.created_at,
                    refunded_at=None,
                    sender=profiles.get(gift.order.sender_id),
                    storage_base_url=base_url,
                )
                for gift, sent_id in zip(paid, gift_ids, strict=True)
            }
            await self._record(paid, gift_ids, answers)
            await self._move(paid)
            await self._count(paid)
            for index, answer in answers.items():
                self.outcomes[index] = Sent(answer)
        await self._settle_keys()
        for index, first in self.followers.items():
            self.outcomes[index] = self._as_retry_of(first)
        return [cast(Outcome, outcome) for outcome in self.outcomes]

    def _pending(self) -> Iterable[tuple[GiftOrder, int]]:
        return (
            (order, index)
            for index, order in enumerate(self.orders)
            if self.outcomes[index] is None and index not in self.followers
        )

    # --- idempotency keys (core/idempotency.py) ----------------------------------------

    async def _claim_keys(self) -> None:
        # One claim per key and body: a retry follows the first of its own body, whatever
        # came before it with the key (the key may be another body's, or its own, paid).
        firsts: dict[tuple[int, str, str], int] = {}
        for index, order in enumerate(self.orders):
            if order.key is None:
                continue
            same = (order.sender_id, order.key, order.fingerprint)
            if same in firsts:
                self.followers[index] = firsts[same]
            else:
                firsts[same] = index
        # By key, then arrival: the first body to arrive claims a new key, the others find
        # it taken (by this transaction: no wait) and are told so.
        for (user_id, key, fingerprint), index in sorted(
            firsts.items(), key=lambda first: (first[0][:2], first[1])
        ):
            try:
                found = await idempotency.claim_or_replay(
                    self.runtime,
                    self.connection,
                    user_id=user_id,
                    key=key,
                    fingerprint=fingerprint,
                )
            except ApiError as refusal:
                self.outcomes[index] = refusal
                continue
            if isinstance(found, idempotency.Replay):
                self.outcomes[index] = Sent(found.body, replayed=True)
            else:
                self.claims[index] = found.id

    async def _limit_keyed(self) -> None:
        """The rate limit of a gift with a key, counted once the key says it is no retry of
        a request answered already (the others were counted before they queued)."""
        for index in self.claims:
            order = self.orders[index]
            if id(order) not in self.rate_verdicts:  # counted once, whatever the attempts
                verdict: ApiError | None = None
                try:
                    await enforce_gift_rate(self.runtime, order.stream_id, order.sender_id)
                except ApiError as limited:
                    verdict = limited
                self.rate_verdicts[id(order)] = verdict
            counted = self.rate_verdicts[id(order)]
            if counted is not None:
                self.outcomes[index] = counted

    async def _settle_keys(self) -> None:
        """A paid gift's key keeps its answer; a refused one's key is given back (nothing
        happened: a retry runs as a first request)."""
        answered, released = [], []
        for index, claim in self.claims.items():
            outcome = self.outcomes[index]
            if isinstance(outcome, Sent):
                answered.append({"claim": claim, "answer": outcome.answer})
            else:
                released.append(claim)
        if answered:
            await self.connection.execute(_ANSWER_KEY, answered)
        if released:
            await self.connection.execute(delete(KEYS).where(KEYS.c.id.in_(released)))

    def _as_retry_of(self, first: int) -> Outcome:
        outcome = self.outcomes[first]
        if isinstance(outcome, Sent):
            return Sent(outcome.answer, replayed=True)
        return cast(ApiError, outcome)

    # --- reads -------------------------------------------------------------------------

    async def _owners(self, stream_ids: list[int]) -> dict[int, int]:
        rows = await self.connection.execute(
            select(STREAMS.c.id, STREAMS.c.user_id).where(
                STREAMS.c.id.in_(stream_ids), STREAMS.c.deleted_at.is_(None)
            )
        )
        return {int(stream_id): int(owner) for stream_id, owner in rows}

    async def _cohosts(self, stream_ids: list[int]) -> dict[int, list[int]]:
        """The accepted co-hosts of the streams that split their gifts, in invitation order."""
        rows = await self.connection.execute(
            select(StreamCoHost.stream_id, StreamCoHost.user_id)
            .join(LiveStream, LiveStream.id == StreamCoHost.stream_id)
            .where(
                StreamCoHost.stream_id.in_(stream_ids),
                StreamCoHost.status == "accepted",
                LiveStream.split_gifts_with_cohosts.is_(True),
            )
            .order_by(StreamCoHost.id)
        )
        found: dict[int, list[int]] = defaultdict(list)
        for stream_id, user_id in rows:
            found[int(stream_id)].append(int(user_id))
        return found

    async def _catalog(self, gift_ids: set[int]) -> dict[int, Row[Any]]:
        rows = await self.connection.execute(
            select(CATALOG).where(CATALOG.c.id.in_(sorted(gift_ids)), CATALOG.c.is_active.is_(True))
        )
        return {int(gift.id): gift for gift in rows}

    def _refuse_early(self, owners: dict[int, int], catalog: dict[int, Row[Any]]) -> None:
        for order, index in list(self._pending()):
            if order.stream_id not in owners:
                self.outcomes[index] = not_found()
            elif owners[order.stream_id] == order.sender_id:
                self.outcomes[index] = forbidden("You cannot send a gift to your own stream.")
            elif order.gift_id not in catalog:
                self.outcomes[index] = ValidationFailed(
                    {"gift_id": ["The selected gift is invalid."]}
                )

    async def _refuse_banned(self, stream_ids: list[int]) -> None:
        """Banned senders may not give (a mute does not stop gifts)."""
        now = self.runtime.clock.now()
        senders = sorted({order.sender_id for order, _ in self._pending()})
        if not senders:
            return
        rows = await self.connection.execute(
            select(
                RESTRICTIONS.c.stream_id,
                RESTRICTIONS.c.user_id,
                RESTRICTIONS.c.kind,
                RESTRICTIONS.c.reason,
                RESTRICTIONS.c.expires_at,
            ).where(
                RESTRICTIONS.c.stream_id.in_(stream_ids),
                RESTRICTIONS.c.user_id.in_(senders),
                RESTRICTIONS.c.kind == "ban",
                RESTRICTIONS.c.expires_at.is_(None) | (RESTRICTIONS.c.expires_at > now),
            )
        )
        bans = {(ban.stream_id, ban.user_id): ban for ban in rows}
        for order, index in list(self._pending()):
            ban = bans.get((order.stream_id, order.sender_id))
            if ban is not None:
                self.outcomes[index] = moderation.restriction_error(
                    ban.kind, reason=ban.reason, expires_at=ban.expires_at, now=now
                )

    async def _wallets(self, user_ids: set[int]) -> dict[int, int]:
        """user id -> wallet id, creating the missing ones empty (safe under concurrency)."""
        wanted = sorted(user_ids)
        found = await self._wallet_ids(wanted)
        missing = [user_id for user_id in wanted if user_id not in found]
        if missing:
            insert_wallet = dialect_insert(self.connection)
            await self.connection.execute(
                insert_wallet(WALLETS)
                .values([{"user_id": user_id, "kind": USER, "balance": 0} for user_id in missing])
                .on_conflict_do_nothing(index_elements=["user_id"])
            )
            found.update(await self._wallet_ids(missing))
        return found

    async def _wallet_ids(self, user_ids: list[int]) -> dict[int, int]:
        rows = await self.connection.execute(
            select(WALLETS.c.user_id, WALLETS.c.id).where(WALLETS.c.user_id.in_(user_ids))
        )
        return {int(user_id): int(wallet_id) for user_id, wallet_id in rows}

    async def _lock(self, wallet_ids: list[int]) -> dict[int, int]:
        """Lock the wallets in id order (as every transfer does) and read their balances."""
        rows = await self.connection.execute(
            select(WALLETS.c.id, WALLETS.c.balance)
            .where(WALLETS.c.id.in_(sorted(set(wallet_ids))))
            .order_by(WALLETS.c.id)
            .with_for_update()
        )
        return {int(wallet_id): int(balance) for wallet_id, balance in rows}

    async def _lock_streams(self, stream_ids: set[int]) -> dict[int, _Stream]:
        """The streams as they are now, locked until the commit: a stream that ends waits."""
        if not stream_ids:
            return {}
        rows = await self.connection.execute(
            select(STREAMS.c.id, STREAMS.c.user_id, STREAMS.c.status, STREAMS.c.allow_gifts)
            .where(STREAMS.c.id.in_(sorted(stream_ids)), STREAMS.c.deleted_at.is_(None))
            .order_by(STREAMS.c.id)
            .with_for_update()
        )
        return {
            int(row.id): _Stream(int(row.user_id), str(row.status), bool(row.allow_gifts))
            for row in rows
        }

    async def _profiles(self, user_ids: set[int]) -> dict[int, UserProfile]:
        if not user_ids:
            return {}
        rows = await self.connection.execute(
            select(
                User.id, User.first_name, User.last_name, User.username, User.profile_photo_path
            ).where(User.id.in_(sorted(user_ids)))
        )
        return {int(row.id): UserProfile(*row) for row in rows}

    # --- writes ------------------------------------------------------------------------

    async def _insert_gifts(self, paid: list[_Paid]) -> list[int]:
        rows = [
            {
                "stream_id": gift.order.stream_id,
                "sender_id": gift.order.sender_id,
                "gift_id": gift.order.gift_id,
                "quantity": gift.order.quantity,
                "total_value": gift.total,
                "message": gift.order.message,
                "creator_amount": gift.creator_amount,
                "created_at": gift.order.created_at,
            }
            for gift in paid
        ]
        ids = await self.connection.scalars(
            insert(GIFTS_SENT).returning(GIFTS_SENT.c.id, sort_by_parameter_order=True), rows
        )
        return [int(sent_id) for sent_id in ids]

    async def _record(
        self,
        paid: list[_Paid],
        gift_ids: list[int],
        answers: dict[int, dict[str, Any]],
    ) -> None:
        """Each gift its own ledger transaction, its entries summing to zero."""
        transaction_ids = await self.connection.scalars(
            insert(TRANSACTIONS).returning(TRANSACTIONS.c.id, sort_by_parameter_order=True),
            [
                {
                    "kind": "gift",
                    "actor_id": gift.order.sender_id,
                    "idempotency_key": None,
                    "stream_gift_id": sent_id,
                    "response": answers[gift.index],
                    "created_at": gift.order.created_at,
                }
                for gift, sent_id in zip(paid, gift_ids, strict=True)
            ],
        )
        entries: list[dict[str, Any]] = []
        for gift, transaction_id in zip(paid, transaction_ids, strict=True):
            if sum(amount for _, amount in gift.moves) != 0:
                raise ValueError("ledger entries must sum to zero")
            entries.extend(
                {
                    "transaction_id": transaction_id,
                    "wallet_id": wallet_id,
                    "amount": amount,
                    "created_at": gift.order.created_at,
                }
                for wallet_id, amount in gift.moves
                if amount
            )
        await self.connection.execute(insert(ENTRIES), entries)

    async def _move(self, paid: list[_Paid]) -> None:
        deltas: dict[int, int] = defaultdict(int)
        for gift in paid:
            for wallet_id, amount in gift.moves:
                deltas[wallet_id] += amount
        await self.connection.execute(
            _MOVE,
            [
                {"wallet_id": wallet_id, "delta": delta}
                for wallet_id, delta in sorted(deltas.items())
                if delta
            ],
        )

    async def _count(self, paid: list[_Paid]) -> None:
        """The streams' counters and a battle's score, once per stream."""
        quantities: dict[int, int] = defaultdict(int)
        values: dict[int, int] = defaultdict(int)
        for gift in paid:
            quantities[gift.order.stream_id] += gift.order.quantity
            values[gift.order.stream_id] += gift.total
        await self.connection.execute(
            _COUNT,
            [
                {"stream_id": sid, "quantity": quantities[sid], "value": values[sid]}
                for sid in sorted(quantities)
            ],
        )
        now = self.runtime.clock.now()
        for stream_id in sorted(values):
            scores = await battles.record_coins_received(
                self.connection, stream_id=stream_id, coins=values[stream_id], now=now
            )
            if scores is not None:
                self.scores.append(scores)


def _stream_refusal(stream: _Stream | None) -> ApiError | None:
    if stream is None:
        return not_found()
    if stream.status != StreamStatus.LIVE:
        return forbidden("Gifts can be sent only while the stream is live.")
    if not stream.allow_gifts:
        return forbidden("Gifts are turned off for this stream.")
    return None


def _describe(order: GiftOrder) -> str:
    return (
        f"gift {order.gift_id} x{order.quantity} on stream {order.stream_id} "
        f"from user {order.sender_id}"
    )
