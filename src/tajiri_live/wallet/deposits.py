"""Coins from the main app: its wallet took the money (mobile money), this service issues
the coins from the mint. Server to server, signed with a shared secret as the Pusher HTTP API
is: HMAC-SHA256 (hex) of `{timestamp}.{raw body}`, a timestamp at most a window away from
this server's clock. The main app's `reference` makes a credit happen once."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tajiri_live.core.clock import iso
from tajiri_live.core.errors import ApiError
from tajiri_live.core.payload import DbId
from tajiri_live.core.runtime import Runtime
from tajiri_live.core.text import Text
from tajiri_live.users import service as users_service
from tajiri_live.wallet import service as wallet
from tajiri_live.wallet.models import WalletDeposit

TIMESTAMP_HEADER = "X-Tajiri-Timestamp"
SIGNATURE_HEADER = "X-Tajiri-Signature"
MAX_COINS = 10**12


class DepositCreate(BaseModel):
    """`user_id` (whose wallet), `amount` (coins, already converted by the main app) and
    `reference` (the main app's own id for the deposit: unique)."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    user_id: DbId
    amount: int = Field(ge=1, le=MAX_COINS)
    reference: Text = Field(min_length=1, max_length=100)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """What `hash_hmac('sha256', $timestamp . '.' . $body, $secret)` gives in PHP."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(runtime: Runtime, *, timestamp: str | None, signed: str | None, body: bytes) -> None:
    """401 unless the request is signed with the shared secret, recently; 403 when no
    secret is configured (the route is closed)."""
    settings = runtime.settings
    secret = settings.wallet_credit_secret
    if not secret:
        raise ApiError(403, "Credits from the main app are not enabled on this server.")
    if not timestamp or not signed:
        raise ApiError(
            401, f"Sign the request: send {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers."
        )
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise ApiError(401, f"{TIMESTAMP_HEADER} must be a Unix time in seconds.")
    age = abs(runtime.clock.now().timestamp() - int(timestamp))
    window = settings.wallet_credit_window_seconds
    if age > window:
        raise ApiError(
            401,
            f"The timestamp is {int(age)} s away from this server's clock (at most "
            f"{int(window)} s): sign the request again.",
        )
    if not hmac.compare_digest(signature(secret, timestamp, body), signed.strip().lower()):
        raise ApiError(401, "The signature does not match the body and timestamp.")


def deposit_dict(deposit: WalletDeposit) -> dict[str, Any]:
    return {
        "reference": deposit.reference,
        "user_id": deposit.user_id,
        "amount": deposit.amount,
        "balance": deposit.balance_after,
        "transaction_id": deposit.transaction_id,
        "created_at": iso(deposit.created_at),
    }


def _same_or_refuse(found: WalletDeposit, data: DepositCreate) -> dict[str, Any]:
    """The first answer for a retry; a 409 naming the reference if it asks something else."""
    if (found.user_id, found.amount) != (data.user_id, data.amount):
        message = (
            f"The reference {found.reference!r} was already used for a credit of "
            f"{found.amount} coins to user {found.user_id}."
        )
        raise ApiError(409, message, errors={"reference": [message]})
    return deposit_dict(found)


async def _find(session: AsyncSession, reference: str) -> WalletDeposit | None:
    found: WalletDeposit | None = await session.scalar(
        select(WalletDeposit)
        .where(WalletDeposit.reference == reference)
        .execution_options(populate_existing=True)
    )
    return found


async def deposit(
    session: AsyncSession, *, runtime: Runtime, data: DepositCreate
) -> tuple[dict[str, Any], bool]:
    """Issue the coins once per reference; returns the answer and whether it is a replay."""
    found = await _find(session, data.reference)
    if found is not None:
        return _same_or_refuse(found, data), True
    now = runtime.clock.now()
    await users_service.ensure_user(session, user_id=data.user_id, now=now)
    wallet_id = await wallet.user_wallet(session, data.user_id)
    transaction = await wallet.issue(
        session, wallet_id=wallet_id, amount=data.amount, kind="deposit", actor_id=None
    )
    row = WalletDeposit(
        reference=data.reference,
        user_id=data.user_id,
        amount=data.amount,
        balance_after=await wallet.balance_of(session, data.user_id),
        transaction_id=transaction.id,
        created_at=now,
    )
    session.add(row)
    try:
        await session.flush()  # a concurrent credit of the same reference waits here
    except IntegrityError:
        await session.rollback()  # it committed first: nothing of this one stays
        found = await _find(session, data.reference)
        if found is None:
            raise
        return _same_or_refuse(found, data), True
    answer = deposit_dict(row)
    transaction.response = answer
    await session.commit()
    return answer, False
