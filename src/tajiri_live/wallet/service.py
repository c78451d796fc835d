"""Moving coins: every movement is one transaction whose ledger entries sum to zero."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tajiri_live.core.clock import iso
from tajiri_live.core.db import dialect_insert
from tajiri_live.core.errors import ApiError
from tajiri_live.core.runtime import Runtime
from tajiri_live.users import service as users_service
from tajiri_live.wallet.models import MINT, USER, LedgerEntry, LedgerTransaction, Wallet


async def house_wallet(session: AsyncSession, kind: str) -> int:
    wallet_id = await session.scalar(select(Wallet.id).where(Wallet.kind == kind))
    if wallet_id is None:
        raise RuntimeError(f"the {kind} wallet is missing: run the migrations")
    return int(wallet_id)


async def user_wallet(session: AsyncSession, user_id: int) -> int:
    """The user's wallet id, created empty on first use (safe under concurrency)."""
    existing = await session.scalar(select(Wallet.id).where(Wallet.user_id == user_id))
    if existing is not None:  # the usual case: one read, no write
        return int(existing)
    insert = dialect_insert(session)
    await session.execute(
        insert(Wallet)
        .values(user_id=user_id, kind=USER, balance=0)
        .on_conflict_do_nothing(index_elements=["user_id"])
    )
    return int(await session.scalar(select(Wallet.id).where(Wallet.user_id == user_id)) or 0)


async def lock(session: AsyncSession, wallet_ids: list[int]) -> None:
    """Lock the wallets a transaction touches, always in id order, so that two transfers in
    opposite directions cannot deadlock (SQLite serialises writers anyway)."""
    await session.execute(
        select(Wallet.id)
        .where(Wallet.id.in_(sorted(set(wallet_ids))))
        .order_by(Wallet.id)
        .with_for_update()
    )


async def debit(session: AsyncSession, *, wallet_id: int, amount: int) -> bool:
    """Take `amount` if the balance covers it, in one conditional update (no overdraft, no
    double spend: concurrent debits queue on the row and each re-checks the balance)."""
    result = await session.execute(
        update(Wallet)
        .where(Wallet.id == wallet_id, Wallet.balance >= amount)
        .values(balance=Wallet.balance - amount)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


async def credit(session: AsyncSession, *, wallet_id: int, amount: int) -> None:
    await session.execute(
        update(Wallet)
        .where(Wallet.id == wallet_id)
        .values(balance=Wallet.balance + amount)
        .execution_options(synchronize_session=False)
    )


async def record(
    session: AsyncSession,
    *,
    kind: str,
    actor_id: int | None,
    idempotency_key: str | None,
    entries: list[tuple[int, int]],
    stream_gift_id: int | None = None,
) -> LedgerTransaction:
    """Write the transaction and its entries; refuses entries that do not sum to zero."""
    if sum(amount for _, amount in entries) != 0:
        raise ValueError("ledger entries must sum to zero")
    transaction = LedgerTransaction(
        kind=kind, actor_id=actor_id, idempotency_key=idempotency_key, stream_gift_id=stream_gift_id
    )
    session.add(transaction)
    await session.flush()
    session.add_all(
        LedgerEntry(transaction_id=transaction.id, wallet_id=wallet_id, amount=amount)
        for wallet_id, amount in entries
        if amount
    )
    return transaction


async def entries_of_gift(session: AsyncSession, stream_gift_id: int) -> list[tuple[int, int]]:
    """(wallet id, amount) of the transaction that paid for a sent gift."""
    rows = await session.execute(
        select(LedgerEntry.wallet_id, LedgerEntry.amount)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerTransaction.stream_gift_id == stream_gift_id, LedgerTransaction.kind == "gift")
        .order_by(LedgerEntry.id)
    )
    return [(int(wallet_id), int(amount)) for wallet_id, amount in rows]


async def entries_of(session: AsyncSession, transaction_id: int) -> list[tuple[int, int]]:
    """(wallet id, amount) of one transaction, in the order they were written."""
    rows = await session.execute(
        select(LedgerEntry.wallet_id, LedgerEntry.amount)
        .where(LedgerEntry.transaction_id == transaction_id)
        .order_by(LedgerEntry.id)
    )
    return [(int(wallet_id), int(amount)) for wallet_id, amount in rows]


async def reverse(session: AsyncSession, original: list[tuple[int, int]], what: str) -> None:
    """Move back what a payment moved, in the caller's transaction: every recipient must
    still hold what they got, else nothing moves (rolled back) and it is a 409."""
    await lock(session, [wallet_id for wallet_id, _ in original])
    for wallet_id, amount in original:
        if amount > 0 and not await debit(session, wallet_id=wallet_id, amount=amount):
            await session.rollback()
            raise ApiError(
                409,
                f"A recipient no longer holds these coins; the {what} cannot be "
                "refunded automatically.",
            )
    for wallet_id, amount in original:
        if amount < 0:
            await credit(session, wallet_id=wallet_id, amount=-amount)


async def issue(
    session: AsyncSession, *, wallet_id: int, amount: int, kind: str, actor_id: int | None
) -> LedgerTransaction:
    """Coins from the mint to a wallet, in the caller's transaction (it commits)."""
    mint = await house_wallet(session, MINT)
    await credit(session, wallet_id=mint, amount=-amount)
    await credit(session, wallet_id=wallet_id, amount=amount)
    return await record(
        session,
        kind=kind,
        actor_id=actor_id,
        idempotency_key=None,
        entries=[(mint, -amount), (wallet_id, amount)],
    )


async def admin_credit(
    session: AsyncSession, *, runtime: Runtime, user_id: int, amount: int, actor_id: int | None
) -> int:
    """Issue coins to a user from the mint; returns the new balance."""
    if amount <= 0:
        raise ApiError(
            422,
            "The amount must be at least 1.",
            errors={"amount": ["The amount must be at least 1."]},
        )
    await users_service.ensure_user(session, user_id=user_id, now=runtime.clock.now())
    wallet_id = await user_wallet(session, user_id)
    await issue(session, wallet_id=wallet_id, amount=amount, kind="credit", actor_id=actor_id)
    await session.commit()
    return await balance_of(session, user_id)


async def balance_of(session: AsyncSession, user_id: int) -> int:
    return int(await session.scalar(select(Wallet.balance).where(Wallet.user_id == user_id)) or 0)


async def history(session: AsyncSession, *, user_id: int, limit: int) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(
            LedgerEntry.id,
            LedgerEntry.amount,
            LedgerEntry.created_at,
            LedgerTransaction.kind,
            LedgerTransaction.stream_gift_id,
        )
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .join(Wallet, Wallet.id == LedgerEntry.wallet_id)
        .where(Wallet.user_id == user_id)
        .order_by(LedgerEntry.id.desc())
        .limit(limit)
    )
    return [
        {
            "id": r.id,
            "amount": r.amount,
            "kind": r.kind,
            "stream_gift_id": r.stream_gift_id,
            "created_at": iso(r.created_at),
        }
        for r in rows
    ]


async def ledger_is_balanced(session: AsyncSession) -> bool:
    """Entries sum to zero, and every wallet's balance equals the sum of its entries."""
    total = await session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0)))
    sums = (
        select(LedgerEntry.wallet_id, func.sum(LedgerEntry.amount).label("total"))
        .group_by(LedgerEntry.wallet_id)
        .subquery()
    )
    mismatched = await session.scalar(
        select(func.count())
        .select_from(Wallet)
        .outerjoin(sums, sums.c.wallet_id == Wallet.id)
        .where(Wallet.balance != func.coalesce(sums.c.total, 0))
    )
    return total == 0 and mismatched == 0
