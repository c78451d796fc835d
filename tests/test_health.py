"""Stream health: the encoder's reports, ingest's samples, running averages, the warning to
the hosts alone, refusals, and what the post-stream report keeps."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tajiri_live.core.ratelimit import MemoryRateLimiter
from tajiri_live.health import quality
from tajiri_live.health import service as health
from tajiri_live.ingest.service import parse_stat
from tajiri_live.realtime.events import STREAM_HEALTH_WARNING, Event
from tajiri_live.streams.models import LiveStream

OWNER, COHOST, FAN = 1, 2, 3


@pytest.fixture(autouse=True)
def generous_limits(runtime: Any) -> None:
    runtime.limiter = MemoryRateLimiter(now=lambda: 0.0)
    runtime.settings.health_report_limit = 10**6


async def live_stream(client: httpx.AsyncClient, auth: Any, start: bool = True) -> int:
    created = await client.post("/api/streams", json={"title": "x"}, headers=auth(OWNER))
    sid = int(created.json()["data"]["id"])
    if start:
        await client.post(f"/api/streams/{sid}/start", headers=auth(OWNER))
    return sid


async def report(
    client: httpx.AsyncClient, auth: Any, sid: int, user: int = OWNER, **body: Any
) -> httpx.Response:
    return await client.post(f"/api/streams/{sid}/health", json=body, headers=auth(user))


def judge(**measures: Any) -> quality.Verdict:
    measures.setdefault("bitrate", None)
    measures.setdefault("fps", None)
    measures.setdefault("latency", None)
    return quality.judge(excellent_kbps=1500, poor_kbps=300, **measures)


def test_network_quality_is_the_worst_of_what_is_known() -> None:
    assert judge().quality == "good"  # nothing known: the column's default
    assert judge(bitrate=2500, fps=30, latency=1.0) == quality.Verdict("excellent", ())
    assert judge(bitrate=800).quality == "good"
    assert judge(bitrate=200, fps=30) == quality.Verdict("poor", ("bitrate 200 kbps",))
    assert judge(bitrate=0).quality == "poor"  # nothing arrives
    assert judge(bitrate=2500, fps=12).reasons == ("12 fps",)
    assert judge(bitrate=2500, latency=7.5).reasons == ("latency 7.5 s",)
    assert judge(bitrate=2500, fps=0).quality == "excellent"  # 0 fps: not said
    # against the encoder's own target, when nginx knows it
    assert judge(bitrate=900, target_kbps=1000).quality == "excellent"
    assert judge(bitrate=600, target_kbps=1000).quality == "good"
    low = judge(bitrate=400, target_kbps=1000)
    assert low.quality == "poor" and "40%" in low.reasons[0]
    assert quality.from_label("Excellent") == "excellent"
    assert quality.from_label("Disconnected") == "poor"
    assert quality.from_label("Unknown") is None


async def test_reports_keep_running_averages_and_samples(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    sid = await live_stream(client, auth)
    first = await report(
        client,
        auth,
        sid,
        network_quality="Excellent",
        bitrate=3000,
        fps=30,
        dropped_frames=5,
        latency=1.0,
    )
    assert first.status_code == 200, first.text
    assert first.json()["data"]["network_quality"] == "excellent"
    await report(
        client,
        auth,
        sid,
        network_quality="good",
        bitrate=2000,
        fps=24,
        dropped_frames=12,
        latency=2.0,
    )
    # the encoder restarted: its running count starts again
    third = await report(client, auth, sid, bitrate=1000, dropped_frames=3)
    data = third.json()["data"]
    assert data["average_bitrate"] == 2000  # (3000 + 2000 + 1000) / 3
    assert data["average_fps"] == 27.0  # (30 + 24) / 2: the third said nothing of fps
    assert data["average_latency"] == 1.5
    assert data["total_dropped_frames"] == 5 + 7 + 3
    assert data["network_quality"] == "good"  # judged: 1000 kbps
    assert data["samples"] == 3
    stream = (await client.get(f"/api/streams/{sid}")).json()["data"]
    assert stream["network_quality"] == "good"
    assert stream["average_bitrate"] == 2000 and stream["total_dropped_frames"] == 15
    read = (await client.get(f"/api/streams/{sid}/health", headers=auth(OWNER))).json()["data"]
    samples = read["recent_samples"]
    assert [s["bitrate"] for s in samples] == [3000, 2000, 1000]
    assert [s["dropped_frames"] for s in samples] == [5, 7, 3]
    assert {s["source"] for s in samples} == {"encoder"}
    assert (await client.get(f"/api/streams/{sid}/health", headers=auth(FAN))).status_code == 403


async def test_poor_health_tells_the_hosts_once_per_turn(
    client: httpx.AsyncClient, auth: Any, events: list[Event]
) -> None:
    sid = await live_stream(client, auth)
    invited = await client.post(
        f"/api/streams/{sid}/cohosts", json={"user_id": COHOST}, headers=auth(OWNER)
    )
    await client.put(
        f"/api/streams/{sid}/cohosts/{invited.json()['data']['id']}",
        json={"status": "accepted"},
        headers=auth(COHOST),
    )
    await report(client, auth, sid, bitrate=2500, fps=30)
    assert not [e for e in events if e.name == STREAM_HEALTH_WARNING]
    await report(client, auth, sid, COHOST, bitrate=150, fps=30)
    await report(client, auth, sid, bitrate=100)  # still poor: no second warning
    (warning,) = [e for e in events if e.name == STREAM_HEALTH_WARNING]
    assert warning.to_users == (OWNER, COHOST) and warning.channel == f"stream.{sid}"
    assert (
        warning.data["network_quality"] == "poor"
        and warning.data["previous_quality"] == "excellent"
    )
    assert warning.data["reasons"] == ["bitrate 150 kbps"] and "poor" in warning.data["message"]
    assert warning.data["stream_id"] == sid and warning.data["source"] == "encoder"
    await report(client, auth, sid, network_quality="good")
    await report(client, auth, sid, network_quality="Disconnected")
    assert len([e for e in events if e.name == STREAM_HEALTH_WARNING]) == 2


async def test_bad_reports_are_refused(client: httpx.AsyncClient, auth: Any, runtime: Any) -> None:
    sid = await live_stream(client, auth)
    assert (await report(client, auth, sid, FAN, bitrate=1000)).status_code == 403
    unsigned = await client.post(f"/api/streams/{sid}/health", json={"bitrate": 1})
    assert unsigned.status_code == 401
    for body in (
        {},
        {"bitrate": -5},
        {"network_quality": "meh"},
        {"fps": "fast"},
        {"latency": -1},
        {"dropped_frames": 1.5},
    ):
        answer = await report(client, auth, sid, **body)
        assert answer.status_code == 422, body
        assert answer.json()["message"], body
    scheduled = await live_stream(client, auth, start=False)
    early = await report(client, auth, scheduled, bitrate=1000)
    assert early.status_code == 409 and "scheduled" in early.json()["message"]
    runtime.settings.health_report_limit = 1
    assert (await report(client, auth, sid, bitrate=1000)).status_code == 200
    assert (await report(client, auth, sid, bitrate=1000)).status_code == 429
    read = (await client.get(f"/api/streams/{sid}/health", headers=auth(OWNER))).json()["data"]
    assert read["samples"] == 1  # the refused reports wrote nothing


STAT = b"""<?xml version="1.0"?><rtmp><server><application><name>live</name><live>
<stream><name>%s</name><time>61000</time><bw_in>1300000</bw_in><bw_video>1200000</bw_video>
<bw_audio>100000</bw_audio><meta><video><width>1280</width><height>720</height>
<frame_rate>30</frame_rate><codec>H264</codec><data_rate>%d</data_rate></video>
<audio><codec>AAC</codec></audio></meta></stream></live></application></server></rtmp>"""


async def test_ingest_samples_health_for_encoders_that_never_report(
    client: httpx.AsyncClient, auth: Any, runtime: Any, events: list[Event]
) -> None:
    sid = await live_stream(client, auth)
    stats = parse_stat(STAT % (f"{sid}_1".encode(), 2500), f"{sid}_1")
    assert stats is not None and stats["declared_video_kbps"] == 2500
    await health.record_ingest(runtime, stream_id=sid, stats=stats)  # 1200 of 2500: poor
    (warning,) = [e for e in events if e.name == STREAM_HEALTH_WARNING]
    assert warning.data["source"] == "ingest" and "48%" in warning.data["reasons"][0]
    steady = parse_stat(STAT % (f"{sid}_1".encode(), 1300), f"{sid}_1")
    assert steady is not None
    await health.record_ingest(runtime, stream_id=sid, stats=steady)
    async with runtime.sessions() as session:
        stream = await session.get(LiveStream, sid)
        assert stream is not None
        assert stream.network_quality == "excellent"
        assert stream.average_bitrate == 1200 and stream.average_fps == 30
        samples = await health.recent_samples(session, sid)
    assert [(s.source, s.network_quality) for s in samples] == [
        ("ingest", "poor"),
        ("ingest", "excellent"),
    ]


async def test_the_report_has_polls_questions_and_health(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    runtime.settings.question_limit = 10**6
    sid = await live_stream(client, auth)
    poll = (
        await client.post(
            f"/api/streams/{sid}/polls",
            json={"question": "Ndiyo au hapana?", "options": ["Ndiyo", "Hapana"]},
            headers=auth(OWNER),
        )
    ).json()["poll"]
    for user, option in ((10, 0), (11, 0), (12, 1)):
        await client.post(
            f"/api/streams/{sid}/polls/{poll['id']}/vote",
            json={"option_id": poll["options"][option]["id"]},
            headers=auth(user),
        )
    asked = [
        (
            await client.post(
                f"/api/streams/{sid}/questions", json={"question": f"q{n}"}, headers=auth(20 + n)
            )
        ).json()["question"]["id"]
        for n in range(3)
    ]
    await client.post(f"/api/streams/{sid}/questions/{asked[0]}/upvote", headers=auth(21))
    await client.post(f"/api/streams/{sid}/questions/{asked[0]}/answer", headers=auth(OWNER))
    await client.post(f"/api/streams/{sid}/questions/{asked[1]}/dismiss", headers=auth(OWNER))
    await report(client, auth, sid, bitrate=2600, fps=30)
    await report(client, auth, sid, bitrate=100, fps=30)
    analytics = (await client.get(f"/api/streams/{sid}/analytics", headers=auth(OWNER))).json()[
        "data"
    ]
    assert analytics["polls"]["count"] == 1 and analytics["polls"]["votes"] == 3
    assert [o["votes"] for o in analytics["polls"]["polls"][0]["options"]] == [2, 1]
    assert analytics["questions"] == {"asked": 3, "answered": 1, "dismissed": 1, "upvotes": 1}
    summary = analytics["health"]
    assert summary["network_quality"] == "poor" and summary["average_bitrate"] == 1350
    assert summary["samples"] == 2 and summary["poor_samples"] == 1
    assert summary["timeline"] and summary["timeline"][0]["bitrate"] == 1350
