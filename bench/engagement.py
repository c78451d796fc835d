"""Engagement benchmark: comments and gifts through the real service.

    .venv/bin/python bench/engagement.py --database-url postgresql+asyncpg://.../tajiri_bench
    .venv/bin/python bench/engagement.py --quick            # a short smoke on SQLite

Starts `tajiri-live serve` (Redis for the broker and limits), then:
1. comments: `--clients` concurrent HTTP clients, each its own user, post for `--seconds`;
   a WebSocket viewer counts the `new_comment` frames it receives (persisted *and* fanned out);
2. gifts: the same number of clients, each a funded sender, send gifts for `--seconds`;
3. super chats: the same senders send super chats (1,000 TZS, moderated, paid like gifts);
   afterwards the ledger must balance to the coin.
Per-user rate limits are lifted for the run (the point is throughput, not the limiter) and
every comment text is unique (so the spam filter lets it through).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from common import percentile, write_doc_block  # noqa: E402
from fanout import SECRET, Server, forget_keys, start_tajiri  # noqa: E402

from tajiri_live.core.auth import TokenCodec  # noqa: E402
from tajiri_live.core.db import create_engine, create_sessionmaker  # noqa: E402
from tajiri_live.core.settings import Settings  # noqa: E402
from tajiri_live.wallet.service import ledger_is_balanced  # noqa: E402


async def hammer(base: str, clients: int, seconds: float, request: Any) -> dict[str, Any]:
    """`clients` loops calling `request(http, index, n)` until time is up."""
    latencies: list[float] = []
    codes: dict[int, int] = {}
    deadline = time.monotonic() + seconds
    # aiohttp: httpx's pool costs more CPU than the server it measures at this concurrency.
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as http:

        async def loop(index: int) -> None:
            n = 0
            while time.monotonic() < deadline:
                started = time.perf_counter()
                code = await request(http, index, n)
                latencies.append(time.perf_counter() - started)
                codes[code] = codes.get(code, 0) + 1
                n += 1

        started = time.monotonic()
        await asyncio.gather(*(loop(i) for i in range(clients)))
        elapsed = time.monotonic() - started
    return summary(latencies, codes, elapsed)


def summary(latencies: list[float], codes: dict[int, int], elapsed: float) -> dict[str, Any]:
    ok = sum(v for k, v in codes.items() if 200 <= k < 300)
    return {
        "ok": ok,
        "codes": codes,
        "per_second": ok / elapsed,
        "p50_ms": 1000 * percentile(latencies, 0.5),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "mean_ms": 1000 * statistics.fmean(latencies) if latencies else 0.0,
    }


async def paced(
    base: str, clients: int, seconds: float, interval: float, request: Any
) -> dict[str, Any]:
    """`clients` each calling `request` once per `interval` (spread evenly): the latency a
    room sees at a given load, rather than the most the server can take. Open loop: each
    latency counts from when the request was due, so a request sent late behind a slow
    answer is charged its wait (no coordinated omission)."""
    latencies: list[float] = []
    codes: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as http:
        started = time.monotonic()

        async def loop(index: int) -> None:
            n = 0
            next_at = started + interval * index / clients
            while next_at < started + seconds:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                code = await request(http, index, n)
                latencies.append(time.monotonic() - next_at)
                codes[code] = codes.get(code, 0) + 1
                n += 1
                next_at += interval

        await asyncio.gather(*(loop(i) for i in range(clients)))
        elapsed = time.monotonic() - started
    return summary(latencies, codes, elapsed)


def comment_poster(stream_id: int, headers: list[dict[str, str]]) -> Any:
    """A `hammer` request: client `index` posts its `n`-th comment, a text never said before."""

    async def comment(http: aiohttp.ClientSession, index: int, n: int) -> int:
        async with http.post(
            f"/api/streams/{stream_id}/comments",
            headers=headers[index],
            json={"content": f"Hongera {index}-{n}-{uuid.uuid4().hex[:6]}"},
        ) as answer:
            await answer.read()
            return answer.status

    return comment


class FrameCounter:
    """A socket viewer of the stream counting the frames of one event, while in `async with`."""

    def __init__(self, port: int, stream_id: int, event: str) -> None:
        self.url = f"ws://127.0.0.1:{port}/streams/{stream_id}"
        self.needle = f'"event":"{event}"'
        self.received = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> FrameCounter:
        self._task = asyncio.create_task(self._watch())
        await asyncio.sleep(0.5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.sleep(1.0)  # the last frames in flight
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _watch(self) -> None:
        for attempt in range(5):  # the server may still be busy with the set-up requests
            try:
                ws = await websockets.connect(self.url, max_size=None, open_timeout=30)
                break
            except (OSError, TimeoutError, websockets.InvalidHandshake) as error:
                print(f"viewer connect attempt {attempt + 1} failed: {error!r}", file=sys.stderr)
                await asyncio.sleep(1)
        else:
            raise SystemExit("the socket viewer could not connect")
        async with ws:
            while not self._stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                self.received += str(raw).count(self.needle)


async def run(args: argparse.Namespace, port: int, database_url: str) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    tokens = TokenCodec(Settings(jwt_secret=SECRET))
    owner = {"Authorization": f"Bearer {tokens.encode(1)}"}
    admin = {"Authorization": f"Bearer {tokens.encode(2, admin=True)}"}
    headers = [{"Authorization": f"Bearer {tokens.encode(1000 + i)}"} for i in range(args.clients)]
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        sid = (await http.post("/api/streams", json={"title": "bench"}, headers=owner)).json()[
            "data"
        ]["id"]
        await http.post(f"/api/streams/{sid}/start", headers=owner)
        for index in range(args.clients):
            await http.post(
                "/api/wallet/credit", headers=admin, json={"user_id": 1000 + index, "amount": 10**9}
            )
        gift_id = (await http.get("/api/streams/gifts")).json()["data"][0]["id"]

    viewer = FrameCounter(port, sid, "new_comment")

    comment = comment_poster(sid, headers)
    run_id = uuid.uuid4().hex  # keys live 24 h: a new run's never match an earlier run's

    async def gift(http: aiohttp.ClientSession, index: int, n: int) -> int:
        async with http.post(
            f"/api/streams/{sid}/gifts",
            json={"gift_id": gift_id},
            headers={**headers[index], "Idempotency-Key": f"{run_id}-{index}-{n}"},
        ) as answer:
            await answer.read()
            return answer.status

    async def super_chat(http: aiohttp.ClientSession, index: int, n: int) -> int:
        async with http.post(
            f"/api/streams/{sid}/super-chats",
            json={"message": f"Hongera {index}-{n}", "amount": 1000.0},
            headers={**headers[index], "Idempotency-Key": f"sc-{run_id}-{index}-{n}"},
        ) as answer:
            await answer.read()
            return answer.status

    async with viewer:
        comments = await hammer(base, args.clients, args.seconds, comment)
    comments["fanned_out"] = viewer.received
    # The default limit is one comment per user per 3 s: a room of `clients` active
    # commenters offers at most clients / 3 comments a second.
    at_limit = await paced(base, args.clients, args.seconds, 3.0, comment)
    gifts = await hammer(base, args.clients, args.seconds, gift)
    chats = await hammer(base, args.clients, args.seconds, super_chat)

    engine = create_engine(database_url)
    async with create_sessionmaker(engine)() as session:
        gifts["ledger_balanced"] = await ledger_is_balanced(session)
    await engine.dispose()
    return {"comments": comments, "at_limit": at_limit, "gifts": gifts, "super_chats": chats}


def report(result: dict[str, Any], args: argparse.Namespace, backend: str) -> str:
    c, g, p, s = result["comments"], result["gifts"], result["at_limit"], result["super_chats"]
    return (
        f"| what ({args.clients} concurrent clients, {backend}, {args.workers} worker(s)) "
        f"| per second | p50 ms | p99 ms "
        f"| check |\n|---|---|---|---|---|\n"
        f"| comments stored and fanned out | {c['per_second']:,.0f} | {c['p50_ms']:.1f} "
        f"| {c['p99_ms']:.1f} | {c['ok']:,} stored, {c['fanned_out']:,} received by a socket "
        f"viewer; answers {c['codes']} |\n"
        f"| comments, each client at the rate limit (1 per 3 s) | {p['per_second']:,.0f} "
        f"| {p['p50_ms']:.1f} | {p['p99_ms']:.1f} | answers {p['codes']} |\n"
        f"| gift transactions | {g['per_second']:,.0f} | {g['p50_ms']:.1f} | {g['p99_ms']:.1f} "
        f"| ledger balanced: {'yes' if g['ledger_balanced'] else 'NO'}; answers {g['codes']} |\n"
        f"| super chat transactions | {s['per_second']:,.0f} | {s['p50_ms']:.1f} "
        f"| {s['p99_ms']:.1f} | the same ledger check; answers {s['codes']} |\n"
    )


def serving_env(workdir: Path, prefix: str, database_url: str, redis_url: str) -> dict[str, str]:
    """The server's settings for a throughput run: per-user rate limits lifted."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAJIRI_")}
    env.update(
        {
            "TAJIRI_VAR_DIR": str(workdir / "var"),
            "TAJIRI_JWT_SECRET": SECRET,
            "TAJIRI_DATABASE_URL": database_url,
            "TAJIRI_REDIS_URL": redis_url,
            "TAJIRI_REDIS_PREFIX": prefix,
            "TAJIRI_LOG_LEVEL": "warning",
            "TAJIRI_COMMENT_LIMIT": "100000000",
            "TAJIRI_GIFT_LIMIT": "100000000",
            "TAJIRI_SUPER_CHAT_LIMIT": "100000000",
        }
    )
    return env


@contextmanager
def bench_server(
    database_url: str | None,
    redis_url: str,
    *,
    workers: int = 1,
    settings: Iterable[str] = (),
) -> Iterator[tuple[Server, str]]:
    """A migrated `serve` process for a throughput run (SQLite in a temporary folder unless a
    database is named; `settings` as `TAJIRI_X=V`), and its database's URL; its Redis keys go
    with it."""
    workdir = Path(tempfile.mkdtemp(prefix="tajiri-bench-"))
    prefix = f"tajiri-bench:{uuid.uuid4().hex[:8]}:"
    database_url = database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    env = serving_env(workdir, prefix, database_url, redis_url)
    env.update(dict(item.split("=", 1) for item in settings))
    migrate(env, workdir)
    server = start_tajiri(env, workdir, workers)
    try:
        yield server, database_url
    finally:
        server.stop()
        asyncio.run(forget_keys(redis_url, prefix))


def migrate(env: dict[str, str], workdir: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "tajiri_live", "migrate"],
        env=env,
        check=True,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
    )


def closed_loop_arguments(description: str) -> argparse.ArgumentParser:
    """The options every closed-loop benchmark takes (`--quick`: 20 clients for 2 s)."""
    parser = argparse.ArgumentParser(description=description.split("\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--database-url", default=os.environ.get("TAJIRI_BENCH_DATABASE_URL"))
    parser.add_argument(
        "--redis-url", default=os.environ.get("TAJIRI_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--quick", action="store_true", help="small, short smoke run")
    parser.add_argument("--write-docs", action="store_true")
    return parser


def closed_loop_options(parser: argparse.ArgumentParser) -> argparse.Namespace:
    args = parser.parse_args()
    if args.quick:
        args.clients, args.seconds = 20, 2.0
    return args


def main() -> None:
    parser = closed_loop_arguments(__doc__)
    parser.add_argument("--workers", type=int, default=1, help="tajiri-live serve --workers")
    args = closed_loop_options(parser)
    with bench_server(args.database_url, args.redis_url, workers=args.workers) as (
        server,
        database_url,
    ):
        result = asyncio.run(run(args, server.port, database_url))
    backend = "PostgreSQL" if database_url.startswith("postgresql") else "SQLite"
    text = report(result, args, backend)
    print(text)
    print(json.dumps(result))
    if args.write_docs:
        command = f"bench/engagement.py --clients {args.clients} --seconds {args.seconds:g}"
        write_doc_block("engagement", command, text, where=f" on {backend}")
    if not result["gifts"]["ledger_balanced"]:
        raise SystemExit("the ledger does not balance")
    if result["comments"]["fanned_out"] < result["comments"]["ok"]:
        raise SystemExit("some stored comments never reached the socket viewer")


if __name__ == "__main__":
    main()
