"""PK battles in the console's control room: two creators' consoles (two browser contexts of
Debian's Chromium) against a real `serve` process with short battles. One invites, the other
declines, then accepts; a fan's gifts move both score bars; time runs out and each console
shows its result; a second battle ends with a forfeit. English on one side, Swahili on the
other; screenshots to test-artifacts/console/ and axe-core on every state."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser import (
    ARTIFACTS,
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

ASHA, BARAKA, FAN, ADMIN = 1, 2, 7, 9
BATTLE_SECONDS = 20  # time to invite, gift, screenshot and check on a shared machine
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
TOKENS = TokenCodec(Settings(jwt_secret=TEST_SECRET))


def bearer(user_id: int, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS.encode(user_id, **claims)}"}


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    process = ServerProcess(
        tmp_path,
        database_url,
        TAJIRI_BATTLE_DURATION_SECONDS=str(BATTLE_SECONDS),
        TAJIRI_JOB_BATTLES_EVERY_SECONDS="0.2",
    ).start()
    yield process
    process.stop()


@pytest.fixture
async def browser(server: ServerProcess) -> AsyncIterator[Any]:
    require_browser()
    require_axe()
    from playwright.async_api import async_playwright

    async with async_playwright() as driver:
        chromium = await driver.chromium.launch(executable_path=CHROMIUM, args=launch_args())
        yield chromium
        await chromium.close()


async def live_stream(api: httpx.AsyncClient, owner: int, first_name: str, title: str) -> int:
    headers = bearer(owner, first_name=first_name)
    created = await api.post("/api/streams", json={"title": title}, headers=headers)
    assert created.status_code == 201, created.text
    stream_id = int(created.json()["data"]["id"])
    started = await api.post(f"/api/streams/{stream_id}/start", headers=headers)
    assert started.status_code == 200, started.text
    return stream_id


async def control_room(
    browser: Any, server: ServerProcess, user: int, first_name: str, language: str, stream: int
) -> Any:
    """A creator's console in its own browser context, in `language`, at the stream's room."""
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.errors = errors
    await page.goto(f"{server.url}/console/#/signin")
    await page.evaluate(
        "([token, language]) => { sessionStorage.setItem('tajiri.token', token);"
        " localStorage.setItem('tajiri.lang', language); }",
        [TOKENS.encode(user, first_name=first_name), language],
    )
    await page.goto(f"{server.url}/console/#/live/{stream}")
    await page.reload()
    await page.locator('#live-updates[data-connected="true"]').wait_for()
    await page.locator("#battle").wait_for()
    return page


async def panel_shot(page: Any, name: str) -> None:
    """The battle panel alone, and axe-core on the whole page as it is."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    panel = page.locator("section", has=page.locator("#battle"))
    await panel.screenshot(path=str(ARTIFACTS / f"battle-{name}.png"))
    problems = await serious_violations(page)
    assert not problems, json.dumps({name: problems}, indent=1)


async def send_gifts(api: httpx.AsyncClient, stream: int, gift_id: int, quantity: int) -> None:
    sent = await api.post(
        f"/api/streams/{stream}/gifts",
        json={"gift_id": gift_id, "quantity": quantity},
        headers=bearer(FAN),
    )
    assert sent.status_code == 201, sent.text


async def test_two_consoles_battle_and_each_shows_its_result(
    browser: Any, server: ServerProcess
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as api:
        a = await live_stream(api, ASHA, "Asha", "Asha live")
        b = await live_stream(api, BARAKA, "Baraka", "Baraka live")
        await api.get("/api/streams", headers=bearer(FAN))  # the fan's user row
        credited = await api.post(
            "/api/wallet/credit",
            json={"user_id": FAN, "amount": 5000},
            headers=bearer(ADMIN, admin=True),
        )
        assert credited.status_code == 200, credited.text
        rose = next(
            g for g in (await api.get("/api/streams/gifts")).json()["data"] if g["slug"] == "rose"
        )

        asha = await control_room(browser, server, ASHA, "Asha", "en", a)
        baraka = await control_room(browser, server, BARAKA, "Baraka", "sw", b)

        # Asha picks Baraka's stream from the live list; Baraka declines.
        pick = asha.get_by_label("Live stream to invite")
        await pick.locator(f'option[value="{b}"]').wait_for(state="attached")
        assert await pick.locator(f'option[value="{a}"]').count() == 0  # not her own
        await pick.select_option(str(b))
        await shot(asha, "battle-0-invite-en-desktop")
        await panel_shot(asha, "1-invite-en")
        await asha.get_by_role("button", name="Invite to a battle").click()
        await asha.locator('#battle-state[data-state="inviting"]', has_text="Baraka").wait_for()
        invited = baraka.locator('#battle-state[data-state="invited"]')
        await invited.get_by_text("Asha (Asha live) anakualika kwenye pambano.").wait_for()
        await panel_shot(baraka, "2-invited-sw")
        await baraka.get_by_role("button", name="Kataa").click()
        await asha.get_by_text("Baraka declined the battle.").wait_for()
        await invited.wait_for(state="detached")

        # Asha types the stream id this time; Baraka accepts.
        await asha.get_by_label("Or type its stream id").fill(str(b))
        await asha.get_by_role("button", name="Invite to a battle").click()
        await asha.locator('#battle-state[data-state="inviting"]').wait_for()
        await panel_shot(asha, "3-waiting-en")
        await invited.get_by_role("button", name="Kubali").click()
        for page in (asha, baraka):
            await page.locator('#battle-state[data-state="active"]').wait_for()
        await asha.get_by_role("heading", name="You vs Baraka").wait_for()
        await baraka.get_by_role("heading", name="Wewe dhidi ya Asha").wait_for()
        countdown = asha.locator("#battle-countdown")
        await asha.wait_for_function(
            "() => /^0:\\d\\d left$/.test(document.getElementById('battle-countdown').textContent)"
        )
        first = await countdown.inner_text()

        # A fan's gifts: one rose to Asha, three to Baraka; both bars move on both consoles.
        value = int(rose["price"])  # a side scores the coins its viewers pay
        await send_gifts(api, a, rose["id"], 1)
        await send_gifts(api, b, rose["id"], 3)
        mine, theirs = value, 3 * value
        await asha.locator(f'#battle-score[data-mine="{mine}"][data-theirs="{theirs}"]').wait_for()
        await baraka.locator(
            f'#battle-score[data-mine="{theirs}"][data-theirs="{mine}"]'
        ).wait_for()
        share = await asha.locator("#battle-score").evaluate(
            "s => s.querySelector('.battle-mine').getBoundingClientRect().width"
            " / s.querySelector('.battle-track').getBoundingClientRect().width"
        )
        assert share == pytest.approx(0.25, abs=0.02)
        await asha.wait_for_function(  # it counts down
            "first => document.getElementById('battle-countdown').textContent !== first", arg=first
        )
        await panel_shot(asha, "4-score-en")
        await panel_shot(baraka, "5-score-sw")
        await baraka.set_viewport_size(PHONE)
        await shot(baraka, "battle-5-score-sw-phone")
        await baraka.set_viewport_size(DESKTOP)

        # Time runs out: Baraka won, Asha lost, each from their own side.
        timeout = (BATTLE_SECONDS + 15) * 1000
        await asha.locator('#battle-result[data-result="lost"]').wait_for(timeout=timeout)
        await baraka.locator('#battle-result[data-result="won"]').wait_for(timeout=timeout)
        assert "You lost the battle." in await asha.locator("#battle-result").inner_text()
        assert "Umeshinda pambano!" in await baraka.locator("#battle-result").inner_text()
        final = " ".join((await asha.locator("#battle-result").inner_text()).split())
        assert f"you {mine}, Baraka {theirs} coins" in final, final
        await panel_shot(asha, "6-lost-en")
        await panel_shot(baraka, "7-won-sw")
        ended = (await api.get(f"/api/streams/{a}/battles/current")).json()["data"]
        assert ended is None

        # A second battle, the other way round, ends with Asha's forfeit.
        await baraka.get_by_label("Au andika namba ya tangazo").fill(str(a))
        await baraka.get_by_role("button", name="Alika kwenye pambano").click()
        await asha.get_by_role("button", name="Accept").click()
        forfeit = asha.get_by_role("button", name="Forfeit")
        asha.once("dialog", lambda dialog: dialog.dismiss())  # asked first, and kept fighting
        await forfeit.click()
        await asha.wait_for_function(
            "() => !document.querySelector('#battle-state .danger').disabled"
        )
        still = (await api.get(f"/api/streams/{a}/battles/current")).json()["data"]
        assert still["status"] == "active"
        asha.once("dialog", lambda dialog: dialog.accept())
        await forfeit.click()
        await asha.locator(
            '#battle-result[data-result="lost"]', has_text="You forfeited."
        ).wait_for()
        await baraka.locator(
            '#battle-result[data-result="won"]', has_text="Asha amejisalimisha."
        ).wait_for()
        await panel_shot(asha, "8-forfeit-en")

        # A third ended early by its owner through the API, no coins either side: a draw.
        await asha.get_by_label("Or type its stream id").fill(str(b))
        await asha.get_by_role("button", name="Invite to a battle").click()
        await baraka.get_by_role("button", name="Kubali").click()
        await asha.locator('#battle-state[data-state="active"]').wait_for()
        third = (await api.get(f"/api/streams/{a}/battles/current")).json()["data"]["id"]
        ended_early = await api.post(f"/api/battles/{third}/end", headers=bearer(ASHA))
        assert ended_early.status_code == 200, ended_early.text
        await asha.locator('#battle-result[data-result="draw"]').wait_for()
        await baraka.locator('#battle-result[data-result="draw"]', has_text="sare").wait_for()
        await asha.set_viewport_size(PHONE)
        await shot(asha, "battle-9-draw-en-phone")

        # The creators' analytics count the battles: fought, won, the coins scored in them.
        for page, stream, expected in (
            (asha, a, f"3 · 0 · {mine} coins"),
            (baraka, b, f"3 · 2 · sarafu {theirs}"),
        ):
            await page.goto(f"{server.url}/console/#/analytics/{stream}")
            stat = page.locator('[data-stat="battles"]')
            await stat.wait_for()
            assert await stat.inner_text() == expected

        assert asha.errors == [] and baraka.errors == []
