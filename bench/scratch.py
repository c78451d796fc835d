"""A benchmark run's own surroundings: a work folder, a Redis prefix, and a database that
exists only for the run (PostgreSQL: created, migrated and dropped after; else SQLite)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fanout import SECRET, forget_keys
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tajiri_live.core.settings import Settings


@dataclass(frozen=True)
class Scratch:
    env: dict[str, str]  # what `tajiri-live serve` runs with
    workdir: Path
    url: str  # the run's database


async def admin(url: str, statement: str) -> None:
    """CREATE or DROP a database through the server named by `url` (outside a transaction)."""
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@contextlib.contextmanager
def scratch(args: argparse.Namespace, **settings: str) -> Iterator[Scratch]:
    """The run's environment (`settings`, then `--set`), on `--database-url` or SQLite, and
    Redis under a prefix of its own; sets `args.database` to the database's name."""
    workdir = Path(tempfile.mkdtemp(prefix="tajiri-bench-"))
    prefix = f"tajiri-bench:{uuid.uuid4().hex[:8]}:"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAJIRI_")}
    env.update(
        {
            "TAJIRI_VAR_DIR": str(workdir / "var"),
            "TAJIRI_JWT_SECRET": SECRET,
            "TAJIRI_REDIS_URL": args.redis_url,
            "TAJIRI_REDIS_PREFIX": prefix,
            "TAJIRI_LOG_LEVEL": "warning",
            **settings,
        }
    )
    env.update(dict(item.split("=", 1) for item in args.set))
    database: str | None = None
    try:
        if args.database_url:
            url = args.database_url
            if url.startswith("postgresql"):  # a database of the run's own, dropped after it
                database = f"tajiri_bench_{uuid.uuid4().hex[:10]}"
                asyncio.run(admin(url, f'CREATE DATABASE "{database}"'))
                url = make_url(url).set(database=database).render_as_string(hide_password=False)
            env["TAJIRI_DATABASE_URL"] = url
            args.database = "PostgreSQL" if url.startswith("postgresql") else "other"
            subprocess.run(
                [sys.executable, "-m", "tajiri_live", "migrate"],
                env=env,
                check=True,
                cwd=workdir,
                stdout=subprocess.DEVNULL,
            )
        else:
            url = Settings(var_dir=workdir / "var").resolved_database_url
            args.database = "SQLite"
        yield Scratch(env, workdir, url)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        asyncio.run(forget_keys(args.redis_url, prefix))
        if database is not None:
            drop = f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'
            asyncio.run(admin(args.database_url, drop))
