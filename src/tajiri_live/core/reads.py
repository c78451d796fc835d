"""The hot paths' single reads, outside any transaction (`runtime.reader`).

A comment's author check, a stream's facts and bans, a keyed request's recorded answer: one
statement each, built once with bound values. Through SQLAlchemy each read cost more CPU
than PostgreSQL spent on it: a pool checkout (events, a reset on return, the isolation level
set again) and the execution context around a statement it had already compiled, about
200 µs of the caller's core against 80 µs for asyncpg's own `fetch` (measured on the
comment check). So on asyncpg the reader keeps the connections it reads on and runs the
statement compiled once through the driver, with the column types' own bind and result
processing; on other drivers (SQLite) it reads through the pool as before. Writers whose
batch is one statement (`write`) use the same connections: autocommit, one round trip.

At most `limit` reads at once: a burst waits a moment for a connection rather than opening
overflow ones, each a new PostgreSQL backend. A connection found dead (nothing pings it) or
a read that takes over `READ_TIMEOUT_SECONDS` (a connection cut without a word) drops it and
every other one held, and the read is made again through the pool, which finds and replaces
stale connections itself. A held connection goes back to the pool after
`POOL_RECYCLE_SECONDS`, as the pool's own are replaced.
"""

from __future__ import annotations

import asyncio
from collections import namedtuple
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tajiri_live.core.db import POOL_RECYCLE_SECONDS

Processor = Callable[[Any], Any]
MAX_PLANS = 256
# A read that takes longer is given up (a connection cut without a FIN or RST would hold
# its slot for ever); the connection is dropped and the read made once more on a fresh one.
READ_TIMEOUT_SECONDS = 30.0


class ConnectionLost(ConnectionError):
    """The database connection died under a statement (answered 503)."""


@dataclass(frozen=True, slots=True)
class _Plan:
    """A statement compiled once for the driver: its SQL, the order of its parameters and
    the processing of each value in and out."""

    sql: str
    names: tuple[str, ...]
    constants: Mapping[str, Any]  # the values written into the statement ('ban', ...)
    required: frozenset[str]
    binds: Mapping[str, Processor]
    results: tuple[Processor | None, ...]
    row: Callable[..., Any]

    @classmethod
    def of(cls, statement: Select[Any], dialect: Dialect) -> _Plan | None:
        """None when the statement needs what only SQLAlchemy's execution does (expanding
        IN lists, values rendered at execution, types that read the driver's type codes)."""
        compiled = statement.compile(dialect=dialect)
        names = compiled.positiontup
        if names is None or any(b.expanding or b.literal_execute for b in compiled.binds.values()):
            return None
        try:
            results = tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in statement.selected_columns
            )
        except Exception:  # a processor that needs the column's type code
            return None
        binds = {
            name: processor
            for name, bind in compiled.binds.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        keys = list(statement.selected_columns.keys())
        return cls(
            sql=compiled.string,
            names=tuple(names),
            constants={k: v for k, v in compiled.params.items() if v is not None},
            required=frozenset(n for n, b in compiled.binds.items() if b.required),
            binds=binds,
            results=results,
            row=namedtuple("Row", keys, rename=True)._make,  # type: ignore[attr-defined]
        )

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        missing = self.required - params.keys()
        if missing:
            raise ValueError(f"no value for bound parameter(s) {sorted(missing)}")
        values = {**self.constants, **params}
        arguments = []
        for name in self.names:
            value = values.get(name)
            processor = self.binds.get(name)
            arguments.append(processor(value) if processor is not None else value)
        return arguments

    def rows(self, records: Sequence[Any]) -> list[Any]:
        results = self.results
        if not any(results):
            return [self.row(record) for record in records]
        return [
            self.row([p(v) if p is not None else v for p, v in zip(results, record, strict=True)])
            for record in records
        ]


@dataclass(frozen=True, slots=True)
class _Held:
    connection: AsyncConnection
    driver: Any  # the asyncpg connection under it
    since: float  # the event loop's clock when it was taken from the pool


class Reader:
    def __init__(self, engine: AsyncEngine, *, limit: int = 10) -> None:
        self.engine = engine
        self._slots = asyncio.Semaphore(limit)
        self._direct = engine.dialect.driver == "asyncpg"
        self._plans: dict[Executable, _Plan | None] = {}
        self._idle: list[_Held] = []
        self._dropping: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def direct(self) -> bool:
        """Statements run through the driver itself (asyncpg): `write` is available."""
        return self._direct

    async def rows(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> Sequence[Any]:
        """The statement's rows; each reads its columns as attributes (`row.user_id`)."""
        values = params or {}
        async with self._slots:
            plan = self._plan(statement) if self._direct else None
            if plan is not None:
                try:
                    return await self._read_direct(plan, values)
                except ConnectionLost:
                    self._drop_idle()  # the server went away: the others are dead too
            return await self._read_pooled(statement, values)

    async def write(self, statement: Select[Any], params: Mapping[str, Any]) -> Sequence[Any]:
        """A statement that writes (data-modifying CTEs), committed on its own on a held
        connection: one round trip where a transaction takes four. PostgreSQL only. Never
        made again: a connection lost on the way may have committed it first, so the
        caller hears `ConnectionLost`."""
        plan = self._plan(statement) if self._direct else None
        if plan is None:
            raise ValueError("a direct write needs asyncpg and a statement compiled once")
        async with self._slots:
            try:
                return await self._read_direct(plan, params)
            except ConnectionLost:
                # The server went away: the connections held and those idle in the pool
                # are dead too. A read would find the pool's through SQLAlchemy's retry;
                # a write is not retried, so the next one must not be handed a dead one.
                self._drop_idle()
                await self.engine.dispose(close=False)
                raise

    async def close(self) -> None:
        """Give back the connections held (before the engine is disposed); a read still
        running gives its connection back when it ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        closing = [held.connection.close() for held in idle]
        await asyncio.gather(*closing, *self._dropping, return_exceptions=True)

    def _plan(self, statement: Executable) -> _Plan | None:
        if statement not in self._plans:
            if len(self._plans) >= MAX_PLANS:  # statements are module constants: never here
                return None
            self._plans[statement] = (
                _Plan.of(statement, self.engine.dialect) if isinstance(statement, Select) else None
            )
        return self._plans[statement]

    async def _read_direct(self, plan: _Plan, params: Mapping[str, Any]) -> list[Any]:
        arguments = plan.arguments(params)
        held = self._take() or await self._hold()
        try:
            records = await held.driver.fetch(plan.sql, *arguments, timeout=READ_TIMEOUT_SECONDS)
        except BaseException as error:
            # Dead, or interrupted mid-statement: either way it is never used again.
            self._drop(held)
            lost = isinstance(error, OSError) or held.driver.is_closed()
            if lost and isinstance(error, Exception):  # never swallow a cancellation
                raise ConnectionLost from error
            raise
        if self._closed:
            self._give_back(held)
        else:
            self._idle.append(held)
        return plan.rows(records)

    def _take(self) -> _Held | None:
        """A held connection young enough to use; older ones go back to the pool, which
        replaces them (as it does its own after `POOL_RECYCLE_SECONDS`)."""
        now = asyncio.get_running_loop().time()
        while self._idle:
            held = self._idle.pop()
            if now - held.since < POOL_RECYCLE_SECONDS:
                return held
            self._give_back(held)
        return None

    async def _hold(self) -> _Held:
        connection = await self.engine.connect()
        try:
            raw = await connection.get_raw_connection()
        except BaseException:
            await connection.close()
            raise
        return _Held(connection, raw.driver_connection, asyncio.get_running_loop().time())

    def _drop(self, held: _Held) -> None:
        self._in_background(_invalidate(held.connection))

    def _give_back(self, held: _Held) -> None:
        self._in_background(held.connection.close())

    def _in_background(self, closing: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(closing)
        self._dropping.add(task)
        task.add_done_callback(self._dropping.discard)

    def _drop_idle(self) -> None:
        idle, self._idle = self._idle, []
        for held in idle:
            self._drop(held)

    async def _read_pooled(self, statement: Executable, params: Mapping[str, Any]) -> Sequence[Any]:
        for attempt in (1, 2):
            try:
                async with self.engine.connect() as connection:
                    await connection.execution_options(isolation_level="AUTOCOMMIT")
                    return (await connection.execute(statement, dict(params))).all()
            except DBAPIError as error:
                if attempt == 2 or not error.connection_invalidated:
                    raise
        raise AssertionError("unreachable")


async def _invalidate(connection: AsyncConnection) -> None:
    try:
        await connection.invalidate()
    finally:
        await connection.close()


def direct_writer(reader: Reader | None) -> Reader | None:
    """`reader` where it writes directly (asyncpg: `Reader.write`), else None: the batch
    writers then write in a transaction of their own."""
    return reader if reader is not None and reader.direct else None
