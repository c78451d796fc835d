"""The scheduled jobs, driven by a manual clock; and their safety when they run twice."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx

from tajiri_live.core.clock import ManualClock
from tajiri_live.core.scheduler import PeriodicJob, Scheduler
from tajiri_live.realtime.events import STATUS_CHANGED, Event
from tajiri_live.streams import service

OWNER = 5


async def schedule(client: httpx.AsyncClient, auth: Any, clock: ManualClock, minutes: float) -> int:
    when = (clock.now() + timedelta(minutes=minutes)).isoformat()
    response = await client.post(
        "/api/streams", json={"title": "later", "scheduled_at": when}, headers=auth(OWNER)
    )
    assert response.status_code == 201, response.text
    return int(response.json()["data"]["id"])


async def status(client: httpx.AsyncClient, stream_id: int) -> str:
    return str((await client.get(f"/api/streams/{stream_id}")).json()["data"]["status"])


async def test_to_pre_live_within_the_lead_time_even_for_late_created_streams(
    client: httpx.AsyncClient, auth: Any, clock: ManualClock, runtime: Any
) -> None:
    soon = await schedule(client, auth, clock, minutes=5)  # created < 15 min ahead
    later = await schedule(client, auth, clock, minutes=40)
    assert await service.promote_due_to_pre_live(runtime) == 1
    assert await status(client, soon) == "pre_live"
    assert await status(client, later) == "scheduled"
    clock.advance(minutes=26)  # `later` is now 14 minutes away
    assert await service.promote_due_to_pre_live(runtime) == 1
    assert await status(client, later) == "pre_live"
    shown = (await client.get(f"/api/streams/{later}")).json()
    assert shown["data"]["pre_live_started_at"] is not None


async def test_immediate_streams_are_left_for_start(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    response = await client.post("/api/streams", json={"title": "now"}, headers=auth(OWNER))
    assert await service.promote_due_to_pre_live(runtime) == 0
    assert await status(client, response.json()["data"]["id"]) == "scheduled"


async def test_no_shows_are_cancelled(
    client: httpx.AsyncClient, auth: Any, clock: ManualClock, runtime: Any
) -> None:
    stream_id = await schedule(client, auth, clock, minutes=10)
    await service.promote_due_to_pre_live(runtime)
    clock.advance(hours=runtime.settings.no_show_hours)
    assert await service.cancel_no_shows(runtime) == 0  # not yet past the window
    clock.advance(minutes=11)
    assert await service.cancel_no_shows(runtime) == 1
    assert await status(client, stream_id) == "cancelled"
    # a stale scheduled stream (the job never saw it) is cancelled rather than announced
    stale = await schedule(client, auth, clock, minutes=1)
    clock.advance(hours=runtime.settings.no_show_hours + 1)
    assert await service.promote_due_to_pre_live(runtime) == 0
    assert await service.cancel_no_shows(runtime) == 1
    assert await status(client, stale) == "cancelled"


async def test_jobs_running_on_two_nodes_change_each_row_once(
    client: httpx.AsyncClient, auth: Any, clock: ManualClock, runtime: Any, events: list[Event]
) -> None:
    ids = [await schedule(client, auth, clock, minutes=3) for _ in range(4)]
    results = await asyncio.gather(*(service.promote_due_to_pre_live(runtime) for _ in range(3)))
    assert sum(results) == 4
    changes = [e.data["stream_id"] for e in events if e.name == STATUS_CHANGED]
    assert sorted(changes) == sorted(ids)


async def test_concurrent_starts_make_each_step_once(
    client: httpx.AsyncClient, auth: Any, events: list[Event]
) -> None:
    created = await client.post("/api/streams", json={"title": "race"}, headers=auth(OWNER))
    sid = created.json()["data"]["id"]
    answers = await asyncio.gather(
        *(client.post(f"/api/streams/{sid}/start", headers=auth(OWNER)) for _ in range(5))
    )
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    steps = [(e.data["old_status"], e.data["status"]) for e in events if e.name == STATUS_CHANGED]
    assert steps == [("scheduled", "pre_live"), ("pre_live", "live")]


async def test_scheduler_runs_jobs_and_survives_a_failing_run() -> None:
    runs: list[int] = []
    done = asyncio.Event()

    async def flaky() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("first run fails")
        if len(runs) >= 3:
            done.set()

    scheduler = Scheduler([PeriodicJob("flaky", 0.01, flaky)])
    scheduler.start()
    await asyncio.wait_for(done.wait(), timeout=5)
    await scheduler.stop()
    assert len(runs) >= 3
