"""Times the client sends without an offset are read in TAJIRI_CLIENT_TIMEZONE; answers are UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import ValidationError

from tajiri_live.core import clienttime
from tajiri_live.core.clock import ManualClock, iso
from tajiri_live.core.runtime import Runtime
from tajiri_live.core.settings import Settings
from tajiri_live.streams.models import LiveStream
from tajiri_live.streams.schemas import StreamCreate

OWNER = 7
EAT = ZoneInfo("Africa/Dar_es_Salaam")  # UTC+3 all year


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"client_timezone": "Africa/Dar_es_Salaam"})


def local_text(moment: datetime, zone: ZoneInfo) -> str:
    """What the Flutter client sends: `DateTime.toIso8601String()` of a local time."""
    return moment.astimezone(zone).replace(tzinfo=None).isoformat(timespec="milliseconds")


def evening_in_two_days(clock: ManualClock) -> datetime:
    return (clock.now() + timedelta(days=2)).replace(hour=17, minute=0, second=0)


async def stored_schedule(runtime: Runtime, stream_id: int) -> datetime | None:
    async with runtime.sessions() as session:
        stream = await session.get(LiveStream, stream_id)
        assert stream is not None
        return stream.scheduled_at


async def test_a_naive_time_is_read_in_the_client_zone_and_stored_in_utc(
    client: httpx.AsyncClient, auth: Any, clock: ManualClock, runtime: Runtime
) -> None:
    start = evening_in_two_days(clock)  # 17:00 UTC is 20:00 on a phone in Dar es Salaam
    sent = local_text(start, EAT)
    assert sent.endswith("T20:00:00.000")
    created = await client.post(
        "/api/streams", json={"title": "Jioni", "scheduled_at": sent}, headers=auth(OWNER)
    )
    assert created.status_code == 201, created.text
    stream = created.json()["data"]
    assert stream["scheduled_at"] == iso(start)  # three hours earlier than 20:00 UTC
    assert await stored_schedule(runtime, stream["id"]) == start
    shown = await client.get(f"/api/streams/{stream['id']}", headers=auth(OWNER))
    assert shown.json()["data"]["scheduled_at"] == iso(start)


async def test_a_multipart_form_and_a_reschedule_are_read_the_same_way(
    client: httpx.AsyncClient, auth: Any, clock: ManualClock, runtime: Runtime
) -> None:
    start = evening_in_two_days(clock)
    created = await client.post(
        "/api/streams",
        data={"title": "Jioni", "scheduled_at": local_text(start, EAT)},
        files={"unused": ("x.txt", b"x")},  # multipart, as the app sends it
        headers=auth(OWNER),
    )
    assert created.status_code == 201, created.text
    stream_id = created.json()["data"]["id"]
    assert await stored_schedule(runtime, stream_id) == start

    later = start + timedelta(hours=1)
    moved = await client.put(
        f"/api/streams/{stream_id}",
        json={"scheduled_at": local_text(later, EAT)},
        headers=auth(OWNER),
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["data"]["scheduled_at"] == iso(later)
    assert await stored_schedule(runtime, stream_id) == later


async def test_a_time_with_an_offset_means_what_it_says(
    client: httpx.AsyncClient, auth: Any, clock: ManualClock
) -> None:
    start = evening_in_two_days(clock)
    for text in (
        start.isoformat().replace("+00:00", "Z"),
        start.astimezone(ZoneInfo("Europe/Berlin")).isoformat(),
        start.astimezone(EAT).isoformat(),
    ):
        created = await client.post(
            "/api/streams", json={"title": "x", "scheduled_at": text}, headers=auth(OWNER)
        )
        assert created.status_code == 201, created.text
        assert created.json()["data"]["scheduled_at"] == iso(start), text


async def test_a_naive_time_in_the_past_of_the_client_is_refused(
    client: httpx.AsyncClient, auth: Any, clock: ManualClock
) -> None:
    # Two hours ago on the phone: read as UTC it would lie an hour in the future.
    sent = local_text(clock.now() - timedelta(hours=2), EAT)
    created = await client.post(
        "/api/streams", json={"title": "x", "scheduled_at": sent}, headers=auth(OWNER)
    )
    assert created.status_code == 422
    assert "scheduled_at" in created.json()["errors"]


def test_the_default_zone_is_utc_and_unknown_zones_are_refused() -> None:
    assert Settings().client_timezone == "UTC"
    data = StreamCreate.model_validate(
        {"title": "x", "scheduled_at": "2026-12-24T20:00:00.000"},
        context=clienttime.context(Settings()),
    )
    assert data.scheduled_at == datetime(2026, 12, 24, 20, tzinfo=UTC)
    with pytest.raises(ValidationError, match="IANA time zone"):
        Settings(client_timezone="Africa/Atlantis")
    with pytest.raises(ValidationError, match="IANA time zone"):
        Settings(client_timezone="../../etc/passwd")


def test_validating_a_client_time_without_the_zone_is_a_bug_not_utc() -> None:
    with pytest.raises(TypeError, match="time zone"):
        StreamCreate.model_validate({"title": "x", "scheduled_at": "2026-12-24T20:00:00"})
    # No time, no zone needed.
    assert StreamCreate.model_validate({"title": "x"}).scheduled_at is None


def test_clock_changes_pick_the_earlier_moment_or_the_offset_before_the_change() -> None:
    new_york = ZoneInfo("America/New_York")
    # 01:30 happens twice on 1 November 2026 (EDT, then EST): the earlier one.
    assert clienttime.as_utc(datetime(2026, 11, 1, 1, 30), new_york) == datetime(
        2026, 11, 1, 5, 30, tzinfo=UTC
    )
    # 02:30 does not exist on 8 March 2026: read with EST, the offset before the change.
    assert clienttime.as_utc(datetime(2026, 3, 8, 2, 30), new_york) == datetime(
        2026, 3, 8, 7, 30, tzinfo=UTC
    )
