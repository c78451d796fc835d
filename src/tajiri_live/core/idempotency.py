"""Idempotency keys as Stripe defines them, for any request that must happen once (gifts and
super chats).

A key belongs to the caller and to one request: its fingerprint is the method, the path and
the body. The first request with a key inserts it *inside its own transaction*, before any
other work, and records its answer in that same transaction: the key, the answer and the
effects are committed together or not at all. A concurrent retry's insert of the same key
waits on the unique index until that transaction ends (no polling): if it committed, the
retry replays its answer (never counted against rate limits, never a 402 or 429 for a
request that succeeded); if it rolled back (a refusal, a crash), nothing happened and the
retry runs as a first request. The same key with another request is a 422 naming the key.
Keys expire after `IDEMPOTENCY_TTL_HOURS` (24 h); an expired key is a fresh one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError
from sqlalchemy import (
    BigInteger,
    Index,
    Integer,
    String,
    UniqueConstraint,
    bindparam,
    delete,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from tajiri_live.core.columns import JSONType
from tajiri_live.core.db import Base, BigIntId, UTCDateTime, dialect_insert
from tajiri_live.core.errors import ApiError, ValidationFailed
from tajiri_live.core.runtime import Runtime
from tajiri_live.core.text import Text

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
MAX_ATTEMPTS = 5
PENDING, DONE = "pending", "done"
# Stripe's rule (up to 255 characters) with a stated alphabet: printable ASCII. A header
# is decoded as latin-1, so a UTF-8 key arrives as mojibake; refusing it by name beats
# "control characters" (what its bytes look like then).
KEY_ALPHABET = re.compile(f"[\x20-\x7e]{{1,{MAX_KEY_LENGTH}}}")
KEY_RULE = (
    f"The {HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters "
    "(letters, digits, punctuation, spaces; a UUID is a good key)."
)


def is_valid_key(value: str) -> bool:
    return KEY_ALPHABET.fullmatch(value) is not None and bool(value.strip())


def _check_key(value: str) -> str:
    if not is_valid_key(value):
        raise PydanticCustomError("idempotency_key", KEY_RULE)
    return value


def key_absent_or_valid(request: Request) -> bool:
    """For a route served in front of FastAPI: its key (the first header, as `KeyHeader`
    takes it) is one the documented route would take, or there is none."""
    key = request.headers.get(HEADER)
    return key is None or is_valid_key(key)


# The key's type: the alphabet is checked before the text rule, so that its message wins.
KeyText = Annotated[Annotated[str, AfterValidator(_check_key)], *Text.__metadata__]

# The optional header of a route that must happen once per key (gifts, super chats).
KeyHeader = Annotated[
    KeyText | None,
    Header(
        alias=HEADER,
        description="Retries with the same key and body get the first answer back "
        f"(1 to {MAX_KEY_LENGTH} printable ASCII characters)",
    ),
]


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("user_id", "key"),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of method, path and body
    state: Mapped[str] = mapped_column(String(10))  # pending (never seen committed), done
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[Any | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


def fingerprint(method: str, path: str, body: Any) -> str:
    """What makes two requests the same request: the route and the body (key order and
    whitespace aside)."""
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(f"{method.upper()} {path}\n".encode() + canonical).hexdigest()


@dataclass(frozen=True)
class Replay:
    """The answer of the request that used the key first."""

    status_code: int
    body: Any


@dataclass(frozen=True)
class Claim:
    """This request holds the key in its open transaction: the work is done in that
    transaction, and the answer recorded on the key before it commits."""

    id: int


def _check_key_or_refuse(key: str) -> None:
    try:
        _check_key(key)
    except PydanticCustomError:
        raise ValidationFailed({HEADER: [KEY_RULE]}) from None


async def claim_or_replay(
    runtime: Runtime,
    executor: AsyncSession | AsyncConnection,
    *,
    user_id: int,
    key: str,
    fingerprint: str,
) -> Claim | Replay:
    """`begin` in the caller's transaction, which it leaves open whatever the outcome (a
    batch claims many keys in one): a Claim, a Replay, or an ApiError to answer."""
    now = runtime.clock.now()
    fresh = {
        "fingerprint": fingerprint,
        "state": PENDING,
        "status_code": None,
        "response": None,
        "created_at": now,
        "expires_at": now + timedelta(hours=runtime.settings.idempotency_ttl_hours),
    }
    for _ in range(MAX_ATTEMPTS):
        insert = dialect_insert(executor)
        claimed = await executor.scalar(
            insert(IdempotencyKey)
            .values(user_id=user_id, key=key, **fresh)
            .on_conflict_do_nothing(index_elements=["user_id", "key"])
            .returning(IdempotencyKey.id)
        )
        if claimed is not None:
            return Claim(int(claimed))
        row = (
            await executor.execute(
                select(
                    IdempotencyKey.id,
                    IdempotencyKey.fingerprint,
                    IdempotencyKey.state,
                    IdempotencyKey.expires_at,
                    IdempotencyKey.status_code,
                    IdempotencyKey.response,
                ).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
            )
        ).one_or_none()
        if row is None:
            continue  # the first request rolled back between our insert and our read
        if row.expires_at <= now:  # an old key: it is this request's now
            taken = await executor.scalar(
                update(IdempotencyKey)
                .where(IdempotencyKey.id == row.id, IdempotencyKey.expires_at == row.expires_at)
                .values(**fresh)
                .returning(IdempotencyKey.id)
            )
            if taken is not None:
                return Claim(int(taken))
            continue
        if row.fingerprint != fingerprint:
            raise reused_key(key)
        if row.state != DONE:
            break
        return Replay(int(row.status_code or 200), row.response)
    raise ApiError(
        409,
        f"A request with this {HEADER} is still being processed; retry shortly.",
        headers={"Retry-After": "1"},
        retry_after=1,
    )


def reused_key(key: str) -> ValidationFailed:
    return ValidationFailed(
        {
            HEADER: [
                f"The {HEADER} '{key[:64]}' was already used with a different request; "
                "use a new key for a new request."
            ]
        }
    )


async def answered(runtime: Runtime, *, user_id: int, key: str, fingerprint: str) -> Replay | None:
    """The answer already recorded for the key, read outside any transaction (None when there
    is none yet); the same key with another request is a 422. A request that finds its
    answer here is replayed before it is counted against rate limits or queued."""
    _check_key_or_refuse(key)
    rows = await runtime.reader.rows(
        _ANSWERED, {"user_id": user_id, "key": key, "now": runtime.clock.now()}
    )
    if not rows:
        return None
    row = rows[0]
    if row.fingerprint != fingerprint:
        raise reused_key(key)
    if row.state != DONE:
        return None
    return Replay(int(row.status_code or 200), row.response)


_ANSWERED = select(
    IdempotencyKey.fingerprint,
    IdempotencyKey.state,
    IdempotencyKey.status_code,
    IdempotencyKey.response,
).where(
    IdempotencyKey.user_id == bindparam("user_id"),
    IdempotencyKey.key == bindparam("key"),
    IdempotencyKey.expires_at > bindparam("now"),
)


def created(body: dict[str, Any], *, replayed: bool) -> JSONResponse:
    """A 201 for work done once; a replay says so in `Idempotent-Replayed`."""
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return JSONResponse(body, status_code=201, headers=headers)


async def purge_expired(runtime: Runtime) -> int:
    """Forget keys past their expiry (a job)."""
    async with runtime.sessions() as session:
        result = await session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.expires_at <= runtime.clock.now())
        )
        await session.commit()
        return int(getattr(result, "rowcount", 0) or 0)
