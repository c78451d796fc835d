"""Hostile-client benchmark: what one attacker costs everyone else (issue 16's bars).

    .venv/bin/python bench/hostile.py --database-url postgresql+asyncpg://.../tajiri_bench
    .venv/bin/python bench/hostile.py --quick            # a short smoke on SQLite

Starts `tajiri-live serve` (Redis for the broker and limits) and measures REST latency
(`--clients` loops reading a stream) alone, then while one socket at a time floods:
1. 40,000 empty continuation frames after a FIN=0 text frame (the socket is reconnected and
   the flood repeated for the whole measurement);
2. 5,000 `reaction` frames from a signed-in socket (likewise repeated);
and the server's memory while four 250 MB bodies are refused (peak RSS minus RSS before).
Bars: REST p99 under 250 ms during each flood; RSS growth under 64 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from common import percentile, write_doc_block  # noqa: E402
from fanout import SECRET, forget_keys, start_tajiri  # noqa: E402

from tajiri_live.core.auth import TokenCodec  # noqa: E402
from tajiri_live.core.settings import Settings  # noqa: E402

MB = 1024 * 1024
P99_BAR_MS = 250.0
RSS_BAR_MB = 64.0


def client_frame(payload: bytes, opcode: int = 0x1, fin: bool = True) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    first = (0x80 if fin else 0) | opcode
    if len(payload) < 126:
        return bytes((first, 0x80 | len(payload))) + mask + masked
    return struct.pack("!BBH", first, 0x80 | 126, len(payload)) + mask + masked


async def flood_once(port: int, path: str, data: bytes) -> None:
    """Connect, upgrade, write `data`, read until the server hangs up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(data)
        await writer.drain()
        while await asyncio.wait_for(reader.read(65536), 10):
            pass
    writer.close()


async def probe(base: str, clients: int, seconds: float, path: str) -> dict[str, Any]:
    """REST latency: `clients` loops reading `path` for `seconds`."""
    latencies: list[float] = []
    codes: dict[int, int] = {}
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:

        async def loop() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                answer = await http.get(path)
                latencies.append(time.perf_counter() - started)
                codes[answer.status_code] = codes.get(answer.status_code, 0) + 1

        await asyncio.gather(*(loop() for _ in range(clients)))
    return {
        "requests": len(latencies),
        "codes": codes,
        "p50_ms": 1000 * percentile(latencies, 0.5),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "max_ms": 1000 * max(latencies, default=0.0),
    }


async def during(
    flood: Callable[[], Awaitable[None]], measure: Callable[[], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """Measure while `flood` runs again and again."""
    stop = asyncio.Event()
    floods = 0

    async def repeat() -> None:
        nonlocal floods
        while not stop.is_set():
            await flood()
            floods += 1

    attacker = asyncio.create_task(repeat())
    try:
        result = await measure()
    finally:
        stop.set()
        await attacker
    return {**result, "floods": floods}


def rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise SystemExit(f"no {field} for {pid}")


async def huge_body(port: int, path: str, headers: dict[str, str], chunked: bool) -> None:
    total = 250 * MB
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}"
        f"{framing}\r\n\r\n".encode()
    )
    answer = asyncio.create_task(reader.read(4096))
    chunk = b" " * (256 * 1024)
    data = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk
    sent = 0
    with contextlib.suppress(ConnectionError):
        while sent < total and not answer.done():
            writer.write(data)
            await writer.drain()
            sent += len(chunk)
    with contextlib.suppress(ConnectionError, TimeoutError):
        await asyncio.wait_for(answer, 30)
    writer.close()


async def run(args: argparse.Namespace, port: int, pid: int) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    tokens = TokenCodec(Settings(jwt_secret=SECRET))
    owner = {"Authorization": f"Bearer {tokens.encode(1)}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        created = await http.post("/api/streams", json={"title": "bench"}, headers=owner)
        sid = created.json()["data"]["id"]
        await http.post(f"/api/streams/{sid}/start", headers=owner)
    path = f"/api/streams/{sid}"

    async def measure() -> dict[str, Any]:
        return await probe(base, args.clients, args.seconds, path)

    fragments = client_frame(b"{", fin=False) + client_frame(b"", 0x0, fin=False) * 40_000
    reaction = client_frame(
        json.dumps({"event": "reaction", "data": {"reaction_type": "fire"}}).encode()
    )
    fan = tokens.encode(2)
    result = {
        "alone": await measure(),
        "fragments": await during(lambda: flood_once(port, "/streams/all", fragments), measure),
        "reactions": await during(
            lambda: flood_once(port, f"/streams/{sid}?token={fan}", reaction * 5000), measure
        ),
    }
    before = rss_kb(pid, "VmRSS")
    token = {"Authorization": f"Bearer {tokens.encode(3)}"}
    await asyncio.gather(
        huge_body(port, "/apps/1/events", {}, chunked=True),
        huge_body(port, "/apps/1/events", {}, chunked=False),
        huge_body(port, f"/api/streams/{sid}/comments", token, chunked=True),
        huge_body(port, f"/api/streams/{sid}/comments", token, chunked=False),
    )
    result["rss"] = {
        "before_mb": before / 1024,
        "peak_mb": rss_kb(pid, "VmHWM") / 1024,
        "growth_mb": (rss_kb(pid, "VmHWM") - before) / 1024,
    }
    return result


def report(result: dict[str, Any], args: argparse.Namespace, backend: str) -> str:
    def row(name: str, r: dict[str, Any], floods: str) -> str:
        met = "met" if r["p99_ms"] < P99_BAR_MS else "MISSED"
        return (
            f"| {name} | {floods} | {r['requests']:,} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['max_ms']:.1f} | {met} |\n"
        )

    rss = result["rss"]
    rss_met = "met" if rss["growth_mb"] < RSS_BAR_MB else "MISSED"
    return (
        f"| REST reads ({args.clients} clients, {backend}) while | floods done "
        f"| requests | p50 ms | p99 ms | max ms | p99 < {P99_BAR_MS:.0f} ms |\n"
        "|---|---|---|---|---|---|---|\n"
        + row("nothing else", result["alone"], "–")
        + row(
            "one socket sends 40,000 empty continuation frames",
            result["fragments"],
            f"{result['fragments']['floods']:,}",
        )
        + row(
            "one signed-in socket sends 5,000 reactions",
            result["reactions"],
            f"{result['reactions']['floods']:,}",
        )
        + f"\nFour concurrent 250 MB bodies refused: RSS {rss['before_mb']:.0f} MB before, "
        f"peak {rss['peak_mb']:.0f} MB, growth {rss['growth_mb']:.1f} MB "
        f"(bar: under {RSS_BAR_MB:.0f} MB: {rss_met}).\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--database-url", default=os.environ.get("TAJIRI_BENCH_DATABASE_URL"))
    parser.add_argument(
        "--redis-url", default=os.environ.get("TAJIRI_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.seconds = 2, 2.0
    workdir = Path(tempfile.mkdtemp(prefix="tajiri-bench-"))
    prefix = f"tajiri-bench:{uuid.uuid4().hex[:8]}:"
    database_url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAJIRI_")}
    env.update(
        {
            "TAJIRI_VAR_DIR": str(workdir / "var"),
            "TAJIRI_JWT_SECRET": SECRET,
            "TAJIRI_DATABASE_URL": database_url,
            "TAJIRI_REDIS_URL": args.redis_url,
            "TAJIRI_REDIS_PREFIX": prefix,
            "TAJIRI_LOG_LEVEL": "warning",
        }
    )
    subprocess.run(
        [sys.executable, "-m", "tajiri_live", "migrate"],
        env=env,
        check=True,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
    )
    server = start_tajiri(env, workdir)
    try:
        result = asyncio.run(run(args, server.port, server.process.pid))
    finally:
        server.stop()
        asyncio.run(forget_keys(args.redis_url, prefix))
    backend = "PostgreSQL" if database_url.startswith("postgresql") else "SQLite"
    text = report(result, args, backend)
    print(text)
    print(json.dumps(result))
    if args.write_docs:
        command = f"bench/hostile.py --clients {args.clients} --seconds {args.seconds:g}"
        write_doc_block("hostile", command, text, where=f" on {backend}")
    errors = sum(
        count for r in result.values() if "codes" in r for code, count in r["codes"].items()
        if code >= 500
    )  # fmt: skip
    if errors:
        raise SystemExit(f"{errors} server errors during the floods")
    if result["rss"]["growth_mb"] >= RSS_BAR_MB:
        raise SystemExit("memory grew past the bar while huge bodies were refused")


if __name__ == "__main__":
    main()
