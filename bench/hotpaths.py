"""Hot paths benchmark: REST `join`, comments and gifts, closed loop and paced, on one process.

    .venv/bin/python bench/hotpaths.py --database-url postgresql+asyncpg://.../tajiri_bench
    .venv/bin/python bench/hotpaths.py --quick            # a short smoke on SQLite

Starts `tajiri-live serve` (one process; Redis for presence, the broker and limits), pins it
to one core and the load client to the other, then, each for `--seconds` with `--clients`
concurrent clients in a closed loop (each sends its next request when the last is answered)
and, for joins and comments, paced at the bars' rates. The load client is compiled
(bench/httpload.c: requests rendered ahead, sent from one epoll loop), so that it takes
little of the core it shares with PostgreSQL and Redis; `--load-client aiohttp` uses a
Python one (about ten times its CPU per request):
1. REST `join` of a live public stream, every request by a user never seen before (the
   join storm after a push: a profile row and a viewing session each);
2. comments, each client its own user, every text unique (the spam filter lets them in),
   while a socket viewer counts the `new_comment` frames it receives (stored *and* fanned
   out);
3. gifts to ONE stream, each client a funded sender: without an Idempotency-Key, as the
   mobile client sends them, then with a fresh Idempotency-Key each (both paid in group
   commit). Afterwards the ledger must be exact: balanced, one stored gift per 201, the
   senders debited exactly what the gifts are worth.
Per-user rate limits are lifted for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from common import host_speed_line, write_doc_block  # noqa: E402
from engagement import (  # noqa: E402
    FrameCounter,
    bench_server,
    closed_loop_arguments,
    closed_loop_options,
    comment_poster,
    hammer,
    paced,
)
from fanout import SECRET, cpu_seconds, process_tree  # noqa: E402
from httploadclient import build, compiled_load, http_request  # noqa: E402

from tajiri_live.core.auth import TokenCodec  # noqa: E402
from tajiri_live.core.settings import Settings  # noqa: E402

DOC_BLOCK = "hotpaths"
# The bars (issue "Hot paths"), at 200 concurrent clients on one process.
BAR_CLIENTS = 200
BAR_JOINS, BAR_JOIN_P99_MS = 1500, 50
BAR_COMMENTS, BAR_COMMENT_P99_MS = 1000, 100
BAR_GIFTS = 800
FUNDS = 10**12  # each sender's coins: never short during a run
FIRST_NEW_USER = 1_000_000
CLIENT_GC_THRESHOLDS = (100_000, 50, 1000)
JOINS_MINTED_PER_SECOND = 3_000  # new users' tokens made ahead of a join run, per second of it
# Requests rendered ahead of a closed-loop run for the compiled client, per second of it:
# more than the server answers (running out ends the run early, and says so).
RENDERED_PER_SECOND = 6_000
LOAD_CLIENTS = {
    "compiled": "the compiled client (bench/httpload.c, requests rendered ahead)",
    "aiohttp": "aiohttp",
}


def pin(server_pid: int) -> str:
    """The server on the first core, this client on the others; said in the report."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return "not pinned (one core)"
    for pid in process_tree(server_pid):
        # Every thread: an affinity set on a process id holds for its main thread only
        # (threads started later inherit it; those already running, such as SQLite's, do not).
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(ProcessLookupError):  # a thread that has just ended
                os.sched_setaffinity(int(task.name), {cores[0]})
    os.sched_setaffinity(0, set(cores[1:]))
    return f"server on core {cores[0]}, load client on {cores[1:]}"


async def measured(server_pid: int, load: Any) -> dict[str, Any]:
    """`load()`'s summary with the server's CPU per answered request (robust to a busy host:
    what the server spent, not how long it waited for a core)."""
    before, client_before = cpu_seconds(server_pid), time.process_time()
    result: dict[str, Any] = await load()
    answered = max(result["ok"], 1)
    result["cpu_ms"] = 1000 * (cpu_seconds(server_pid) - before) / answered
    # The load client's own CPU (the compiled one's, or this process's): were it near a whole
    # core per second, the latencies would be the client's queue as much as the server's.
    client_seconds = result.pop("client_cpu_seconds", None)
    if client_seconds is None:
        client_seconds = time.process_time() - client_before
    result["client_cpu_ms"] = 1000 * client_seconds / answered
    return result


class Load:
    """Closed-loop and paced runs with the compiled client (requests rendered ahead), or
    with aiohttp (each request made as it is sent)."""

    def __init__(self, args: argparse.Namespace, port: int, binary: Path | None) -> None:
        self.args, self.port, self.binary = args, port, binary
        self.base = f"http://127.0.0.1:{port}"

    async def closed(self, send: Any, render: Any) -> dict[str, Any]:
        a = self.args
        if self.binary is None:
            return await hammer(self.base, a.clients, a.seconds, send)
        count = int(RENDERED_PER_SECOND * a.seconds)
        return await compiled_load(self.binary, self.port, a.clients, a.seconds, 0, render(count))

    async def paced(self, send: Any, render: Any, rate: float) -> dict[str, Any]:
        a = self.args
        if self.binary is None:
            return await paced(self.base, a.clients, a.seconds, a.clients / rate, send)
        count = int(rate * a.seconds) + a.clients
        return await compiled_load(
            self.binary, self.port, a.clients, a.seconds, rate, render(count)
        )


async def run(
    args: argparse.Namespace, port: int, server_pid: int, database_url: str, binary: Path | None
) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    tokens = TokenCodec(Settings(jwt_secret=SECRET))
    owner = {"Authorization": f"Bearer {tokens.encode(1)}"}
    admin = {"Authorization": f"Bearer {tokens.encode(2, admin=True)}"}
    commenters = [
        {"Authorization": f"Bearer {tokens.encode(1000 + i)}"} for i in range(args.clients)
    ]
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        created = await http.post("/api/streams", json={"title": "bench"}, headers=owner)
        sid = created.json()["data"]["id"]
        (await http.post(f"/api/streams/{sid}/start", headers=owner)).raise_for_status()
        for index in range(args.clients):
            funded = await http.post(
                "/api/wallet/credit", headers=admin, json={"user_id": 1000 + index, "amount": FUNDS}
            )
            funded.raise_for_status()
        gift_id = (await http.get("/api/streams/gifts")).json()["data"][0]["id"]
    new_users = itertools.count(FIRST_NEW_USER)
    run_id = uuid.uuid4().hex  # keys live 24 h: a new run's never match an old one's
    load = Load(args, port, binary)

    def new_user() -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens.encode(next(new_users))}"}

    # aiohttp: tokens minted before the runs (the closed loop's and the paced run's worth at
    # the bars' rates, with room): a token costs the client about as much as the request.
    minted = (
        [new_user() for _ in range(int(2 * JOINS_MINTED_PER_SECOND * args.seconds))]
        if binary is None
        else []
    )

    async def join(http: aiohttp.ClientSession, index: int, n: int) -> int:
        headers = minted.pop() if minted else new_user()
        async with http.post(f"/api/streams/{sid}/join", headers=headers) as answer:
            await answer.read()
            return answer.status

    def joins_rendered(count: int) -> list[bytes]:
        return [http_request("POST", f"/api/streams/{sid}/join", new_user()) for _ in range(count)]

    def comments_rendered(count: int) -> list[bytes]:
        tag = uuid.uuid4().hex[:8]
        return [
            http_request(
                "POST",
                f"/api/streams/{sid}/comments",
                commenters[k % args.clients],
                json.dumps({"content": f"Hongera {tag}-{k}"}).encode(),
            )
            for k in range(count)
        ]

    def gifts_rendered(keyed: bool) -> Any:
        def render(count: int) -> list[bytes]:
            body = json.dumps({"gift_id": gift_id}).encode()
            return [
                http_request(
                    "POST",
                    f"/api/streams/{sid}/gifts",
                    {**commenters[k % args.clients], "Idempotency-Key": f"{run_id}-{k}"}
                    if keyed
                    else commenters[k % args.clients],
                    body,
                )
                for k in range(count)
            ]

        return render

    # The tokens and headers made above live through the runs: out of the collector's
    # sight, and young collections rare, so this client's own pauses are not charged to
    # the server's latencies.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*CLIENT_GC_THRESHOLDS)
    comment = comment_poster(sid, commenters)
    joins = await measured(server_pid, lambda: load.closed(join, joins_rendered))
    joins_paced = await measured(
        server_pid, lambda: load.paced(join, joins_rendered, args.join_rate)
    )
    async with FrameCounter(port, sid, "new_comment") as viewer:
        comments = await measured(server_pid, lambda: load.closed(comment, comments_rendered))
    comments["fanned_out"] = viewer.received
    async with FrameCounter(port, sid, "new_comment") as viewer:
        comments_paced = await measured(
            server_pid, lambda: load.paced(comment, comments_rendered, args.comment_rate)
        )
    comments_paced["fanned_out"] = viewer.received

    def gift_sender(keyed: bool) -> Any:
        async def gift(http: aiohttp.ClientSession, index: int, n: int) -> int:
            headers = commenters[index]
            if keyed:
                headers = {**headers, "Idempotency-Key": f"{run_id}-{index}-{n}"}
            async with http.post(
                f"/api/streams/{sid}/gifts", json={"gift_id": gift_id}, headers=headers
            ) as answer:
                await answer.read()
                return answer.status

        return gift

    gifts = await measured(
        server_pid, lambda: load.closed(gift_sender(False), gifts_rendered(False))
    )
    keyed = await measured(server_pid, lambda: load.closed(gift_sender(True), gifts_rendered(True)))
    gifts["ledger"] = await ledger_check(database_url, sid, gifts["ok"] + keyed["ok"])
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        # The run's stream ends with it: later runs' periodic jobs do not count it as live.
        (await http.post(f"/api/streams/{sid}/end", headers=owner)).raise_for_status()
    return {
        "joins": joins,
        "joins_paced": joins_paced,
        "comments": comments,
        "comments_paced": comments_paced,
        "gifts": gifts,
        "keyed_gifts": keyed,
    }


async def ledger_check(database_url: str, stream_id: int, paid: int) -> str:
    """'exact' when the ledger balances, every 201 stored one gift and the stream's gifts'
    ledger transactions took from their senders exactly what the gifts are worth."""
    from sqlalchemy import func, select

    from tajiri_live.core.db import create_engine, create_sessionmaker
    from tajiri_live.gifts.models import StreamGift
    from tajiri_live.streams.models import LiveStream
    from tajiri_live.wallet.models import LedgerEntry, LedgerTransaction
    from tajiri_live.wallet.service import ledger_is_balanced

    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            balanced = await ledger_is_balanced(session)
            count, worth = (
                await session.execute(
                    select(func.count(), func.coalesce(func.sum(StreamGift.total_value), 0)).where(
                        StreamGift.stream_id == stream_id
                    )
                )
            ).one()
            taken = await session.scalar(
                select(func.coalesce(-func.sum(LedgerEntry.amount), 0))
                .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
                .join(StreamGift, StreamGift.id == LedgerTransaction.stream_gift_id)
                .where(StreamGift.stream_id == stream_id, LedgerEntry.amount < 0)
            )
            counted = await session.scalar(
                select(LiveStream.gifts_value).where(LiveStream.id == stream_id)
            )
    finally:
        await engine.dispose()
    if balanced and count == paid and int(taken or 0) == int(worth) == int(counted or 0):
        return "exact"
    return (
        f"NOT exact: balanced={balanced}, {count} gifts stored for {paid} answered 201, "
        f"senders paid {taken}, gifts worth {worth}, stream counted {counted}"
    )


def kept_pace(result: dict[str, Any], rate: float) -> bool:
    """A paced run counts only if the server answered (nearly) all it was offered."""
    return bool(result["per_second"] >= 0.98 * rate)


def answers(result: dict[str, Any]) -> str:
    return f"answers {result['codes']}"


def fanned_out(result: dict[str, Any]) -> str:
    return (
        f"{result['ok']:,} stored, {result['fanned_out']:,} received by a socket viewer; "
        f"answers {result['codes']}"
    )


def report(result: dict[str, Any], args: argparse.Namespace, backend: str, pinned: str) -> str:
    j, c, g, k = result["joins"], result["comments"], result["gifts"], result["keyed_gifts"]
    jp, cp = result["joins_paced"], result["comments_paced"]
    rows = [
        ("REST join, each request a new user, closed loop", j, answers(j)),
        (f"the same, paced at {args.join_rate:,.0f}/s", jp, answers(jp)),
        ("comments stored and fanned out, closed loop", c, fanned_out(c)),
        (f"the same, paced at {args.comment_rate:,.0f}/s", cp, fanned_out(cp)),
        ("gifts to one stream, no key (group commit)", g, f"ledger {g['ledger']}; " + answers(g)),
        ("gifts to one stream, an Idempotency-Key each", k, answers(k)),
    ]
    text = (
        f"| what ({args.clients} concurrent clients, {backend}, one process) "
        "| per second | p50 ms | p99 ms | server CPU ms each | load client CPU ms each "
        "| check |\n|---|---|---|---|---|---|---|\n"
        + "".join(
            f"| {what} | {r['per_second']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['cpu_ms']:.2f} | {r['client_cpu_ms']:.2f} | {check} |\n"
            for what, r, check in rows
        )
        + f"\nLoad client: {LOAD_CLIENTS[args.load_client]}, {pinned}. "
        "Closed loop: each client sends its next request when the last is answered (the most "
        "the server takes). Paced: the clients' requests fall due at the given rate, each "
        "latency counted from when it fell due.\n"
    )
    reopened = [f"{what}: {r['reconnects']}" for what, r, _ in rows if r.get("reconnects")]
    if reopened:  # keep-alive connections the server closed (its idle timeout, or a failure)
        text += "Connections the server closed, opened again: " + "; ".join(reopened) + ".\n"
    bar_rates = (args.join_rate, args.comment_rate) == (BAR_JOINS, BAR_COMMENTS)
    if args.clients != BAR_CLIENTS or not bar_rates or "PostgreSQL" not in backend:
        return text + f"Bars: defined at {BAR_CLIENTS} clients on PostgreSQL; not judged.\n"
    checks = [
        (f"join {j['per_second']:,.0f}/s ≥ {BAR_JOINS:,}/s", j["per_second"] >= BAR_JOINS),
        (
            f"join p99 at {BAR_JOINS:,}/s {jp['p99_ms']:.0f} ms < {BAR_JOIN_P99_MS} ms",
            kept_pace(jp, BAR_JOINS) and jp["p99_ms"] < BAR_JOIN_P99_MS,
        ),
        (
            f"comments {c['per_second']:,.0f}/s ≥ {BAR_COMMENTS:,}/s",
            c["per_second"] >= BAR_COMMENTS,
        ),
        (
            f"comment p99 at {BAR_COMMENTS:,}/s {cp['p99_ms']:.0f} ms < {BAR_COMMENT_P99_MS} ms",
            kept_pace(cp, BAR_COMMENTS) and cp["p99_ms"] < BAR_COMMENT_P99_MS,
        ),
        (
            f"gifts to one stream {g['per_second']:,.0f}/s ≥ {BAR_GIFTS:,}/s, ledger {g['ledger']}",
            g["per_second"] >= BAR_GIFTS and g["ledger"] == "exact",
        ),
    ]
    return (
        text
        + "Bars: "
        + ", ".join(f"{t}: {'met' if ok else 'NOT met'}" for t, ok in checks)
        + ".\n"
    )


def main() -> None:
    print(host_speed_line(), flush=True)  # measured while the host is quiet
    parser = closed_loop_arguments(__doc__)
    parser.add_argument("--no-pin", action="store_true", help="leave both on every core")
    parser.add_argument(
        "--load-client",
        choices=("compiled", "aiohttp"),
        default="compiled",
        help="the compiled client (bench/httpload.c, the default) or aiohttp",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="TAJIRI_X=V",
        help="extra server settings, e.g. TAJIRI_ADMISSION_CACHE_SECONDS=0",
    )
    parser.add_argument(
        "--join-rate", type=float, help=f"paced joins per second (default {BAR_JOINS:,})"
    )
    parser.add_argument(
        "--comment-rate", type=float, help=f"paced comments per second (default {BAR_COMMENTS:,})"
    )
    args = closed_loop_options(parser)
    quick_rate = 100.0 if args.quick else None
    args.join_rate = args.join_rate or quick_rate or BAR_JOINS
    args.comment_rate = args.comment_rate or quick_rate or BAR_COMMENTS
    with bench_server(args.database_url, args.redis_url, settings=args.set) as (
        server,
        database_url,
    ):
        pinned = "not pinned (--no-pin)" if args.no_pin else pin(server.process.pid)
        with tempfile.TemporaryDirectory(prefix="hotpaths-") as workdir:
            binary = build(Path(workdir)) if args.load_client == "compiled" else None
            result = asyncio.run(run(args, server.port, server.process.pid, database_url, binary))
    backend = "PostgreSQL" if database_url.startswith("postgresql") else "SQLite"
    text = report(result, args, backend, pinned)
    print(text)
    print(json.dumps(result))
    if args.write_docs:
        command = (
            f"bench/hotpaths.py --clients {args.clients} --seconds {args.seconds:g} "
            f"--join-rate {args.join_rate:g} --comment-rate {args.comment_rate:g}"
        )
        write_doc_block(DOC_BLOCK, command, text, where=f" on {backend}")
    for name, outcome in result.items():
        if not outcome["ok"]:
            raise SystemExit(f"no {name} succeeded: answers {outcome['codes']}")
    for name in ("comments", "comments_paced"):
        if result[name]["fanned_out"] < result[name]["ok"]:
            raise SystemExit(f"some stored {name} never reached the socket viewer")
    if result["gifts"]["ledger"] != "exact":
        raise SystemExit(f"the ledger is {result['gifts']['ledger']}")


if __name__ == "__main__":
    main()
