"""The web console for creators and moderators: static pages at `/console`, talking to the
same REST API and WebSocket as the app (no server-side rendering, no secrets in the page)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
# Everything from this origin; video segments and the WebSocket too; hls.js needs blob: workers.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: https:; "
    "media-src 'self' blob: https:; connect-src 'self' ws: wss: https:; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(tags=["console"], include_in_schema=False)


@router.get("/")
async def site_root() -> RedirectResponse:
    """A browser pointed at the service lands on the console (the API is under /api)."""
    return RedirectResponse("/console/")


@router.get("/console")
async def console_root() -> RedirectResponse:
    return RedirectResponse("/console/")


@router.get("/console/")
async def console_page() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers=HEADERS)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
