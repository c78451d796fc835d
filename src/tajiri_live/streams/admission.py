"""A stream's admission facts, read once per node and kept until an event changes them.

Admitting a viewer (a socket, a Pusher subscribe, REST `join`) or a comment needs a few
columns of the stream and who broadcasts it, not the ORM row: they are read in one
statement outside any transaction and kept in the node's cache (runtime.stream_facts).
Every node drops them on `status_changed` and `cohost_joined` (the broker carries those to
all); the node that changes privacy, comments, co-hosts or deletes a stream drops them at
once, and the others within `admission_cache_seconds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, and_, bindparam, select

from tajiri_live.core.errors import not_found
from tajiri_live.core.runtime import Runtime
from tajiri_live.realtime.events import COHOST_JOINED, STATUS_CHANGED, Event
from tajiri_live.streams.lifecycle import StreamStatus
from tajiri_live.streams.models import LiveStream, StreamCoHost

STREAMS = cast(Table, LiveStream.__table__)
COHOSTS = cast(Table, StreamCoHost.__table__)
CHANGING_EVENTS = frozenset({STATUS_CHANGED, COHOST_JOINED})


@dataclass(frozen=True, slots=True)
class StreamFacts:
    """What admission, `join` and comments read of a stream (and `playback_url` needs)."""

    id: int
    status: str
    privacy: str
    user_id: int  # the owner
    cohosts: frozenset[int]  # accepted co-hosts
    allow_comments: bool
    playback_ready_at: datetime | None
    publish_count: int
    ingest_media_url: str | None

    @property
    def status_enum(self) -> StreamStatus:
        return StreamStatus(self.status)

    @property
    def public(self) -> bool:
        return self.privacy == "public"

    def broadcasts(self, user_id: int | None) -> bool:
        """The owner or an accepted co-host: they broadcast and are never its viewers."""
        return user_id is not None and (user_id == self.user_id or user_id in self.cohosts)


# One statement, built once: the row with its accepted co-hosts (one row per co-host).
_FACTS = (
    select(
        STREAMS.c.id,
        STREAMS.c.status,
        STREAMS.c.privacy,
        STREAMS.c.user_id,
        STREAMS.c.allow_comments,
        STREAMS.c.playback_ready_at,
        STREAMS.c.publish_count,
        STREAMS.c.ingest_media_url,
        COHOSTS.c.user_id.label("cohost"),
    )
    .select_from(
        STREAMS.outerjoin(
            COHOSTS, and_(COHOSTS.c.stream_id == STREAMS.c.id, COHOSTS.c.status == "accepted")
        )
    )
    # Core SQL skips the ORM's soft-delete condition (streams/softdelete.py): said here.
    .where(STREAMS.c.id == bindparam("stream_id"), STREAMS.c.deleted_at.is_(None))
)


async def _read(runtime: Runtime, stream_id: int) -> StreamFacts | None:
    rows = await runtime.reader.rows(_FACTS, {"stream_id": stream_id})
    if not rows:
        return None
    first = rows[0]
    return StreamFacts(
        id=int(first.id),
        status=first.status,
        privacy=first.privacy,
        user_id=int(first.user_id),
        cohosts=frozenset(int(row.cohost) for row in rows if row.cohost is not None),
        allow_comments=bool(first.allow_comments),
        playback_ready_at=first.playback_ready_at,
        publish_count=int(first.publish_count),
        ingest_media_url=first.ingest_media_url,
    )


async def facts(runtime: Runtime, stream_id: int) -> StreamFacts | None:
    """The stream's facts (None: no such stream), from the node's cache when it has them."""
    found: StreamFacts | None = await runtime.stream_facts.get_or_load(
        stream_id, lambda: _read(runtime, stream_id)
    )
    return found


async def existing(runtime: Runtime, stream_id: int) -> StreamFacts:
    """The stream's facts; 404 when there is no such stream."""
    found = await facts(runtime, stream_id)
    if found is None:
        raise not_found()
    return found


def forget(runtime: Runtime, stream_id: int) -> None:
    """This node changed the stream: its facts are read again next time."""
    runtime.stream_facts.drop(stream_id)


def heard(runtime: Runtime, event: Event) -> None:
    """An event from any node that changes a stream's facts drops them here."""
    if event.name in CHANGING_EVENTS:
        stream_id = event.data.get("stream_id")
        if isinstance(stream_id, int):
            forget(runtime, stream_id)
