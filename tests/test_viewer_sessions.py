"""The batched writer of viewing sessions: visits written by key, from any node, in any order."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tajiri_live.streams.models import StreamViewer
from tajiri_live.viewers.sessions import VISIT_COLUMNS, ViewerLog, ViewingSession


async def rows_of(runtime: Any) -> list[StreamViewer]:
    async with runtime.sessions() as session:
        return list((await session.execute(sa.select(StreamViewer))).scalars().all())


@pytest.fixture(params=["session", "direct"])
def new_log(request: pytest.FixtureRequest, runtime: Any) -> Callable[[], ViewerLog]:
    """Both writers of the log: in an ORM session's transaction, and on PostgreSQL one
    statement per batch through the reader's connections (what the app uses there)."""
    if request.param == "direct" and not runtime.reader.direct:
        pytest.skip("direct writes are PostgreSQL's (SQLite writes in a transaction)")
    reader = runtime.reader if request.param == "direct" else None
    return lambda: ViewerLog(runtime.sessions, reader)


async def test_a_deleted_stream_does_not_sink_the_batch(
    client: httpx.AsyncClient, auth: Any, runtime: Any, new_log: Callable[[], ViewerLog]
) -> None:
    owner = auth(1)
    kept = (await client.post("/api/streams", json={"title": "a"}, headers=owner)).json()
    gone = (await client.post("/api/streams", json={"title": "b"}, headers=owner)).json()
    now = runtime.clock.now()
    log = new_log()
    watching_kept = ViewingSession(kept["data"]["id"], None, now, key="k1")
    watching_gone = ViewingSession(gone["data"]["id"], None, now, key="k2")
    log.joined(watching_kept)
    log.joined(watching_gone)
    await client.delete(f"/api/streams/{gone['data']['id']}", headers=owner)
    assert await log.flush() == 2
    for watching in (watching_kept, watching_gone):
        watching.left_at = now + timedelta(seconds=42)
        log.left(watching)
    await log.flush()
    assert await log.flush() == 0  # nothing is retried forever
    rows = await rows_of(runtime)
    assert [(r.stream_id, r.watch_duration, r.visit_key) for r in rows] == [
        (kept["data"]["id"], 42, "k1")
    ]


async def test_a_visits_end_may_be_written_before_its_start(
    client: httpx.AsyncClient, auth: Any, runtime: Any, new_log: Callable[[], ViewerLog]
) -> None:
    """Its start is batched on one node, its end seen by another (or by a reaper) and written
    first: one row, with the end, whatever the order."""
    stream = (await client.post("/api/streams", json={"title": "a"}, headers=auth(1))).json()
    await client.get("/api/streams", headers=auth(5))  # the viewer exists (as on any join)
    now = runtime.clock.now()
    begun = ViewingSession(stream["data"]["id"], 5, now, key="visit-1", region="Mbeya")
    ended = ViewingSession(
        stream["data"]["id"], 5, now, left_at=now + timedelta(seconds=30), key="visit-1"
    )
    closer, opener = new_log(), new_log()
    closer.left(ended)
    await closer.flush()
    opener.joined(begun)
    await opener.flush()
    opener.left(ended)  # repeated: harmless
    await opener.flush()
    rows = await rows_of(runtime)
    assert [(r.user_id, r.watch_duration, r.left_at is not None) for r in rows] == [(5, 30, True)]


async def test_a_batch_of_visits_keeps_every_column(
    client: httpx.AsyncClient, auth: Any, runtime: Any, new_log: Callable[[], ViewerLog]
) -> None:
    """On PostgreSQL a batch goes in as one array per column: every column lands in its row."""
    stream = (await client.post("/api/streams", json={"title": "a"}, headers=auth(1))).json()
    sid = stream["data"]["id"]
    await client.get("/api/streams", headers=auth(5))
    now = runtime.clock.now()
    visits = [
        ViewingSession(sid, (5, None)[i % 2], now + timedelta(seconds=i), key=f"v{i}")
        for i in range(6)
    ]
    for i, visit in enumerate(visits):
        visit.region = ("Dodoma", None, "Mbeya")[i % 3]
    assert set(VISIT_COLUMNS) == set(visits[0].row())
    log = new_log()
    for visit in visits:
        log.joined(visit)
    assert await log.flush() == 6
    for visit in visits[:3]:
        visit.left_at = visit.joined_at + timedelta(seconds=10 + visit.joined_at.second % 7)
        log.left(visit)
    await log.flush()
    rows = sorted(await rows_of(runtime), key=lambda r: r.visit_key)
    assert [
        (r.visit_key, r.stream_id, r.user_id, r.joined_at, r.region, r.left_at, r.watch_duration)
        for r in rows
    ] == [
        (v.key, sid, v.user_id, v.joined_at, v.region, v.left_at, v.watch_seconds) for v in visits
    ]


async def test_a_visit_ended_twice_in_one_batch_keeps_its_last_end(
    client: httpx.AsyncClient, auth: Any, runtime: Any, new_log: Callable[[], ViewerLog]
) -> None:
    """One statement may not update a row twice (PostgreSQL): a batch holding two ends of the
    same visit writes the last, as two batches in turn would."""
    stream = (await client.post("/api/streams", json={"title": "a"}, headers=auth(1))).json()
    sid = stream["data"]["id"]
    now = runtime.clock.now()
    log = new_log()
    log.joined(ViewingSession(sid, None, now, key="twice"))
    log.joined(ViewingSession(sid, None, now, key="once"))
    await log.flush()
    for seconds, key in ((10, "twice"), (5, "once"), (20, "twice")):
        log.left(ViewingSession(sid, None, now, left_at=now + timedelta(seconds=seconds), key=key))
    assert await log.flush() == 3
    rows = sorted(await rows_of(runtime), key=lambda r: r.visit_key)
    assert [(r.visit_key, r.watch_duration) for r in rows] == [("once", 5), ("twice", 20)]
