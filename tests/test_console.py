"""The web console in a real browser: Debian's headless Chromium driven by Playwright, against
a real `serve` process. Screenshots of every page (English and Swahili, desktop and phone) go
to test-artifacts/console/, and axe-core checks each of them."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from browser import (
    CHROMIUM,
    launch_args,
    require_axe,
    require_browser,
    serious_violations,
    shot,
)
from conftest import TEST_SECRET
from servers import ServerProcess
from tajiri_live.core.auth import TokenCodec
from tajiri_live.core.settings import Settings
from wsclient import Viewer

CREATOR, FAN, GIVER, ADMIN, VOTER = 1, 7, 8, 9, 10
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
TOKENS = TokenCodec(Settings(jwt_secret=TEST_SECRET))


def bearer(user_id: int, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS.encode(user_id, **claims)}"}


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path, database_url).start()
    yield process
    process.stop()


@pytest.fixture
async def page(server: ServerProcess) -> AsyncIterator[Any]:
    require_browser()
    require_axe()
    from playwright.async_api import async_playwright

    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=launch_args())
        context = await browser.new_context(viewport=PHONE)
        await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
        tab = await context.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.on(
            "console",
            lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
        )
        tab.errors = errors  # type: ignore[attr-defined]
        yield tab
        await browser.close()


def cover_image() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 360), "#0b6e4f").save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
async def api(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url) as client:
        yield client


async def test_a_creator_runs_a_stream_from_the_console(
    page: Any, server: ServerProcess, api: httpx.AsyncClient
) -> None:
    creator = TOKENS.encode(CREATOR, first_name="Amani")
    me = {"Authorization": f"Bearer {creator}"}
    fan = bearer(FAN, first_name="Baraka")

    # Signed out: no navigation; a token that is not one is refused.
    await page.goto(f"{server.url}/console/")
    await page.get_by_label("Access token").fill("not-a-token")
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_text("That token was not accepted.").wait_for()
    assert not await page.get_by_role("link", name="My streams").is_visible()
    assert not await page.get_by_role("button", name="Sign out").is_visible()
    await page.get_by_label("Access token").fill(creator)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("heading", name="My streams").wait_for()
    assert not await page.get_by_role("link", name="All streams").is_visible()  # not an admin

    # The new-stream form: everything the app lets a creator set.
    later = datetime.now(UTC) + timedelta(hours=2)
    await page.get_by_label("Title", exact=True).fill("Jioni ya muziki")
    await page.get_by_label("Description").fill("Bongo flava, live from Dar.")
    await page.get_by_label("Category").fill("music")
    await page.get_by_label("Tags").fill("bongo, live ")
    await page.get_by_label("Who can watch").select_option("friends")
    await page.get_by_label("Starts at").fill(later.astimezone().strftime("%Y-%m-%dT%H:%M"))
    await page.get_by_label("Cover image").set_input_files(
        {"name": "cover.png", "mimeType": "image/png", "buffer": cover_image()}
    )
    await page.get_by_label("Record it").check()
    await page.get_by_role("button", name="Create").click()
    row = page.locator("tr", has_text="Jioni ya muziki")
    await row.wait_for()
    stream_id = int(await row.get_attribute("data-stream") or 0)
    stream = (await api.get(f"/api/streams/{stream_id}", headers=me)).json()["data"]
    assert stream["description"] == "Bongo flava, live from Dar."
    assert (stream["category"], stream["tags"], stream["privacy"]) == (
        "music",
        ["bongo", "live"],
        "friends",
    )
    assert stream["thumbnail_path"] and stream["is_recorded"] is True
    scheduled = datetime.fromisoformat(stream["scheduled_at"])
    assert abs((scheduled - later).total_seconds()) < 61
    assert stream["status"] == "scheduled"
    opened = await api.put(f"/api/streams/{stream_id}", json={"privacy": "public"}, headers=me)
    assert opened.status_code == 200, opened.text  # for everyone below

    # The encoder settings as OBS asks for them: the server without the key, the key apart.
    await row.get_by_role("button", name="Encoder settings").click()
    server_field = row.get_by_label("Server", exact=True)
    key_field = row.get_by_label("Stream key", exact=True)
    assert await server_field.input_value() == "rtmp://127.0.0.1:1935/live"
    assert await key_field.get_attribute("type") == "password"  # hidden until shown
    key = await key_field.input_value()
    assert key == stream["stream_key"] and key not in await server_field.input_value()
    await row.get_by_role("button", name="Copy stream key").click()
    assert await page.evaluate("() => navigator.clipboard.readText()") == key
    await row.get_by_role("button", name="Copy server").click()
    assert await page.evaluate("() => navigator.clipboard.readText()") == (
        "rtmp://127.0.0.1:1935/live"
    )
    await row.get_by_role("button", name="Show", exact=True).click()
    assert await key_field.get_attribute("type") == "text"
    assert "Waiting for your encoder" in await row.locator(".encoder").inner_text()
    await row.get_by_role("button", name="New key").click()
    await page.wait_for_function(
        "(old) => document.querySelector('.ingest .key').value !== old", arg=key
    )
    assert len(await key_field.input_value()) >= 32
    await shot(page, "walk-2-ingest")
    await row.get_by_role("button", name="Start").click()
    await row.locator(".status.live").wait_for()

    # The control room: the creator's own visit is not a viewer.
    await row.get_by_role("link", name="Jioni ya muziki").click()
    await page.locator("#live-status").wait_for()
    await page.locator('#live-updates[data-connected="true"]').wait_for()
    line = " ".join((await page.locator(".statusline").inner_text()).split())
    assert line.startswith("Status: live · Live updates: connected"), line
    assert await page.locator('#preview-state[data-state="waiting"]').inner_text() == (
        "Waiting for your encoder…"
    )
    await asyncio.sleep(1.0)  # several viewer-count ticks
    shown = (await api.get(f"/api/streams/{stream_id}", headers=me)).json()["data"]
    assert shown["current_viewers"] == 0
    assert await page.locator("#viewer-count").inner_text() == "0"

    voter_auth = bearer(VOTER, first_name="Neema")
    voter = await Viewer.connect(
        f"{server.ws}/streams/{stream_id}?token={TOKENS.encode(VOTER, first_name='Neema')}"
    )
    try:
        await page.locator("#viewer-count", has_text="1").wait_for()
        await page.locator("#viewers-list li", has_text="Neema").wait_for()

        # Chat: a fan's comment arrives; the creator answers, pins, highlights, mutes, bans.
        posted = time.monotonic()
        answer = await api.post(
            f"/api/streams/{stream_id}/comments", json={"content": "Habari za jioni!"}, headers=fan
        )
        assert answer.status_code == 201, answer.text
        comment = page.locator("#chat li", has_text="Habari za jioni!")
        await comment.wait_for(timeout=1000)  # within a second of the API call
        print(f"comment on screen {(time.monotonic() - posted) * 1000:.0f} ms after the POST")
        fan_comment = answer.json()["data"]["id"]
        await page.get_by_label("Message").fill("Karibuni wote!")
        await page.get_by_role("button", name="Send").click()
        await page.locator("#chat li", has_text="Karibuni wote!").wait_for()
        await comment.get_by_role("button", name="Pin", exact=True).click()
        await comment.get_by_role("button", name="Unpin", exact=True).wait_for()
        await comment.get_by_role("button", name="Highlight", exact=True).click()
        await comment.get_by_text("Pinned · Highlighted").wait_for()
        listed = (await api.get(f"/api/streams/{stream_id}/comments", headers=me)).json()["data"]
        by_id = {c["id"]: c for c in listed}
        assert by_id[fan_comment]["is_pinned"] and by_id[fan_comment]["is_highlighted"]
        assert any(c["user_id"] == CREATOR and c["content"] == "Karibuni wote!" for c in listed)
        await comment.get_by_role("button", name="Mute Baraka 10 min").click()
        await page.get_by_text("Baraka is muted for 10 minutes.").wait_for()
        mutes = (await api.get(f"/api/streams/{stream_id}/mutes", headers=me)).json()["data"]
        assert [m["user_id"] for m in mutes] == [FAN]

        # Gifts, with their totals.
        admin = bearer(ADMIN, admin=True)
        giver = bearer(GIVER, first_name="Chiku")
        await api.get("/api/streams", headers=giver)  # Chiku's user row
        credited = await api.post(
            "/api/wallet/credit", json={"user_id": GIVER, "amount": 1000}, headers=admin
        )
        assert credited.status_code == 200, credited.text
        catalog = (await api.get("/api/streams/gifts")).json()["data"]
        sent = await api.post(
            f"/api/streams/{stream_id}/gifts", json={"gift_id": catalog[0]["id"]}, headers=giver
        )
        assert sent.status_code == 201, sent.text
        await page.locator("#gifts li", has_text="Chiku").wait_for(timeout=2000)
        value = sent.json()["data"]["total_value"]
        await page.locator("#gift-totals", has_text=f"1 gift · {value} coins").wait_for()

        # A poll opened in the console reaches a socket viewer; their vote moves the bar.
        await page.get_by_label("Poll question").fill("Wimbo upi ujao?")
        await page.get_by_label("Options").fill("Zuchu\nDiamond\n")
        await page.get_by_role("button", name="Open poll").click()
        created = await voter.wait_for(lambda e: e["event"] == "poll_created")
        options = created["data"]["options"]
        assert [o["text"] for o in options] == ["Zuchu", "Diamond"]
        await voter.send(
            "vote_poll", {"poll_id": created["data"]["poll_id"], "option_id": options[1]["id"]}
        )
        bar = page.locator(f'.poll-option[data-option="{options[1]["id"]}"][data-votes="1"]')
        await voter.wait_for(lambda e: e["event"] == "poll_vote", within=10)
        assert voter.named("error") == []
        await bar.wait_for(timeout=3000)  # the console heard it too
        assert "1 vote · 100%" in await bar.inner_text()
        width = await bar.locator(".bar-fill").evaluate("e => e.getBoundingClientRect().width")
        track = await bar.locator(".bar-track").evaluate("e => e.getBoundingClientRect().width")
        assert width == pytest.approx(track, abs=2)

        # The question queue: answer one, dismiss another.
        asked = []
        for text, asker in (("Utaimba Nitasema?", voter_auth), ("Spam spam", giver)):
            made = await api.post(
                f"/api/streams/{stream_id}/questions", json={"question": text}, headers=asker
            )
            assert made.status_code == 201, made.text
            asked.append(made.json()["data"]["id"])
        first = page.locator(f'#questions li[data-question="{asked[0]}"]')
        await first.get_by_role("button", name="Answered").click()
        await first.get_by_text("answered", exact=True).wait_for()
        second = page.locator(f'#questions li[data-question="{asked[1]}"]')
        await second.get_by_role("button", name="Dismiss").click()
        await second.wait_for(state="detached")
        queue = (await api.get(f"/api/streams/{stream_id}/questions", headers=me)).json()["data"]
        assert [(q["id"], q["is_answered"]) for q in queue] == [(asked[0], True)]

        # Stream health: the encoder's reports draw the chart; a low frame rate is explained.
        for fps, dropped in ((30, 0), (12, 40)):
            health = await api.post(
                f"/api/streams/{stream_id}/health",
                json={"bitrate": 900, "fps": fps, "dropped_frames": dropped},
                headers=me,
            )
            assert health.status_code == 200, health.text
        await page.locator("#health-warnings li", has_text="Only 12 frames per second").wait_for(
            timeout=8000
        )
        await page.locator("#health-warnings li", has_text="40 frames dropped").wait_for()
        assert await page.evaluate("() => window.tajiriCharts.health.data.labels.length") == 2
        assert await page.locator("#health-dropped").inner_text() == "40"
        await shot(page, "walk-3-live-room")

        await comment.get_by_role("button", name="Ban Baraka").click()
        await page.get_by_text("Baraka is banned.").wait_for()
        bans = (await api.get(f"/api/streams/{stream_id}/bans", headers=me)).json()["data"]
        assert [b["user_id"] for b in bans] == [FAN]
        again = await api.post(
            f"/api/streams/{stream_id}/comments", json={"content": "still here?"}, headers=fan
        )
        assert again.status_code == 403
    finally:
        await voter.close()

    await page.goto(f"{server.url}/console/#/analytics/{stream_id}")
    await page.get_by_role("heading", name="Analytics").wait_for()
    await page.wait_for_function(
        "() => (window.tajiriCharts.retention?.data.labels.length ?? 0) > 1"
    )
    pixels = await page.evaluate(
        """() => {
          const canvas = document.getElementById('retention-chart');
          const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
          let inked = 0;
          for (let i = 3; i < data.length; i += 4) if (data[i] > 0) inked++;
          return inked;
        }"""
    )
    assert pixels > 500  # the curve and its axes are on the canvas
    assert "interactions per viewer" in await page.locator('[data-stat="engagement"]').inner_text()
    # Super chats beside gifts: none were sent here, and the card says so in coins.
    assert await page.locator('[data-stat="super-chats"]').inner_text() == "0 · 0 coins"

    await page.goto(f"{server.url}/console/#/moderation/{stream_id}")
    await page.get_by_role("table", name="Moderation log").wait_for()
    assert "ban" in (await page.locator("table").inner_text()).lower()

    # A creator who types the admin page's address is told it is not theirs.
    await page.goto(f"{server.url}/console/#/admin")
    await page.get_by_text("Only administrators see all streams.").wait_for()

    # An administrator refunds the gift from the all-streams page.
    admin_token = TOKENS.encode(ADMIN, admin=True)
    await page.evaluate("token => sessionStorage.setItem('tajiri.token', token)", admin_token)
    await page.reload()
    await page.get_by_role("heading", name="All streams").wait_for()
    await page.locator("tr", has_text="Jioni ya muziki").get_by_role("button", name="Gifts").click()
    await page.locator("#admin-gifts").get_by_role("button", name="Refund").click()
    await page.locator("#admin-gifts", has_text="refunded").wait_for()
    wallet = await api.get("/api/wallet", headers=bearer(GIVER))
    assert wallet.json()["data"]["balance"] == 1000  # the refund reached the sender

    await every_page_in_both_languages(page, server, stream_id, creator, admin_token)
    assert page.errors == []  # no script errors and nothing refused by the policy


PAGES = [
    ("1-sign-in", "#/signin", None),
    ("2-my-streams", "#/streams", "creator"),
    ("3-control-room", "#/live/{id}", "creator"),
    ("4-analytics", "#/analytics/{id}", "creator"),
    ("5-moderation-log", "#/moderation/{id}", "creator"),
    ("6-admin", "#/admin", "admin"),
]
HEADINGS = {
    "en": ["Sign in", "My streams", "Jioni ya muziki", "Analytics", "Moderation log",
           "All streams"],
    "sw": ["Ingia", "Matangazo yangu", "Jioni ya muziki", "Takwimu", "Kumbukumbu ya udhibiti",
           "Matangazo yote"],
}  # fmt: skip


async def every_page_in_both_languages(
    page: Any, server: ServerProcess, stream_id: int, creator: str, admin: str
) -> None:
    """Each page in English and Swahili, on a desktop and a phone: a screenshot, the language
    kept across reloads, and axe-core's serious and critical findings (there must be none)."""
    await page.goto(f"{server.url}/console/#/streams")
    found: dict[str, list[str]] = {}
    for language in ("en", "sw"):
        await page.locator("#language").select_option(language)
        for viewport_name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            await page.set_viewport_size(viewport)
            for (name, address, who), heading in zip(PAGES, HEADINGS[language], strict=True):
                token = {"creator": creator, "admin": admin}.get(who or "")
                await page.evaluate(
                    "token => token ? sessionStorage.setItem('tajiri.token', token)"
                    " : sessionStorage.removeItem('tajiri.token')",
                    token,
                )
                await page.goto(f"{server.url}/console/{address.format(id=stream_id)}")
                await page.reload()  # the language is remembered
                await page.get_by_role("heading", name=heading, exact=True).wait_for()
                assert await page.evaluate("() => document.documentElement.lang") == language
                if name == "3-control-room":
                    await page.locator('#live-updates[data-connected="true"]').wait_for()
                    await page.locator("#health-warnings li").first.wait_for()
                await asyncio.sleep(0.3)  # charts drawn
                await shot(page, f"{name}-{language}-{viewport_name}")
                problems = await serious_violations(page)
                if problems:
                    found[f"{name}-{language}-{viewport_name}"] = problems
    assert not found, json.dumps(found, indent=1)
