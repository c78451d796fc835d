"""PK battle benchmark: many concurrent gifts and super chats to both sides of a battle, the
money and the scores checked to the coin, and the last score every viewer of each side heard.

    .venv/bin/python bench/battles.py --database-url postgresql+asyncpg://...   # as recorded
    .venv/bin/python bench/battles.py --quick                                   # a smoke (CI)
    ... --write-docs                                                            # docs/benchmarks.md

Starts `tajiri-live serve` on Redis and the database, starts a battle between two live
streams over REST, connects viewers to each side's socket, and sends the payments from many
fans at once: every fourth a super chat of 1,000 TZS, the rest roses (each fan can pay for
two thirds of what it sends: the rest must be refused with a 402).
Then checks: no wallet below zero, the ledger sums to zero, each side's score equals the coin
value its stream received, and the last `battle_score_update` every viewer of each side heard
equals the stored scores from that side's point of view (and so does `battle_ended`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import websockets
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from common import percentile, write_doc_block  # noqa: E402
from fanout import SECRET, Server, cpu_seconds, start_tajiri  # noqa: E402
from scratch import scratch  # noqa: E402

from tajiri_live.battles.models import StreamBattle  # noqa: E402
from tajiri_live.core.auth import TokenCodec  # noqa: E402
from tajiri_live.core.db import create_engine, create_sessionmaker  # noqa: E402
from tajiri_live.core.settings import Settings  # noqa: E402
from tajiri_live.wallet.models import MINT, Wallet  # noqa: E402
from tajiri_live.wallet.service import ledger_is_balanced  # noqa: E402

DOC_BLOCK = "battles"
ASHA, BARAKA, ADMIN, FIRST_FAN, FIRST_VIEWER = 1, 2, 9, 10_000, 20_000
ROSE = 100  # the seeded rose's price in coins
SUPER_CHAT_TZS = 1_000  # the smallest super chat; coins at the default TAJIRI_COINS_PER_TZS=1
SUPER_CHAT_EVERY = 4  # every fourth payment is a super chat
# The bar (issue 19): 1,000 concurrent gifts during a battle on PostgreSQL, exact.
BAR_GIFTS = 1000
CODEC = TokenCodec(Settings(jwt_secret=SECRET))


def bearer(user_id: int, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {CODEC.encode(user_id, **claims)}"}


class SideViewer:
    """A viewer's socket on one side: the last score update and the end it heard."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.last_score: tuple[int, int] | None = None
        self.ended: dict[str, Any] | None = None
        self.score_frames = 0
        self._heard = asyncio.Condition()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.connection:
            frame = json.loads(raw)
            async with self._heard:
                if frame["event"] == "battle_score_update":
                    self.score_frames += 1
                    self.last_score = (frame["data"]["my_score"], frame["data"]["opponent_score"])
                elif frame["event"] == "battle_ended":
                    self.ended = frame["data"]
                self._heard.notify_all()

    async def hears(self, score: tuple[int, int], within: float) -> None:
        """Wait (up to `within` seconds) until the last score heard is `score`."""

        async def wait() -> None:
            async with self._heard:
                await self._heard.wait_for(lambda: self.last_score == score)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wait(), max(within, 0.01))

    async def close(self) -> None:
        await self.connection.close()
        await self.task


async def start_battle(api: httpx.AsyncClient) -> tuple[int, int, int, int]:
    """Two live streams in a battle: (stream a, stream b, battle id, rose gift id)."""
    streams = []
    for owner in (ASHA, BARAKA):
        created = await api.post("/streams", json={"title": "bench"}, headers=bearer(owner))
        stream_id = int(created.json()["data"]["id"])
        (await api.post(f"/streams/{stream_id}/start", headers=bearer(owner))).raise_for_status()
        streams.append(stream_id)
    a, b = streams
    invited = await api.post(
        f"/streams/{a}/battles/invite", json={"opponent_stream_id": b}, headers=bearer(ASHA)
    )
    invited.raise_for_status()
    battle_id = int(invited.json()["battle"]["id"])
    (await api.post(f"/battles/{battle_id}/accept", headers=bearer(BARAKA))).raise_for_status()
    gifts = (await api.get("/streams/gifts")).json()["data"]
    return a, b, battle_id, int(next(g for g in gifts if g["slug"] == "rose")["id"])


def is_super_chat(number: int) -> bool:
    return number % SUPER_CHAT_EVERY == SUPER_CHAT_EVERY - 1


def price(number: int) -> int:
    return SUPER_CHAT_TZS if is_super_chat(number) else ROSE


async def fund(api: httpx.AsyncClient, args: argparse.Namespace) -> None:
    """Each fan gets two thirds of what its payments would cost."""
    owed = [0] * args.fans
    for number in range(args.gifts):
        owed[number % args.fans] += price(number)
    for index, fan in enumerate(range(FIRST_FAN, FIRST_FAN + args.fans)):
        await api.get("/streams", headers=bearer(fan))  # the fan's user row
        credited = await api.post(
            "/wallet/credit",
            json={"user_id": fan, "amount": owed[index] * 2 // 3},
            headers=bearer(ADMIN, admin=True),
        )
        credited.raise_for_status()


async def send_gifts(
    api: httpx.AsyncClient, args: argparse.Namespace, a: int, b: int, rose: int
) -> tuple[list[int], list[float]]:
    """Every payment at once (at most `--concurrency` requests in flight): status codes and
    each one's time to its answer (a 503 is retried, as the client is told)."""
    gate = asyncio.Semaphore(args.concurrency)

    async def one(number: int) -> tuple[int, float]:
        fan = FIRST_FAN + number % args.fans
        stream_id = (a, b)[number % 3 == 0]  # two thirds to side 1, a third to side 2
        headers = {**bearer(fan), "Idempotency-Key": uuid.uuid4().hex}
        if is_super_chat(number):
            url, body = (
                f"/streams/{stream_id}/super-chats",
                {
                    "message": f"Hongera {number}",
                    "amount": SUPER_CHAT_TZS,
                },
            )
        else:
            url, body = f"/streams/{stream_id}/gifts", {"gift_id": rose}
        async with gate:
            started = time.monotonic()
            while True:
                answer = await api.post(url, json=body, headers=headers)
                if answer.status_code != 503:
                    return answer.status_code, time.monotonic() - started
                await asyncio.sleep(0.2)

    results = await asyncio.gather(*(one(n) for n in range(args.gifts)))
    return [code for code, _ in results], [seconds for _, seconds in results]


async def stored(url: str, battle_id: int, a: int, b: int) -> dict[str, Any]:
    """What the database holds after the storm."""
    from tajiri_live.streams.models import LiveStream
    from tajiri_live.superchats.models import StreamSuperChat

    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            battle = await session.get(StreamBattle, battle_id)
            assert battle is not None
            values = dict(
                (
                    await session.execute(
                        select(LiveStream.id, LiveStream.gifts_value).where(
                            LiveStream.id.in_([a, b])
                        )
                    )
                ).all()
            )
            chats = dict(
                (
                    await session.execute(
                        select(StreamSuperChat.stream_id, func.sum(StreamSuperChat.coins))
                        .where(StreamSuperChat.stream_id.in_([a, b]))
                        .group_by(StreamSuperChat.stream_id)
                    )
                ).all()
            )
            lowest = await session.scalar(
                select(func.min(Wallet.balance)).where(Wallet.kind != MINT)
            )
            return {
                "scores": (int(battle.score_1), int(battle.score_2)),
                # gifts' coin value and super chats' coins, per side
                "received": tuple(int(values[s]) + int(chats.get(s) or 0) for s in (a, b)),
                "lowest_balance": int(lowest or 0),
                "balanced": await ledger_is_balanced(session),
            }
    finally:
        await engine.dispose()


async def run(args: argparse.Namespace, server: Server, url: str) -> dict[str, Any]:
    base = f"http://127.0.0.1:{server.port}"
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=f"{base}/api", timeout=120, limits=limits) as api:
        a, b, battle_id, rose = await start_battle(api)
        viewers: dict[int, list[SideViewer]] = {a: [], b: []}
        for index in range(2 * args.viewers):
            side = (a, b)[index % 2]
            path = f"/streams/{side}?token={CODEC.encode(FIRST_VIEWER + index)}"
            viewers[side].append(
                SideViewer(await websockets.connect(f"ws://127.0.0.1:{server.port}{path}"))
            )
        await fund(api, args)
        cpu_before = cpu_seconds(server.process.pid)
        started = time.monotonic()
        codes, latencies = await send_gifts(api, args, a, b, rose)
        storm_s = time.monotonic() - started
        state = await stored(url, battle_id, a, b)
        expected = {a: state["scores"], b: state["scores"][::-1]}
        deadline = time.monotonic() + 15
        for side in viewers:
            for viewer in viewers[side]:
                await viewer.hears(expected[side], deadline - time.monotonic())
        heard_s = time.monotonic() - started
        cpu = cpu_seconds(server.process.pid) - cpu_before
        differ = sum(v.last_score != expected[side] for side in viewers for v in viewers[side])
        frames = [v.score_frames for side in viewers for v in viewers[side]]
        (await api.post(f"/battles/{battle_id}/end", headers=bearer(ASHA))).raise_for_status()
        await asyncio.sleep(1.0)
        wrong_end = sum(
            v.ended is None or (v.ended["my_score"], v.ended["opponent_score"]) != expected[side]
            for side in viewers
            for v in viewers[side]
        )
        for side in viewers:
            for viewer in viewers[side]:
                await viewer.close()
    paid = [number for number, code in enumerate(codes) if code == 201]
    return {
        **state,
        "paid_coins": sum(price(number) for number in paid),
        "super_chats": sum(is_super_chat(number) for number in paid),
        "sent": codes.count(201),
        "refused": codes.count(402),
        "other": len(codes) - codes.count(201) - codes.count(402),
        "storm_s": storm_s,
        "heard_s": heard_s,
        "cpu_s": cpu,
        "p50_ms": 1000 * percentile(latencies, 0.5),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "heard_disagreements": differ,
        "wrong_end": wrong_end,
        "frames_per_viewer": sum(frames) / max(len(frames), 1),
    }


def exact(row: dict[str, Any]) -> bool:
    return (
        row["balanced"]
        and row["lowest_balance"] >= 0
        and row["scores"] == row["received"]
        and sum(row["received"]) == row["paid_coins"]
        and row["other"] == 0
        and not row["heard_disagreements"]
        and not row["wrong_end"]
    )


def report(row: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"{args.gifts:,} payments (every {SUPER_CHAT_EVERY}th a super chat) from {args.fans} "
        f"fans to both sides of a battle ({args.database}, {args.concurrency} requests in "
        f"flight), {args.viewers} viewers a side: {row['sent']:,} paid "
        f"({row['super_chats']:,} super chats), {row['refused']:,} refused for want of coins "
        f"(402), {row['other']} other answers; {row['storm_s']:.1f} s "
        f"({row['sent'] / max(row['storm_s'], 1e-9):.0f} paid/s).",
        f"Money: ledger sums to zero: {'yes' if row['balanced'] else 'NO'}; lowest balance "
        f"{row['lowest_balance']}; scores {row['scores']} = coins received "
        f"{row['received']}: {'yes' if row['scores'] == row['received'] else 'NO'}.",
        f"Last `battle_score_update` every viewer of each side heard equal to the stored "
        f"scores from its side: {'yes' if not row['heard_disagreements'] else 'NO'} "
        f"({row['heard_disagreements']} differ; all heard {row['heard_s']:.1f} s after the "
        f"first payment); `battle_ended` right everywhere: "
        f"{'yes' if not row['wrong_end'] else 'NO'}; "
        f"{row['frames_per_viewer']:.0f} score frames per viewer.",
        f"A payment's answer: p50 {row['p50_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms; server "
        f"CPU {row['cpu_s']:.2f} CPU-s ({1000 * row['cpu_s'] / max(args.gifts, 1):.2f} ms each).",
    ]
    if args.gifts >= BAR_GIFTS and args.database == "PostgreSQL":
        lines.append(
            f"Bar (exact money and scores, heard by every viewer): "
            f"{'met' if exact(row) else 'NOT met'}."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gifts", type=int, default=BAR_GIFTS)
    parser.add_argument("--fans", type=int, default=100)
    parser.add_argument("--viewers", type=int, default=50, help="viewers per side")
    parser.add_argument("--concurrency", type=int, default=50, help="gift requests in flight")
    parser.add_argument("--quick", action="store_true", help="small, short smoke run")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="TAJIRI_X=V")
    parser.add_argument(
        "--redis-url", default=os.environ.get("TAJIRI_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("TAJIRI_BENCH_DATABASE_URL"),
        help="default: SQLite in a temporary folder",
    )
    args = parser.parse_args()
    if args.quick:
        args.gifts, args.fans, args.viewers, args.concurrency = 120, 12, 5, 12

    settings = {
        "TAJIRI_GIFT_LIMIT": "1000000",  # the storm is the point, not the rate limit
        "TAJIRI_SUPER_CHAT_LIMIT": "1000000",
        "TAJIRI_BATTLE_DURATION_SECONDS": "3600",
    }
    with scratch(args, **settings) as run_in:
        server = start_tajiri(run_in.env, run_in.workdir)
        try:
            row = asyncio.run(run(args, server, run_in.url))
        finally:
            server.stop()
    text_ = report(row, args)
    print(text_)
    if args.write_docs:
        command = f"bench/battles.py --gifts {args.gifts} --viewers {args.viewers}"
        if args.database_url:
            command += " --database-url postgresql+asyncpg://..."
        write_doc_block(DOC_BLOCK, command, text_)
    if not exact(row):
        raise SystemExit("money or scores are not exact, or a viewer heard other scores")


if __name__ == "__main__":
    main()
