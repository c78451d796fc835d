"""Debian's Chromium driven by Playwright, for the console and playback tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "console"
AXE = Path(__file__).resolve().parent / "js" / "node_modules" / "axe-core" / "axe.min.js"


def require_browser() -> None:
    """Chromium and Playwright; in CI their absence is a failure, not a skip."""
    try:
        import playwright
    except ImportError:
        playwright = None
    if shutil.which("chromium") and os.path.exists(CHROMIUM) and playwright is not None:
        return
    message = "install chromium (apt) and playwright (pip) to run the browser tests"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_axe() -> None:
    """axe-core from tests/js (installed with the Pusher clients)."""
    if AXE.exists():
        return
    message = "run `npm ci` in tests/js for axe-core"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


async def shot(page: Any, name: str) -> None:
    """A full-page screenshot to test-artifacts/console/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical findings on the page as it is."""
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE.read_text())  # not a script tag: the page's policy refuses those
    found = await page.evaluate(
        "() => axe.run(document, { resultTypes: ['violations'] }).then(r => r.violations)"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def launch_args() -> list[str]:
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


async def play_hls(page_url: str, playlist_url: str, *, seconds: float = 2.0) -> float:
    """Open `page_url` (for its origin), play `playlist_url` with the console's hls.js, and
    return how far the video got (its `currentTime`) once it has played `seconds`."""
    from playwright.async_api import async_playwright

    async with async_playwright() as driver:
        browser = await driver.chromium.launch(
            executable_path=CHROMIUM,
            args=[*launch_args(), "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            page = await browser.new_page()
            await page.goto(page_url)
            await page.add_script_tag(
                url=page_url.rstrip("/") + "/console/static/vendor/hls.min.js"
            )
            played: float = await page.evaluate(
                """([source, seconds]) => new Promise((resolve, reject) => {
                    const video = document.createElement("video");
                    video.muted = true;
                    document.body.appendChild(video);
                    const hls = new Hls({ liveSyncDurationCount: 1 });
                    hls.on(Hls.Events.ERROR, (_, data) => {
                        if (data.fatal) reject(new Error(data.type + ": " + data.details));
                    });
                    hls.loadSource(source);
                    hls.attachMedia(video);
                    hls.on(Hls.Events.MANIFEST_PARSED, () => video.play());
                    video.addEventListener("timeupdate", () => {
                        if (video.currentTime >= seconds) resolve(video.currentTime);
                    });
                    setTimeout(() => reject(new Error("not playing: " + video.currentTime)), 30000);
                })""",
                [playlist_url, seconds],
            )
            return played
        finally:
            await browser.close()
