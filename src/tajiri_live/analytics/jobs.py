"""Analytics jobs: live snapshots, post-stream reports, the retention of raw viewer rows.
Each is safe on many nodes at once (conditional inserts, upserts)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tajiri_live.analytics import service
from tajiri_live.core.batches import is_data_error, quarantine
from tajiri_live.core.runtime import Runtime
from tajiri_live.core.scheduler import PeriodicJob
from tajiri_live.streams.lifecycle import StreamStatus
from tajiri_live.streams.models import LiveStream
from tajiri_live.viewers.service import room_of

BATCH = 50


async def snapshot_live_streams(runtime: Runtime) -> int:
    """One snapshot per live stream and period, whichever node gets there first."""
    period = runtime.settings.analytics_snapshot_seconds
    at = service.snapshot_slot(runtime.clock.now(), period)
    written = 0
    async with runtime.sessions() as session:
        live = await session.scalars(
            select(LiveStream).where(LiveStream.status == StreamStatus.LIVE.value)
        )
        for stream in live.all():
            stream_id = stream.id
            counts = await runtime.presence.counts(room_of(stream_id))
            try:
                written += await service.take_snapshot(
                    session, stream=stream, current_viewers=counts.current, at=at, period=period
                )
            except Exception as exc:  # one stream's bad row must not cost the others theirs
                if not is_data_error(exc):
                    raise
                await session.rollback()
                quarantine("analytics_snapshots", f"the snapshot of stream {stream_id}", exc)
    return written


async def report(runtime: Runtime, stream_id: int) -> dict[str, object] | None:
    """(Re)generate one stream's report and store it; None for an unknown stream."""
    now = runtime.clock.now()
    async with runtime.sessions() as session:
        stream = await session.get(LiveStream, stream_id)
        if stream is None:
            return None
        data = await service.build_report(runtime, stream=stream, now=now)
        await service.save_report(session, stream_id=stream_id, data=data, now=now)
        return data


async def generate_reports(runtime: Runtime) -> int:
    """The post-stream job: a report for every ended stream that has none yet."""
    async with runtime.sessions() as session:
        waiting = (await session.scalars(service.ended_without_report().limit(BATCH))).all()
    for stream_id in waiting:
        await report(runtime, stream_id)
    return len(waiting)


async def purge_old_sessions(runtime: Runtime) -> int:
    """Fold viewer rows older than the retention period into the report, then delete them."""
    days = runtime.settings.viewer_rows_retention_days
    cutoff = runtime.clock.now() - timedelta(days=days)
    async with runtime.sessions() as session:
        due = (await session.scalars(service.purgeable_streams(cutoff).limit(BATCH))).all()
    deleted = 0
    for stream_id in due:
        await report(runtime, stream_id)  # up to date with every row, then final
        async with runtime.sessions() as session:
            deleted += await service.purge_sessions(
                session, stream_id=stream_id, now=runtime.clock.now()
            )
    return deleted


def analytics_jobs(runtime: Runtime) -> list[PeriodicJob]:
    settings = runtime.settings
    return [
        PeriodicJob(
            "analytics.snapshots",
            settings.analytics_snapshot_seconds,
            lambda: snapshot_live_streams(runtime),
        ),
        PeriodicJob(
            "analytics.reports",
            settings.job_reports_every_seconds,
            lambda: generate_reports(runtime),
        ),
        PeriodicJob(
            "analytics.purge_sessions",
            settings.job_purge_sessions_every_seconds,
            lambda: purge_old_sessions(runtime),
        ),
    ]
