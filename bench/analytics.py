"""Analytics benchmark: `GET /streams/{id}/analytics` on a stream with a big audience.

    .venv/bin/python bench/analytics.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/analytics.py --quick          # a small smoke (SQLite unless a URL)
    .venv/bin/python bench/analytics.py --write-docs ... # also update docs/benchmarks.md

With a PostgreSQL URL it creates a database of its own next to the one named (and drops it
afterwards), migrates it, writes one stream with `--viewers` viewer sessions (joins and leaves
spread over a three-hour stream, 20 % anonymous, ten regions), `--snapshots` live snapshots
and a thousand gifts, then calls the endpoint through the real application (in process, an
httpx ASGI client, the owner's token) `--requests` times: while the stream is live (the report
computed in SQL on every call) and after the post-stream job stored it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, text, update
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from common import percentile, write_doc_block  # noqa: E402

from tajiri_live.analytics.jobs import generate_reports  # noqa: E402
from tajiri_live.analytics.models import StreamAnalytics  # noqa: E402
from tajiri_live.app import create_app  # noqa: E402
from tajiri_live.core.clock import ManualClock  # noqa: E402
from tajiri_live.core.migrations import upgrade  # noqa: E402
from tajiri_live.core.runtime import Runtime  # noqa: E402
from tajiri_live.core.settings import Settings  # noqa: E402
from tajiri_live.gifts.models import StreamGift  # noqa: E402
from tajiri_live.streams.models import LiveStream, StreamViewer  # noqa: E402
from tajiri_live.streams.service import finish_ending  # noqa: E402
from tajiri_live.users.models import User  # noqa: E402

SECRET = "bench-secret-" + "a" * 40
START = datetime(2026, 11, 1, 18, 0, tzinfo=UTC)
LENGTH = 3 * 3600
REGIONS = ["Dar es Salaam", "Arusha", "Mwanza", "Dodoma", "Mbeya", "Zanzibar", "Tanga",
           "Morogoro", "Nairobi", "Kampala"]  # fmt: skip
CHUNK = 10_000


async def create_database(server_url: str) -> str:
    """A fresh database beside the one named in `server_url`; returns its URL."""
    import asyncpg

    url = make_url(server_url)
    name = f"tajiri_bench_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return url.set(database=name).render_as_string(hide_password=False)


async def drop_database(server_url: str, database_url: str) -> None:
    import asyncpg

    url = make_url(server_url)
    connection = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        name = make_url(database_url).database
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def fill(runtime: Runtime, stream_id: int, viewers: int, snapshots: int) -> None:
    rng = random.Random(7)
    users = max(1, viewers // 5)
    async with runtime.sessions() as session:
        for first in range(0, users, CHUNK):
            await session.execute(
                insert(User),
                [
                    {
                        "id": 1000 + i,
                        "first_name": f"viewer{i}",
                        "created_at": START,
                        "updated_at": START,
                    }
                    for i in range(first, min(users, first + CHUNK))
                ],
            )
        rows = []
        for _ in range(viewers):
            joined = rng.uniform(-300, LENGTH - 60)
            stay = rng.expovariate(1 / 900)
            left = joined + stay if joined + stay < LENGTH else None
            rows.append(
                {
                    "stream_id": stream_id,
                    "user_id": None if rng.random() < 0.2 else 1000 + rng.randrange(users),
                    "joined_at": START + timedelta(seconds=joined),
                    "left_at": None if left is None else START + timedelta(seconds=left),
                    "watch_duration": 0 if left is None else int(stay),
                    "region": rng.choice([*REGIONS, None]),
                    "created_at": START,
                }
            )
        for first in range(0, len(rows), CHUNK):
            await session.execute(insert(StreamViewer), rows[first : first + CHUNK])
        step = LENGTH / max(1, snapshots)
        snaps = [
            {
                "stream_id": stream_id,
                "recorded_at": START + timedelta(seconds=i * step),
                "viewers_count": rng.randrange(viewers // 4 + 1),
                "likes_count": i,
                "comments_count": 2 * i,
                "gifts_count": i // 10,
                "data": {"joins": 3, "leaves": 2},
                "created_at": START,
            }
            for i in range(snapshots)
        ]
        for first in range(0, len(snaps), CHUNK):
            await session.execute(insert(StreamAnalytics), snaps[first : first + CHUNK])
        await session.execute(
            insert(StreamGift),
            [
                {
                    "stream_id": stream_id,
                    "sender_id": 1000 + rng.randrange(users),
                    "gift_id": 1,
                    "quantity": 1,
                    "total_value": 100,
                    "creator_amount": 70,
                    "created_at": START,
                }
                for _ in range(1000)
            ],
        )
        await session.execute(
            update(LiveStream)
            .where(LiveStream.id == stream_id)
            .values(likes_count=4000, comments_count=12000)
        )
        await session.commit()
        if runtime.settings.resolved_database_url.startswith("postgresql"):
            await session.execute(text("ANALYZE"))


async def timed(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], n: int
) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        response = await client.get(path, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return samples


async def run(args: argparse.Namespace, database_url: str, workdir: Path) -> dict[str, Any]:
    settings = Settings(
        env="test", database_url=database_url, var_dir=workdir, jwt_secret=SECRET, run_jobs=False
    )
    clock = ManualClock(START)
    app = create_app(settings, clock=clock, run_jobs=False)
    async with app.router.lifespan_context(app):
        runtime: Runtime = app.state.runtime
        owner = {"Authorization": f"Bearer {runtime.tokens.encode(1)}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            created = await client.post("/api/streams", json={"title": "bench"}, headers=owner)
            stream_id = int(created.json()["data"]["id"])
            await client.post(f"/api/streams/{stream_id}/start", headers=owner)
            filled = time.perf_counter()
            await fill(runtime, stream_id, args.viewers, args.snapshots)
            fill_seconds = time.perf_counter() - filled
            clock.set(START + timedelta(seconds=LENGTH))
            path = f"/api/streams/{stream_id}/analytics"
            cache = app.state.analytics_cache
            ttl, cache.ttl_seconds = cache.ttl_seconds, 0.0
            await timed(client, path, owner, 3)  # warm the connection pool
            live = await timed(client, path, owner, args.requests)
            cache.ttl_seconds = ttl
            cached = await timed(client, path, owner, args.requests)
            body = (await client.get(path, headers=owner)).json()["data"]
            await client.post(f"/api/streams/{stream_id}/end", headers=owner)
            clock.advance(seconds=settings.outro_seconds + 1)
            await finish_ending(runtime)
            await generate_reports(runtime)
            stored = await timed(client, path, owner, args.requests)
    return {
        "fill_seconds": fill_seconds,
        "live": live,
        "cached": cached,
        "stored": stored,
        "unique": body["unique_viewers"],
        "points": len(body["retention_data"]),
        "timeline": len(body["timeline"]),
    }


def report(result: dict[str, Any], args: argparse.Namespace, backend: str) -> str:
    lines = [
        f"{args.viewers:,} viewer sessions, {args.snapshots:,} snapshots, 1,000 gifts on "
        f"{backend}; {args.requests} sequential requests each (loaded in "
        f"{result['fill_seconds']:.1f} s).",
        "",
        "| path | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|",
    ]
    for name, key in (
        ("live stream, computed in SQL on every request (cache off)", "live"),
        ("live stream, the endpoint with its 5 s report cache (the default)", "cached"),
        ("ended stream: the stored report", "stored"),
    ):
        samples = result[key]
        lines.append(
            f"| {name} | {percentile(samples, 0.5):.1f} | {percentile(samples, 0.99):.1f} "
            f"| {max(samples):.1f} |"
        )
    lines += [
        "",
        f"The answer: {result['unique']:,} unique viewers, a {result['points']}-point retention "
        f"curve, a {result['timeline']}-point viewers-over-time series.",
    ]
    return "\n".join(lines) + "\n"


def write_docs(text_block: str, args: argparse.Namespace) -> None:
    command = (
        f"bench/analytics.py --viewers {args.viewers} --snapshots {args.snapshots} "
        f"--requests {args.requests} --database-url postgresql+asyncpg://..."
    )
    write_doc_block("analytics", command, text_block)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=100_000)
    parser.add_argument("--snapshots", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("TAJIRI_BENCH_DATABASE_URL"),
        help="a PostgreSQL server (a database is created beside it); default SQLite",
    )
    args = parser.parse_args()
    if args.quick:
        args.viewers, args.snapshots, args.requests = 5_000, 500, 10
    workdir = Path(tempfile.mkdtemp(prefix="tajiri-analytics-"))
    server_url = args.database_url
    if server_url:
        database_url = asyncio.run(create_database(server_url))
        backend = "PostgreSQL"
    else:
        database_url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        backend = "SQLite"
    try:
        upgrade(database_url)
        result = asyncio.run(run(args, database_url, workdir))
    finally:
        if server_url:
            asyncio.run(drop_database(server_url, database_url))
    text_block = report(result, args, backend)
    print(text_block)
    if args.write_docs:
        write_docs(text_block, args)
    if result["unique"] <= 0 or result["points"] < 2:
        raise SystemExit("the report came back empty")


if __name__ == "__main__":
    main()
