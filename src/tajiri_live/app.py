"""The application factory: everything is built here and in the lifespan, nothing at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from tajiri_live import __version__
from tajiri_live.core.auth import TokenCodec
from tajiri_live.core.clock import Clock, SystemClock
from tajiri_live.core.db import create_engine, create_sessionmaker
from tajiri_live.core.errors import install_error_handlers
from tajiri_live.core.runtime import Runtime
from tajiri_live.core.scheduler import Scheduler
from tajiri_live.core.settings import Settings
from tajiri_live.gifts.router import router as gifts_router
from tajiri_live.realtime.broker import Broker
from tajiri_live.realtime.broker_memory import MemoryBroker
from tajiri_live.streams.jobs import lifecycle_jobs
from tajiri_live.streams.router import router as streams_router

log = logging.getLogger(__name__)


def build_runtime(
    settings: Settings, *, clock: Clock | None = None, broker: Broker | None = None
) -> Runtime:
    engine = create_engine(settings.resolved_database_url, echo=settings.database_echo)
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=create_sessionmaker(engine),
        clock=clock or SystemClock(),
        broker=broker or MemoryBroker(),
        tokens=TokenCodec(settings),
    )


def all_jobs(runtime: Runtime) -> Scheduler:
    return Scheduler(lifecycle_jobs(runtime))


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    run_jobs: bool | None = None,
) -> FastAPI:
    """Build the service. `clock` is injectable for tests; jobs follow settings unless told."""
    settings.media_dir.mkdir(parents=True, exist_ok=True)
    runtime = build_runtime(settings, clock=clock)
    jobs_enabled = settings.run_jobs if run_jobs is None else run_jobs

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler = all_jobs(runtime)
        if jobs_enabled:
            scheduler.start()
        try:
            yield
        finally:
            await scheduler.stop()
            await runtime.broker.close()
            await runtime.engine.dispose()

    app = FastAPI(
        title="tajiri-live",
        version=__version__,
        description="Livestreaming backend for the TAJIRI app.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    install_error_handlers(app)

    api = APIRouter(prefix="/api")
    api.include_router(gifts_router)  # before /streams/{id}
    api.include_router(streams_router)
    app.include_router(api)
    app.mount("/storage", StaticFiles(directory=settings.media_dir), name="storage")

    @app.get("/health", tags=["ops"], summary="The process is up")
    async def health() -> dict[str, Any]:
        return {"success": True, "status": "ok", "version": __version__}

    @app.get("/ready", tags=["ops"], summary="The database answers")
    async def ready() -> JSONResponse:
        try:
            async with runtime.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:  # any failure means not ready
            log.warning("readiness check failed: %s", type(exc).__name__)
            return JSONResponse(
                {"success": False, "status": "unavailable", "message": "Database unreachable."},
                status_code=503,
            )
        return JSONResponse({"success": True, "status": "ready"})

    return app
