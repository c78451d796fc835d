"""Notifications end to end: triggers, recipients, preferences, the outbox and FCM HTTP v1
(a local server that speaks it, with a real service-account OAuth2 exchange)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from conftest import TEST_SECRET
from fcm_fake import FakeFcm
from tajiri_live.app import create_app
from tajiri_live.core.clock import ManualClock
from tajiri_live.core.runtime import Runtime
from tajiri_live.core.settings import Settings
from tajiri_live.notifications.jobs import run_notifications
from tajiri_live.notifications.models import Device, NotificationTrigger, PushOutbox
from tajiri_live.streams.models import StreamViewer

STREAMER, ASHA, BAKARI, CHAUSIKU, DAUDI = 1, 2, 3, 4, 5


@pytest.fixture
def fcm() -> Iterator[FakeFcm]:
    server = FakeFcm().start()
    yield server
    server.stop()


def push_settings(settings: Settings, fcm: FakeFcm, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={
            "push_sender": "fcm",
            "fcm_service_account_file": fcm.service_account(tmp_path),
            "fcm_base_url": fcm.url,
        }
    )


@pytest.fixture
async def app(
    settings: Settings, clock: ManualClock, fcm: FakeFcm, tmp_path: Path
) -> AsyncIterator[FastAPI]:
    application = create_app(push_settings(settings, fcm, tmp_path), clock=clock, run_jobs=False)
    async with application.router.lifespan_context(application):
        yield application


async def pushes(app: FastAPI) -> int:
    """One run of the notification job, as the worker does it."""
    services = app.state.services
    return await run_notifications(services.runtime, services.push)


async def follow(client: httpx.AsyncClient, auth: Any, follower: int, streamer: int) -> None:
    # Only users seen here (or known to the identity source) can be followed.
    assert (await client.get("/api/wallet", headers=auth(streamer))).status_code == 200
    answer = await client.post(f"/api/users/{streamer}/follow", headers=auth(follower))
    assert answer.status_code == 200, answer.text


async def device(
    client: httpx.AsyncClient, auth: Any, user: int, token: str, locale: str = "sw"
) -> None:
    answer = await client.post(
        "/api/devices",
        json={"token": token, "platform": "android", "locale": locale},
        headers=auth(user),
    )
    assert answer.status_code == 201, answer.text


async def until(condition: Callable[[], bool], within: float = 30.0) -> None:
    """Poll a condition another process or thread makes true (no event to wait on)."""
    deadline = time.monotonic() + within
    while not condition() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


def delivered(fcm: FakeFcm) -> Counter[tuple[str, str]]:
    return Counter((d["token"], d["data"]["type"]) for d in fcm.delivered)


async def test_each_step_reaches_the_right_people_once_in_their_language(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: Any,
    runtime: Runtime,
    clock: ManualClock,
    fcm: FakeFcm,
) -> None:
    await client.get("/api/streams", headers=auth(STREAMER, first_name="Zuhura"))
    for fan in (ASHA, BAKARI, CHAUSIKU):
        await follow(client, auth, fan, STREAMER)
    await device(client, auth, ASHA, "asha-phone-en-000", locale="en-GB")
    await device(client, auth, ASHA, "asha-tablet-sw-00")
    await device(client, auth, BAKARI, "bakari-phone-000")
    await device(client, auth, CHAUSIKU, "chausiku-phone-0")
    await device(client, auth, DAUDI, "daudi-phone-0000")
    await device(client, auth, STREAMER, "zuhura-phone-000")
    # Chausiku wants no "now live" from this streamer; Bakari opts in to "starting soon".
    opt_out = {"type": "now_live", "streamer_id": STREAMER, "enabled": False}
    put = await client.put(
        f"/api/users/{CHAUSIKU}/notification-preferences", json=opt_out, headers=auth(CHAUSIKU)
    )
    assert put.status_code == 200, put.text
    await client.put(
        f"/api/users/{BAKARI}/notification-preferences",
        json={"type": "starting_soon", "enabled": True},
        headers=auth(BAKARI),
    )

    later = (clock.now() + timedelta(hours=2)).isoformat()
    created = await client.post(
        "/api/streams", json={"title": "Bongo Flava", "scheduled_at": later}, headers=auth(STREAMER)
    )
    sid = created.json()["data"]["id"]
    assert await pushes(app) == 4  # Asha's two devices, Bakari, Chausiku
    assert await pushes(app) == 0  # nothing twice
    scheduled = {d["token"]: d for d in fcm.delivered if d["data"]["type"] == "scheduled"}
    assert set(scheduled) == {
        "asha-phone-en-000", "asha-tablet-sw-00", "bakari-phone-000", "chausiku-phone-0"
    }  # fmt: skip
    assert scheduled["asha-phone-en-000"]["title"] == "New live stream scheduled"  # en-GB
    assert scheduled["asha-tablet-sw-00"]["title"] == "Matangazo mapya yamepangwa"  # Swahili
    assert "Zuhura" in scheduled["bakari-phone-000"]["body"]
    assert scheduled["bakari-phone-000"]["data"] == {
        "type": "scheduled", "stream_id": str(sid), "screen": "standby"
    }  # fmt: skip

    await client.post(f"/api/streams/{sid}/start", headers=auth(STREAMER))  # pre_live, live
    await pushes(app)
    async with runtime.sessions() as session:
        session.add_all(
            StreamViewer(stream_id=sid, user_id=u, joined_at=clock.now(), created_at=clock.now())
            for u in (ASHA, DAUDI)
        )
        await session.commit()
    await client.post(f"/api/streams/{sid}/end", headers=auth(STREAMER))
    clock.advance(seconds=runtime.settings.outro_seconds + 1)
    from tajiri_live.streams.service import finish_ending

    await finish_ending(runtime)
    await pushes(app)
    await pushes(app)

    counts = delivered(fcm)
    assert set(counts.values()) == {1}, counts  # every push exactly once
    by_type: dict[str, set[str]] = {}
    for token, kind in counts:
        by_type.setdefault(kind, set()).add(token)
    assert by_type["starting_soon"] == {"zuhura-phone-000", "bakari-phone-000"}
    assert by_type["now_live"] == {"asha-phone-en-000", "asha-tablet-sw-00", "bakari-phone-000"}
    assert by_type["ended"] == {"asha-phone-en-000", "asha-tablet-sw-00", "daudi-phone-0000"}
    live = next(d for d in fcm.delivered if d["data"]["type"] == "now_live")
    assert live["data"]["screen"] == "live"
    assert fcm.tokens_issued == 1  # one OAuth2 token, reused until it expires

    listed = await client.get(f"/api/users/{ASHA}/stream-notifications", headers=auth(ASHA))
    assert listed.status_code == 200
    body = listed.json()
    assert [n["type"] for n in body["data"]] == ["ended", "now_live", "scheduled"]
    assert body["meta"]["unread_count"] == 3
    first = body["data"][0]["id"]
    read = await client.post(
        f"/api/users/{ASHA}/stream-notifications/{first}/read", headers=auth(ASHA)
    )
    assert read.json()["unread_count"] == 2
    await client.post(f"/api/users/{ASHA}/stream-notifications/read-all", headers=auth(ASHA))
    unread = await client.get(
        f"/api/users/{ASHA}/stream-notifications?unread=1", headers=auth(ASHA)
    )
    assert unread.json()["data"] == [] and unread.json()["meta"]["unread_count"] == 0
    other = await client.get(f"/api/users/{ASHA}/stream-notifications", headers=auth(DAUDI))
    assert other.status_code == 403


async def test_the_quiet_period_holds_back_a_flapping_streamer(
    app: FastAPI, client: httpx.AsyncClient, auth: Any, runtime: Runtime, clock: ManualClock,
    fcm: FakeFcm,
) -> None:  # fmt: skip
    await follow(client, auth, ASHA, STREAMER)
    await device(client, auth, ASHA, "asha-phone-000000")

    async def go_live_and_end() -> None:
        created = await client.post("/api/streams", json={"title": "x"}, headers=auth(STREAMER))
        sid = created.json()["data"]["id"]
        await client.post(f"/api/streams/{sid}/start", headers=auth(STREAMER))
        await pushes(app)
        await client.post(f"/api/streams/{sid}/end", headers=auth(STREAMER))

    await go_live_and_end()
    clock.advance(minutes=4)
    await go_live_and_end()  # within ten minutes: no second "now live"
    clock.advance(minutes=11)
    await go_live_and_end()
    live = [d for d in fcm.delivered if d["data"]["type"] == "now_live"]
    assert len(live) == 2
    async with runtime.sessions() as session:
        skipped = await session.scalar(
            select(func.count()).where(NotificationTrigger.skipped == "quiet period")
        )
    assert skipped == 1


async def test_dead_tokens_are_removed_and_busy_answers_retried(
    app: FastAPI, client: httpx.AsyncClient, auth: Any, runtime: Runtime, clock: ManualClock,
    fcm: FakeFcm,
) -> None:  # fmt: skip
    for fan, token in ((ASHA, "dead-asha-000000"), (BAKARI, "busy-bakari-0000"),
                       (CHAUSIKU, "invalid-chausiku")):  # fmt: skip
        await follow(client, auth, fan, STREAMER)
        await device(client, auth, fan, token)
    created = await client.post("/api/streams", json={"title": "x"}, headers=auth(STREAMER))
    await client.post(f"/api/streams/{created.json()['data']['id']}/start", headers=auth(STREAMER))
    await pushes(app)
    async with runtime.sessions() as session:
        tokens = set((await session.scalars(select(Device.token))).all())
        waiting = (
            await session.scalars(select(PushOutbox).where(PushOutbox.status == "pending"))
        ).all()
    assert tokens == {"busy-bakari-0000"}  # FCM's UNREGISTERED and invalid tokens are gone
    assert len(waiting) == 1 and waiting[0].last_error == "QUOTA_EXCEEDED"
    assert await pushes(app) == 0  # Retry-After: 1 s not over yet
    clock.advance(seconds=1.5)
    assert await pushes(app) == 1
    assert fcm.tokens() == ["busy-bakari-0000"]


async def test_manual_reminders_have_a_cooldown_and_an_owner(
    app: FastAPI, client: httpx.AsyncClient, auth: Any, runtime: Runtime, clock: ManualClock,
    fcm: FakeFcm,
) -> None:  # fmt: skip
    await follow(client, auth, ASHA, STREAMER)
    await follow(client, auth, BAKARI, STREAMER)
    await device(client, auth, ASHA, "asha-phone-000000")
    created = await client.post("/api/streams", json={"title": "x"}, headers=auth(STREAMER))
    sid = created.json()["data"]["id"]
    path = f"/api/streams/{sid}/notify-followers"
    assert (await client.post(path, headers=auth(ASHA))).status_code == 403
    answer = await client.post(path, headers=auth(STREAMER))
    assert answer.status_code == 200 and answer.json()["notified"] == 2
    again = await client.post(path, headers=auth(STREAMER))
    assert again.status_code == 429 and int(again.headers["Retry-After"]) > 0
    await pushes(app)
    clock.advance(seconds=runtime.settings.notify_followers_cooldown_seconds + 1)
    assert (await client.post(path, headers=auth(STREAMER))).status_code == 200
    await pushes(app)
    assert [d["data"]["type"] for d in fcm.delivered] == ["reminder", "reminder"]
    listed = await client.get(f"/api/users/{ASHA}/stream-notifications", headers=auth(ASHA))
    assert len(listed.json()["data"]) == 1  # one row per stream, user and type: refreshed

    # The LIVE badge: streams of the people I follow.
    await client.post(f"/api/streams/{sid}/start", headers=auth(STREAMER))
    mine = await client.get("/api/streams?status=live&following=1", headers=auth(ASHA))
    assert [s["id"] for s in mine.json()["data"]] == [sid]
    theirs = await client.get("/api/streams?status=live&following=1", headers=auth(DAUDI))
    assert theirs.json()["data"] == []
    followers = await client.get(f"/api/users/{STREAMER}/followers", headers=auth(DAUDI))
    assert {u["id"] for u in followers.json()["data"]} == {ASHA, BAKARI}
    assert followers.json()["meta"]["total"] == 2


async def test_a_worker_killed_mid_batch_resumes_without_duplicates(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: Any,
    runtime: Runtime,
    fcm: FakeFcm,
    database_url: str,
    tmp_path: Path,
) -> None:
    fans = list(range(100, 120))
    sync = await client.post(
        "/api/admin/follows/sync",
        json={"follows": [{"follower_id": f, "followed_id": STREAMER} for f in fans]},
        headers=auth(99, admin=True),
    )
    assert sync.status_code == 200, sync.text
    for fan in fans:
        await device(client, auth, fan, f"fan-{fan}-token-000")
    created = await client.post("/api/streams", json={"title": "x"}, headers=auth(STREAMER))
    await client.post(f"/api/streams/{created.json()['data']['id']}/start", headers=auth(STREAMER))
    from tajiri_live.notifications.service import process_triggers

    await process_triggers(runtime)
    fcm.hold_after(5)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAJIRI_")}
    env.update(
        {
            "TAJIRI_DATABASE_URL": database_url,
            "TAJIRI_JWT_SECRET": TEST_SECRET,
            "TAJIRI_VAR_DIR": str(tmp_path / "worker"),
            "TAJIRI_PUSH_SENDER": "fcm",
            "TAJIRI_FCM_SERVICE_ACCOUNT_FILE": str(fcm.service_account(tmp_path)),
            "TAJIRI_FCM_BASE_URL": fcm.url,
            "TAJIRI_PUSH_CONCURRENCY": "2",
            "TAJIRI_PUSH_LEASE_SECONDS": "2",
            "TAJIRI_JOB_NOTIFICATIONS_EVERY_SECONDS": "0.2",
        }
    )

    def worker() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "tajiri_live", "worker"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    first = worker()
    await until(lambda: fcm.held >= 2)
    assert len(fcm.delivered) == 5 and fcm.held >= 1
    await asyncio.sleep(0.5)  # its results are written within 50 ms of each answer
    first.send_signal(signal.SIGKILL)  # mid-batch: 5 sent, some in flight, the rest claimed
    first.wait()
    fcm.release()

    second = worker()
    try:
        await until(lambda: len(fcm.delivered) >= len(fans))
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=15)
    assert Counter(fcm.tokens()) == Counter(f"fan-{fan}-token-000" for fan in fans)
    async with runtime.sessions() as session:
        statuses = Counter((await session.scalars(select(PushOutbox.status))).all())
    assert statuses == {"sent": len(fans)}
