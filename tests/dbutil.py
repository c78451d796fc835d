"""Test databases: a migrated template per run, cloned per test (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from tajiri_live.core import migrations

PG_URL = os.environ.get("TAJIRI_TEST_DATABASE_URL") or None


def backend() -> str:
    return "postgresql" if PG_URL else "sqlite"


def _pg_admin_dsn(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def _pg_execute(statement: str) -> None:
    assert PG_URL
    connection = await asyncpg.connect(_pg_admin_dsn(PG_URL))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


class DatabaseFactory:
    """Creates empty or migrated databases for one test run and drops them afterwards."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._pg_databases: list[str] = []
        self._template: str | None = None

    def empty(self) -> str:
        if PG_URL:
            name = unique_name("tajiri_test")
            asyncio.run(_pg_execute(f'CREATE DATABASE "{name}"'))
            self._pg_databases.append(name)
            return _with_database(PG_URL, name)
        path = self.workdir / f"{unique_name('empty')}.db"
        return f"sqlite+aiosqlite:///{path}"

    def migrated(self) -> str:
        """A database at head, cloned from a template migrated once per run."""
        if self._template is None:
            self._template = self.empty()
            migrations.upgrade(self._template)
        if PG_URL:
            name = unique_name("tajiri_test")
            template = make_url(self._template).database
            asyncio.run(_pg_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
            self._pg_databases.append(name)
            return _with_database(PG_URL, name)
        source = Path(make_url(self._template).database or "")
        target = self.workdir / f"{unique_name('db')}.db"
        shutil.copyfile(source, target)
        return f"sqlite+aiosqlite:///{target}"

    def drop_all(self) -> None:
        for name in reversed(self._pg_databases):
            asyncio.run(_pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._pg_databases.clear()
