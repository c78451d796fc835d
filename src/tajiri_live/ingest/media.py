"""What ffmpeg makes from a stream on the ingest host: the recording and the thumbnails.

nginx records every publish as FLV parts (`parts/{id}_{n}-{time}.flv`). Once a recorded
stream has ended, its parts are joined into one fast-start MP4 and a JPEG is taken from it;
parts of streams that are not recorded are deleted. While a stream is live, a thumbnail is
taken from its newest HLS segment every `ingest_thumbnail_seconds`. These jobs run on the
nodes that share the media directory with nginx, and claim their work with conditional
updates, so several such nodes may run them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import tempfile
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

from sqlalchemy import or_, select, update

from tajiri_live.core.runtime import Runtime
from tajiri_live.ingest.nginx import MediaDirs, media_dirs
from tajiri_live.ingest.service import publish_name
from tajiri_live.streams.lifecycle import FINAL_STATUSES, StreamStatus
from tajiri_live.streams.models import LiveStream

log = logging.getLogger(__name__)

PART_NAME = re.compile(r"^(\d+)_(\d+)-(\d+)\.flv$")
HLS_FOLDER = re.compile(r"^(\d+)_(\d+)$")
HLS_KEEP_SECONDS = 120.0  # an old playlist's folder stays this long after its last write
PART_SETTLE_SECONDS = 2.0  # nginx may still be closing a part this soon after its last write
RECORDING_LEASE = timedelta(minutes=10)  # a claim by a node that died is taken over after it
FFMPEG_TIMEOUT_SECONDS = 600.0
THUMBNAIL_WIDTH = 640
SCALE_DOWN = f"scale='min({THUMBNAIL_WIDTH},iw)':-2"  # never up


async def run_ffmpeg(binary: str, *args: str, limit: float = FFMPEG_TIMEOUT_SECONDS) -> bool:
    process = await asyncio.create_subprocess_exec(
        binary,
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-y",
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(process.communicate(), limit)
    except TimeoutError:
        process.kill()
        await process.wait()
        log.error("ffmpeg timed out after %ss", limit)
        return False
    if process.returncode != 0:
        log.error("ffmpeg failed (%s): %s", process.returncode, err.decode(errors="replace")[-500:])
        return False
    return True


def _parts_by_stream(dirs: MediaDirs) -> dict[int, list[Path]]:
    found: dict[int, list[tuple[int, int, Path]]] = defaultdict(list)
    for path in dirs.parts.glob("*.flv"):
        match = PART_NAME.match(path.name)
        if match:
            stream_id, number, started = (int(g) for g in match.groups())
            found[stream_id].append((number, started, path))
    return {sid: [p for *_, p in sorted(parts)] for sid, parts in found.items()}


def _settled(parts: list[Path]) -> bool:
    newest = max(p.stat().st_mtime for p in parts)
    return time.time() - newest >= PART_SETTLE_SECONDS


def _delete(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


async def join_parts(binary: str, parts: list[Path], target: Path) -> bool:
    """One fast-start MP4 from the parts, written beside the target and renamed into place."""
    partial = target.with_suffix(".partial.mp4")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=target.parent) as listing:
        for part in parts:
            listing.write(f"file '{part.resolve()}'\n")
        listing.flush()
        ok = await run_ffmpeg(
            binary,
            *("-f", "concat", "-safe", "0", "-i", listing.name),
            *("-c", "copy", "-movflags", "+faststart", str(partial)),
        )
    if ok:
        os.replace(partial, target)
    else:
        partial.unlink(missing_ok=True)
    return ok


async def take_thumbnail(binary: str, source: Path, target: Path, *, at: float = 0.0) -> bool:
    partial = target.with_suffix(".partial.jpg")
    ok = await run_ffmpeg(
        binary,
        *("-ss", f"{at:g}", "-i", str(source)),
        *("-frames:v", "1", "-vf", SCALE_DOWN, "-q:v", "4", str(partial)),
        limit=60,
    )
    ok = ok and partial.exists() and partial.stat().st_size > 0
    if ok:
        os.replace(partial, target)
    else:
        partial.unlink(missing_ok=True)
    return ok


async def _claim_recording(runtime: Runtime, stream_id: int) -> bool:
    """Whether this node may make the finished stream's recording now."""
    now = runtime.clock.now()
    async with runtime.sessions() as session:
        claimed = await session.execute(
            update(LiveStream)
            .where(
                LiveStream.id == stream_id,
                LiveStream.status.in_([s.value for s in FINAL_STATUSES]),
                LiveStream.is_recorded.is_(True),
                LiveStream.recording_path.is_(None),
                or_(
                    LiveStream.recording_claimed_at.is_(None),
                    LiveStream.recording_claimed_at < now - RECORDING_LEASE,
                ),
            )
            .values(recording_claimed_at=now)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        return getattr(claimed, "rowcount", 0) == 1


async def finalize_recordings(runtime: Runtime) -> int:
    """Join the parts of every finished recorded stream; drop those of the others."""
    settings = runtime.settings
    dirs = media_dirs(settings)
    if not settings.ingest_enabled or not dirs.parts.is_dir():
        return 0
    made = 0
    for stream_id, parts in _parts_by_stream(dirs).items():
        if not _settled(parts):
            continue
        async with runtime.sessions() as session:
            row = (
                await session.execute(
                    select(LiveStream.status, LiveStream.is_recorded).where(
                        LiveStream.id == stream_id
                    )
                )
            ).one_or_none()
        if row is not None and StreamStatus(row.status) not in FINAL_STATUSES:
            continue  # still on air, or may resume
        if row is None or not row.is_recorded:
            _delete(parts)
            continue
        if not await _claim_recording(runtime, stream_id):
            continue
        if await make_recording(runtime, stream_id, parts, dirs):
            made += 1
    return made


async def make_recording(
    runtime: Runtime, stream_id: int, parts: list[Path], dirs: MediaDirs
) -> bool:
    binary = runtime.settings.ingest_ffmpeg_binary
    dirs.recordings.mkdir(parents=True, exist_ok=True)
    video = dirs.recordings / f"{stream_id}.mp4"
    if not await join_parts(binary, parts, video):
        return False  # the parts stay; the claim expires and another attempt follows
    if not await take_thumbnail(binary, video, video.with_suffix(".jpg"), at=1.0):
        await take_thumbnail(binary, video, video.with_suffix(".jpg"))
    async with runtime.sessions() as session:
        await session.execute(
            update(LiveStream)
            .where(LiveStream.id == stream_id)
            .values(recording_path=f"{dirs.recordings.name}/{video.name}")
        )
        await session.commit()
    _delete(parts)
    log.info("stream %s: recording ready (%d parts)", stream_id, len(parts))
    return True


async def remove_old_playlists(runtime: Runtime) -> int:
    """HLS folders of earlier publishes and of finished streams, once players are done with
    them (nginx cleans segments while a publish runs, not the folder after it)."""
    settings = runtime.settings
    dirs = media_dirs(settings)
    if not settings.ingest_enabled or not dirs.hls.is_dir():
        return 0
    folders: dict[int, list[tuple[int, Path]]] = defaultdict(list)
    quiet_since = time.time() - HLS_KEEP_SECONDS
    for path in dirs.hls.iterdir():
        match = HLS_FOLDER.match(path.name)
        if match and path.is_dir() and path.stat().st_mtime < quiet_since:
            folders[int(match[1])].append((int(match[2]), path))
    if not folders:
        return 0
    async with runtime.sessions() as session:
        rows = (
            await session.execute(
                select(LiveStream.id, LiveStream.status, LiveStream.publish_count).where(
                    LiveStream.id.in_(list(folders))
                )
            )
        ).all()
    current = {
        row.id: (-1 if StreamStatus(row.status) in FINAL_STATUSES else row.publish_count)
        for row in rows
    }
    removed = 0
    for stream_id, found in folders.items():
        for number, path in found:
            if number != current.get(stream_id, -1):
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
    return removed


def _newest_segment(dirs: MediaDirs, name: str) -> Path | None:
    segments = [p for p in (dirs.hls / name).rglob("*.ts") if p.stat().st_size > 0]
    return max(segments, key=lambda p: p.stat().st_mtime) if segments else None


async def refresh_live_thumbnails(runtime: Runtime) -> int:
    """A fresh frame for every live stream whose thumbnail is older than the interval."""
    settings = runtime.settings
    dirs = media_dirs(settings)
    if not settings.ingest_enabled or not dirs.hls.is_dir():
        return 0
    now = runtime.clock.now()
    due = now - timedelta(seconds=settings.ingest_thumbnail_seconds)
    async with runtime.sessions() as session:
        rows = (
            await session.execute(
                select(LiveStream.id, LiveStream.publish_count).where(
                    LiveStream.status == StreamStatus.LIVE.value,
                    LiveStream.playback_ready_at.is_not(None),
                    or_(LiveStream.live_thumbnail_at.is_(None), LiveStream.live_thumbnail_at < due),
                )
            )
        ).all()
    refreshed = 0
    dirs.thumbnails.mkdir(parents=True, exist_ok=True)
    for stream_id, number in rows:
        segment = _newest_segment(dirs, publish_name(stream_id, number))
        target = dirs.thumbnails / f"{stream_id}.jpg"
        if segment is None or not await take_thumbnail(
            settings.ingest_ffmpeg_binary, segment, target
        ):
            continue
        async with runtime.sessions() as session:
            await session.execute(
                update(LiveStream).where(LiveStream.id == stream_id).values(live_thumbnail_at=now)
            )
            await session.commit()
        refreshed += 1
    return refreshed
