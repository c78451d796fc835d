"""Database plumbing: the declarative base, a UTC timestamp type, engine and sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Dialect,
    Float,
    Integer,
    MetaData,
    event,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# A pooled connection is replaced after this long: idle timeouts on the way (a NAT, a
# proxy, a failover) may cut an older one without either end noticing.
POOL_RECYCLE_SECONDS = 1800

# BIGINT on PostgreSQL, INTEGER on SQLite (where only INTEGER PRIMARY KEY autoincrements).
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class RowGone(Exception):
    """The row was deleted by a concurrent request while this one worked on it."""


async def reload(session: AsyncSession, instance: Any, attributes: list[str] | None = None) -> None:
    """Refresh `instance` from its row; a row deleted meanwhile raises `RowGone` (answered as
    a 404) instead of SQLAlchemy's 'Could not refresh instance'."""
    try:
        await session.refresh(instance, attributes)
    except InvalidRequestError as exc:
        if "Could not refresh instance" not in str(exc):
            raise
        raise RowGone(type(instance).__name__) from exc


def dialect_insert(session: AsyncSession | AsyncConnection) -> Any:
    """INSERT with `on_conflict_do_*` for the session's database (PostgreSQL or SQLite)."""
    bind = session if isinstance(session, AsyncConnection) else session.get_bind()
    if bind.dialect.name == "postgresql":
        return pg_insert
    return sqlite_insert


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    kwargs: dict[str, Any] = {"echo": echo}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
    else:
        # No ping per checkout (on PostgreSQL a BEGIN, a query and a ROLLBACK: three round
        # trips before every use). A connection that died is found by its first statement:
        # the pool then drops every connection made before (that request answers 503, reads
        # through `Reader` retry once); recycling keeps idle ones from outliving timeouts.
        kwargs.update(
            pool_size=20, max_overflow=20, pool_pre_ping=False, pool_recycle=POOL_RECYCLE_SECONDS
        )
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        _tune_sqlite(engine)
    return engine


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers proceed during a write; foreign keys are off by default in SQLite.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with factory() as session:
        yield session


class epoch(FunctionElement[float]):
    """Seconds since 1970 of a UTC datetime column, on PostgreSQL and SQLite alike."""

    type = Float()
    inherit_cache = True
    name = "epoch"


@compiles(epoch, "postgresql")
def _epoch_postgresql(element: epoch, compiler: Any, **kw: Any) -> str:
    # date_part() is double precision; EXTRACT() became numeric (slow arithmetic) in PG 14.
    return f"date_part('epoch', {compiler.process(element.clauses, **kw)})"


@compiles(epoch, "sqlite")
def _epoch_sqlite(element: epoch, compiler: Any, **kw: Any) -> str:
    # SQLite keeps naive UTC text; julianday() reads it, to within ~50 microseconds at
    # today's dates, so the result is rounded to the millisecond: whole seconds stay whole.
    value = compiler.process(element.clauses, **kw)
    return f"round((julianday({value}) - 2440587.5) * 86400.0, 3)"
