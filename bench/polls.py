"""Poll benchmark: N viewers, each a user with its own token, vote on one poll within a few
seconds, each over its own socket.

    .venv/bin/python bench/polls.py --database-url postgresql+asyncpg://...   # as recorded
    .venv/bin/python bench/polls.py --quick                                   # a smoke (CI)
    .venv/bin/python bench/polls.py --nodes 2 --database-url ...              # two nodes
    ... --write-docs                                                          # docs/benchmarks.md

Starts `tajiri-live serve` on Redis and the database, opens a poll, connects the viewers from
the epoll client (bench/wsload.c), and has them send `vote_poll` spread over the window. It
checks the totals are exact: in the database (rows and options' totals), and in the last
`poll_vote` every viewer heard for every option. It measures the server's CPU for the votes
and, per vote, the time from sending it to the first total on the voter's socket that
includes it (a vote is in a total once the total reaches the vote's rank among its option's
rows; the writer commits batches in order, so this holds on one node). With two nodes, the
viewers are spread over both and a probe times single votes from node A to a viewer on B.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from common import percentile, write_doc_block  # noqa: E402
from fanout import (  # noqa: E402
    SECRET,
    Server,
    build_client,
    cpu_seconds,
    server_metrics,
    start_tajiri,
    wait_connected,
)
from scratch import scratch  # noqa: E402

from tajiri_live.core.auth import TokenCodec  # noqa: E402
from tajiri_live.core.settings import Settings  # noqa: E402

DOC_BLOCK = "polls"
OWNER = 1
FIRST_VIEWER = 1000
# The bar (issue "polls, Q&A and stream health"): 10,000 voters within 5 s on PostgreSQL.
BAR_VIEWERS, BAR_SECONDS, BAR_P99_MS = 10_000, 5.0, 500
PROBE_VOTES = 40


def token(user_id: int) -> str:
    return TokenCodec(Settings(jwt_secret=SECRET)).encode(user_id)


def open_poll(port: int, options: int) -> tuple[int, int, list[int]]:
    headers = {"Authorization": f"Bearer {token(OWNER)}"}
    base = f"http://127.0.0.1:{port}/api/streams"
    stream_id = httpx.post(base, json={"title": "bench"}, headers=headers).json()["data"]["id"]
    httpx.post(f"{base}/{stream_id}/start", headers=headers).raise_for_status()
    created = httpx.post(
        f"{base}/{stream_id}/polls",
        json={"question": "Which one?", "options": [f"Option {n + 1}" for n in range(options)]},
        headers=headers,
    )
    created.raise_for_status()
    poll = created.json()["poll"]
    return int(stream_id), int(poll["id"]), [int(o["id"]) for o in poll["options"]]


def viewer_paths(workdir: Path, stream_id: int, viewers: int) -> Path:
    codec = TokenCodec(Settings(jwt_secret=SECRET))
    target = workdir / "paths.txt"
    target.write_text(
        "".join(
            f"/streams/{stream_id}?token={codec.encode(FIRST_VIEWER + i)}\n" for i in range(viewers)
        )
    )
    return target


def start_voters(
    client: Path,
    servers: list[Server],
    paths: Path,
    viewers: int,
    processes: int,
    vote: str,
    seconds: float,
    workdir: Path,
) -> list[tuple[subprocess.Popen[str], Path]]:
    """Load clients, each with a share of the viewers (viewer i on node i mod nodes)."""
    loads = []
    per_node = max(1, processes // len(servers))
    shares = [(n, server) for n, server in enumerate(servers) for _ in range(per_node)]
    share_size = -(-viewers // len(shares))
    for index, (_, server) in enumerate(shares):
        first = index * share_size
        count = min(share_size, viewers - first)
        if count <= 0:
            continue
        out = workdir / f"votes-{index}.txt"
        env = {
            **os.environ,
            "WSLOAD_VOTE": vote,
            "WSLOAD_VOTE_SECONDS": str(seconds),
            "WSLOAD_VOTES_OUT": str(out),
        }
        process = subprocess.Popen(
            [client, "127.0.0.1", str(server.port), f"@{paths}", str(count), "600", str(first)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        loads.append((process, out))
    return loads


async def database_state(url: str, poll_id: int) -> dict[str, Any]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    text(
                        "SELECT id, option_id, user_id FROM stream_poll_votes "
                        "WHERE poll_id = :poll ORDER BY id"
                    ),
                    {"poll": poll_id},
                )
            ).all()
            totals = dict(
                (
                    await connection.execute(
                        text("SELECT id, votes FROM stream_poll_options WHERE poll_id = :poll"),
                        {"poll": poll_id},
                    )
                ).all()
            )
    finally:
        await engine.dispose()
    return {"rows": rows, "totals": {int(k): int(v) for k, v in totals.items()}}


async def counted(url: str, poll_id: int) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            value = await connection.scalar(
                text("SELECT count(*) FROM stream_poll_votes WHERE poll_id = :poll"),
                {"poll": poll_id},
            )
            return int(value or 0)
    finally:
        await engine.dispose()


def wait_counted(url: str, poll_id: int, expected: int, limit: float) -> float:
    """Seconds until the database holds `expected` votes (or the limit passes)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if asyncio.run(counted(url, poll_id)) >= expected:
            return time.monotonic() - started
        time.sleep(0.1)
    return float("nan")


def metric(port: int, name: str) -> float:
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def analyse(
    outputs: list[Path], state: dict[str, Any], options: list[int], viewers: int
) -> dict[str, Any]:
    """Exactness (database, last totals heard) and vote-to-total latency per voter."""
    rank: dict[int, tuple[int, int]] = {}  # user -> (option, how many of its option's rows
    seen: dict[int, int] = {}  # up to and including this vote)
    for _, option, user in state["rows"]:
        seen[option] = seen.get(option, 0) + 1
        rank[int(user)] = (int(option), seen[option])
    totals = state["totals"]
    expected = {o: len(range(k, viewers, len(options))) for k, o in enumerate(options)}
    latencies: list[float] = []
    disagreements = missing = 0
    for path in outputs:
        for line in path.read_text().splitlines():
            fields = [int(x) for x in line.split()]
            index, sent_us = fields[0], fields[1]
            last = dict(zip(options, fields[2 : 2 + len(options)], strict=True))
            if last != totals:
                disagreements += 1
            heard = fields[3 + len(options) :]
            mine = rank.get(FIRST_VIEWER + index)
            if mine is None or not sent_us:
                missing += 1
                continue
            for votes, at_us in zip(heard[0::2], heard[1::2], strict=True):
                if votes >= mine[1]:
                    latencies.append((at_us - sent_us) / 1000)
                    break
            else:
                missing += 1
    return {
        "rows": len(state["rows"]),
        "totals": totals,
        "totals_match_rows": totals == {o: seen.get(o, 0) for o in options},
        "totals_as_cast": totals == expected,
        "heard_disagreements": disagreements,
        "unmeasured": missing,
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies) if latencies else float("nan"),
    }


async def probe(a: Server, b: Server, stream_id: int, poll_id: int, option: int) -> list[float]:
    """Single votes on node A (each by a new user), timed to a viewer's socket on node B."""
    import websockets

    watcher = await websockets.connect(f"ws://127.0.0.1:{b.port}/streams/{stream_id}")
    voters = [
        await websockets.connect(
            f"ws://127.0.0.1:{a.port}/streams/{stream_id}?token={token(900_000 + n)}"
        )
        for n in range(PROBE_VOTES)
    ]
    times: list[float] = []
    try:
        for voter in voters:
            await voter.recv()  # connected
            await asyncio.sleep(0.3)  # a quiet moment: one vote, not a burst
            started = time.monotonic()
            message = {"event": "vote_poll", "data": {"poll_id": poll_id, "option_id": option}}
            await voter.send(json.dumps(message))
            while True:
                frame = json.loads(await watcher.recv())
                if frame["event"] == "poll_vote" and frame["data"]["user_id"] >= 900_000:
                    times.append((time.monotonic() - started) * 1000)
                    break
    finally:
        for socket in [watcher, *voters]:
            await socket.close()
    return times


def run(args: argparse.Namespace, env: dict[str, str], workdir: Path, url: str) -> dict[str, Any]:
    client = build_client(workdir)
    servers = [start_tajiri(env, workdir, args.workers) for _ in range(args.nodes)]
    try:
        stream_id, poll_id, options = open_poll(servers[0].port, args.options)
        paths = viewer_paths(workdir, stream_id, args.viewers)
        vote = f"{poll_id}:" + ",".join(map(str, options))
        started = time.monotonic()
        loads = start_voters(
            client, servers, paths, args.viewers, args.clients, vote, args.seconds, workdir
        )
        opened = wait_connected([process for process, _ in loads])
        connect_s = time.monotonic() - started
        time.sleep(1.0)
        pids = [server.process.pid for server in servers]
        cpu_before = sum(cpu_seconds(pid) for pid in pids)
        batches_before = sum(metric(s.port, "tajiri_poll_vote_batches_total") for s in servers)
        published_before = sum(metric(s.port, "tajiri_counters_published_total") for s in servers)
        for process, _ in loads:
            process.send_signal(signal.SIGUSR2)
        stored_s = wait_counted(url, poll_id, args.viewers, args.seconds + 120)
        time.sleep(1.5)  # the last coalesced totals reach every socket
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
        batches = sum(metric(s.port, "tajiri_poll_vote_batches_total") for s in servers)
        published = sum(metric(s.port, "tajiri_counters_published_total") for s in servers)
        results = []
        for process, _ in loads:
            process.send_signal(signal.SIGUSR1)
        for process, _ in loads:
            assert process.stdout is not None
            results.append(json.loads(process.stdout.read().strip().splitlines()[-1]))
            process.wait()
        wheel = server_metrics(servers[0].port)
        state = asyncio.run(database_state(url, poll_id))
        found = analyse([out for _, out in loads], state, options, args.viewers)
        probe_ms: list[float] = []
        if len(servers) > 1:
            probe_ms = asyncio.run(probe(servers[0], servers[1], stream_id, poll_id, options[0]))
    finally:
        for server in servers:
            server.stop()
    return {
        **found,
        "viewers": opened,
        "connect_s": connect_s,
        "votes_sent": sum(r["votes_sent"] for r in results),
        "error_frames": sum(r["error_frames"] for r in results),
        "vote_frames": sum(r["vote_frames"] for r in results),
        "stored_s": stored_s,
        "cpu_s": cpu,
        "batches": batches - batches_before,
        "published": published - published_before,
        "probe_ms": probe_ms,
        **wheel,
    }


def report(row: dict[str, Any], args: argparse.Namespace) -> str:
    differ = row["heard_disagreements"]
    lines = [
        f"{row['viewers']:,} voters on {args.nodes} node(s) ({args.database}), "
        f"{args.options} options, votes spread over {args.seconds:g} s; "
        f"connected in {row['connect_s']:.0f} s.",
        f"Stored: {row['rows']:,} votes, all in the database {row['stored_s']:.2f} s after the "
        f"first was sent; totals {row['totals']}; equal to the rows: "
        f"{'yes' if row['totals_match_rows'] else 'NO'}; as cast: "
        f"{'yes' if row['totals_as_cast'] else 'NO'}.",
        f"Last totals heard: every viewer, every option, equal to the database: "
        f"{'yes' if not differ else f'NO ({differ} viewers)'}; "
        f"error frames: {row['error_frames']}.",
        f"Vote to its total on the voter's socket: p50 {row['p50_ms']:.0f} ms, p99 "
        f"{row['p99_ms']:.0f} ms, max {row['max_ms']:.0f} ms ({row['unmeasured']} unmeasured).",
        f"Server CPU for the votes: {row['cpu_s']:.2f} CPU-s "
        f"({1000 * row['cpu_s'] / max(row['rows'], 1):.2f} ms per vote); "
        f"{row['batches']:,.0f} write batches ({row['rows'] / max(row['batches'], 1):.0f} votes "
        f"each); {row['published']:,.0f} coalesced poll_vote events; "
        f"{row['vote_frames'] / max(row['viewers'], 1):.0f} poll_vote frames per viewer.",
    ]
    if "turns" in row:
        lines.append(
            f"The wheel (node 1, whole run): {row['mean_turn_ms']:.1f} ms writing per turn on "
            f"average, {row['max_turn_ms']:.1f} ms at most; {row['frames_per_write']:.1f} "
            f"frames per write; longest collector pause {row['gc_max_ms']:.1f} ms."
        )
    if row["probe_ms"]:
        probe = row["probe_ms"]
        lines.append(
            f"Node A to a viewer on node B, {len(probe)} single votes: p50 "
            f"{percentile(probe, 0.5):.0f} ms, p99 {percentile(probe, 0.99):.0f} ms, max "
            f"{max(probe):.0f} ms."
        )
    if (args.viewers, args.seconds, args.nodes) == (BAR_VIEWERS, BAR_SECONDS, 1) and (
        args.database == "PostgreSQL"
    ):
        exact = row["totals_match_rows"] and row["totals_as_cast"]
        exact = exact and not row["heard_disagreements"] and row["rows"] == BAR_VIEWERS
        lines.append(
            f"Bars: exact totals in the database and in every viewer's last event: "
            f"{'met' if exact else 'NOT met'}; p99 {row['p99_ms']:.0f} ms < {BAR_P99_MS} ms: "
            f"{'met' if row['p99_ms'] < BAR_P99_MS else 'NOT met'}."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=BAR_VIEWERS)
    parser.add_argument("--options", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=BAR_SECONDS, help="the voting window")
    parser.add_argument("--clients", type=int, default=2, help="load client processes")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="small, short smoke run")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="TAJIRI_X=V")
    parser.add_argument(
        "--redis-url", default=os.environ.get("TAJIRI_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("TAJIRI_BENCH_DATABASE_URL"),
        help="default: SQLite in a temporary folder (one node only)",
    )
    args = parser.parse_args()
    if args.quick:
        args.viewers, args.seconds = 300, 2.0
    if args.nodes > 1 and not args.database_url:
        parser.error("--nodes > 1 needs --database-url (PostgreSQL): SQLite is one node")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))

    with scratch(args) as run_in:
        row = run(args, run_in.env, run_in.workdir, run_in.url)
    text_ = report(row, args)
    print(text_)
    if args.write_docs:
        name = DOC_BLOCK if args.nodes == 1 else f"{DOC_BLOCK}-{args.nodes}-nodes"
        command = f"bench/polls.py --viewers {args.viewers} --seconds {args.seconds:g}"
        if args.nodes > 1:
            command += f" --nodes {args.nodes}"
        if args.database_url:
            command += " --database-url postgresql+asyncpg://..."
        write_doc_block(name, command, text_)
    if row["viewers"] < args.viewers:
        raise SystemExit(f"only {row['viewers']} of {args.viewers} connected")
    if row["rows"] != args.viewers or not (row["totals_match_rows"] and row["totals_as_cast"]):
        raise SystemExit(f"totals are not exact: {row['rows']} rows, {row['totals']}")
    if row["heard_disagreements"] or row["error_frames"]:
        raise SystemExit("some viewer's last totals differ from the database, or votes refused")


if __name__ == "__main__":
    main()
