"""Migrations: empty -> head, revision 1 rows converted by the upgrade, head -> base, and
the models agree with the migrated schema."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from dbutil import DatabaseFactory
from tajiri_live.core import migrations
from tajiri_live.core.db import create_engine
from tajiri_live.models import Base


def run_sql(url: str, fn: Any) -> Any:
    async def go() -> Any:
        engine = create_engine(url)
        try:
            async with engine.begin() as connection:
                return await connection.run_sync(fn)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def table_names(url: str) -> set[str]:
    return set(run_sql(url, lambda c: sa.inspect(c).get_table_names()))


SEED_TABLES = {
    "live_streams",
    "stream_co_hosts",
    "stream_viewers",
    "stream_comments",
    "stream_gifts",
    "virtual_gifts",
    "stream_notifications",
    "stream_analytics",
    "users",
    "follows",
}


def test_empty_to_head_to_base(databases: DatabaseFactory) -> None:
    url = databases.empty()
    migrations.upgrade(url)
    assert table_names(url) >= SEED_TABLES
    gifts = run_sql(
        url, lambda c: c.execute(sa.text("SELECT count(*) FROM virtual_gifts")).scalar()
    )
    assert gifts >= 5
    migrations.downgrade(url, "base")
    assert table_names(url) - {"alembic_version"} == set()
    migrations.upgrade(url)  # and back up again
    assert table_names(url) >= SEED_TABLES


def test_models_and_migrations_agree(databases: DatabaseFactory) -> None:
    url = databases.empty()
    migrations.upgrade(url)

    def diff(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    assert run_sql(url, diff) == []


def _insert_revision_one_rows(connection: Connection) -> None:
    naive = connection.dialect.name == "sqlite"

    def ts(hour: int, minute: int = 0) -> datetime:
        value = datetime(2026, 1, 5, hour, minute, tzinfo=UTC)
        return value.replace(tzinfo=None) if naive else value

    connection.execute(
        sa.text(
            "INSERT INTO users (id, first_name, created_at, updated_at) VALUES (1, 'A', :t, :t)"
        ),
        {"t": ts(8)},
    )
    rows = [
        # id, status, started_at, ended_at, duration
        (1, "scheduled", None, None, None),
        (2, "live", ts(10), None, None),
        (3, "ended", ts(10), ts(11, 30), None),
        (4, "ended", None, ts(12), None),  # never started: it was called off
        (5, "ended", ts(10), ts(10, 10), 600),
    ]
    for sid, status, started, ended, duration in rows:
        connection.execute(
            sa.text(
                "INSERT INTO live_streams (id, user_id, stream_key, title, tags, status, "
                "started_at, ended_at, duration, created_at, updated_at) VALUES "
                "(:id, 1, :key, 'T', '[]', :status, :started, :ended, :duration, :t, :t)"
            ),
            {
                "id": sid,
                "key": f"key-{sid}",
                "status": status,
                "started": started,
                "ended": ended,
                "duration": duration,
                "t": ts(9),
            },
        )


def test_revision_one_rows_are_converted_by_the_upgrade(databases: DatabaseFactory) -> None:
    url = databases.empty()
    migrations.upgrade(url, "0001")
    run_sql(url, _insert_revision_one_rows)
    migrations.upgrade(url)

    def read(connection: Connection) -> dict[int, dict[str, Any]]:
        result = connection.execute(
            sa.text(
                "SELECT id, status, live_started_at IS NOT NULL AS has_live_start, "
                "cancelled_at IS NOT NULL AS has_cancel, duration FROM live_streams ORDER BY id"
            )
        )
        return {row.id: dict(row._mapping) for row in result}

    rows = run_sql(url, read)
    assert [rows[i]["status"] for i in range(1, 6)] == [
        "scheduled",
        "live",
        "ended",
        "cancelled",
        "ended",
    ]
    assert bool(rows[2]["has_live_start"]) and bool(rows[3]["has_live_start"])
    assert bool(rows[4]["has_cancel"]) and not bool(rows[4]["has_live_start"])
    assert rows[3]["duration"] == 90 * 60  # computed from its timestamps
    assert rows[5]["duration"] == 600  # kept

    # The new statuses are now accepted; and the downgrade folds them back.
    run_sql(
        url,
        lambda c: c.execute(sa.text("UPDATE live_streams SET status = 'pre_live' WHERE id = 1")),
    )
    migrations.downgrade(url, "0001")
    statuses = run_sql(
        url,
        lambda c: [r[0] for r in c.execute(sa.text("SELECT status FROM live_streams ORDER BY id"))],
    )
    assert statuses == ["scheduled", "live", "ended", "ended", "ended"]
