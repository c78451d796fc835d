"""The web console for creators and moderators: static pages at `/console`, talking to the
same REST API and WebSocket as the app (no server-side rendering, no secrets in the page)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from tajiri_live.core.settings import Settings

STATIC = Path(__file__).parent / "static"


def content_security_policy(media_origins: Iterable[str] = ()) -> str:
    """Everything from this origin; video, pictures and the WebSocket may come from any https
    host and from the configured media origins (plain http in development); hls.js needs
    blob: workers."""
    extra = "".join(f" {origin}" for origin in sorted(set(media_origins)))
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data: blob: https:{extra}; media-src 'self' blob: https:{extra}; "
        f"connect-src 'self' ws: wss: https:{extra}; worker-src 'self' blob:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme == "http" and parts.netloc else None


def media_origins(settings: Settings) -> list[str]:
    """The plain-http origins playback links and thumbnails point at (https ones are allowed)."""
    urls = (settings.resolved_media_base_url, settings.hls_base_url or "")
    return [origin for origin in map(_origin, urls) if origin is not None]


async def site_root() -> RedirectResponse:
    """A browser pointed at the service lands on the console (the API is under /api)."""
    return RedirectResponse("/console/")


async def console_root() -> RedirectResponse:
    return RedirectResponse("/console/")


def install(app: FastAPI, settings: Settings) -> None:
    """The console's routes; its page's policy names this deployment's media origins."""
    headers = {
        "Content-Security-Policy": content_security_policy(media_origins(settings)),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }

    async def console_page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=headers)

    router = APIRouter(tags=["console"], include_in_schema=False)
    router.add_api_route("/", site_root, methods=["GET"])
    router.add_api_route("/console", console_root, methods=["GET"])
    router.add_api_route("/console/", console_page, methods=["GET"])
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
