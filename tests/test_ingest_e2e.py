"""Ingest end to end: the real nginx-rtmp (`tajiri-live ingest`), a real `serve` process and
ffmpeg pushing a tiny synthetic source, as a phone would."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from browser import CHROMIUM, launch_args, play_hls, require_browser
from conftest import TEST_SECRET
from mediatools import require_media_tools
from servers import IngestProcess, ServerProcess
from tajiri_live.core import medialinks as links
from tajiri_live.core.auth import TokenCodec
from tajiri_live.core.settings import Settings
from wsclient import Viewer

CREATOR, VIEWER = 1, 2
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "console"
RECONNECT_SECONDS = 4.0


def source(size: str) -> tuple[str, ...]:
    return (
        *("-re", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=15"),
        *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "15"),
        *("-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "32k", "-f", "flv"),
    )


def push(url: str, size: str = "160x90") -> subprocess.Popen[bytes]:
    """ffmpeg publishing the synthetic source until stopped."""
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", *source(size), url]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(encoder: subprocess.Popen[bytes]) -> None:
    if encoder.poll() is None:
        encoder.terminate()  # ffmpeg closes the RTMP session cleanly on SIGTERM
        encoder.wait(timeout=10)


def refused(encoder: subprocess.Popen[bytes], within: float = 15.0) -> bool:
    """ffmpeg stopped on its own (a publish that is let through runs until stopped): nginx
    refused or dropped it."""
    try:
        encoder.wait(timeout=within)
        return True
    except subprocess.TimeoutExpired:
        stop(encoder)
        return False


def ffprobe(path: Path) -> dict[str, Any]:
    probed = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(probed.stdout)
    return result


@pytest.fixture
def stack(tmp_path: Path, database_url: str) -> Iterator[tuple[ServerProcess, IngestProcess]]:
    require_media_tools()
    settings_env = {
        "TAJIRI_INGEST_ENABLED": "true",
        "TAJIRI_INGEST_MEDIA_DIR": str(tmp_path / "media"),
        "TAJIRI_INGEST_NGINX_USER": "root" if os.geteuid() == 0 else "nobody",
        "TAJIRI_INGEST_RECONNECT_SECONDS": str(RECONNECT_SECONDS),
        "TAJIRI_INGEST_UPDATE_SECONDS": "1",
        "TAJIRI_INGEST_THUMBNAIL_SECONDS": "1",
        "TAJIRI_HLS_PLAYLIST_SECONDS": "4",
    }
    (tmp_path / "ingest").mkdir()
    (tmp_path / "api").mkdir()
    ingest = IngestProcess(tmp_path / "ingest", **settings_env)
    server = ServerProcess(
        tmp_path / "api",
        database_url,
        **ingest.settings_env,
        TAJIRI_JOB_INGEST_MEDIA_EVERY_SECONDS="0.3",
    )
    ingest.env["TAJIRI_INGEST_CALLBACK_BASE_URL"] = server.url
    server.start()
    ingest.start()
    yield server, ingest
    ingest.stop()
    server.stop()


@pytest.fixture
async def api(stack: tuple[ServerProcess, IngestProcess]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack[0].url, timeout=10) as client:
        yield client


def bearer(user_id: int) -> dict[str, str]:
    token = TokenCodec(Settings(jwt_secret=TEST_SECRET)).encode(user_id)
    return {"Authorization": f"Bearer {token}"}


async def until(check: Any, within: float, every: float = 0.2) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s")
        await asyncio.sleep(every)


def status_event(status: str) -> Any:
    def match(event: dict[str, Any]) -> bool:
        return event["event"] == "status_changed" and event["data"]["status"] == status

    return match


async def test_a_phone_goes_live_drops_resumes_ends_and_leaves_a_recording(
    stack: tuple[ServerProcess, IngestProcess], api: httpx.AsyncClient, tmp_path: Path
) -> None:
    server, ingest = stack
    created = await api.post(
        "/api/streams",
        json={"title": "Kilimanjaro live", "is_recorded": True},
        headers=bearer(CREATOR),
    )
    stream = created.json()["data"]
    stream_id, key = stream["id"], stream["stream_key"]
    viewer = await Viewer.connect(f"{server.ws}/streams/{stream_id}")
    urls: list[str] = []
    try:
        await api.post(f"/api/streams/{stream_id}/start", headers=bearer(CREATOR))
        await viewer.wait_for(status_event("live"))

        # A wrong key and a keyless stream id are refused by the publish callback.
        assert refused(push(ingest.rtmp_url("x" * 43)))
        assert refused(push(ingest.rtmp_url(str(stream_id))))

        pushed_at = time.monotonic()
        encoder = push(ingest.rtmp_url(key))
        ready = await viewer.wait_for(
            lambda e: e["event"] == "status_changed" and bool(e["data"]["playback_url"]),
            within=20,
        )
        publish_to_playable = time.monotonic() - pushed_at
        playlist_url = ready["data"]["playback_url"]
        urls.append(playlist_url)
        assert f"/{stream_id}_1/index.m3u8" in playlist_url and key not in playlist_url

        # The signed playlist plays; its segments inherit the signature.
        playlist = await api.get(playlist_url)
        assert playlist.status_code == 200, playlist.text
        segment = next(line for line in playlist.text.splitlines() if line.endswith(".ts"))
        assert (await api.get(urljoin(playlist_url, segment))).status_code == 200

        # An altered link and an expired one are refused by nginx itself.
        token = playlist_url.split("/hls/")[1].split("/")[0]
        altered = playlist_url.replace(token, ("A" if token[0] != "A" else "B") + token[1:])
        assert (await api.get(altered)).status_code == 403
        expired = links.signed_path(
            links.link_secret(Settings(jwt_secret=TEST_SECRET)),
            kind=links.HLS,
            stream_id=stream_id,
            rest="_1/index.m3u8",
            viewer=0,
            expires=int(time.time()) - 5,
        )
        assert (await api.get(f"http://127.0.0.1:{ingest.http_port}{expired}")).status_code == 410

        # A viewer's join gets a link of their own.
        joined = await api.post(f"/api/streams/{stream_id}/join", headers=bearer(VIEWER))
        assert f"/{VIEWER}/{stream_id}_1/index.m3u8" in joined.json()["playback_url"]
        urls.append(joined.json()["playback_url"])

        # A second encoder with the same key is refused; the first stays on air.
        assert refused(push(ingest.rtmp_url(key)))
        assert encoder.poll() is None

        # The owner sees the encoder's health (nginx's statistics) and a live thumbnail.
        async def health() -> dict[str, Any] | None:
            shown = await api.get(f"/api/streams/{stream_id}/ingest", headers=bearer(CREATOR))
            data: dict[str, Any] = shown.json()["data"]
            return data if data["health"] and data["health"]["width"] else None

        info = await until(health, within=10)
        assert info["publishing"] and info["health"]["height"] == 90

        async def thumbnail() -> str | None:
            shown = await api.get(f"/api/streams/{stream_id}", headers=bearer(VIEWER))
            link: str | None = shown.json()["data"]["live_thumbnail_url"]
            return link

        thumb_url = await until(thumbnail, within=10)
        thumb = await api.get(thumb_url)
        assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"  # a JPEG

        # The encoder drops: ending; it comes back inside the window: live, a fresh playlist.
        stop(encoder)
        await viewer.wait_for(status_event("ending"), within=10)
        encoder = push(ingest.rtmp_url(f"{stream_id}?key={key}"))  # the key as an argument
        resumed = await viewer.wait_for(
            lambda e: (
                status_event("live")(e) and "_2/index.m3u8" in (e["data"]["playback_url"] or "")
            ),
            within=20,
        )
        urls.append(resumed["data"]["playback_url"])
        fresh = await api.get(resumed["data"]["playback_url"])
        assert fresh.status_code == 200 and "#EXT-X-MEDIA-SEQUENCE:0" in fresh.text
        await asyncio.sleep(2)  # a little more to record

        # It drops again and stays away: ended after the window; the key is revoked.
        stop(encoder)
        await viewer.wait_for(status_event("ending"), within=10)
        await viewer.wait_for(status_event("ended"), within=RECONNECT_SECONDS + 10)
        assert refused(push(ingest.rtmp_url(key)))

        # The recording: one fast-start MP4 of both publishes, and its thumbnail.
        async def replay() -> dict[str, Any] | None:
            shown = await api.get(f"/api/streams/{stream_id}", headers=bearer(VIEWER))
            data: dict[str, Any] = shown.json()["data"]
            return data if data["replay_url"] else None

        ended = await until(replay, within=30)
        assert ended["recording_path"] == f"recordings/{stream_id}.mp4"
        urls += [ended["replay_url"], ended["replay_thumbnail_url"]]
        video = tmp_path / "replay.mp4"
        video.write_bytes((await api.get(ended["replay_url"])).content)
        probed = ffprobe(video)
        assert {s["codec_type"] for s in probed["streams"]} == {"video", "audio"}
        assert float(probed["format"]["duration"]) > 4
        head = video.read_bytes()[:4096]
        assert b"moov" in head  # fast start: the index before the media
        picture = tmp_path / "replay.jpg"
        picture.write_bytes((await api.get(ended["replay_thumbnail_url"])).content)
        assert ffprobe(picture)["streams"][0]["width"] == 160
    finally:
        await viewer.close()

    # The key is in no URL handed out and in no log line, of the API or of nginx.
    assert all(key not in url for url in urls)
    assert key not in server.log()
    assert key not in ingest.logs()
    assert not any(key in str(p) for p in (tmp_path / "media").rglob("*"))
    print(f"publish to playable: {publish_to_playable:.2f}s")
    assert re.search(r"POST /api/rtmp/publish\?secret=\*\*\*", server.log())
    # Refused keys, drops, reconnects and the wait for each playlist are normal operation.
    assert ingest.errors() == []


async def test_an_abr_ladder_and_an_explicit_end_that_drops_the_encoder(
    tmp_path: Path, database_url: str
) -> None:
    require_media_tools()
    require_browser()
    settings_env = {
        "TAJIRI_INGEST_ENABLED": "true",
        "TAJIRI_INGEST_MEDIA_DIR": str(tmp_path / "media"),
        "TAJIRI_INGEST_NGINX_USER": "root" if os.geteuid() == 0 else "nobody",
        "TAJIRI_INGEST_ABR_ENABLED": "true",
        "TAJIRI_INGEST_ABR_RENDITIONS": json.dumps(
            ["144p:256x144:200k:48k", "90p:160x90:100k:32k"]
        ),
        "TAJIRI_INGEST_UPDATE_SECONDS": "1",
    }
    for name in ("ingest", "api"):
        (tmp_path / name).mkdir()
    ingest = IngestProcess(tmp_path / "ingest", **settings_env)
    server = ServerProcess(tmp_path / "api", database_url, **ingest.settings_env)
    ingest.env["TAJIRI_INGEST_CALLBACK_BASE_URL"] = server.url
    server.start()
    ingest.start()
    encoder: subprocess.Popen[bytes] | None = None
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as api:
            created = await api.post(
                "/api/streams", json={"title": "Ladder"}, headers=bearer(CREATOR)
            )
            stream_id, key = created.json()["data"]["id"], created.json()["data"]["stream_key"]
            viewer = await Viewer.connect(f"{server.ws}/streams/{stream_id}")
            encoder = push(ingest.rtmp_url(key))  # no `start`: the publish itself goes live
            live = await viewer.wait_for(status_event("live"), within=30)
            master = await api.get(live["data"]["playback_url"])
            assert master.status_code == 200
            assert (
                master.text.count("#EXT-X-STREAM-INF") == 2 and "RESOLUTION=256x144" in master.text
            )
            variant_url = urljoin(live["data"]["playback_url"], "90p/index.m3u8")
            variant = await api.get(variant_url)
            assert variant.status_code == 200 and "#EXTINF" in variant.text

            # A browser plays the link a viewer's join returns (hls.js, as the console does).
            joined = await api.post(f"/api/streams/{stream_id}/join", headers=bearer(VIEWER))
            assert await play_hls(server.url, joined.json()["playback_url"]) >= 2.0

            ended = await api.post(f"/api/streams/{stream_id}/end", headers=bearer(CREATOR))
            assert ended.status_code == 200
            assert encoder.wait(timeout=10) is not None  # nginx dropped the encoder at once
            await viewer.wait_for(status_event("ended"), within=15)
            assert refused(push(ingest.rtmp_url(key)))
            await viewer.close()
        # A publish with a ladder, waited for, played and dropped: nothing to alarm anyone.
        assert ingest.errors() == []
    finally:
        if encoder is not None:
            stop(encoder)
        ingest.stop()
        server.stop()


async def test_the_console_preview_waits_for_the_encoder_then_plays_by_itself(
    stack: tuple[ServerProcess, IngestProcess], api: httpx.AsyncClient
) -> None:
    """The creator's control room in Chromium: "waiting for your encoder" until ffmpeg
    publishes, then the preview starts on its own, under the page's policy, and plays; the
    encoder's resolution and the health chart come from nginx-rtmp's statistics."""
    require_browser()
    from playwright.async_api import async_playwright

    server, ingest = stack
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    created = await api.post("/api/streams", json={"title": "Hakikisho"}, headers=bearer(CREATOR))
    stream_id, key = created.json()["data"]["id"], created.json()["data"]["stream_key"]
    assert (await api.post(f"/api/streams/{stream_id}/start", headers=bearer(CREATOR))).is_success
    token = TokenCodec(Settings(jwt_secret=TEST_SECRET)).encode(CREATOR)
    refused: list[str] = []
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(
            executable_path=CHROMIUM,
            args=[*launch_args(), "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.on(
                "console",
                lambda m: refused.append(m.text) if "Content Security" in m.text else None,
            )
            await page.goto(f"{server.url}/console/")
            await page.evaluate("token => sessionStorage.setItem('tajiri.token', token)", token)
            await page.goto(f"{server.url}/console/#/live/{stream_id}")
            await page.locator('#preview-state[data-state="waiting"]').wait_for()
            assert await page.locator("#preview-state").inner_text() == "Waiting for your encoder…"
            encoder = push(ingest.rtmp_url(key), size="640x360")
            try:
                pushed = time.monotonic()
                await page.locator('#preview-state[data-state="playing"]').wait_for(timeout=30000)
                print(f"preview playing {time.monotonic() - pushed:.1f} s after the encoder")
                position = "() => document.getElementById('preview').currentTime"
                first = await page.evaluate(position)
                # It plays, it is not stuck: two more seconds of video within 15 (a loaded
                # host may stall the player a moment, or start it again from the beginning).
                await page.wait_for_function(
                    f"() => document.getElementById('preview').currentTime > {first + 2.0}",
                    timeout=15000,
                )
                behind = await page.evaluate("() => window.tajiriPlayer.latency")
                print(f"preview {behind:.1f} s behind the live edge of the playlist")
                assert behind < 6  # at the live edge: a fragment or two, not the whole window
                resolution = page.locator("#health-resolution", has_text="640\u00d7360")
                await resolution.wait_for(timeout=15000)
                await page.wait_for_function(
                    "() => window.tajiriCharts.health.data.labels.length > 0", timeout=15000
                )
                keyframe = await page.locator("#health-keyframe").inner_text()
                print(f"keyframe interval shown: {keyframe}")
                await page.screenshot(path=str(ARTIFACTS / "7-preview-playing.png"), full_page=True)
            finally:
                stop(encoder)
        finally:
            await browser.close()
    assert refused == []
