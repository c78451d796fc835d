"""Shared fixtures: a migrated database per test, the app on it, a client, tokens, a clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from dbutil import DatabaseFactory, backend
from tajiri_live.app import create_app
from tajiri_live.core.clock import ManualClock
from tajiri_live.core.runtime import Runtime
from tajiri_live.core.settings import Settings
from tajiri_live.realtime.events import Event

TEST_SECRET = "test-secret-" + "x" * 40


def pytest_report_header() -> str:
    return f"tajiri-live database backend: {backend()}"


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(tmp_path_factory.mktemp("databases"))
    yield factory
    factory.drop_all()


@pytest.fixture
def database_url(databases: DatabaseFactory) -> str:
    return databases.migrated()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        var_dir=tmp_path / "var",
        jwt_secret=TEST_SECRET,
        public_base_url="http://testserver",
        run_jobs=False,
    )


@pytest.fixture
async def app(settings: Settings, clock: ManualClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock, run_jobs=False)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def runtime(app: FastAPI) -> Runtime:
    value: Runtime = app.state.runtime
    return value


@pytest.fixture
async def events(runtime: Runtime) -> list[Event]:
    """Every event the broker carries during the test."""
    seen: list[Event] = []

    async def record(event: Event) -> None:
        seen.append(event)

    await runtime.broker.start(record)
    return seen


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def auth(runtime: Runtime) -> Any:
    """`auth(user_id, **claims)` -> headers carrying a bearer token for that user."""

    def make(user_id: int, **claims: Any) -> dict[str, str]:
        token = runtime.tokens.encode(user_id, **claims)
        return {"Authorization": f"Bearer {token}"}

    return make
