"""Ingest latency: how long a phone's publish takes to be playable, and glass-to-glass HLS delay.

Starts `tajiri-live serve` (embedded SQLite) and `tajiri-live ingest` (nginx-rtmp), then for each
run pushes a synthetic source with ffmpeg (paced in real time, like a camera) and measures:

- publish to playable: ffmpeg starts -> a WebSocket viewer gets `status_changed` with a
  `playback_url` (the stream is live and its playlist exists);
- segment availability: for every HLS segment, the moment it is listed in the playlist minus
  the moment its last frame was captured (capture time = ffmpeg's start + the frame's
  timestamp: ffmpeg starts before its first frame, so this overstates the delay a little);
- glass to glass: a player that starts each segment as soon as it is listed shows a frame
  (availability + segment duration) after its capture; hls.js' default holds back three
  segments from the live edge, which adds two more segment durations.

    python bench/ingest.py            # 3 runs of 15 s, 1 s segments; writes docs/benchmarks.md
    python bench/ingest.py --quick    # one short run, checks it works, writes nothing
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urljoin

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port, percentile, write_doc_block

SOURCE = (
    *("-re", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=30"),
    *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"),
    *("-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "30"),
    *("-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv"),
)


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_port(port: int, within: float = 30) -> None:
    import socket

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


FORMAT = "format=start_time,duration"


def first_pts(data: bytes, workdir: Path) -> tuple[float, float]:
    """(start, duration) of an MPEG-TS segment, from ffprobe."""
    path = workdir / "segment.ts"
    path.write_bytes(data)
    probed = subprocess.run(
        [*("ffprobe", "-v", "error", "-of", "json"), "-show_entries", FORMAT, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    fmt = json.loads(probed.stdout)["format"]
    return float(fmt["start_time"]), float(fmt["duration"])


async def one_run(
    api: httpx.AsyncClient, ws_base: str, rtmp: str, seconds: float, workdir: Path, token: str
) -> tuple[float, list[float], float]:
    headers = {"Authorization": f"Bearer {token}"}
    created = await api.post("/api/streams", json={"title": "bench"}, headers=headers)
    stream = created.json()["data"]
    async with websockets.connect(f"{ws_base}/streams/{stream['id']}") as socket:
        pushed = time.monotonic()
        encoder = await asyncio.create_subprocess_exec(
            *("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", *SOURCE),
            f"{rtmp}/{stream['stream_key']}",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while True:
                event = json.loads(await asyncio.wait_for(socket.recv(), 30))
                if event["event"] == "status_changed" and event["data"]["playback_url"]:
                    break
            playable = time.monotonic() - pushed
            playlist_url = event["data"]["playback_url"]
            seen: dict[str, float] = {}
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                text = (await api.get(playlist_url)).text
                now = time.monotonic()
                for line in text.splitlines():
                    if line.endswith(".ts") and line not in seen:
                        seen[line] = now
                await asyncio.sleep(0.05)
        finally:
            encoder.terminate()
            await asyncio.wait_for(encoder.wait(), 10)
        await api.post(f"/api/streams/{stream['id']}/end", headers=headers)
    delays: list[float] = []
    durations: list[float] = []
    origin: float | None = None
    for name, listed in seen.items():
        response = await api.get(urljoin(playlist_url, name))
        if response.status_code != 200:
            continue  # already rotated out of the window
        start_pts, duration = first_pts(response.content, workdir)
        origin = start_pts if origin is None else origin
        captured_end = pushed + (start_pts - origin) + duration
        delays.append(listed - captured_end)
        durations.append(duration)
    return playable, delays, percentile(durations, 0.5)


def measure(runs: int, seconds: float, workdir: Path) -> dict[str, float]:
    api_port, rtmp_port, http_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAJIRI_")}
    env |= {
        "TAJIRI_VAR_DIR": str(workdir / "var"),
        "TAJIRI_PUBLIC_BASE_URL": f"http://127.0.0.1:{api_port}",
        "TAJIRI_INGEST_ENABLED": "true",
        "TAJIRI_INGEST_RTMP_PORT": str(rtmp_port),
        "TAJIRI_INGEST_HTTP_PORT": str(http_port),
        "TAJIRI_INGEST_MEDIA_DIR": str(workdir / "media"),
        "TAJIRI_INGEST_NGINX_USER": "root" if os.geteuid() == 0 else "nobody",
        "TAJIRI_OUTRO_SECONDS": "0.5",
    }
    tool = [sys.executable, "-m", "tajiri_live"]
    subprocess.run([*tool, "migrate"], env=env, check=True, capture_output=True)
    token = subprocess.run(
        [*tool, "token", "1"], env=env, check=True, capture_output=True, text=True
    ).stdout.split()[-1]
    serve = start([*tool, "serve", "--port", str(api_port)], env, workdir / "serve.log")
    ingest = start([*tool, "ingest"], env, workdir / "ingest.log")
    try:
        wait_port(api_port)
        wait_port(rtmp_port)
        playable, delays, fragment = asyncio.run(
            all_runs(runs, seconds, workdir, token, api_port, rtmp_port)
        )
    finally:
        for process in (ingest, serve):
            os.killpg(process.pid, 15)
            process.wait(timeout=15)
    if not delays:
        raise SystemExit("no segment was measured")
    return {
        "runs": runs,
        "segments": len(delays),
        "fragment": fragment,
        "playable_p50": percentile(playable, 0.5),
        "playable_max": max(playable),
        "available_p50": percentile(delays, 0.5),
        "available_p99": percentile(delays, 0.99),
        "edge_p50": percentile(delays, 0.5) + fragment,
        "edge_p99": percentile(delays, 0.99) + fragment,
        "hlsjs_p50": percentile(delays, 0.5) + 3 * fragment,
    }


async def all_runs(
    runs: int, seconds: float, workdir: Path, token: str, api_port: int, rtmp_port: int
) -> tuple[list[float], list[float], float]:
    playable: list[float] = []
    delays: list[float] = []
    fragment = 0.0
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=10) as api:
        for _ in range(runs):
            ready, run_delays, fragment = await one_run(
                api,
                f"ws://127.0.0.1:{api_port}",
                f"rtmp://127.0.0.1:{rtmp_port}/live",
                seconds,
                workdir,
                token,
            )
            playable.append(ready)
            delays += run_delays
    return playable, delays, fragment


def report(r: dict[str, float]) -> str:
    return (
        "| measure | p50 | worst / p99 |\n|---|---|---|\n"
        f"| publish to playable (`status_changed` with `playback_url`) | {r['playable_p50']:.2f} s "
        f"| {r['playable_max']:.2f} s |\n"
        f"| capture to segment listed | {r['available_p50']:.2f} s | {r['available_p99']:.2f} s |\n"
        f"| glass to glass, player at the live edge | {r['edge_p50']:.2f} s "
        f"| {r['edge_p99']:.2f} s |\n"
        f"| glass to glass, hls.js default (3 segments back) | {r['hlsjs_p50']:.2f} s | |\n\n"
        f"{int(r['runs'])} publishes, {int(r['segments'])} segments of {r['fragment']:.2f} s, "
        "640x360 at 30 fps.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--quick", action="store_true", help="one short run; no docs update")
    args = parser.parse_args()
    if shutil.which("nginx") is None or shutil.which("ffmpeg") is None:
        raise SystemExit("apt-get install nginx libnginx-mod-rtmp ffmpeg")
    runs, seconds = (1, 5.0) if args.quick else (args.runs, args.seconds)
    with tempfile.TemporaryDirectory(prefix="tajiri-ingest-bench-") as tmp:
        results = measure(runs, seconds, Path(tmp))
    text = report(results)
    print(text)
    if not args.quick:
        write_doc_block("ingest", f"python bench/ingest.py --runs {runs}", text)


if __name__ == "__main__":
    main()
