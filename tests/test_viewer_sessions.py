"""The batched writer of viewing sessions, and REST leaves versus live sockets."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from tajiri_live.realtime.presence_memory import MemoryPresence
from tajiri_live.streams.models import StreamViewer
from tajiri_live.viewers.sessions import ViewerLog, ViewingSession


async def test_a_deleted_stream_does_not_sink_the_batch(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    owner = auth(1)
    kept = (await client.post("/api/streams", json={"title": "a"}, headers=owner)).json()
    gone = (await client.post("/api/streams", json={"title": "b"}, headers=owner)).json()
    now = runtime.clock.now()
    log = ViewerLog(runtime.sessions)
    watching_kept = ViewingSession(kept["data"]["id"], None, now)
    watching_gone = ViewingSession(gone["data"]["id"], None, now)
    log.joined(watching_kept)
    log.joined(watching_gone)
    await client.delete(f"/api/streams/{gone['data']['id']}", headers=owner)
    assert await log.flush() == 2
    log.left(watching_kept, now + timedelta(seconds=42))
    log.left(watching_gone, now + timedelta(seconds=42))
    await log.flush()
    assert await log.flush() == 0  # nothing is retried forever
    async with runtime.sessions() as session:
        rows = (await session.execute(sa.select(StreamViewer))).scalars().all()
    assert [(r.stream_id, r.watch_duration) for r in rows] == [(kept["data"]["id"], 42)]


async def test_a_rest_leave_does_not_uncount_a_connected_socket() -> None:
    presence = MemoryPresence(member_ttl=30, now=time.time)
    await presence.join("stream:1", "u:5")  # the user's socket
    await presence.join("stream:1", "u:5", ttl=90)  # and a REST join
    await presence.leave("stream:1", "u:5", connection=False)  # the REST leave
    assert (await presence.counts("stream:1")).current == 1
    await presence.leave("stream:1", "u:5")  # the socket closes
    assert (await presence.counts("stream:1")).current == 0
