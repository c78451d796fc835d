"""Hot routes (core/hotroutes.py: join, comments, gifts) answer in front of FastAPI exactly
as the documented routes would: the same status, headers and body, for the answers and for
the refusals."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import compile_path

from dbutil import DatabaseFactory
from tajiri_live import app as app_module
from tajiri_live.app import API_ROUTERS, HOT_ROUTES, create_app
from tajiri_live.core.clock import ManualClock
from tajiri_live.core.settings import Settings

OWNER, FAN, OTHER, ADMIN, SENDER, POOR = 1, 2, 3, 4, 5, 6
METRIC = re.compile(r'tajiri_hot_route_requests_total\{method="(\w+)",route="([^"]+)"\} (\d+)')
# What differs between two joins of the same user by design (a fresh token each time).
VOLATILE = ("viewer_token",)
COMPARED_HEADERS = ("content-type", "www-authenticate", "retry-after", "idempotent-replayed")


@asynccontextmanager
async def serving(
    settings: Settings, clock: ManualClock, **changes: Any
) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings.model_copy(update=changes), clock=clock, run_jobs=False)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


def test_each_hot_route_is_a_documented_route_matched_first_for_its_path() -> None:
    """A hot route answers before the router: it must be the route the router would pick
    for its paths, so it hides nothing, and the API docs describe it."""
    documented = [
        (f"/api{route.path}", route.methods)
        for router in API_ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
    ]
    assert HOT_ROUTES
    for hot in HOT_ROUTES:
        full = hot.under("/api")
        concrete = re.sub(r"{\w+}", "7", full.path)
        first = next(
            path
            for path, methods in documented
            if hot.method in methods and compile_path(path)[0].match(concrete)
        )
        assert first == full.path


async def served(client: httpx.AsyncClient) -> dict[str, int]:
    text = (await client.get("/metrics")).text
    return {f"{method} {route}": int(count) for method, route, count in METRIC.findall(text)}


async def scenarios(client: httpx.AsyncClient, auth: Any) -> list[tuple[int, dict[str, str], Any]]:
    """The same requests, in the same order, on a fresh service: what each answered."""
    created = await client.post("/api/streams", json={"title": "x"}, headers=auth(OWNER))
    live = int(created.json()["data"]["id"])
    await client.post(f"/api/streams/{live}/start", headers=auth(OWNER))
    created = await client.post("/api/streams", json={"title": "y"}, headers=auth(OWNER))
    scheduled = int(created.json()["data"]["id"])
    created = await client.post("/api/streams", json={"title": "z"}, headers=auth(OWNER))
    ending = int(created.json()["data"]["id"])
    await client.post(f"/api/streams/{ending}/start", headers=auth(OWNER))
    await client.post(f"/api/streams/{ending}/end", headers=auth(OWNER))
    requests: list[tuple[str, dict[str, Any]]] = [
        (f"/api/streams/{live}/join", {"headers": auth(FAN)}),
        (f"/api/streams/{live}/join", {"headers": auth(FAN), "json": {"region": "Dodoma"}}),
        (f"/api/streams/{live}/join", {}),  # no token
        (f"/api/streams/{live}/join", {"headers": {"Authorization": ""}}),
        (f"/api/streams/{live}/join", {"headers": {"Authorization": "Bearer nonsense"}}),
        (f"/api/streams/{live}/join", {"headers": auth(FAN), "json": {"user_id": OTHER}}),
        (f"/api/streams/{live}/join", {"headers": auth(FAN), "content": b"{not json"}),
        (f"/api/streams/{live}/join", {"headers": auth(FAN), "json": {"region": "a\x00b"}}),
        (f"/api/streams/{live}/join", {"headers": auth(FAN), "json": [1, 2]}),
        (f"/api/streams/{scheduled}/join", {"headers": auth(FAN)}),
        (f"/api/streams/{ending}/join", {"headers": auth(FAN)}),
        ("/api/streams/999999/join", {"headers": auth(FAN)}),
        ("/api/streams/0/join", {"headers": auth(FAN)}),  # declined: the route's 422
        (f"/api/streams/{2**62 + 1}/join", {"headers": auth(FAN)}),
        ("/api/streams/99999999999999999999999/join", {"headers": auth(FAN)}),
    ]
    comments = f"/api/streams/{live}/comments"
    # Each comment by a user of its own: a user's comments are rate limited.
    requests += [
        (comments, {"headers": auth(10), "json": {"content": "Habari!"}}),
        (comments, {"headers": auth(11), "data": {"content": "form-encoded, ü"}}),
        (comments, {"headers": auth(12), "json": {"content": ""}}),
        (comments, {"headers": auth(13), "json": {"content": "x" * 5000}}),
        (comments, {"headers": auth(14), "json": {"content": "hi", "user_id": OTHER}}),
        (comments, {"json": {"content": "no token"}}),
        # Ending (its outro): no more joins, comments still
        (f"/api/streams/{ending}/comments", {"headers": auth(15), "json": {"content": "late"}}),
        ("/api/streams/0/comments", {"headers": auth(16), "json": {"content": "zero"}}),
    ]
    # Gifts: a funded sender (credited by an admin) and one with no coins
    gift_id = (await client.get("/api/streams/gifts")).json()["data"][0]["id"]
    admin = auth(ADMIN, admin=True)
    credit = {"user_id": SENDER, "amount": 10_000}
    assert (await client.post("/api/wallet/credit", headers=admin, json=credit)).status_code < 300
    gifts, gift = f"/api/streams/{live}/gifts", {"gift_id": gift_id}
    keyed = {**auth(SENDER), "Idempotency-Key": "gift-1"}
    requests += [
        (gifts, {"headers": auth(SENDER), "json": gift}),
        (gifts, {"headers": keyed, "json": gift}),
        (gifts, {"headers": keyed, "json": gift}),  # a retry: the first answer again
        (gifts, {"headers": keyed, "json": {**gift, "quantity": 2}}),  # the key, another body
        (gifts, {"headers": {**keyed, "Idempotency-Key": " "}, "json": gift}),  # declined
        (gifts, {"headers": auth(SENDER), "json": {**gift, "quantity": 100}}),
        (gifts, {"headers": auth(SENDER), "json": {"gift_id": 999_999}}),
        (gifts, {"headers": auth(SENDER), "data": {"gift_id": str(gift_id), "message": "🎉"}}),
        (gifts, {"headers": auth(POOR), "json": gift}),
        (gifts, {"headers": auth(SENDER), "json": {**gift, "sender_id": OTHER}}),
        (gifts, {"json": gift}),
    ]
    answers = []
    for path, options in requests:
        answer = await client.post(path, **options)
        body = answer.json()
        if isinstance(body, dict):
            body = {k: v for k, v in body.items() if k not in VOLATILE}
        headers = {k: v for k, v in answer.headers.items() if k in COMPARED_HEADERS}
        answers.append((answer.status_code, headers, body))
    return answers


@pytest.fixture
def second_database_url(databases: DatabaseFactory) -> str:
    return databases.migrated()


async def test_joins_and_comments_answer_as_the_documented_routes_do(
    settings: Settings,
    clock: ManualClock,
    second_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with serving(settings, clock) as client:
        before = await served(client)
        hot = await scenarios(client, client_auth(client))
        after = await served(client)
    # The same requests on a fresh service of its own without the hot routes
    monkeypatch.setattr(app_module, "HOT_ROUTES", ())
    async with serving(settings, clock, database_url=second_database_url) as client:
        documented = await scenarios(client, client_auth(client))
    assert [status for status, _, _ in hot] == [
        200, 200, 401, 401, 401, 403, 422, 422, 422, 409, 410, 404, 422, 422, 422,
        201, 201, 422, 422, 403, 401, 201, 422,
        201, 201, 201, 422, 422, 422, 422, 201, 402, 403, 401,
    ]  # fmt: skip
    assert hot == documented
    # Every request but those the hot routes leave to the documented ones (ids out of range)
    join, comment, gift = (
        f"POST /api/streams/{{stream_id}}/{name}" for name in ("join", "comments", "gifts")
    )
    assert after[join] - before.get(join, 0) == 12
    assert after[comment] - before.get(comment, 0) == 7
    assert after[gift] - before.get(gift, 0) == 10  # and the blank key's 422 by the route


async def test_the_unmodified_client_joins_through_the_hot_route(
    settings: Settings, clock: ManualClock
) -> None:
    """With legacy identity on, a join without a token names its caller in the body; the
    route's rule is found from the hot route's template (users/legacy.py)."""
    async with serving(settings, clock, legacy_client_identity=True) as client:
        auth = client_auth(client)
        created = await client.post("/api/streams", json={"title": "x"}, headers=auth(OWNER))
        sid = int(created.json()["data"]["id"])
        await client.post(f"/api/streams/{sid}/start", headers=auth(OWNER))
        before = await served(client)
        joined = await client.post(f"/api/streams/{sid}/join", json={"user_id": FAN})
        nobody = await client.post(f"/api/streams/{sid}/join", json={})
        after = await served(client)
    assert joined.status_code == 200, joined.text
    assert joined.json()["current_viewers"] == 1
    assert nobody.status_code == 401
    assert (
        after["POST /api/streams/{stream_id}/join"]
        - before.get("POST /api/streams/{stream_id}/join", 0)
        == 2
    )


def client_auth(client: httpx.AsyncClient) -> Any:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    runtime = transport.app.state.runtime  # type: ignore[attr-defined]

    def make(user_id: int, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {runtime.tokens.encode(user_id, **claims)}"}

    return make


async def test_a_hot_routes_failure_is_answered_by_the_apps_own_handlers(
    settings: Settings, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In front of FastAPI, a hot route's unexpected error is still the app's JSON 500 (and
    logged), and a backing service that went away its 503 with Retry-After."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from tajiri_live.engagement import service as engagement

    failures: list[Exception] = [RuntimeError("a bug"), RedisConnectionError("Redis went away")]

    async def failing(**_: Any) -> None:
        raise failures.pop(0)

    async with serving(settings, clock) as client:
        auth = client_auth(client)
        created = await client.post("/api/streams", json={"title": "x"}, headers=auth(OWNER))
        live = int(created.json()["data"]["id"])
        await client.post(f"/api/streams/{live}/start", headers=auth(OWNER))
        monkeypatch.setattr(engagement, "post_comment", failing)
        before = await served(client)
        path = f"/api/streams/{live}/comments"
        bug = await client.post(path, json={"content": "hi"}, headers=auth(FAN))
        away = await client.post(path, json={"content": "hi"}, headers=auth(FAN))
        after = await served(client)
    assert bug.status_code == 500
    assert bug.json() == {"success": False, "message": "Server error."}
    assert away.status_code == 503 and away.headers["retry-after"] == "5"
    assert "Redis cannot be reached" in away.json()["message"]
    route = "POST /api/streams/{stream_id}/comments"
    assert after[route] - before.get(route, 0) == 2  # both answered by the hot route
