"""`GET /` leads to the console; `/docs` and `/redoc` work with no network but this service."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser import CHROMIUM, launch_args, require_browser
from servers import ServerProcess

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "docs"
OUTSIDE = re.compile(r"cdn\.jsdelivr|unpkg|googleapis|fastapi\.tiangolo|validator\.swagger")


async def test_the_root_redirects_to_the_console(client: httpx.AsyncClient) -> None:
    answer = await client.get("/")
    assert answer.status_code in (302, 307) and answer.headers["location"] == "/console/"
    page = await client.get("/", follow_redirects=True)
    assert page.status_code == 200 and "<title>" in page.text and "console" in str(page.url)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_doc_pages_name_only_local_assets(client: httpx.AsyncClient, path: str) -> None:
    page = await client.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert not OUTSIDE.search(page.text), page.text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert assets and all(asset.startswith("/docs/static/") for asset in assets), assets
    for asset in assets:
        answer = await client.get(asset)
        assert answer.status_code == 200, asset
        assert len(answer.content) > 500, asset


async def test_swagger_ui_oauth2_redirect_page_is_served(client: httpx.AsyncClient) -> None:
    answer = await client.get("/docs/oauth2-redirect")
    assert answer.status_code == 200 and "oauth2" in answer.text.lower()


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path, database_url).start()
    yield process
    process.stop()


async def test_docs_and_redoc_render_in_a_browser_cut_off_from_the_network(
    server: ServerProcess,
) -> None:
    require_browser()
    from playwright.async_api import Route, async_playwright

    outside: list[str] = []
    errors: list[str] = []

    async def only_this_service(route: Route) -> None:
        if route.request.url.startswith(server.url):
            await route.continue_()
        else:  # what a machine without a network would see
            outside.append(route.request.url)
            await route.abort()

    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=launch_args())
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            await context.route("**/*", only_this_service)
            page: Any = await context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))

            await page.goto(f"{server.url}/")
            assert page.url == f"{server.url}/console/"
            await page.get_by_label("Access token").wait_for()

            await page.goto(f"{server.url}/docs")
            await page.locator(".swagger-ui .info .title", has_text="tajiri-live").wait_for()
            await page.locator(
                ".opblock-summary-path", has_text="/api/streams/{stream_id}/join"
            ).first.wait_for()
            assert await page.locator(".opblock").count() > 50
            await shot(page, "swagger-ui")

            await page.goto(f"{server.url}/redoc")
            await page.locator("h1", has_text="tajiri-live").wait_for()
            await page.locator("h2", has_text="Create a stream").first.wait_for()
            assert await page.locator("[data-section-id^='tag/']").count() > 5
            await shot(page, "redoc")
        finally:
            await browser.close()
    assert outside == []
    assert errors == []


async def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
