"""Ingest's rules in-process: the callbacks' secret, keys, one publisher, the reconnect window,
rotation, signed links and the rendered nginx configuration (checked by `nginx -t`)."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from servers import free_port
from tajiri_live.app import create_app
from tajiri_live.core import medialinks as links
from tajiri_live.core.clock import ManualClock, iso
from tajiri_live.core.logredact import RedactQuerySecrets, redact
from tajiri_live.core.settings import Settings
from tajiri_live.ingest import nginx
from tajiri_live.ingest.service import Ingest, parse_stat
from tajiri_live.realtime.events import Event
from tajiri_live.streams import service as streams
from tajiri_live.streams.models import LiveStream

OWNER = 7


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "ingest_enabled": True,
            "ingest_reconnect_seconds": 60.0,
            "media_base_url": "https://media.example",
            # Nobody listens there: an encoder this test ends must not be dropped from a real
            # nginx on the default port (someone going live on this machine).
            "ingest_control_url": f"http://127.0.0.1:{free_port()}",
        }
    )


@pytest.fixture
def secret(settings: Settings) -> str:
    return links.callback_secret(settings)


async def _stream(client: httpx.AsyncClient, auth: Any, **fields: Any) -> dict[str, Any]:
    body = {"title": "Ingest", **fields}
    response = await client.post("/api/streams", json=body, headers=auth(OWNER))
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


class Nginx:
    """Posts the forms nginx-rtmp posts."""

    def __init__(self, client: httpx.AsyncClient, secret: str) -> None:
        self.client = client
        self.secret = secret

    async def call(self, action: str, client_id: int, name: str, **args: str) -> httpx.Response:
        form = {
            "app": "live",
            "name": name,
            "addr": "10.0.0.5",
            "clientid": str(client_id),
            "call": {"update": "update_publish", "publish-done": "publish_done"}.get(
                action, action
            ),
            **args,
        }
        return await self.client.post(
            f"/api/rtmp/{action}", params={"secret": self.secret}, data=form
        )


@pytest.fixture
def rtmp(client: httpx.AsyncClient, secret: str) -> Nginx:
    return Nginx(client, secret)


async def _row(app: FastAPI, stream_id: int) -> LiveStream:
    async with app.state.runtime.sessions() as session:
        stream = await session.get(LiveStream, stream_id)
        assert stream is not None
        return stream


async def test_callbacks_need_the_shared_secret(client: httpx.AsyncClient, auth: Any) -> None:
    stream = await _stream(client, auth)
    form = {"name": stream["stream_key"], "clientid": "1", "addr": "1.2.3.4", "call": "publish"}
    for params in ({}, {"secret": "wrong"}):
        response = await client.post("/api/rtmp/publish", params=params, data=form)
        assert response.status_code == 403
        assert "secret" in response.json()["message"]


async def test_a_key_goes_on_air_once_and_a_second_publisher_is_refused(
    app: FastAPI, client: httpx.AsyncClient, auth: Any, rtmp: Nginx, events: list[Event]
) -> None:
    stream = await _stream(client, auth)
    key, stream_id = stream["stream_key"], stream["id"]
    assert len(key) >= 32

    assert (await rtmp.call("publish", 1, "x" * 43)).status_code == 403  # unknown key
    assert (await rtmp.call("publish", 1, str(stream_id))).status_code == 403  # no key
    bad = await rtmp.call("publish", 1, str(stream_id), key="wrong")
    assert bad.status_code == 403

    accepted = await rtmp.call("publish", 1, key)
    assert accepted.status_code == 302
    assert accepted.headers["location"] == f"{stream_id}_1"  # relayed by id, never by key
    row = await _row(app, stream_id)
    assert row.status == "pre_live" and row.publisher_client == "1@10.0.0.5"

    second = await rtmp.call("publish", 2, key)
    assert second.status_code == 403
    assert (await rtmp.call("publish", 3, str(stream_id), key=key)).status_code == 403

    # Not live, and no playback URL, until the playlist exists.
    shown = (await client.get(f"/api/streams/{stream_id}", headers=auth(9))).json()
    assert shown["data"]["status"] == "pre_live" and shown["playback_url"] is None

    ingest: Ingest = app.state.ingest
    await ingest.mark_ready(stream_id, 1)
    await ingest.mark_ready(stream_id, 1)  # repeated: nothing more happens
    live = [e for e in events if e.name == "status_changed" and e.data["status"] == "live"]
    assert len(live) == 1
    url = live[0].data["playback_url"]
    assert url.startswith("https://media.example/hls/") and f"/0/{stream_id}_1/index" in url
    assert key not in url

    joined = await client.post(f"/api/streams/{stream_id}/join", headers=auth(9))
    assert joined.status_code == 200
    assert f"/9/{stream_id}_1/index.m3u8" in joined.json()["playback_url"]  # signed for 9


async def test_a_dropped_encoder_may_resume_inside_the_window_and_not_after(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: Any,
    rtmp: Nginx,
    clock: ManualClock,
    events: list[Event],
) -> None:
    stream = await _stream(client, auth)
    key, stream_id = stream["stream_key"], stream["id"]
    ingest: Ingest = app.state.ingest
    assert (await rtmp.call("publish", 1, key)).status_code == 302
    await ingest.mark_ready(stream_id, 1)

    # A stranger's publish-done changes nothing; the publisher's own moves live -> ending.
    assert (await rtmp.call("publish-done", 99, key)).status_code == 200
    assert (await _row(app, stream_id)).status == "live"
    assert (await rtmp.call("publish-done", 1, key)).status_code == 200
    assert (await rtmp.call("publish-done", 1, key)).status_code == 200  # repeated
    row = await _row(app, stream_id)
    assert row.status == "ending" and row.publisher_client is None

    clock.advance(30)
    resumed = await rtmp.call("publish", 4, str(stream_id), key=key)
    assert resumed.status_code == 302 and resumed.headers["location"] == f"{stream_id}_2"
    await ingest.mark_ready(stream_id, 2)
    row = await _row(app, stream_id)
    assert row.status == "live"
    again = [e for e in events if e.name == "status_changed" and e.data["status"] == "live"]
    assert f"/{stream_id}_2/index.m3u8" in again[-1].data["playback_url"]  # a fresh playlist

    assert (await rtmp.call("publish-done", 4, key)).status_code == 200
    clock.advance(61)
    await streams.finish_ending(app.state.runtime)
    assert (await _row(app, stream_id)).status == "ended"
    assert (await rtmp.call("publish", 5, key)).status_code == 403  # revoked with the end


async def test_started_before_its_encoder_a_stream_counts_and_plays_from_its_playlist(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: Any,
    rtmp: Nginx,
    clock: ManualClock,
    events: list[Event],
) -> None:
    stream = await _stream(client, auth)
    key, stream_id = stream["stream_key"], stream["id"]
    started = await client.post(f"/api/streams/{stream_id}/start", headers=auth(OWNER))
    body = started.json()
    assert body["data"]["status"] == "live"
    assert body["playback_url"] is None and body["data"]["started_at"] is None  # nothing on air
    joined = await client.post(f"/api/streams/{stream_id}/join", headers=auth(9))
    assert joined.status_code == 200 and joined.json()["playback_url"] is None

    clock.advance(40)  # the encoder connects late
    assert (await rtmp.call("publish", 1, key)).status_code == 302
    clock.advance(5)
    await app.state.ingest.mark_ready(stream_id, 1)
    on_air = clock.now()
    heard = [e for e in events if e.name == "status_changed"][-1]
    assert (heard.data["old_status"], heard.data["status"]) == ("live", "live")
    assert f"/{stream_id}_1/index.m3u8" in heard.data["playback_url"]  # arrives with the event
    assert heard.data["started_at"] == iso(on_air)
    check = (await client.get(f"/api/streams/{stream_id}/check")).json()
    assert check["playback_url"] and check["status"] == "live"

    clock.advance(100)
    await client.post(f"/api/streams/{stream_id}/end", headers=auth(OWNER))
    clock.advance(app.state.runtime.settings.outro_seconds)
    await streams.finish_ending(app.state.runtime)
    row = await _row(app, stream_id)
    assert row.started_at == on_air
    # From when the encoder went live (not from `start`, 45 s earlier) to the end.
    assert row.duration == 100 + app.state.runtime.settings.outro_seconds


async def test_an_update_keeps_the_publisher_until_the_stream_ends(
    app: FastAPI, client: httpx.AsyncClient, auth: Any, rtmp: Nginx
) -> None:
    stream = await _stream(client, auth)
    key, stream_id = stream["stream_key"], stream["id"]
    assert (await rtmp.call("publish", 1, key)).status_code == 302
    assert (await rtmp.call("update", 1, key)).status_code == 200
    assert (await rtmp.call("update", 2, key)).status_code == 403  # not the publisher: dropped
    played = await rtmp.client.post(
        "/api/rtmp/update",
        params={"secret": rtmp.secret},
        data={"call": "update_play", "name": f"{stream_id}_1", "clientid": "3"},
    )
    assert played.status_code == 200  # the local relay's own updates are not publishers

    await app.state.ingest.mark_ready(stream_id, 1)
    ended = await client.post(f"/api/streams/{stream_id}/end", headers=auth(OWNER))
    assert ended.status_code == 200
    assert (await rtmp.call("update", 1, key)).status_code == 403  # an explicit end drops it
    assert (await rtmp.call("publish", 2, key)).status_code == 403  # and revokes the key


async def test_keys_rotate_expire_and_scheduled_streams_wait(
    client: httpx.AsyncClient, auth: Any, rtmp: Nginx, clock: ManualClock
) -> None:
    stream = await _stream(client, auth)
    old_key, stream_id = stream["stream_key"], stream["id"]
    assert (
        await client.post(f"/api/streams/{stream_id}/rotate-key", headers=auth(8))
    ).status_code == 403
    rotated = await client.post(f"/api/streams/{stream_id}/rotate-key", headers=auth(OWNER))
    assert rotated.status_code == 200
    new_key = rotated.json()["stream_key"]
    assert new_key != old_key and rotated.json()["stream_url"].endswith(new_key)
    assert (await rtmp.call("publish", 1, old_key)).status_code == 403
    assert (await rtmp.call("publish", 1, new_key)).status_code == 302

    next_year = clock.now().replace(year=clock.now().year + 1)
    scheduled = await _stream(client, auth, scheduled_at=next_year.isoformat())
    # A year away: its key may not publish yet.
    assert (await rtmp.call("publish", 2, scheduled["stream_key"])).status_code == 403

    stale = await _stream(client, auth)
    clock.advance(hours=73)  # past ingest_key_ttl_hours
    assert (await rtmp.call("publish", 3, stale["stream_key"])).status_code == 403


async def test_keyless_stream_id_publishing_only_behind_the_legacy_setting(
    settings: Settings, clock: ManualClock, auth: Any
) -> None:
    legacy = settings.model_copy(update={"ingest_legacy_stream_id_names": True})
    application = create_app(legacy, clock=clock, run_jobs=False)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            token = application.state.runtime.tokens.encode(OWNER)
            created = await client.post(
                "/api/streams",
                json={"title": "Old SDK"},
                headers={"Authorization": f"Bearer {token}"},
            )
            stream_id = created.json()["data"]["id"]
            nginx_ = Nginx(client, links.callback_secret(legacy))
            response = await nginx_.call("publish", 1, str(stream_id))
            assert response.status_code == 302


def test_signed_links_cover_kind_stream_viewer_and_expiry() -> None:
    base = dict(kind="hls", stream_id=5, viewer=9, expires=2_000_000_000)
    token = links.token("s3cret", **base)  # type: ignore[arg-type]
    assert len(token) == 22 and "=" not in token
    for change in ({"kind": "recordings"}, {"stream_id": 6}, {"viewer": 10}, {"expires": 1}):
        assert links.token("s3cret", **{**base, **change}) != token  # type: ignore[arg-type]
    assert links.token("other", **base) != token  # type: ignore[arg-type]
    path = links.signed_path("s3cret", rest="_2/index.m3u8", **base)  # type: ignore[arg-type]
    assert path == f"/hls/{token}/2000000000/9/5_2/index.m3u8"


def test_secrets_are_masked_in_access_logs() -> None:
    line = "POST /api/rtmp/publish?secret=abc123&x=1 and /streams/1?token=eyJhb.c.d&key=K"
    assert redact(line) == "POST /api/rtmp/publish?secret=***&x=1 and /streams/1?token=***&key=***"
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s "%s %s"',
        ("1.2.3.4", "POST", "/a?secret=zz"),
        None,
    )
    RedactQuerySecrets().filter(record)
    assert "zz" not in record.getMessage()


STAT_XML = b"""<?xml version="1.0" encoding="utf-8" ?><rtmp><server><application><name>live</name>
<live><stream><name>12_3</name><time>8123</time><bw_in>412000</bw_in><bw_video>380000</bw_video>
<bw_audio>32000</bw_audio><meta><video><width>160</width><height>90</height>
<frame_rate>15</frame_rate><codec>H264</codec></video><audio><codec>AAC</codec></audio></meta>
</stream></live></application></server></rtmp>"""


def test_health_is_read_from_nginx_statistics() -> None:
    health = parse_stat(STAT_XML, "12_3")
    assert health == {
        "bitrate_kbps": 412,
        "video_bitrate_kbps": 380,
        "audio_bitrate_kbps": 32,
        "width": 160,
        "height": 90,
        "fps": 15.0,
        "declared_video_kbps": None,  # the encoder sent no data_rate
        "video_codec": "H264",
        "audio_codec": "AAC",
        "uptime_seconds": 8,
    }
    assert parse_stat(STAT_XML, "12_4") is None
    assert parse_stat(b"not xml", "12_3") is None


def test_a_bandwidth_of_zero_before_nginx_has_measured_one_is_unknown() -> None:
    starting = STAT_XML.replace(b"<time>8123</time>", b"<time>4000</time>")
    for tag in (b"bw_in", b"bw_video", b"bw_audio"):
        starting = re.sub(rb"<%s>\d+</%s>" % (tag, tag), b"<%s>0</%s>" % (tag, tag), starting)
    health = parse_stat(starting, "12_3")
    assert health is not None
    assert (health["bitrate_kbps"], health["video_bitrate_kbps"], health["audio_bitrate_kbps"]) == (
        None,
        None,
        None,
    )
    assert health["width"] == 160  # the rest is known at once
    later = parse_stat(starting.replace(b"<time>4000</time>", b"<time>30000</time>"), "12_3")
    assert later is not None and later["bitrate_kbps"] == 0  # measured: nothing arrives


@pytest.mark.parametrize("abr", [False, True])
def test_the_rendered_configuration_is_valid_nginx(
    settings: Settings, tmp_path: Path, abr: bool
) -> None:
    from mediatools import require_media_tools

    require_media_tools()
    rendered = settings.model_copy(
        update={
            "ingest_abr_enabled": abr,
            "ingest_media_dir": tmp_path / "media",
            "ingest_callback_base_url": "http://127.0.0.1:8000",
        }
    )
    run_dir = tmp_path / "nginx"
    (run_dir / "tmp").mkdir(parents=True)
    for path in nginx.media_dirs(rendered).all():  # as `tajiri-live ingest` makes them
        path.mkdir(parents=True)
    conf = run_dir / "nginx.conf"
    conf.write_text(nginx.render(rendered, run_dir=run_dir, as_root=False))
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    checked = subprocess.run(
        [binary, "-t", "-p", str(run_dir), "-c", str(conf), "-e", str(run_dir / "error.log")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert rendered.jwt_secret and links.callback_secret(rendered) in conf.read_text()


def test_renditions_are_parsed_and_bad_ones_refused() -> None:
    ladder = nginx.parse_renditions(["720p:1280x720:2500k:128k", "360p:640x360:700k:64k"])
    assert [r.name for r in ladder] == ["720p", "360p"] and ladder[0].height == 720
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        nginx.parse_renditions(["720p:1280-720:2500k:128k"])


async def test_old_playlists_are_removed_once_players_are_done(
    app: FastAPI, client: httpx.AsyncClient, auth: Any, rtmp: Nginx, settings: Settings
) -> None:
    import os
    import time

    from tajiri_live.ingest import media

    live = await _stream(client, auth)
    ended = await _stream(client, auth)
    for stream in (live, ended):
        for client_id in (1, 2):  # two publishes each
            assert (await rtmp.call("publish", client_id, stream["stream_key"])).status_code == 302
            await rtmp.call("publish-done", client_id, stream["stream_key"])
    await client.post(f"/api/streams/{ended['id']}/cancel", headers=auth(OWNER))
    hls = nginx.media_dirs(settings).hls
    names = [f"{live['id']}_1", f"{live['id']}_2", f"{ended['id']}_2", "999999_1", "fresh_1"]
    for name in [*names, f"{ended['id']}_3"]:
        (hls / name).mkdir(parents=True)
        if name != f"{ended['id']}_3":  # that one was written just now: players may still read
            long_ago = time.time() - 600
            os.utime(hls / name, (long_ago, long_ago))

    removed = await media.remove_old_playlists(app.state.runtime)
    assert removed == 3
    left = sorted(p.name for p in hls.iterdir())
    assert left == sorted([f"{live['id']}_2", f"{ended['id']}_3", "fresh_1"])


async def test_each_publish_remembers_the_nginx_it_came_through(
    app: FastAPI, client: httpx.AsyncClient, auth: Any, secret: str
) -> None:
    stream = await _stream(client, auth)
    form = {"name": stream["stream_key"], "clientid": "1", "addr": "1.2.3.4", "call": "publish"}
    params = {
        "secret": secret,
        "control": "http://10.0.0.7:8088",
        "media": "https://edge-7.example/",
    }
    assert (await client.post("/api/rtmp/publish", params=params, data=form)).status_code == 302
    row = await _row(app, stream["id"])
    assert row.ingest_control_url == "http://10.0.0.7:8088"
    assert row.ingest_media_url == "https://edge-7.example"
    await app.state.ingest.mark_ready(stream["id"], 1)
    shown = (await client.get(f"/api/streams/{stream['id']}", headers=auth(9))).json()
    assert shown["playback_url"].startswith("https://edge-7.example/hls/")

    other = await _stream(client, auth)
    form["name"], form["clientid"] = other["stream_key"], "2"
    odd = {"secret": secret, "control": "file:///etc/passwd", "media": "javascript:x"}
    assert (await client.post("/api/rtmp/publish", params=odd, data=form)).status_code == 302
    row = await _row(app, other["id"])
    assert row.ingest_control_url is None and row.ingest_media_url is None  # not URLs: ignored


async def test_an_odd_or_huge_stream_name_is_an_unknown_stream(
    client: httpx.AsyncClient, auth: Any, rtmp: Nginx
) -> None:
    """Before: the encoder's name 99999999999999999999999 reached the database (a 500); a
    digit that is not ASCII ('²') failed in int(). Every callback answers as nginx expects."""
    await _stream(client, auth)
    names = ("99999999999999999999999", str(2**62 + 1), "0", "²", "١٢", "12_3", "../1", "")
    for name in names:
        published = await rtmp.call("publish", 1, name, key="k" * 40)
        assert published.status_code == 403, (name, published.text)
        assert "unknown" in published.text, (name, published.text)
        updated = await rtmp.call("update", 1, name)
        assert updated.status_code == 403, (name, updated.text)
        done = await rtmp.call("publish-done", 1, name)
        assert done.status_code == 200, (name, done.text)
