"""Group commit for what viewers pay a stream: gifts and super chats, in one transaction a batch.

Every payment locks its sender's, its creators' and the platform's wallets until its commit,
so one transaction per payment makes a big room's gifts serial: the next waits for the last
commit. Here a batch (core/groupcommit.py) takes the wallets of all its payments once, in id
order as every transfer does, and decides each in arrival order on the locked balances,
exactly as if they ran one after another: a sender short of coins gets their own 402 and the
payments after theirs still go through. The ledger gets each payment's own transaction and
entries; the wallets, the streams' counters and a battle's score are updated once per batch.
Each request answers only after the batch that holds its payment is committed. Gifts and
super chats share the batches: they lock the same wallets, so apart they would queue for
each other.

Locks are taken in the order every payment takes them (wallets, then the stream row, then a
battle), so a batch never deadlocks with a refund. The stream row is read again under its
lock: nothing is paid on a stream that ended, or stopped gifts (or comments, for a super
chat), meanwhile.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
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
from tajiri_live.engagement.models import StreamComment
from tajiri_live.engagement.service import enforce_rate
from tajiri_live.gifts.models import StreamGift, VirtualGift
from tajiri_live.gifts.presenters import gift_dict, sent_gift_answer
from tajiri_live.gifts.shares import creator_shares, split
from tajiri_live.moderation import service as moderation
from tajiri_live.moderation.models import StreamRestriction
from tajiri_live.streams.lifecycle import StreamStatus
from tajiri_live.streams.models import LiveStream, StreamCoHost
from tajiri_live.streams.presenters import storage_base_url
from tajiri_live.superchats import rules as super_chat_rules
from tajiri_live.superchats.models import StreamSuperChat
from tajiri_live.superchats.presenters import super_chat_answer
from tajiri_live.users.models import User
from tajiri_live.users.presenters import UserProfile
from tajiri_live.wallet.models import PLATFORM, USER, LedgerEntry, LedgerTransaction, Wallet

WRITER = "payments"
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
class SuperChatOrder:
    """A super chat a request asks for: moderated, its amount and tier checked."""

    stream_id: int
    sender_id: int
    amount: int  # TZS, as the viewer chose it
    coins: int  # what the ledger moves
    creator_share: int  # percent
    tier: str
    seconds: int  # on screen
    message: str
    payment_method: str | None
    payment_reference: str | None
    created_at: datetime
    key: str | None = None
    fingerprint: str = ""


Order = GiftOrder | SuperChatOrder


@dataclass(frozen=True)
class Sent:
    """A paid gift as the client reads it; `replayed` when its key had been paid before."""

    answer: dict[str, Any]
    replayed: bool = False


Outcome = Sent | ApiError  # the gift, or why it was refused

KEYS = cast(Table, idempotency.IdempotencyKey.__table__)
COMMENTS = cast(Table, StreamComment.__table__)
SUPER_CHATS = cast(Table, StreamSuperChat.__table__)
_COUNT_COMMENTS = (
    update(STREAMS)
    .where(STREAMS.c.id == bindparam("stream_id"))
    .values(comments_count=STREAMS.c.comments_count + bindparam("comments"))
)
_ANSWER_TRANSACTION = (
    update(TRANSACTIONS)
    .where(TRANSACTIONS.c.id == bindparam("transaction"))
    .values(response=bindparam("answer"))
)
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


async def enforce_super_chat_rate(runtime: Runtime, stream_id: int, user_id: int) -> None:
    settings = runtime.settings
    await enforce_rate(
        runtime,
        action="super chat",
        stream_id=stream_id,
        user_id=user_id,
        limit=settings.super_chat_limit,
        window=settings.super_chat_window_seconds,
    )


async def enforce_order_rate(runtime: Runtime, order: Order) -> None:
    enforce = enforce_gift_rate if isinstance(order, GiftOrder) else enforce_super_chat_rate
    await enforce(runtime, order.stream_id, order.sender_id)


class PaymentWriter:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._platform_wallet: int | None = None  # made by the migrations, never changes
        # A keyed gift's rate-limit verdict, by the order's identity, while its request waits:
        # a batch written again in halves (core/batches.py) must not count it again.
        self._rate_verdicts: dict[int, ApiError | None] = {}
        # A gift the database refuses alone (a row it cannot hold) is answered alone; the
        # rest of its batch is paid.
        self._batches: GroupCommit[Order, Outcome] = GroupCommit(
            WRITER,
            self._write,
            describe=_describe,
            refused=lambda order, __: ApiError(
                409, f"The {_what(order)} could not be stored and nothing was charged: try again."
            ),
        )

    async def send(self, order: Order) -> Sent:
        """The sent gift or super chat, once paid and committed; else its refusal (raised)."""
        try:
            outcome = await self._batches.write(order)
        finally:
            self._rate_verdicts.pop(id(order), None)
        if isinstance(outcome, ApiError):
            raise outcome
        return outcome

    @property
    def batches(self) -> GroupCommit[Order, Outcome]:
        """The group commit (its `batches` and `items` say how much each batch held)."""
        return self._batches

    async def close(self) -> None:
        await self._batches.close()

    async def _write(self, batch: Sequence[Order]) -> list[Outcome]:
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
    order: Order
    total: int
    creator_amount: int
    moves: list[tuple[int, int]]  # (wallet id, coins), summing to zero


@dataclass(frozen=True, slots=True)
class _Stream:
    owner: int
    status: str
    allow_gifts: bool
    allow_comments: bool


@dataclass
class _Batch:
    """One batch in one transaction: read what the gifts need, lock, decide, write."""

    runtime: Runtime
    connection: AsyncConnection
    orders: Sequence[Order]
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
        catalog = await self._catalog(
            {order.gift_id for order in self.orders if isinstance(order, GiftOrder)}
        )
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

        paid: list[_Paid] = []
        for order, index in self._pending():
            refusal = _stream_refusal(streams.get(order.stream_id), order)
            if refusal is not None:
                self.outcomes[index] = refusal
                continue
            if isinstance(order, GiftOrder):
                gift = catalog[order.gift_id]
                total, percent = gift.price * order.quantity, gift.creator_share
            else:
                total, percent = order.coins, order.creator_share
            payer = wallets[order.sender_id]
            if balances[payer] < total:
                self.outcomes[index] = ApiError(
                    402,
                    f"Not enough coins: this {_what(order)} costs {total} and your balance is "
                    f"{balances[payer]}.",
                    required=total,
                    balance=balances[payer],
                )
                continue
            creator_amount, platform_amount = split(total, percent)
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
            gifts = [p for p in paid if isinstance(p.order, GiftOrder)]
            chats = [p for p in paid if isinstance(p.order, SuperChatOrder)]
            if gifts:
                await self._pay_gifts(gifts, catalog, profiles)
            if chats:
                await self._pay_super_chats(chats, profiles)
            await self._move(paid)
            await self._count(paid)
        await self._settle_keys()
        for index, first in self.followers.items():
            self.outcomes[index] = self._as_retry_of(first)
        return [cast(Outcome, outcome) for outcome in self.outcomes]

    async def _pay_gifts(
        self,
        gifts: list[_Paid],
        catalog: dict[int, Row[Any]],
        profiles: dict[int, UserProfile],
    ) -> None:
        base_url = storage_base_url(self.runtime.settings)
        gift_ids = await self._insert_gifts(gifts)
        answers: list[dict[str, Any]] = []
        for paid, sent_id in zip(gifts, gift_ids, strict=True):
            order = cast(GiftOrder, paid.order)
            answers.append(
                sent_gift_answer(
                    sent_id=sent_id,
                    stream_id=order.stream_id,
                    sender_id=order.sender_id,
                    gift=gift_dict(catalog[order.gift_id]),
                    quantity=order.quantity,
                    total_value=paid.total,
                    message=order.message,
                    created_at=order.created_at,
                    refunded_at=None,
                    sender=profiles.get(order.sender_id),
                    storage_base_url=base_url,
                )
            )
        await self._record(
            gifts,
            [
                {"kind": "gift", "stream_gift_id": sent_id, "response": answer}
                for sent_id, answer in zip(gift_ids, answers, strict=True)
            ],
        )
        for paid, answer in zip(gifts, answers, strict=True):
            self.outcomes[paid.index] = Sent(answer)

    async def _pay_super_chats(self, chats: list[_Paid], profiles: dict[int, UserProfile]) -> None:
        """Each super chat: its comment (pinned while it shows), its ledger transaction, its
        row, and the answer recorded on the transaction."""
        base_url = storage_base_url(self.runtime.settings)
        orders = [cast(SuperChatOrder, paid.order) for paid in chats]
        comment_ids = await self._ids(
            COMMENTS,
            [
                {
                    "stream_id": order.stream_id,
                    "user_id": order.sender_id,
                    "content": order.message,
                    "is_pinned": False,
                    "is_highlighted": True,
                    "pinned_until": _until(order),
                    "created_at": order.created_at,
                    "updated_at": order.created_at,
                }
                for order in orders
            ],
        )
        transaction_ids = await self._record(
            chats,
            [{"kind": "super_chat", "stream_gift_id": None, "response": None} for _ in chats],
        )
        chat_ids = await self._ids(
            SUPER_CHATS,
            [
                {
                    "stream_id": order.stream_id,
                    "user_id": order.sender_id,
                    "message": order.message,
                    "amount": order.amount,
                    "coins": order.coins,
                    "creator_amount": paid.creator_amount,
                    "tier": order.tier,
                    "duration": order.seconds,
                    "payment_method": order.payment_method,
                    "payment_reference": order.payment_reference,
                    "comment_id": comment_id,
                    "transaction_id": transaction_id,
                    "display_until": _until(order),
                    "created_at": order.created_at,
                }
                for paid, order, comment_id, transaction_id in zip(
                    chats, orders, comment_ids, transaction_ids, strict=True
                )
            ],
        )
        answered: list[dict[str, Any]] = []
        for paid, order, chat_id, comment_id, transaction_id in zip(
            chats, orders, chat_ids, comment_ids, transaction_ids, strict=True
        ):
            answer = super_chat_answer(
                chat_id=chat_id,
                stream_id=order.stream_id,
                user_id=order.sender_id,
                sender=profiles.get(order.sender_id),
                message=order.message,
                amount=order.amount,
                coins=order.coins,
                tier=order.tier,
                duration=order.seconds,
                display_until=_until(order),
                payment_method=order.payment_method,
                payment_reference=order.payment_reference,
                comment_id=comment_id,
                refunded_at=None,
                created_at=order.created_at,
                storage_base_url=base_url,
            )
            answered.append({"transaction": transaction_id, "answer": answer})
            self.outcomes[paid.index] = Sent(answer)
        await self.connection.execute(_ANSWER_TRANSACTION, answered)

    async def _ids(self, table: Table, rows: list[dict[str, Any]]) -> list[int]:
        """Insert rows; their ids in the rows' order."""
        ids = await self.connection.scalars(
            insert(table).returning(table.c.id, sort_by_parameter_order=True), rows
        )
        return [int(row_id) for row_id in ids]

    def _pending(self) -> Iterable[tuple[Order, int]]:
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
        """The rate limit of a payment with a key, counted once the key says it is no retry of
        a request answered already (the others were counted before they queued)."""
        for index in self.claims:
            order = self.orders[index]
            if id(order) not in self.rate_verdicts:  # counted once, whatever the attempts
                verdict: ApiError | None = None
                try:
                    await enforce_order_rate(self.runtime, order)
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
        if not gift_ids:
            return {}
        rows = await self.connection.execute(
            select(CATALOG).where(CATALOG.c.id.in_(sorted(gift_ids)), CATALOG.c.is_active.is_(True))
        )
        return {int(gift.id): gift for gift in rows}

    def _refuse_early(self, owners: dict[int, int], catalog: dict[int, Row[Any]]) -> None:
        for order, index in list(self._pending()):
            if order.stream_id not in owners:
                self.outcomes[index] = not_found()
            elif owners[order.stream_id] == order.sender_id:
                self.outcomes[index] = forbidden(
                    super_chat_rules.OWN_STREAM
                    if isinstance(order, SuperChatOrder)
                    else "You cannot send a gift to your own stream."
                )
            elif isinstance(order, GiftOrder) and order.gift_id not in catalog:
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
            select(
                STREAMS.c.id,
                STREAMS.c.user_id,
                STREAMS.c.status,
                STREAMS.c.allow_gifts,
                STREAMS.c.allow_comments,
            )
            .where(STREAMS.c.id.in_(sorted(stream_ids)), STREAMS.c.deleted_at.is_(None))
            .order_by(STREAMS.c.id)
            .with_for_update()
        )
        return {
            int(row.id): _Stream(
                int(row.user_id),
                str(row.status),
                bool(row.allow_gifts),
                bool(row.allow_comments),
            )
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
        orders = [cast(GiftOrder, gift.order) for gift in paid]
        return await self._ids(
            GIFTS_SENT,
            [
                {
                    "stream_id": order.stream_id,
                    "sender_id": order.sender_id,
                    "gift_id": order.gift_id,
                    "quantity": order.quantity,
                    "total_value": gift.total,
                    "message": order.message,
                    "creator_amount": gift.creator_amount,
                    "created_at": order.created_at,
                }
                for gift, order in zip(paid, orders, strict=True)
            ],
        )

    async def _record(self, paid: list[_Paid], rows: list[dict[str, Any]]) -> list[int]:
        """Each payment its own ledger transaction (`rows`: its kind, gift and answer), its
        entries summing to zero; the transactions' ids."""
        transaction_ids = await self._ids(
            TRANSACTIONS,
            [
                {
                    **row,
                    "actor_id": payment.order.sender_id,
                    "idempotency_key": None,
                    "created_at": payment.order.created_at,
                }
                for payment, row in zip(paid, rows, strict=True)
            ],
        )
        entries: list[dict[str, Any]] = []
        for payment, transaction_id in zip(paid, transaction_ids, strict=True):
            if sum(amount for _, amount in payment.moves) != 0:
                raise ValueError("ledger entries must sum to zero")
            entries.extend(
                {
                    "transaction_id": transaction_id,
                    "wallet_id": wallet_id,
                    "amount": amount,
                    "created_at": payment.order.created_at,
                }
                for wallet_id, amount in payment.moves
                if amount
            )
        await self.connection.execute(insert(ENTRIES), entries)
        return transaction_ids

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
        """The streams' counters and a battle's score, once per stream: gifts count as gifts,
        super chats as comments, and both as coins received."""
        quantities: dict[int, int] = defaultdict(int)
        values: dict[int, int] = defaultdict(int)
        comments: dict[int, int] = defaultdict(int)
        coins: dict[int, int] = defaultdict(int)
        for payment in paid:
            stream_id = payment.order.stream_id
            coins[stream_id] += payment.total
            if isinstance(payment.order, GiftOrder):
                quantities[stream_id] += payment.order.quantity
                values[stream_id] += payment.total
            else:
                comments[stream_id] += 1
        if quantities:
            await self.connection.execute(
                _COUNT,
                [
                    {"stream_id": sid, "quantity": quantities[sid], "value": values[sid]}
                    for sid in sorted(quantities)
                ],
            )
        if comments:
            await self.connection.execute(
                _COUNT_COMMENTS,
                [{"stream_id": sid, "comments": comments[sid]} for sid in sorted(comments)],
            )
        now = self.runtime.clock.now()
        for stream_id in sorted(coins):
            scores = await battles.record_coins_received(
                self.connection, stream_id=stream_id, coins=coins[stream_id], now=now
            )
            if scores is not None:
                self.scores.append(scores)


def _stream_refusal(stream: _Stream | None, order: Order) -> ApiError | None:
    if stream is None:
        return not_found()
    if isinstance(order, SuperChatOrder):
        return super_chat_rules.refusal(
            stream.status, allow_gifts=stream.allow_gifts, allow_comments=stream.allow_comments
        )
    if stream.status != StreamStatus.LIVE:
        return forbidden("Gifts can be sent only while the stream is live.")
    if not stream.allow_gifts:
        return forbidden("Gifts are turned off for this stream.")
    return None


def _describe(order: Order) -> str:
    if isinstance(order, SuperChatOrder):
        return (
            f"super chat of {order.coins} coins on stream {order.stream_id} "
            f"from user {order.sender_id}"
        )
    return (
        f"gift {order.gift_id} x{order.quantity} on stream {order.stream_id} "
        f"from user {order.sender_id}"
    )


def _until(order: SuperChatOrder) -> datetime:
    return order.created_at + timedelta(seconds=order.seconds)


def _what(order: Order) -> str:
    return "super chat" if isinstance(order, SuperChatOrder) else "gift"
