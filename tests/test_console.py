"""The web console in a real browser: Debian's headless Chromium driven by Playwright, against
a real `serve` process. Screenshots of every page go to test-artifacts/console/."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser import CHROMIUM, launch_args, require_browser
from conftest import TEST_SECRET
from servers import ServerProcess
from tajiri_live.core.auth import TokenCodec
from tajiri_live.core.settings import Settings

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "console"
CREATOR, FAN, GIVER, ADMIN = 1, 7, 8, 9


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path, database_url).start()
    yield process
    process.stop()


@pytest.fixture
async def page(server: ServerProcess) -> AsyncIterator[Any]:
    require_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as driver:
        browser = await driver.chromium.launch(
            executable_path=CHROMIUM,
            args=launch_args(),
        )
        context = await browser.new_context(viewport={"width": 390, "height": 844})  # a phone
        tab = await context.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.errors = errors  # type: ignore[attr-defined]
        yield tab
        await browser.close()


async def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def test_a_creator_runs_a_stream_from_the_console(page: Any, server: ServerProcess) -> None:
    tokens = TokenCodec(Settings(jwt_secret=TEST_SECRET))
    creator = tokens.encode(CREATOR, first_name="Amani")
    fan = {"Authorization": f"Bearer {tokens.encode(FAN, first_name='Baraka')}"}

    await page.goto(f"{server.url}/console/")
    await page.get_by_label("Access token").fill(creator)
    await shot(page, "1-sign-in")
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("heading", name="My streams").wait_for()

    await page.get_by_label("Title").fill("Jioni ya muziki")
    await page.get_by_role("button", name="Create").click()
    row = page.locator("tr", has_text="Jioni ya muziki")
    await row.wait_for()
    await row.get_by_role("button", name="Show ingest URL and key").click()
    await row.locator(".secret").wait_for()
    assert "Key:" in await row.locator(".secret").inner_text()
    assert "Encoder not connected" in await row.locator(".encoder").inner_text()
    old_key = await row.locator(".key").inner_text()
    await row.get_by_role("button", name="New key").click()
    await page.wait_for_function(
        "(old) => document.querySelector('.secret .key').textContent !== old", arg=old_key
    )
    assert len(await row.locator(".key").inner_text()) >= 32
    await row.get_by_role("button", name="Start").click()
    await row.locator(".status.live").wait_for()
    await shot(page, "2-my-streams")
    stream_id = int(await row.get_attribute("data-stream") or 0)

    await row.get_by_role("link", name="Jioni ya muziki").click()
    await page.locator("#live-status").wait_for()
    await page.wait_for_function("() => window.tajiriCharts.viewers !== undefined")
    await page.locator('#live-updates[data-connected="true"]').wait_for()
    async with httpx.AsyncClient(base_url=server.url) as api:
        posted = time.monotonic()
        answer = await api.post(
            f"/api/streams/{stream_id}/comments", json={"content": "Habari za jioni!"}, headers=fan
        )
        assert answer.status_code == 201, answer.text
        comment = page.locator("#chat li", has_text="Habari za jioni!")
        await comment.wait_for(timeout=1000)  # within a second of the API call
        print(f"comment on screen {(time.monotonic() - posted) * 1000:.0f} ms after the POST")
        admin_headers = {"Authorization": f"Bearer {tokens.encode(ADMIN, admin=True)}"}
        giver = {"Authorization": f"Bearer {tokens.encode(GIVER, first_name='Chiku')}"}
        await api.get("/api/streams", headers=giver)  # Chiku's user row
        credited = await api.post(
            "/api/wallet/credit", json={"user_id": GIVER, "amount": 1000}, headers=admin_headers
        )
        assert credited.status_code == 200, credited.text
        catalog = (await api.get("/api/streams/gifts")).json()["data"]
        sent = await api.post(
            f"/api/streams/{stream_id}/gifts", json={"gift_id": catalog[0]["id"]}, headers=giver
        )
        assert sent.status_code == 201, sent.text
        await page.locator("#gifts li", has_text="Chiku").wait_for(timeout=2000)
        await shot(page, "3-live-room")
        await comment.get_by_role("button", name="Ban Baraka").click()
        await page.get_by_text("Baraka is banned.").wait_for()
        bans = await api.get(
            f"/api/streams/{stream_id}/bans",
            headers={"Authorization": f"Bearer {creator}"},
        )
        assert [b["user_id"] for b in bans.json()["data"]] == [FAN]
        again = await api.post(
            f"/api/streams/{stream_id}/comments", json={"content": "still here?"}, headers=fan
        )
        assert again.status_code == 403

    await page.goto(f"{server.url}/console/#/analytics/{stream_id}")
    await page.get_by_role("heading", name="Analytics").wait_for()
    drawn = await page.wait_for_function(
        "() => (window.tajiriCharts.retention?.data.labels.length ?? 0) > 1"
    )
    assert drawn
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
    await shot(page, "4-analytics")

    await page.goto(f"{server.url}/console/#/moderation/{stream_id}")
    await page.get_by_role("table", name="Moderation log").wait_for()
    assert "ban" in (await page.locator("table").inner_text()).lower()
    await shot(page, "5-moderation-log")

    # An administrator refunds the gift from the all-streams page.
    admin = tokens.encode(ADMIN, admin=True)
    await page.evaluate("token => sessionStorage.setItem('tajiri.token', token)", admin)
    await page.goto(f"{server.url}/console/#/admin")
    await page.get_by_role("heading", name="All streams").wait_for()
    await page.locator("tr", has_text="Jioni ya muziki").get_by_role("button", name="Gifts").click()
    await page.locator("#admin-gifts").get_by_role("button", name="Refund").click()
    await page.locator("#admin-gifts", has_text="refunded").wait_for()
    await shot(page, "6-admin")
    async with httpx.AsyncClient(base_url=server.url) as api:
        wallet = await api.get(
            "/api/wallet", headers={"Authorization": f"Bearer {tokens.encode(GIVER)}"}
        )
    assert wallet.json()["data"]["balance"] == 1000  # the refund reached the sender
    assert page.errors == []  # no script errors on any page
