"""The hot paths' reads (`runtime.reader`): on PostgreSQL they run through asyncpg on held
connections, and must answer exactly what SQLAlchemy answers, survive a server that drops
its connections, and give every connection back on close."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import StatementError

from dbutil import backend
from tajiri_live.core import idempotency
from tajiri_live.core.arrayinsert import arrays
from tajiri_live.core.availability import dependency_of
from tajiri_live.core.batches import is_data_error, is_deadlock
from tajiri_live.core.reads import ConnectionLost
from tajiri_live.core.runtime import Runtime
from tajiri_live.engagement import writer as comment_writer
from tajiri_live.engagement.models import StreamComment
from tajiri_live.engagement.writer import PendingComment
from tajiri_live.moderation import bans
from tajiri_live.moderation.models import StreamRestriction
from tajiri_live.moderation.service import _COMMENTER_CHECK
from tajiri_live.streams import admission
from tajiri_live.streams.models import LiveStream
from tajiri_live.users.models import User

OWNER, FAN, BANNED, TIMED = 1, 2, 3, 4


async def stream_with_restrictions(client: httpx.AsyncClient, auth: Any, runtime: Runtime) -> int:
    created = await client.post(
        "/api/streams", json={"title": "Reads"}, headers=auth(OWNER, first_name="Asha")
    )
    stream_id = int(created.json()["data"]["id"])
    now = runtime.clock.now()
    async with runtime.sessions() as session:
        for user_id in (FAN, BANNED, TIMED):
            session.add(
                User(
                    id=user_id,
                    first_name=f"U{user_id}",
                    username=f"u{user_id}",
                    created_at=now,
                    updated_at=now,
                )
            )
        await session.flush()  # the users before the rows that name them
        session.add_all(
            [
                StreamRestriction(stream_id=stream_id, user_id=BANNED, kind="ban", created_by=1),
                StreamRestriction(
                    stream_id=stream_id,
                    user_id=TIMED,
                    kind="ban",
                    created_by=1,
                    expires_at=now + timedelta(minutes=5),
                ),
            ]
        )
        session.add(
            idempotency.IdempotencyKey(
                user_id=FAN,
                key="k-1",
                fingerprint="f" * 64,
                state=idempotency.DONE,
                status_code=201,
                response={"success": True, "data": {"id": 7, "names": ["a", "ü"]}},
                created_at=now,
                expires_at=now + timedelta(hours=1),
            )
        )
        await session.commit()
    return stream_id


async def by_sqlalchemy(runtime: Runtime, statement: Any, params: dict[str, Any]) -> list[Any]:
    async with runtime.engine.connect() as connection:
        return list((await connection.execute(statement, params)).all())


async def test_reads_answer_what_sqlalchemy_answers(
    client: httpx.AsyncClient, auth: Any, runtime: Runtime
) -> None:
    stream_id = await stream_with_restrictions(client, auth, runtime)
    now = runtime.clock.now()
    cases: list[tuple[Any, dict[str, Any]]] = [
        (admission._FACTS, {"stream_id": stream_id}),
        (bans._BANS, {"stream_id": stream_id}),
        (idempotency._ANSWERED, {"user_id": FAN, "key": "k-1", "now": now}),
    ]
    for user_id, content in ((FAN, "Hongera"), (BANNED, "x"), (999, "nobody")):
        values = {"stream_id": stream_id, "user_id": user_id, "content": content}
        cases.append((_COMMENTER_CHECK, {**values, "now": now, "since": now - timedelta(60)}))
    for statement, params in cases:
        for _ in range(2):  # the first read plans the statement, the second reuses it
            rows = await runtime.reader.rows(statement, params)
            expected = await by_sqlalchemy(runtime, statement, params)
            assert [tuple(r) for r in rows] == [tuple(r) for r in expected]
            assert [type(v) for r in rows for v in r] == [type(v) for r in expected for v in r]
            for row, want in zip(rows, expected, strict=True):
                assert row._asdict() == want._asdict()  # read by name as well
    banned = {row.user_id: row.expires_at for row in await runtime.reader.rows(*cases[1])}
    assert banned[BANNED] is None
    assert banned[TIMED] is not None and banned[TIMED].tzinfo is not None
    assert banned[TIMED].utcoffset() == UTC.utcoffset(None)
    (answer,) = await runtime.reader.rows(*cases[2])
    assert answer.response == {"success": True, "data": {"id": 7, "names": ["a", "ü"]}}


async def test_a_bound_value_left_out_is_refused(runtime: Runtime) -> None:
    statement = select(User.id).where(User.id == bindparam("user_id"))
    with pytest.raises((ValueError, StatementError)):
        await runtime.reader.rows(statement, {})


async def test_reads_go_on_after_the_server_drops_every_connection(
    client: httpx.AsyncClient, auth: Any, runtime: Runtime
) -> None:
    if backend() != "postgresql":
        pytest.skip("held connections are PostgreSQL's (SQLite reads through its pool)")
    stream_id = await stream_with_restrictions(client, auth, runtime)
    params = {"stream_id": stream_id}
    before = await runtime.reader.rows(admission._FACTS, params)
    assert await kill_every_connection(runtime) >= 1  # the reader's, at least
    for _ in range(3):
        assert [tuple(r) for r in await runtime.reader.rows(admission._FACTS, params)] == [
            tuple(r) for r in before
        ]


async def test_close_gives_every_connection_back(
    client: httpx.AsyncClient, auth: Any, runtime: Runtime
) -> None:
    stream_id = await stream_with_restrictions(client, auth, runtime)
    pool = runtime.engine.sync_engine.pool
    for _ in range(5):
        await runtime.reader.rows(bans._BANS, {"stream_id": stream_id})
    if backend() == "postgresql":
        assert pool.checkedout() >= 1  # held between reads: no checkout per read
    await runtime.reader.close()
    assert pool.checkedout() == 0


async def test_a_read_running_at_close_gives_its_connection_back(runtime: Runtime) -> None:
    if backend() != "postgresql":
        pytest.skip("held connections are PostgreSQL's (SQLite reads through its pool)")
    pool = runtime.engine.sync_engine.pool
    slow = select(func.pg_sleep(0.3).label("slept"))
    running = asyncio.create_task(runtime.reader.rows(slow))
    await asyncio.sleep(0.1)  # the read is under way on a held connection
    await runtime.reader.close()
    assert len(await running) == 1
    for _ in range(50):  # the connection goes back in the background
        if pool.checkedout() == 0:
            break
        await asyncio.sleep(0.02)
    assert pool.checkedout() == 0


async def kill_every_connection(runtime: Runtime) -> int:
    url = make_url(runtime.settings.resolved_database_url)
    admin = await asyncpg.connect(
        user=url.username, host=url.host, port=url.port, database=url.database
    )
    try:
        killed: int = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    return killed


async def test_a_direct_write_is_never_made_twice(
    client: httpx.AsyncClient, auth: Any, runtime: Runtime
) -> None:
    """A batch written as one statement on a held connection: when that connection died,
    the caller hears it (a 503), the write is not silently made again, and the next works."""
    if backend() != "postgresql":
        pytest.skip("direct writes are PostgreSQL's (SQLite writes in a transaction)")
    stream_id = await stream_with_restrictions(client, auth, runtime)
    comment = PendingComment(stream_id, FAN, "once", runtime.clock.now())
    values = {**arrays([comment.row()], comment_writer._COLUMNS), "counted_at": comment.created_at}
    await runtime.reader.rows(admission._FACTS, {"stream_id": stream_id})  # one held

    async def idle_in_the_pool() -> None:
        async with runtime.engine.connect() as connection:
            await connection.execute(select(1))
            await asyncio.sleep(0.05)  # the others are taken meanwhile: three in the pool

    await asyncio.gather(*(idle_in_the_pool() for _ in range(3)))
    assert await kill_every_connection(runtime) >= 4
    with pytest.raises(ConnectionLost) as lost:
        await runtime.reader.write(comment_writer._INSERT_AND_COUNT, values)
    assert dependency_of(lost.value) == "the database"
    (written,) = await runtime.reader.write(comment_writer._INSERT_AND_COUNT, values)
    async with runtime.sessions() as session:
        stored = list(await session.scalars(select(StreamComment.id)))
        counted = await session.scalar(
            select(LiveStream.comments_count).where(LiveStream.id == stream_id)
        )
    assert stored == [written.id] and counted == 1


def test_the_drivers_own_errors_are_told_apart() -> None:
    """Statements run through asyncpg itself raise its errors, not SQLAlchemy's: a value the
    database cannot hold is the rows' fault (quarantined alone), a deadlock is tried again,
    anything else (the connection, a bug) is neither."""
    untranslatable = asyncpg.exceptions.UntranslatableCharacterError("NUL in text")
    foreign_key = asyncpg.exceptions.ForeignKeyViolationError("no such stream")
    deadlock = asyncpg.exceptions.DeadlockDetectedError("deadlock detected")
    assert is_data_error(untranslatable) and is_data_error(foreign_key)
    assert is_data_error(asyncpg.exceptions._base.DataError("invalid input for $1"))
    assert not is_data_error(deadlock) and is_deadlock(deadlock)
    assert not is_data_error(ValueError("a bug of ours")) and not is_deadlock(foreign_key)
    assert not is_data_error(asyncpg.exceptions.ConnectionDoesNotExistError("gone"))
