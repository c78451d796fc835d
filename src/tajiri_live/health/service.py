"""Stream health: the encoder's reports and ingest's samples, kept as running averages on the
stream and as samples for the report; the hosts hear when it turns poor.

Every sample is one transaction: the averages move in one `UPDATE` (SQL reads the old values
on the right-hand side, so concurrent samples never lose one), the sample row is written, and
the quality changes with a conditional `UPDATE ... WHERE network_quality <> :new`, so the
turn to `poor` is seen once however many nodes and sources report at the same moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tajiri_live.core.clock import iso
from tajiri_live.core.db import reload
from tajiri_live.core.errors import ApiError
from tajiri_live.core.runtime import Runtime
from tajiri_live.engagement.service import enforce_rate
from tajiri_live.health import quality
from tajiri_live.health.models import StreamHealthSample
from tajiri_live.health.schemas import HealthReport
from tajiri_live.realtime.events import STREAM_HEALTH_WARNING
from tajiri_live.streams.hosts import publish_to_hosts
from tajiri_live.streams.lifecycle import StreamStatus
from tajiri_live.streams.models import LiveStream

ON_AIR = frozenset({StreamStatus.PRE_LIVE, StreamStatus.LIVE, StreamStatus.ENDING})
RECENT_SAMPLES = 60


@dataclass(frozen=True)
class Sample:
    source: str  # "encoder" or "ingest"
    verdict: quality.Verdict
    bitrate: int | None = None
    fps: float | None = None
    latency: float | None = None
    dropped_running: int | None = None  # the encoder's count since it started


def health_dict(stream: LiveStream) -> dict[str, Any]:
    """The stream's health columns, as REST answers them."""
    return {
        "stream_id": stream.id,
        "network_quality": stream.network_quality,
        "average_bitrate": round(stream.average_bitrate),
        "average_fps": round(stream.average_fps, 1),
        "average_latency": round(stream.average_latency, 2),
        "total_dropped_frames": stream.total_dropped_frames,
        "samples": max(stream.bitrate_samples, stream.fps_samples, stream.latency_samples),
    }


def sample_dict(sample: StreamHealthSample) -> dict[str, Any]:
    return {
        "source": sample.source,
        "network_quality": sample.network_quality,
        "bitrate": sample.bitrate,
        "fps": sample.fps,
        "dropped_frames": sample.dropped_frames,
        "latency": sample.latency,
        "recorded_at": iso(sample.recorded_at),
    }


def _averages(sample: Sample) -> dict[str, Any]:
    """SET clauses for the running averages of the measures the sample carries."""
    s = LiveStream
    values: dict[str, Any] = {}
    for value, average, count in (
        (sample.bitrate, s.average_bitrate, s.bitrate_samples),
        (sample.fps, s.average_fps, s.fps_samples),
        (sample.latency, s.average_latency, s.latency_samples),
    ):
        if value is None or (value == 0 and count is s.fps_samples):
            continue  # a frame rate of 0 means the encoder did not say
        values[average.key] = (average * count + value) / (count + 1)
        values[count.key] = count + 1
    if sample.dropped_running is not None:
        # A running count that went down is a restarted encoder: it counts from zero again.
        reported = sample.dropped_running
        values["total_dropped_frames"] = s.total_dropped_frames + case(
            (s.encoder_dropped_frames <= reported, reported - s.encoder_dropped_frames),
            else_=reported,
        )
        values["encoder_dropped_frames"] = reported
    return values


async def record(
    session: AsyncSession, *, runtime: Runtime, stream: LiveStream, sample: Sample
) -> LiveStream:
    """Store one sample; tell the hosts if it turned the stream's health poor."""
    now = runtime.clock.now()
    previous_dropped = stream.encoder_dropped_frames
    values = _averages(sample)
    if values:
        await session.execute(
            update(LiveStream)
            .where(LiveStream.id == stream.id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    dropped = None
    if sample.dropped_running is not None:
        reported = sample.dropped_running
        dropped = reported - previous_dropped if reported >= previous_dropped else reported
    session.add(
        StreamHealthSample(
            stream_id=stream.id,
            source=sample.source,
            network_quality=sample.verdict.quality,
            bitrate=sample.bitrate,
            fps=sample.fps,
            dropped_frames=dropped,
            latency=sample.latency,
            recorded_at=now,
        )
    )
    changed = await session.execute(
        update(LiveStream)
        .where(LiveStream.id == stream.id, LiveStream.network_quality != sample.verdict.quality)
        .values(network_quality=sample.verdict.quality)
        .execution_options(synchronize_session=False)
    )
    previous_quality = stream.network_quality
    await session.commit()
    await reload(session, stream)
    if getattr(changed, "rowcount", 0) == 1 and sample.verdict.quality == quality.POOR:
        await publish_to_hosts(
            session,
            runtime=runtime,
            stream=stream,
            name=STREAM_HEALTH_WARNING,
            data=_warning(stream, sample, previous_quality, now),
        )
    return stream


def _warning(stream: LiveStream, sample: Sample, previous: str, now: datetime) -> dict[str, Any]:
    reasons = list(sample.verdict.reasons)
    because = "; ".join(reasons) if reasons else "the encoder reports a poor network"
    return {
        "stream_id": stream.id,
        "network_quality": quality.POOR,
        "previous_quality": previous,
        "source": sample.source,
        "bitrate": sample.bitrate,
        "fps": sample.fps,
        "latency": sample.latency,
        "reasons": reasons,
        "message": f"Your stream's connection is poor ({because}).",
        "timestamp": iso(now),
    }


async def report(
    session: AsyncSession, *, runtime: Runtime, stream: LiveStream, body: HealthReport
) -> LiveStream:
    """The encoder's report (its hosts, checked by the caller), while the stream is on air."""
    settings = runtime.settings
    if stream.status_enum not in ON_AIR:
        raise ApiError(
            409,
            f"Health is reported while the stream is on air: it is {stream.status}.",
            stream_status=stream.status,
        )
    await enforce_rate(
        runtime,
        action="health report",
        stream_id=stream.id,
        user_id=0,  # per stream: the owner's and co-hosts' devices share it
        limit=settings.health_report_limit,
        window=settings.health_report_window_seconds,
    )
    verdict = quality.judge(
        bitrate=body.bitrate,
        fps=body.fps,
        latency=body.latency,
        excellent_kbps=settings.health_excellent_kbps,
        poor_kbps=settings.health_poor_kbps,
    )
    named = quality.from_label(body.network_quality)
    if named is not None:  # the encoder knows its network best
        verdict = quality.Verdict(named, verdict.reasons if named == verdict.quality else ())
    sample = Sample(
        source="encoder",
        verdict=verdict,
        bitrate=body.bitrate,
        fps=body.fps,
        latency=body.latency,
        dropped_running=body.dropped_frames,
    )
    return await record(session, runtime=runtime, stream=stream, sample=sample)


def ingest_sample(stats: dict[str, Any], runtime: Runtime) -> Sample | None:
    """A sample from nginx-rtmp's statistics of a published stream: the measured video
    bitrate (or all of it), against the target the encoder declared, and the frame rate."""
    bitrate = stats.get("video_bitrate_kbps")
    if bitrate is None:
        bitrate = stats.get("bitrate_kbps")
    fps = stats.get("fps")
    if bitrate is None and fps is None:
        return None
    settings = runtime.settings
    target = stats.get("declared_video_kbps")
    verdict = quality.judge(
        bitrate=bitrate,
        fps=fps,
        latency=None,
        target_kbps=int(target) if target else None,
        excellent_kbps=settings.health_excellent_kbps,
        poor_kbps=settings.health_poor_kbps,
    )
    return Sample(source="ingest", verdict=verdict, bitrate=bitrate, fps=fps)


async def record_ingest(runtime: Runtime, *, stream_id: int, stats: dict[str, Any]) -> None:
    """ingest's `on_update`: the encoder's real throughput, for encoders that never report."""
    sample = ingest_sample(stats, runtime)
    if sample is None:
        return
    async with runtime.sessions() as session:
        stream = await session.get(LiveStream, stream_id)
        if stream is None or stream.status_enum not in ON_AIR:
            return
        await record(session, runtime=runtime, stream=stream, sample=sample)


async def recent_samples(session: AsyncSession, stream_id: int) -> list[StreamHealthSample]:
    rows = await session.scalars(
        select(StreamHealthSample)
        .where(StreamHealthSample.stream_id == stream_id)
        .order_by(StreamHealthSample.id.desc())
        .limit(RECENT_SAMPLES)
    )
    return list(reversed(list(rows)))
