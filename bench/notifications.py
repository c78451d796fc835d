"""Notification benchmark: a streamer with `--followers` followers goes live; how long until
every push is handed to FCM?

    .venv/bin/python bench/notifications.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/notifications.py --quick          # 2,000 followers on SQLite
    .venv/bin/python bench/notifications.py --write-docs ... # also update docs/benchmarks.md

With a PostgreSQL URL it creates a database of its own beside the one named (dropped after).
Every follower has one device. The FCM side is bench/fcm_sink.py in its own process: it
accepts every message (the tests check the protocol; this measures the pipeline). The service
runs in process with the real FCM HTTP v1 sender (service-account OAuth2 included) against
it; the clock starts at `POST /streams/{id}/start` and stops when the sink has counted every
push.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from analytics import create_database, drop_database  # noqa: E402
from common import free_port, write_doc_block  # noqa: E402

from tajiri_live.app import create_app  # noqa: E402
from tajiri_live.core.migrations import upgrade  # noqa: E402
from tajiri_live.core.runtime import Runtime  # noqa: E402
from tajiri_live.core.settings import Settings  # noqa: E402
from tajiri_live.notifications import service  # noqa: E402
from tajiri_live.notifications.models import Device  # noqa: E402
from tajiri_live.users.models import Follow, User  # noqa: E402

SECRET = "bench-secret-" + "n" * 40
STREAMER = 1
CHUNK = 10_000


def service_account(directory: Path, port: int) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = directory / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "bench",
                "private_key_id": "bench",
                "private_key": pem,
                "client_email": "bench@bench.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": f"http://127.0.0.1:{port}/token",
            }
        )
    )
    return path


async def fill(runtime: Runtime, followers: int) -> None:
    now = runtime.clock.now()
    async with runtime.sessions() as session:
        ids = list(range(2, followers + 2))
        for first in range(0, len(ids), CHUNK):
            chunk = ids[first : first + CHUNK]
            await session.execute(
                insert(User), [{"id": i, "created_at": now, "updated_at": now} for i in chunk]
            )
            await session.execute(
                insert(Follow),
                [{"follower_id": i, "followed_id": STREAMER, "created_at": now} for i in chunk],
            )
            await session.execute(
                insert(Device),
                [
                    {
                        "user_id": i,
                        "token": f"bench-token-{i:08d}",
                        "platform": "android",
                        "locale": "en" if i % 3 == 0 else "sw",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in chunk
                ],
            )
        await session.commit()


async def run(
    args: argparse.Namespace, database_url: str, workdir: Path, port: int
) -> dict[str, Any]:
    settings = Settings(
        env="test",
        database_url=database_url,
        var_dir=workdir,
        jwt_secret=SECRET,
        run_jobs=False,
        push_sender="fcm",
        fcm_service_account_file=service_account(workdir, port),
        fcm_base_url=f"http://127.0.0.1:{port}",
        push_concurrency=args.concurrency,
        push_batch_size=args.batch,
    )
    app = create_app(settings, run_jobs=False)
    async with app.router.lifespan_context(app):
        services = app.state.services
        runtime: Runtime = services.runtime
        headers = {"Authorization": f"Bearer {runtime.tokens.encode(STREAMER)}"}
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as sink,
        ):
            created = await client.post("/api/streams", json={"title": "bench"}, headers=headers)
            stream_id = created.json()["data"]["id"]
            loaded = time.perf_counter()
            await fill(runtime, args.followers)
            fill_seconds = time.perf_counter() - loaded
            started = time.perf_counter()
            await client.post(f"/api/streams/{stream_id}/start", headers=headers)
            rows = await service.process_triggers(runtime)
            rows_at = time.perf_counter() - started
            handed = await service.deliver(runtime, services.push)
            total = time.perf_counter() - started
            accepted = (await sink.get("/count")).json()["accepted"]
    return {
        "fill_seconds": fill_seconds,
        "rows": rows,
        "rows_seconds": rows_at,
        "handed": handed,
        "accepted": accepted,
        "seconds": total,
    }


def report(result: dict[str, Any], args: argparse.Namespace, backend: str) -> str:
    rate = result["accepted"] / max(result["seconds"] - result["rows_seconds"], 1e-9)
    return (
        f"{args.followers:,} followers with a device each, on {backend} "
        f"(loaded in {result['fill_seconds']:.1f} s); {args.concurrency} FCM requests in "
        f"flight, batches of {args.batch}.\n\n"
        "| step | result |\n|---|---|\n"
        f"| `start` → {result['rows']:,} notification rows and outbox rows written | "
        f"{result['rows_seconds']:.1f} s |\n"
        f"| → every push handed to FCM (accepted by the sink: {result['accepted']:,}) | "
        f"**{result['seconds']:.1f} s** in all ({rate:,.0f} pushes/s while sending) |\n"
    )


def write_docs(block_text: str, args: argparse.Namespace) -> None:
    command = (
        f"bench/notifications.py --followers {args.followers} --concurrency {args.concurrency} "
        f"--batch {args.batch} --database-url postgresql+asyncpg://..."
    )
    write_doc_block("notifications", command, block_text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--followers", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--database-url", default=None, help="a PostgreSQL server; default SQLite")
    args = parser.parse_args()
    if args.quick:
        args.followers = 2_000
    workdir = Path(tempfile.mkdtemp(prefix="tajiri-notify-"))
    port = free_port()
    sink = subprocess.Popen([sys.executable, str(ROOT / "bench" / "fcm_sink.py"), str(port)])
    server_url = args.database_url
    database_url = (
        asyncio.run(create_database(server_url))
        if server_url
        else f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    )
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/count", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        upgrade(database_url)
        result = asyncio.run(run(args, database_url, workdir, port))
    finally:
        sink.terminate()
        sink.wait()
        if server_url:
            asyncio.run(drop_database(server_url, database_url))
    text = report(result, args, "PostgreSQL" if server_url else "SQLite")
    print(text)
    if args.write_docs:
        write_docs(text, args)
    if result["accepted"] != args.followers:
        raise SystemExit(f"FCM accepted {result['accepted']} of {args.followers} pushes")


if __name__ == "__main__":
    main()
