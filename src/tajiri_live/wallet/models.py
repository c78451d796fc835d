"""Coins: wallets and a double-entry ledger whose entries always sum to zero."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tajiri_live.core.columns import JSONType, coins, created_at, updated_at
from tajiri_live.core.db import Base, BigIntId

USER, PLATFORM, MINT = "user", "platform", "mint"


class Wallet(Base):
    """A user's coins, or one of the two house accounts: `platform` (its share of gifts) and
    `mint` (where credited coins come from; it goes negative as coins are issued)."""

    __tablename__ = "wallets"
    __table_args__ = (
        CheckConstraint("kind IN ('user', 'platform', 'mint')", name="kind"),
        CheckConstraint("kind = 'mint' OR balance >= 0", name="balance_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="RESTRICT"), unique=True
    )
    kind: Mapped[str] = mapped_column(String(10))
    balance: Mapped[int] = coins()
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class LedgerTransaction(Base):
    """One movement of coins; its entries sum to zero. A retried request finds it again by
    (actor, idempotency key) and gets the first answer back."""

    __tablename__ = "ledger_transactions"
    __table_args__ = (UniqueConstraint("actor_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # gift, credit, refund
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    stream_gift_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("stream_gifts.id", ondelete="RESTRICT"), index=True
    )
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = created_at()


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_entries_wallet_id_id", "wallet_id", "id"),
        Index("ix_ledger_entries_transaction_id", "transaction_id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("ledger_transactions.id", ondelete="RESTRICT")
    )
    wallet_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("wallets.id", ondelete="RESTRICT")
    )
    amount: Mapped[int] = mapped_column(BigInteger)  # signed: debit < 0 < credit
    created_at: Mapped[datetime] = created_at()


class WalletDeposit(Base):
    """Coins the main app credited (its own wallet took the money): its `reference` is
    unique, so a retried credit is found again instead of paid twice."""

    __tablename__ = "wallet_deposits"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    reference: Mapped[str] = mapped_column(String(100), unique=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="RESTRICT"))
    amount: Mapped[int] = coins()
    balance_after: Mapped[int] = coins()
    transaction_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("ledger_transactions.id", ondelete="RESTRICT")
    )
    created_at: Mapped[datetime] = created_at()
