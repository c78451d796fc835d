"""Fan-out benchmark: the real service against N viewers, and a naive FastAPI baseline.

    .venv/bin/python bench/fanout.py                   # full run, as recorded in the docs
    .venv/bin/python bench/fanout.py --quick           # a short smoke (CI)
    .venv/bin/python bench/fanout.py --write-docs      # also update docs/benchmarks.md

Starts `tajiri-live serve` (real endpoint, token auth, encoders) on Redis, connects viewers
from a compiled epoll client (bench/wsload.c, built with gcc) so the load generator is not
the bottleneck, publishes M events/s into one stream through Redis, and measures delivered
frames, losses, end-to-end latency, server CPU and memory. Then the same for bench/naive_app.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from common import build_c, free_port, host_speed_line, write_doc_block  # noqa: E402

from tajiri_live.core.auth import TokenCodec  # noqa: E402
from tajiri_live.core.settings import Settings  # noqa: E402
from tajiri_live.realtime.broker_redis import encode_event  # noqa: E402
from tajiri_live.realtime.encoders import PlainEncoder  # noqa: E402
from tajiri_live.realtime.events import NEW_COMMENT, Event  # noqa: E402

SECRET = "bench-secret-" + "b" * 40
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
DOC_BLOCK = "fanout"  # docs/benchmarks.md has one block per node count
# The bars (issue "Real time"): at 5,000 viewers x 100 events/s on one process.
BAR_VIEWERS, BAR_RATE = 5000, 100
BAR_P99_MS = 100
BAR_FRAMES_PER_CPU_S = 600_000
BAR_RATIO = 15
BAR_IDLE_VIEWERS, BAR_IDLE_KB = 10_000, 8
# The latency budget's bars (issue "Hot paths"): 10,000 x 100 on one process, budget 150 ms.
BUDGET_BAR_VIEWERS, BUDGET_BAR_RATE, BUDGET_BAR_MS = 10_000, 100, 150
BUDGET_BAR_FRAMES_PER_CPU_S = 1_500_000


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn workers are children of the serve process)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended while the tree was read
        for child in children:
            found.extend(process_tree(int(child)))
    return found


def cpu_seconds(pid: int) -> float:
    """CPU of a process and its live descendants."""
    total = 0.0
    for member in process_tree(pid):
        fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def rss_bytes(pid: int) -> int:
    return sum(
        int(Path(f"/proc/{member}/statm").read_text().split()[1]) * PAGE
        for member in process_tree(pid)
    )


def build_client(workdir: Path) -> Path:
    return build_c("wsload", workdir)


# The floor writes for at most this long (it measures a rate), and may take this long more to
# connect its sockets before it is given up.
FLOOR_SECONDS = 4.0
FLOOR_CONNECT_SECONDS = 300.0


def send_floor(
    workdir: Path, viewers: int, frames_per_write: float, rate: int, seconds: float
) -> dict[str, Any] | str:
    """What this host's kernel charges for the fan-out's writes with no server at all
    (bench/sendfloor.c): the same sockets, frames per write and turn, from a C loop; or why
    it could not be measured (the server's run is reported either way)."""
    binary = build_c("sendfloor", workdir)
    frames = max(1, round(frames_per_write))
    frame = PlainEncoder().encode(comment_event(1, 0), "")
    assert frame is not None
    gap_ms = 1000 * frames / rate  # a turn as often as the server's, so as many frames a write
    length = min(seconds, FLOOR_SECONDS)
    command = [str(binary), str(viewers), str(frames), str(len(frame)), f"{gap_ms:.1f}"]
    try:
        done = subprocess.run(
            [*command, f"{length:g}"],
            capture_output=True,
            text=True,
            timeout=length + FLOOR_CONNECT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        return f"no answer in {length + FLOOR_CONNECT_SECONDS:.0f} s"
    if done.returncode != 0:
        return done.stderr.strip() or f"exit status {done.returncode}"
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int

    def stop(self) -> None:
        """Stop the server and its workers (one process group), and wait: keys it writes
        while shutting down must land before the run deletes its Redis prefix."""
        group = os.getpgid(self.process.pid)
        os.killpg(group, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            self.process.wait(timeout=10)


def wait_ready(port: int, path: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited during start")
        try:
            httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def start_tajiri(env: dict[str, str], workdir: Path, workers: int = 1) -> Server:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tajiri_live",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env={**env, "TAJIRI_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"},
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the server and its workers: one group to stop
    )
    wait_ready(port, "/ready", process)
    return Server("tajiri-live", process, port)


def start_naive(env: dict[str, str], workdir: Path) -> Server:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "naive_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--ws",
            "websockets",
        ],
        env={**env, "PYTHONPATH": str(ROOT / "bench")},
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the server and its workers: one group to stop
    )
    wait_ready(port, "/docs", process)
    return Server("naive FastAPI", process, port)


def comment_event(stream_id: int, seq: int) -> Event:
    """A comment as the service publishes it, numbered and stamped for the load client."""
    user = {
        "id": 5,
        "first_name": "Neema",
        "last_name": "J",
        "username": "neema",
        "display_name": "Neema J",
        "avatar_url": None,
        "profile_photo_path": None,
    }
    data = {
        "seq": seq,
        "ts": time.time_ns() // 1000,
        "id": seq,
        "stream_id": stream_id,
        "user_id": 5,
        "content": "Hongera sana! Tunakupenda kutoka Arusha",
        "is_pinned": False,
        "is_highlighted": False,
        "user": user,
        "created_at": "2026-11-25T12:00:00Z",
    }
    return Event(f"stream.{stream_id}", NEW_COMMENT, data)


async def publish(redis_url: str, prefix: str, stream_id: int, rate: int, seconds: float) -> int:
    """Publish `rate` comment-sized events a second for `seconds`; returns how many."""
    redis = Redis.from_url(redis_url)
    channel = prefix + "events"
    total = int(rate * seconds)
    start = time.monotonic()
    for seq in range(total):
        due = start + seq / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await redis.publish(channel, encode_event(comment_event(stream_id, seq)))
    await redis.aclose()
    return total


def start_clients(
    client: Path,
    port: int,
    path: str,
    viewers: int,
    seconds: float,
    processes: int,
    first: int = 0,
    subscribe: str | None = None,
) -> list[subprocess.Popen[str]]:
    """Split the viewers over `processes` load clients (each with its own identities); with
    `subscribe`, they speak Pusher and subscribe to that channel."""
    env = {**os.environ, "WSLOAD_SUBSCRIBE": subscribe} if subscribe else None
    loads = []
    offset = first
    for index in range(processes):
        share = viewers // processes + (1 if index < viewers % processes else 0)
        if not share:
            continue
        loads.append(
            subprocess.Popen(
                [str(client), "127.0.0.1", str(port), path, str(share), str(seconds), str(offset)],
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
        offset += share
    return loads


def wait_connected(loads: list[subprocess.Popen[str]]) -> int:
    opened = 0
    for load in loads:
        assert load.stdout is not None
        ready = load.stdout.readline().split()
        opened += int(ready[1]) if len(ready) == 2 else 0
    return opened


def run_load(
    client: Path,
    servers: list[Server],
    path: str,
    viewers: int,
    rate: int,
    seconds: float,
    redis_url: str,
    prefix: str,
    stream_id: int,
    processes: int,
    protocol: str = "plain",
) -> dict[str, Any]:
    """Viewers spread evenly over `servers`; events published once, through Redis."""
    subscribe = f"stream.{stream_id}" if protocol == "pusher" else None
    pids = [server.process.pid for server in servers]
    rss_before = sum(rss_bytes(pid) for pid in pids)
    drain = 3.0
    loads: list[subprocess.Popen[str]] = []
    first = 0
    connect_cpu_before = sum(cpu_seconds(pid) for pid in pids)
    connect_started = time.monotonic()
    for index, server in enumerate(servers):
        share = viewers // len(servers) + (1 if index < viewers % len(servers) else 0)
        per_node = max(1, processes // len(servers))
        loads += start_clients(
            client, server.port, path, share, 600, per_node, first, subscribe=subscribe
        )
        first += share
    opened = wait_connected(loads)
    connect_seconds = time.monotonic() - connect_started
    connect_cpu = sum(cpu_seconds(pid) for pid in pids) - connect_cpu_before
    time.sleep(1.0)  # let the connect storm settle before measuring
    rss_after = sum(rss_bytes(pid) for pid in pids)
    cpu_before = sum(cpu_seconds(pid) for pid in pids)
    published = asyncio.run(publish(redis_url, prefix, stream_id, rate, seconds))
    time.sleep(drain)
    # Read before the clients are told to stop: their 10,000 sockets closing (each a
    # presence drop and a visit closed) is a leave storm, not fan-out, and how much of it
    # fell inside the window depended on how fast the clients exited.
    cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
    for load in loads:
        load.send_signal(signal.SIGUSR1)
    results = []
    client_cpu = 0.0
    for load in loads:
        assert load.stdout is not None
        results.append(json.loads(load.stdout.read().strip().splitlines()[-1]))
        client_cpu += cpu_seconds(load.pid)  # readable until the process is reaped
        load.wait()
    wheel = server_metrics(servers[0].port)
    frames = sum(r["frames"] for r in results)
    samples = sum(r["samples"] for r in results) or 1
    expected = published * sum(r["open"] for r in results)
    final_counts = {r["last_count"] for r in results}
    return {
        "server": servers[0].name
        + (f", {protocol} protocol" if servers[0].name == "tajiri-live" else "")
        + (f" ({len(servers)} nodes)" if len(servers) > 1 else ""),
        "viewers": opened,
        "rate": rate,
        "seconds": seconds,
        "expected": expected,
        "delivered": frames,
        "lost": max(0, expected - frames),
        "frames_per_s": frames / seconds,
        # per-client percentiles: p50 weighted by samples, p99 and max the worst client's
        "p50_ms": sum(r["p50_us"] * r["samples"] for r in results) / samples / 1000,
        "p99_ms": max(r["p99_us"] for r in results) / 1000,
        "max_ms": max(r["max_us"] for r in results) / 1000,
        "cpu_s": cpu,
        "client_cpu_s": client_cpu,
        "frames_per_cpu_s": frames / cpu if cpu else 0.0,
        "rss_per_conn_kb": (rss_after - rss_before) / max(opened, 1) / 1024,
        # every viewer, on every node, was last told the same number: the true total
        "counts_agree": (
            final_counts == {opened} and sum(r["count_disagreements"] for r in results) == 0
        ),
        "final_counts": sorted(final_counts),
        "connect_s": connect_seconds,
        "connect_cpu_s": connect_cpu,
        **wheel,
    }


def server_metrics(port: int) -> dict[str, float]:
    """The wheel's and the collector's statistics from /metrics (the naive baseline has none)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    values = dict(
        line.split()
        for line in text.splitlines()
        if line and not line.startswith("#") and len(line.split()) == 2
    )
    if "tajiri_ws_turns_total" not in values:
        return {}
    count = float(values["tajiri_ws_turns_total"])
    writes = float(values["tajiri_ws_writes_total"])
    return {
        "turns": count,
        "mean_turn_ms": 1000 * float(values["tajiri_ws_turn_seconds_total"]) / max(count, 1),
        "max_turn_ms": 1000 * float(values["tajiri_ws_turn_seconds_max"]),
        "frames_per_write": float(values["tajiri_ws_frames_out_total"]) / max(writes, 1),
        "gc_full": float(values.get("tajiri_gc_full_collections_total", 0)),
        "gc_seconds": float(values.get("tajiri_gc_seconds_total", 0)),
        "gc_max_ms": 1000 * float(values.get("tajiri_gc_pause_seconds_max", 0)),
    }


def idle_memory(client: Path, server: Server, path: str, viewers: int) -> dict[str, Any]:
    pid = server.process.pid
    before = rss_bytes(pid)
    loads = start_clients(client, server.port, path, viewers, 600, 1)
    opened = wait_connected(loads)
    time.sleep(2.0)
    after = rss_bytes(pid)
    for load in loads:
        load.send_signal(signal.SIGUSR1)
        load.communicate()
    return {
        "viewers": opened,
        "rss_per_conn_kb": (after - before) / max(opened, 1) / 1024,
        "rss_mb": after / 2**20,
    }


def create_live_stream(port: int) -> int:
    headers = owner_headers()
    base = f"http://127.0.0.1:{port}/api/streams"
    stream_id = httpx.post(base, json={"title": "bench"}, headers=headers).json()["data"]["id"]
    httpx.post(f"{base}/{stream_id}/start", headers=headers).raise_for_status()
    return int(stream_id)


def end_live_stream(port: int, stream_id: int) -> None:
    """A run's stream ends with it: the periodic jobs of later runs on the same database do
    not go on counting it as live."""
    url = f"http://127.0.0.1:{port}/api/streams/{stream_id}/end"
    httpx.post(url, headers=owner_headers(), timeout=30).raise_for_status()


def owner_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {TokenCodec(Settings(jwt_secret=SECRET)).encode(1)}"}


def viewer_paths(workdir: Path, stream_id: int, viewers: int) -> str:
    """A file of socket paths, each with its own user's token: every viewer is a person."""
    tokens = TokenCodec(Settings(jwt_secret=SECRET))
    target = workdir / f"paths-{stream_id}.txt"
    target.write_text(
        "".join(f"/streams/{stream_id}?token={tokens.encode(1000 + i)}\n" for i in range(viewers))
    )
    return f"@{target}"


async def forget_keys(redis_url: str, prefix: str) -> None:
    redis = Redis.from_url(redis_url)
    keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| server | viewers × events/s | delivered frames/s | lost | p50 / p99 / max ms "
        "| server CPU-s | frames per CPU-s | RSS/conn KB | load client CPU-s |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['server']} | {r['viewers']:,} × {r['rate']} | {r['frames_per_s']:,.0f} "
        f"| {r['lost']:,} | {r['p50_ms']:.1f} / {r['p99_ms']:.1f} / {r['max_ms']:.1f} "
        f"| {r['cpu_s']:.2f} | {r['frames_per_cpu_s']:,.0f} | {r['rss_per_conn_kb']:.1f} "
        f"| {r['client_cpu_s']:.2f} |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=5000)
    parser.add_argument("--rate", type=int, default=100, help="events per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--idle", type=int, default=10000, help="idle viewers for memory")
    parser.add_argument("--quick", action="store_true", help="small, short smoke run")
    parser.add_argument("--clients", type=int, default=2, help="load client processes")
    parser.add_argument("--workers", type=int, default=1, help="tajiri-live serve --workers")
    parser.add_argument(
        "--nodes", type=int, default=1, help="serve processes sharing the database and Redis"
    )
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--protocols",
        default="plain,pusher",
        help="tajiri-live protocols to measure, in turn: plain, pusher (Pusher v7, mobile names)",
    )
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="TAJIRI_X=V",
        help="extra server settings, e.g. TAJIRI_REALTIME_TICK_MS=10",
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("TAJIRI_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("TAJIRI_BENCH_DATABASE_URL"),
        help="default: SQLite in a temporary folder (one node only)",
    )
    args = parser.parse_args()
    print(host_speed_line(), flush=True)  # measured while the host is quiet
    if args.quick:
        args.viewers, args.rate, args.seconds, args.idle = 300, 50, 2.0, 500
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))

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
            # measure raw fan-out: every comment to every viewer, no sampling
            "TAJIRI_SAMPLE_ROOM_SIZE": "100000000",
            # one frame per event on the Pusher path too ("both" sends two names)
            "TAJIRI_PUSHER_EVENT_NAMES": "mobile",
            # the load client is one address: its anonymous Pusher viewers must all count
            "TAJIRI_ANONYMOUS_VIEWERS_PER_ADDRESS": "1000000",
        }
    )
    env.update(dict(item.split("=", 1) for item in args.set))
    if args.database_url:
        env["TAJIRI_DATABASE_URL"] = args.database_url
        subprocess.run(
            [sys.executable, "-m", "tajiri_live", "migrate"],
            env=env,
            check=True,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
        )
    elif args.nodes > 1:
        parser.error("--nodes > 1 needs --database-url (PostgreSQL): SQLite is one node")
    rows: list[dict[str, Any]] = []
    client = build_client(workdir)

    def load(servers: list[Server], path: str, stream_id: int, protocol: str) -> dict[str, Any]:
        return run_load(
            client,
            servers,
            path,
            args.viewers,
            args.rate,
            args.seconds,
            args.redis_url,
            prefix,
            stream_id,
            args.clients,
            protocol,
        )

    try:
        servers = [start_tajiri(env, workdir, args.workers) for _ in range(args.nodes)]
        try:
            for protocol in args.protocols.split(","):
                stream_id = create_live_stream(servers[0].port)
                path = (
                    viewer_paths(workdir, stream_id, args.viewers)
                    if protocol == "plain"
                    else "/app/tajiri-live?protocol=7"
                )
                rows.append(load(servers, path, stream_id, protocol))
                end_live_stream(servers[0].port, stream_id)
        finally:
            for server in servers:
                server.stop()
        # memory per idle viewer on a fresh process (one worker), so nothing earlier is reused
        fresh = start_tajiri(env, workdir, 1)
        try:
            idle_stream = create_live_stream(fresh.port)
            idle = idle_memory(client, fresh, f"/streams/{idle_stream}", args.idle)
            end_live_stream(fresh.port, idle_stream)
        finally:
            fresh.stop()
        written = [row["frames_per_write"] for row in rows if row.get("frames_per_write")]
        floor = (
            send_floor(workdir, args.viewers, written[0], args.rate, args.seconds)
            if written
            else None
        )
        if not args.no_baseline:
            naive = start_naive(env, workdir)
            try:
                rows.append(load([naive], f"/streams/{stream_id}", stream_id, "plain"))
            finally:
                naive.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        asyncio.run(forget_keys(args.redis_url, prefix))

    report = table(rows)
    ours = [row for row in rows if row["server"].startswith("tajiri-live")]
    naive = None if args.no_baseline else rows[-1]
    report += (
        f"\nIdle: {idle['viewers']:,} viewers on one process, "
        f"{idle['rss_per_conn_kb']:.2f} KB RSS each ({idle['rss_mb']:.0f} MB in all).\n"
    )
    for row in ours:
        if naive is not None and naive["frames_per_cpu_s"]:
            ratio = row["frames_per_cpu_s"] / naive["frames_per_cpu_s"]
            report += f"Frames per server CPU-second, {row['server']} / naive: {ratio:.1f}×.\n"
    for row in ours:
        report += (
            f"Viewer counts ({row['server']}): every viewer was last told {row['final_counts']} "
            f"(agree with the {row['viewers']:,} connected: "
            f"{'yes' if row['counts_agree'] else 'NO'}).\n"
        )
    for row in ours:
        who = "anonymous, each then subscribing" if "pusher" in row["server"] else "each a user"
        report += (
            f"Join storm ({row['server']}): {row['viewers']:,} viewers ({who}) connected in "
            f"{row['connect_s']:.1f} s ({row['viewers'] / max(row['connect_s'], 1e-9):,.0f} "
            "handshakes/s).\n"
        )
        if row["viewers"]:  # robust on a busy host: what the server spent, not what it waited
            report += (
                f"Join storm server CPU ({row['server']}): "
                f"{1000 * row['connect_cpu_s'] / row['viewers']:.2f} ms per handshake.\n"
            )
    for row in rows:
        if "turns" in row:
            report += (
                f"{row['server']}: {row['turns']:,.0f} turns of the wheel, writing for "
                f"{row['mean_turn_ms']:.1f} ms on average (max {row['max_turn_ms']:.1f} ms); "
                f"{row['frames_per_write']:.1f} frames per write; garbage collector "
                f"{row['gc_seconds']:.2f} s in all, longest pause {row['gc_max_ms']:.1f} ms "
                f"({row['gc_full']:,.0f} full collections).\n"
            )
    if isinstance(floor, str):
        report += f"Send floor (bench/sendfloor.c): not measured: {floor}.\n"
    elif floor is not None:
        report += (
            f"Send floor (bench/sendfloor.c: a C sender and no server, {floor['connections']:,} "
            f"loopback sockets, {floor['frames_per_write']} frames of {floor['frame_bytes']} "
            f"bytes a write): {floor['cpu_us_per_send']:.1f} µs of CPU per send, at most "
            f"{floor['frames_per_cpu_second']:,.0f} frames per CPU-second on this host"
            + (
                f" ({floor['short_writes']:,} writes the reader was too slow to take in full)"
                if floor["short_writes"]
                else ""
            )
            + ".\n"
        )
        # Measured at the first row's frames per write and frame size: the other protocol's
        # rows write other frames, and are not compared with it.
        floored = next(row for row in ours if row.get("frames_per_write"))
        share = floored["frames_per_cpu_s"] / floor["frames_per_cpu_second"]
        report += f"{floored['server']}: {100 * share:.0f} % of the send floor.\n"
    report += bars(ours, naive, idle, args)
    report += budget_bars(ours, args)
    print(report)
    if args.write_docs:
        write_docs(report, args)
    for row in ours:
        if row["viewers"] < args.viewers:
            raise SystemExit(f"{row['server']}: only {row['viewers']} of {args.viewers} connected")
        if row["lost"]:
            raise SystemExit(f"{row['server']} lost {row['lost']} frames")
        if not row["counts_agree"]:
            raise SystemExit(f"{row['server']}: viewer counts disagree: {row['final_counts']}")


def bars(
    ours: list[dict[str, Any]],
    naive: dict[str, Any] | None,
    idle: dict[str, Any],
    args: argparse.Namespace,
) -> str:
    """The issue's bars, each met or not, for the run they are defined on."""
    if (args.viewers, args.rate, args.nodes, args.workers) != (BAR_VIEWERS, BAR_RATE, 1, 1):
        return (
            f"Bars: defined at {BAR_VIEWERS:,} viewers × {BAR_RATE} events/s on one process; "
            "not judged for this run.\n"
        )
    lines = []
    for row in ours:
        checks = [
            ("all delivered, none lost", not row["lost"] and row["viewers"] == BAR_VIEWERS),
            (f"p99 {row['p99_ms']:.0f} ms < {BAR_P99_MS} ms", row["p99_ms"] < BAR_P99_MS),
            (
                f"{row['frames_per_cpu_s']:,.0f} frames per CPU-second ≥ {BAR_FRAMES_PER_CPU_S:,}",
                row["frames_per_cpu_s"] >= BAR_FRAMES_PER_CPU_S,
            ),
        ]
        if naive is not None and naive["frames_per_cpu_s"]:
            ratio = row["frames_per_cpu_s"] / naive["frames_per_cpu_s"]
            checks.append((f"{ratio:.1f}× the naive baseline ≥ {BAR_RATIO}×", ratio >= BAR_RATIO))
        met = ", ".join(f"{text}: {'met' if ok else 'NOT met'}" for text, ok in checks)
        lines.append(f"Bars, {row['server']}: {met}.")
    if idle["viewers"] >= BAR_IDLE_VIEWERS:
        ok = idle["rss_per_conn_kb"] <= BAR_IDLE_KB
        lines.append(
            f"Bar, idle: {idle['viewers']:,} viewers at {idle['rss_per_conn_kb']:.2f} KB each "
            f"≤ {BAR_IDLE_KB} KB: {'met' if ok else 'NOT met'}."
        )
    return "\n".join(lines) + "\n"


def budget_bars(ours: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The latency budget's bars, for the run they are defined on (nothing otherwise)."""
    budget = dict(item.split("=", 1) for item in args.set).get(
        "TAJIRI_REALTIME_LATENCY_BUDGET_MS", str(BUDGET_BAR_MS)
    )
    shape = (args.viewers, args.rate, args.nodes, args.workers)
    if shape != (BUDGET_BAR_VIEWERS, BUDGET_BAR_RATE, 1, 1) or float(budget) != BUDGET_BAR_MS:
        return ""
    lines = []
    for row in ours:
        checks = [
            ("all delivered, none lost", not row["lost"] and row["viewers"] == BUDGET_BAR_VIEWERS),
            (f"p99 {row['p99_ms']:.0f} ms ≤ {BUDGET_BAR_MS} ms", row["p99_ms"] <= BUDGET_BAR_MS),
            (
                f"{row['frames_per_cpu_s']:,.0f} frames per CPU-second "
                f"≥ {BUDGET_BAR_FRAMES_PER_CPU_S:,}",
                row["frames_per_cpu_s"] >= BUDGET_BAR_FRAMES_PER_CPU_S,
            ),
        ]
        met = ", ".join(f"{text}: {'met' if ok else 'NOT met'}" for text, ok in checks)
        lines.append(f"Bars, latency budget {BUDGET_BAR_MS} ms, {row['server']}: {met}.")
    return "\n".join(lines) + "\n"


def write_docs(report: str, args: argparse.Namespace) -> None:
    name = DOC_BLOCK if args.nodes == 1 else f"{DOC_BLOCK}-{args.nodes}-nodes"
    command = (
        f"bench/fanout.py --viewers {args.viewers} --rate {args.rate} "
        f"--seconds {args.seconds:g} --idle {args.idle}"
    )
    if args.nodes > 1:
        command += f" --nodes {args.nodes} --database-url postgresql+asyncpg://..."
    if args.workers > 1:
        command += f" --workers {args.workers}"
    write_doc_block(name, command, report)


if __name__ == "__main__":
    main()
