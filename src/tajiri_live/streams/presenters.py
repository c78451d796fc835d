"""Streams as the client contract spells them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from tajiri_live.core import medialinks as links
from tajiri_live.core.auth import Principal
from tajiri_live.core.clock import iso
from tajiri_live.core.settings import Settings
from tajiri_live.realtime.events import stream_channel
from tajiri_live.streams.lifecycle import StreamStatus
from tajiri_live.streams.models import LiveStream, StreamCoHost
from tajiri_live.users.presenters import user_dict

SCHEDULED_LIKE = frozenset({StreamStatus.SCHEDULED, StreamStatus.PRE_LIVE})
ENDED_LIKE = frozenset({StreamStatus.ENDING, StreamStatus.ENDED, StreamStatus.CANCELLED})
ACTIVE_LIKE = frozenset({StreamStatus.PRE_LIVE, StreamStatus.LIVE})


class Playable(Protocol):
    """What a playback link is made of: a stream's row, or its admission facts."""

    @property
    def id(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def playback_ready_at(self) -> datetime | None: ...
    @property
    def publish_count(self) -> int: ...
    @property
    def ingest_media_url(self) -> str | None: ...


def storage_base_url(settings: Settings) -> str:
    return f"{settings.public_base_url.rstrip('/')}/storage"


def playback_url(stream: Playable, settings: Settings, *, viewer_id: int = 0) -> str | None:
    """The HLS playlist once it can be played, else None (the client then waits for the
    `status_changed` that carries it): with ingest, when the stream is live and its playlist
    exists; without, while live if `hls_base_url` names the server that has it (nothing here
    serves HLS without ingest: a link would be dead).

    With ingest the link is signed for `viewer_id` (0: anyone who hears a broadcast)."""
    if stream.status != StreamStatus.LIVE:
        return None
    if not settings.ingest_enabled:
        if not settings.hls_base_url:
            return None
        return f"{settings.hls_base_url.rstrip('/')}/{stream.id}/index.m3u8"
    if stream.playback_ready_at is None:
        return None
    return links.media_url(
        settings,
        kind=links.HLS,
        stream_id=stream.id,
        rest=f"_{stream.publish_count}/index.m3u8",
        viewer=viewer_id,
        base=stream.ingest_media_url,
    )


def media_links(stream: LiveStream, settings: Settings, *, viewer_id: int) -> dict[str, Any]:
    """The replay (once recorded) and the live thumbnail (while live), signed like playback."""
    if not settings.ingest_enabled:
        return {"replay_url": None, "replay_thumbnail_url": None, "live_thumbnail_url": None}
    recorded = stream.recording_path is not None
    live = stream.status == StreamStatus.LIVE and stream.live_thumbnail_at is not None

    def link(kind: str, rest: str, present: bool) -> str | None:
        if not present:
            return None
        return links.media_url(
            settings,
            kind=kind,
            stream_id=stream.id,
            rest=rest,
            viewer=viewer_id,
            base=stream.ingest_media_url,
        )

    return {
        "replay_url": link(links.RECORDINGS, ".mp4", recorded),
        "replay_thumbnail_url": link(links.RECORDINGS, ".jpg", recorded),
        "live_thumbnail_url": link(links.THUMBNAILS, ".jpg", live),
    }


def ingest_dict(stream: LiveStream, settings: Settings) -> dict[str, Any]:
    """What the owner sees of the encoder: connected or not, and its health."""
    return {
        "publishing": stream.publisher_client is not None,
        "publisher_seen_at": iso(stream.publisher_seen_at),
        "playback_ready": stream.playback_ready_at is not None,
        "publish_count": stream.publish_count,
        "key_expires_at": iso(key_expires_at(stream, settings)),
        "health": stream.ingest_health,
    }


def key_expires_at(stream: LiveStream, settings: Settings) -> datetime:
    """A key lives `ingest_key_ttl_hours` past its stream's creation or schedule, unless it
    was revoked (the stream ended) or rotated since."""
    if stream.stream_key_expires_at is not None:
        return stream.stream_key_expires_at
    base = max(stream.created_at, stream.scheduled_at or stream.created_at)
    try:
        return base + timedelta(hours=settings.ingest_key_ttl_hours)
    except OverflowError:  # a schedule stored before schedules were bounded: never expires
        return datetime.max.replace(tzinfo=UTC)


def ingest_url(stream: LiveStream, settings: Settings) -> str:
    return f"{settings.rtmp_ingest_url.rstrip('/')}/{stream.stream_key}"


def websocket_info(stream_id: int, settings: Settings, *, public: bool = True) -> dict[str, str]:
    channel = stream_channel(stream_id)
    if settings.websocket_protocol == "pusher":
        url = f"{settings.websocket_base_url}/app/{settings.pusher_app_key}"
        channel = channel if public else f"private-{channel}"  # signed by /broadcasting/auth
    else:
        url = f"{settings.websocket_base_url}/streams/{stream_id}"
    return {
        "url": url,
        "channel": channel,
        "global_channel": settings.global_channel,
        "protocol": settings.websocket_protocol,
    }


def cohost_dict(cohost: StreamCoHost, settings: Settings) -> dict[str, Any]:
    return {
        "id": cohost.id,
        "stream_id": cohost.stream_id,
        "user_id": cohost.user_id,
        "status": cohost.status,
        "joined_at": iso(cohost.joined_at),
        "left_at": iso(cohost.left_at),
        "user": user_dict(cohost.user, storage_base_url=storage_base_url(settings)),
    }


def stream_dict(
    stream: LiveStream,
    *,
    viewer: Principal | None,
    settings: Settings,
    is_liked: bool = False,
    reaction_counts: dict[str, int] | None = None,
) -> dict[str, Any]:
    # The key publishes as the owner: never shown to a claimed id (legacy identity), which
    # anyone can claim; the legacy client publishes by stream id anyway.
    is_owner = viewer is not None and viewer.user_id == stream.user_id and viewer.verified
    viewer_id = viewer.user_id if viewer is not None else 0
    return {
        "id": stream.id,
        "user_id": stream.user_id,
        "stream_key": stream.stream_key if is_owner else None,
        "title": stream.title,
        "description": stream.description,
        "thumbnail_path": stream.thumbnail_path,
        "category": stream.category,
        "tags": list(stream.tags or []),
        "status": stream.status,
        "privacy": stream.privacy,
        "stream_url": ingest_url(stream, settings) if is_owner else None,
        "playback_url": playback_url(stream, settings, viewer_id=viewer_id),
        **media_links(stream, settings, viewer_id=viewer_id),
        "recording_path": stream.recording_path,
        "is_recorded": stream.is_recorded,
        "allow_comments": stream.allow_comments,
        "allow_gifts": stream.allow_gifts,
        "allow_co_hosts": stream.allow_co_hosts,
        "split_gifts_with_cohosts": stream.split_gifts_with_cohosts,
        "viewers_count": stream.current_viewers,
        "current_viewers": stream.current_viewers,
        "peak_viewers": stream.peak_viewers,
        "total_viewers": stream.total_viewers,
        "unique_viewers": stream.unique_viewers,
        "likes_count": stream.likes_count,
        "comments_count": stream.comments_count,
        "gifts_count": stream.gifts_count,
        "shares_count": stream.shares_count,
        "gifts_value": stream.gifts_value,
        # health (the fuller spec's columns): running averages over the samples
        "network_quality": stream.network_quality,
        "average_bitrate": round(stream.average_bitrate),
        "average_fps": round(stream.average_fps, 1),
        "total_dropped_frames": stream.total_dropped_frames,
        "average_latency": round(stream.average_latency, 2),
        "scheduled_at": iso(stream.scheduled_at),
        "pre_live_started_at": iso(stream.pre_live_started_at),
        "started_at": iso(stream.started_at),
        "ended_at": iso(stream.ended_at),
        "cancelled_at": iso(stream.cancelled_at),
        "duration": stream.duration,
        "created_at": iso(stream.created_at),
        "updated_at": iso(stream.updated_at),
        "user": user_dict(stream.user, storage_base_url=storage_base_url(settings)),
        "cohosts": [cohost_dict(c, settings) for c in stream.cohosts],
        "is_liked": is_liked,
        "reaction_counts": reaction_counts or {},
        "ingest": ingest_dict(stream, settings) if is_owner else None,
    }


def status_info(stream: LiveStream) -> dict[str, Any]:
    status = stream.status_enum
    return {
        "status": status.value,
        "is_active": status in ACTIVE_LIKE,
        "is_live": status is StreamStatus.LIVE,
        "is_ended": status in ENDED_LIKE,
        "is_scheduled": status in SCHEDULED_LIKE,
        "started_at": iso(stream.started_at),
        "ended_at": iso(stream.ended_at),
        "can_join": status is StreamStatus.LIVE,
    }


def ended_summary(stream: LiveStream) -> dict[str, Any] | None:
    if stream.status_enum not in ENDED_LIKE:
        return None
    return {
        "ended_at": iso(stream.ended_at),
        "duration": stream.duration,
        "total_viewers": stream.total_viewers,
        "peak_viewers": stream.peak_viewers,
        "likes_count": stream.likes_count,
        "comments_count": stream.comments_count,
    }


def status_changed_data(
    stream: LiveStream, *, old_status: str, status: str, settings: Settings, now: datetime
) -> dict[str, Any]:
    on_air = status == StreamStatus.LIVE
    return {
        "stream_id": stream.id,
        "old_status": old_status,
        "status": status,
        "started_at": iso(stream.started_at),
        "ended_at": iso(stream.ended_at),
        "duration": stream.duration,
        "playback_url": playback_url(stream, settings) if on_air else None,
        "timestamp": iso(now),
    }
