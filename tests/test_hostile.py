"""Hostile input, each finding of the attack report as a test (issue 16): bodies, text the
database cannot hold, poisoned batches, idempotency, soft deletes, the smaller ones.

Real sockets and a real `serve` process are in test_hostile_server.py; Redis faults in
test_faults.py; the schema fuzzer in test_fuzz.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

OWNER, FAN, OTHER, ADMIN = 1, 2, 3, 9
MB = 1024 * 1024


async def live_stream(client: httpx.AsyncClient, auth: Any, **fields: Any) -> int:
    created = await client.post("/api/streams", json={"title": "x", **fields}, headers=auth(OWNER))
    assert created.status_code == 201, created.text
    stream_id = int(created.json()["data"]["id"])
    await client.post(f"/api/streams/{stream_id}/start", headers=auth(OWNER))
    return stream_id


async def credit(client: httpx.AsyncClient, auth: Any, user: int, amount: int) -> None:
    answer = await client.post(
        "/api/wallet/credit",
        json={"user_id": user, "amount": amount},
        headers=auth(ADMIN, admin=True),
    )
    assert answer.status_code == 200, answer.text


class Body:
    """A request body streamed in chunks (no Content-Length), counting what was pulled."""

    def __init__(self, total: int, chunk: int = 64 * 1024) -> None:
        self.total, self.chunk, self.pulled = total, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.pulled < self.total:
            self.pulled += self.chunk
            yield b" " * self.chunk


# --- 1. bodies are limited while they stream in -----------------------------------------------


async def test_an_unsigned_pusher_api_body_is_refused_by_size_before_the_signature(
    client: httpx.AsyncClient,
) -> None:
    body = Body(250 * MB)
    answer = await client.post("/apps/1/events", content=body)
    assert answer.status_code == 413
    assert answer.json()["success"] is False and "too large" in answer.json()["message"]
    assert answer.headers["connection"] == "close"
    assert body.pulled < 200 * 1024  # Pusher's 10 KB data limit plus its envelope, not 250 MB


async def test_a_declared_length_over_the_limit_is_refused_before_reading(
    client: httpx.AsyncClient, auth: Any
) -> None:
    body = Body(250 * MB)
    answer = await client.post(
        "/api/streams/1/comments",
        content=body,
        headers={**auth(FAN), "Content-Length": str(250 * MB), "Content-Type": "application/json"},
    )
    assert answer.status_code == 413 and answer.json()["success"] is False
    assert body.pulled <= 64 * 1024  # nothing but what the client pushed before the answer


async def test_json_bodies_stop_at_one_megabyte_even_with_a_valid_token(
    client: httpx.AsyncClient, auth: Any
) -> None:
    stream_id = await live_stream(client, auth)
    body = Body(250 * MB)
    answer = await client.post(
        f"/api/streams/{stream_id}/comments",
        content=body,
        headers={**auth(FAN), "Content-Type": "application/json"},
    )
    assert answer.status_code == 413
    assert MB <= body.pulled < MB + 128 * 1024
    small = await client.post(
        f"/api/streams/{stream_id}/comments", json={"content": "hi"}, headers=auth(FAN)
    )
    assert small.status_code == 201


async def test_uploads_get_the_thumbnail_limit(client: httpx.AsyncClient, auth: Any) -> None:
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nx\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="thumbnail"; '
        'filename="t.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
    ).encode()

    async def form(size: int) -> AsyncIterator[bytes]:
        yield head
        for _ in range(size // (64 * 1024)):
            yield b"\xff" * (64 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {**auth(OWNER), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    # 2 MB is over the JSON limit but within the thumbnail's: the image itself is then judged
    judged = await client.post("/api/streams", content=form(2 * MB), headers=headers)
    assert judged.status_code == 422, judged.text
    assert "thumbnail" in judged.json()["errors"]
    huge = await client.post("/api/streams", content=form(20 * MB), headers=headers)
    assert huge.status_code == 413


# --- 2. text the database cannot hold is refused at the boundary ------------------------------

NUL = "a\u0000b"


async def test_control_characters_are_refused_with_the_field_named_everywhere(
    client: httpx.AsyncClient, auth: Any
) -> None:
    stream_id = await live_stream(client, auth)
    await credit(client, auth, FAN, 1000)
    rose = (await client.get("/api/streams/gifts")).json()["data"][0]["id"]
    on = f"/api/streams/{stream_id}"
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("POST", "/api/streams", {"title": NUL}, OWNER, "title"),
        ("POST", "/api/streams", {"title": "ok", "description": NUL}, OWNER, "description"),
        ("POST", "/api/streams", {"title": "ok", "category": "x\u0007"}, OWNER, "category"),
        ("POST", "/api/streams", {"title": "ok", "tags": ["fine", NUL]}, OWNER, "tags.1"),
        ("PUT", on, {"title": NUL}, OWNER, "title"),
        ("POST", f"{on}/comments", {"content": NUL}, FAN, "content"),
        ("POST", f"{on}/comments", {"message": "\u001b[2J"}, FAN, "message"),
        ("POST", f"{on}/gifts", {"gift_id": rose, "message": NUL}, FAN, "message"),
        ("POST", f"{on}/bans", {"user_id": OTHER, "reason": NUL}, OWNER, "reason"),
        ("POST", "/api/devices", {"token": "t" * 20 + NUL}, FAN, "token"),
        ("POST", f"{on}/join", {"region": NUL}, FAN, "region"),
        ("POST", f"{on}/reactions", {"reaction_type": NUL}, FAN, "reaction_type"),
        ("POST", "/api/streams", {"title": "ok", "extra": {"deep": [NUL]}}, OWNER, "extra.deep.0"),
    ]
    for method, url, body, user, field in cases:
        answer = await client.request(method, url, json=body, headers=auth(user))
        assert answer.status_code == 422, (url, body, answer.text)
        assert field in answer.json()["errors"], (url, answer.json())
        assert "control characters" in answer.json()["errors"][field][0]
    # forms too, and newlines and tabs are text
    form = await client.post(
        "/api/streams", data={"title": "ok", "tags[0]": NUL}, headers=auth(OWNER)
    )
    assert form.status_code == 422 and "tags.0" in form.json()["errors"]
    fine = await client.post(
        "/api/streams", json={"title": "two\nlines", "description": "a\tb"}, headers=auth(OWNER)
    )
    assert fine.status_code == 201


async def test_json_nested_a_thousand_deep_is_a_readable_422(
    client: httpx.AsyncClient, auth: Any
) -> None:
    """orjson reads up to 1,024 levels: what walks the result must not recurse into them."""
    stream_id = await live_stream(client, auth)
    depth = 1000
    deep = '{"content":' + "[" * depth + "]" * depth + "}"
    hidden = '{"title":"ok","extra":' + "[" * depth + '"\u0000"' + "]" * depth + "}"
    for url, body, user in (
        (f"/api/streams/{stream_id}/comments", deep, FAN),
        ("/api/streams", hidden, OWNER),
    ):
        answer = await client.post(
            url,
            content=body,
            headers={**auth(user), "Content-Type": "application/json"},
        )
        assert answer.status_code == 422, (url, answer.text)
        assert answer.json()["errors"], answer.text


async def test_query_filters_refuse_control_characters(
    client: httpx.AsyncClient, auth: Any
) -> None:
    answer = await client.get("/api/streams", params={"category": NUL})
    assert answer.status_code == 422 and "category" in answer.json()["errors"]
    answer = await client.get("/api/streams", params={"current_user_id": NUL}, headers=auth(FAN))
    assert answer.status_code == 422
    answer = await client.request(
        "DELETE", "/api/devices", params={"token": "t" * 20 + NUL}, headers=auth(FAN)
    )
    assert answer.status_code == 422 and "token" in answer.json()["errors"]


def test_every_schema_and_route_parameter_uses_the_text_rule(app: Any) -> None:
    """No string reaches a route without the rule: every pydantic model of the package and
    every query, path, header and body parameter of every route types its strings as Text."""
    import importlib
    import pkgutil

    from fastapi.routing import APIRoute
    from pydantic import BaseModel
    from pydantic_settings import BaseSettings

    import tajiri_live
    from tajiri_live.core.text import _every_str_checked as every_str_checked
    from tajiri_live.core.text import checks_text, unchecked_string_fields

    for module in pkgutil.walk_packages(tajiri_live.__path__, "tajiri_live."):
        if ".migrations" not in module.name and not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    models = [
        m
        for m in _subclasses(BaseModel)
        if m.__module__.startswith("tajiri_live.")
        and not issubclass(m, BaseSettings)
        and m.__name__ != "PusherAppSettings"  # configuration, not input
    ]
    assert models
    for model in models:
        assert unchecked_string_fields(model) == [], model

    identity = {"authorization"}  # a bearer token: decoded, never stored (core/auth)
    seen = 0
    for route in _api_routes(app.routes, APIRoute):
        for param in _params(route.dependant):
            if param.name in identity:
                continue
            info = param.field_info
            if _mentions_str(info.annotation):
                seen += 1
                assert checks_text(info.metadata) or every_str_checked(info.annotation), (
                    route.path,
                    param.name,
                )
    assert seen > 5


def _api_routes(routes: list[Any], kind: type) -> list[Any]:
    """Every route, including those of included routers (kept apart by recent FastAPI)."""
    found = []
    for route in routes:
        if isinstance(route, kind):
            found.append(route)
        elif hasattr(route, "original_router"):
            found.extend(_api_routes(route.original_router.routes, kind))
    return found


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def _params(dependant: Any) -> list[Any]:
    params = [
        *dependant.query_params,
        *dependant.path_params,
        *dependant.header_params,
        *dependant.cookie_params,
        *dependant.body_params,
    ]
    for sub in dependant.dependencies:
        params.extend(_params(sub))
    return params


def _mentions_str(annotation: Any) -> bool:
    if annotation is str:
        return True
    return any(_mentions_str(arg) for arg in getattr(annotation, "__args__", ()))


# --- 4. the limiter answers before any query ------------------------------------------------


async def test_a_rate_limited_socket_reaction_costs_no_query(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    from sqlalchemy import event

    from tajiri_live.core.auth import Principal
    from tajiri_live.engagement.socket_actions import reaction_action
    from tajiri_live.viewers.socket import SocketContext

    stream_id = await live_stream(client, auth)
    await client.get("/api/streams", headers=auth(FAN))
    handle = reaction_action(runtime)
    context = SocketContext(Principal(user_id=FAN), stream_id)
    for _ in range(runtime.settings.reaction_limit):
        assert await handle(context, {"reaction_type": "fire"}) is None
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", count)
    try:
        refused = await handle(context, {"reaction_type": "fire"})
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", count)
    assert refused is not None and refused["code"] == "rate_limited"
    assert statements == []


# --- 3. batches never drop good rows for one bad one ----------------------------------------


async def test_one_poisoned_viewer_session_does_not_erase_the_others(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    """The attack: `?region=%00` made the whole batch of viewer sessions fail (31 viewers,
    0 rows). The boundary refuses that region now; whatever else a row cannot hold (here a
    NUL that got past it, or a stream deleted meanwhile) is quarantined alone."""
    import sqlalchemy as sa

    from dbutil import backend
    from tajiri_live.core.batches import QUARANTINED
    from tajiri_live.streams.models import StreamViewer
    from tajiri_live.viewers.sessions import ViewerLog, ViewingSession

    stream_id = await live_stream(client, auth)
    now = runtime.clock.now()
    log = ViewerLog(runtime.sessions)
    good = [ViewingSession(stream_id, None, now, key=f"v{n}", region="tz") for n in range(31)]
    if backend() == "postgresql":
        poison = ViewingSession(stream_id, None, now, key="poison", region="\u0000")
    else:  # SQLite stores NUL; a row whose stream is gone fails the same way
        poison = ViewingSession(2**40, None, now, key="poison")
    for viewing in [*good[:15], poison, *good[15:]]:
        log.joined(viewing)
    before = QUARANTINED["viewer_sessions"]
    assert await log.flush() == 32
    assert QUARANTINED["viewer_sessions"] == before + 1
    async with runtime.sessions() as session:
        rows = await session.scalar(
            sa.select(sa.func.count()).where(StreamViewer.stream_id == stream_id)
        )
    assert rows == 31
    metrics = (await client.get("/metrics")).text
    assert f'tajiri_quarantined_rows_total{{writer="viewer_sessions"}} {before + 1}' in metrics
    report = (await client.get(f"/api/streams/{stream_id}/analytics", headers=auth(OWNER))).json()
    assert report["data"]["total_viewers"] == 31


async def test_a_comment_the_database_refuses_is_answered_alone(
    client: httpx.AsyncClient, auth: Any, runtime: Any, app: Any
) -> None:
    import asyncio

    from tajiri_live.core.batches import QUARANTINED
    from tajiri_live.core.errors import ApiError

    stream_id = await live_stream(client, auth)
    await client.get("/api/streams", headers=auth(FAN))
    writer = app.state.comment_writer
    now = runtime.clock.now()
    before = QUARANTINED["comments"]
    results = await asyncio.gather(
        *(
            writer.write(
                stream_id=2**40 if n == 2 else stream_id,  # a stream that is gone
                user_id=FAN,
                content=f"c{n}",
                created_at=now,
            )
            for n in range(5)
        ),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 1 and isinstance(refused[0], ApiError)
    assert refused[0].status_code == 409 and isinstance(results[2], ApiError)
    assert QUARANTINED["comments"] == before + 1
    listed = (await client.get(f"/api/streams/{stream_id}/comments")).json()["data"]
    assert [c["content"] for c in listed] == ["c0", "c1", "c3", "c4"]


async def test_one_failing_snapshot_does_not_cost_the_other_streams_theirs(
    client: httpx.AsyncClient, auth: Any, runtime: Any, monkeypatch: Any
) -> None:
    import sqlalchemy as sa
    from sqlalchemy.exc import IntegrityError

    from tajiri_live.analytics import jobs
    from tajiri_live.analytics.models import StreamAnalytics
    from tajiri_live.core.batches import QUARANTINED

    first, second, third = [await live_stream(client, auth) for _ in range(3)]
    real = jobs.service.take_snapshot

    async def refuse_the_second(session: Any, *, stream: Any, **kwargs: Any) -> bool:
        if stream.id == second:  # as the database would refuse a row it cannot hold
            raise IntegrityError("INSERT INTO stream_analytics ...", {}, Exception("refused"))
        return await real(session, stream=stream, **kwargs)

    monkeypatch.setattr(jobs.service, "take_snapshot", refuse_the_second)
    before = QUARANTINED["analytics_snapshots"]
    assert await jobs.snapshot_live_streams(runtime) == 2
    assert QUARANTINED["analytics_snapshots"] == before + 1
    async with runtime.sessions() as session:
        ids = set(await session.scalars(sa.select(StreamAnalytics.stream_id)))
    assert ids == {first, third}


# --- 5. idempotency as Stripe defines it ------------------------------------------------------


async def gift_setup(client: httpx.AsyncClient, auth: Any, coins: int) -> tuple[int, int]:
    stream_id = await live_stream(client, auth)
    await client.get("/api/streams", headers=auth(FAN))
    if coins:
        await credit(client, auth, FAN, coins)
    rose = next(
        g["id"] for g in (await client.get("/api/streams/gifts")).json()["data"] if g["price"]
    )
    return stream_id, int(rose)


async def test_fifty_concurrent_retries_all_answer_the_same_201(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    """Default limits, a balance that pays for exactly one gift: before, 13 of 50 retries
    answered 402 'your balance is 0' (and others 429) although the gift went through."""
    import asyncio

    from tajiri_live.wallet.service import ledger_is_balanced

    stream_id, rose = await gift_setup(client, auth, 0)
    price = next(
        g["price"]
        for g in (await client.get("/api/streams/gifts")).json()["data"]
        if g["id"] == rose
    )
    await credit(client, auth, FAN, price)
    headers = {**auth(FAN), "Idempotency-Key": "one-tap"}
    answers = await asyncio.gather(
        *(
            client.post(f"/api/streams/{stream_id}/gifts", json={"gift_id": rose}, headers=headers)
            for _ in range(50)
        )
    )
    assert [a.status_code for a in answers] == [201] * 50, {a.text for a in answers}
    assert len({a.json()["data"]["id"] for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 49
    wallet = (await client.get("/api/wallet", headers=auth(FAN))).json()["data"]
    assert wallet["balance"] == 0
    async with runtime.sessions() as session:
        assert await ledger_is_balanced(session)


async def test_a_key_is_bound_to_its_request(client: httpx.AsyncClient, auth: Any) -> None:
    first_stream, rose = await gift_setup(client, auth, 10_000)
    other_stream = await live_stream(client, auth)
    gifts = (await client.get("/api/streams/gifts")).json()["data"]
    other_gift = next(g["id"] for g in gifts if g["id"] != rose)
    headers = {**auth(FAN), "Idempotency-Key": "k-1"}
    sent = await client.post(
        f"/api/streams/{first_stream}/gifts", json={"gift_id": rose}, headers=headers
    )
    assert sent.status_code == 201
    for url, body in (
        (f"/api/streams/{other_stream}/gifts", {"gift_id": other_gift}),
        (f"/api/streams/{first_stream}/gifts", {"gift_id": other_gift}),
        (f"/api/streams/{first_stream}/gifts", {"gift_id": rose, "quantity": 2}),
    ):
        reused = await client.post(url, json=body, headers=headers)
        assert reused.status_code == 422, reused.text
        assert "Idempotency-Key" in reused.json()["errors"]
        assert "k-1" in reused.json()["message"]
    # the same key is another user's own
    mine = await client.post(
        f"/api/streams/{first_stream}/gifts",
        json={"gift_id": rose},
        headers={**auth(OTHER), "Idempotency-Key": "k-1"},
    )
    assert mine.status_code == 402  # OTHER has no coins: a request of its own, not a replay


async def test_replays_do_not_count_against_the_rate_limit(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    runtime.settings.gift_limit = 2
    runtime.settings.gift_window_seconds = 3600
    stream_id, rose = await gift_setup(client, auth, 10_000)
    url = f"/api/streams/{stream_id}/gifts"
    first = {**auth(FAN), "Idempotency-Key": "a"}
    assert (await client.post(url, json={"gift_id": rose}, headers=first)).status_code == 201
    for _ in range(5):
        replay = await client.post(url, json={"gift_id": rose}, headers=first)
        assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    second = {**auth(FAN), "Idempotency-Key": "b"}
    assert (await client.post(url, json={"gift_id": rose}, headers=second)).status_code == 201
    third = {**auth(FAN), "Idempotency-Key": "c"}
    assert (await client.post(url, json={"gift_id": rose}, headers=third)).status_code == 429


async def test_a_failed_request_is_not_remembered_and_keys_expire(
    client: httpx.AsyncClient, auth: Any, clock: Any
) -> None:

    stream_id, rose = await gift_setup(client, auth, 0)
    url = f"/api/streams/{stream_id}/gifts"
    headers = {**auth(FAN), "Idempotency-Key": "retry-me"}
    assert (await client.post(url, json={"gift_id": rose}, headers=headers)).status_code == 402
    await credit(client, auth, FAN, 10_000)
    paid = await client.post(url, json={"gift_id": rose}, headers=headers)
    assert paid.status_code == 201 and "Idempotent-Replayed" not in paid.headers
    clock.advance(hours=25)
    fresh = await client.post(url, json={"gift_id": rose, "quantity": 2}, headers=headers)
    assert fresh.status_code == 201 and fresh.json()["data"]["id"] != paid.json()["data"]["id"]


# --- 9. the smaller ones --------------------------------------------------------------------


async def test_a_cohost_is_not_paid_back_part_of_their_own_gift(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    from tajiri_live.streams.models import StreamCoHost

    cohost, other_cohost = 5, 6
    stream_id = await live_stream(client, auth, split_gifts_with_cohosts=True)
    for user in (cohost, other_cohost):
        await client.get("/api/streams", headers=auth(user))
    async with runtime.sessions() as session:
        session.add_all(
            [
                StreamCoHost(stream_id=stream_id, user_id=cohost, status="accepted"),
                StreamCoHost(stream_id=stream_id, user_id=other_cohost, status="accepted"),
            ]
        )
        await session.commit()
    await credit(client, auth, cohost, 1000)
    rose = (await client.get("/api/streams/gifts")).json()["data"][0]
    sent = await client.post(
        f"/api/streams/{stream_id}/gifts",
        json={"gift_id": rose["id"], "quantity": 3},
        headers=auth(cohost),
    )
    assert sent.status_code == 201
    total = rose["price"] * 3
    creators = total * rose["creator_share"] // 100
    balances = [
        (await client.get("/api/wallet", headers=auth(u))).json()["data"]["balance"]
        for u in (OWNER, cohost, other_cohost)
    ]
    # the sender paid in full; the creators' share went to the owner and the other co-host
    assert balances == [creators - creators // 2, 1000 - total, creators // 2]


# --- 6. streams with money are soft-deleted ---------------------------------------------------


async def test_deleting_a_stream_that_received_gifts(
    client: httpx.AsyncClient, auth: Any, runtime: Any, clock: Any
) -> None:
    """Before: a 500 (the ledger's foreign key). Now: 200, and the stream is gone from every
    read while its gifts and ledger stay whole."""
    import sqlalchemy as sa

    from tajiri_live.gifts.models import StreamGift
    from tajiri_live.streams.models import LiveStream
    from tajiri_live.streams.service import finish_ending
    from tajiri_live.streams.softdelete import INCLUDE_DELETED
    from tajiri_live.wallet.service import ledger_is_balanced

    stream_id, rose = await gift_setup(client, auth, 1000)
    sent = await client.post(
        f"/api/streams/{stream_id}/gifts", json={"gift_id": rose}, headers=auth(FAN)
    )
    assert sent.status_code == 201
    await client.post(f"/api/streams/{stream_id}/end", headers=auth(OWNER))
    clock.advance(seconds=60)
    assert await finish_ending(runtime) == 1
    deleted = await client.delete(f"/api/streams/{stream_id}", headers=auth(OWNER))
    assert deleted.status_code == 200 and deleted.json()["success"] is True
    for reader in (auth(OWNER), auth(FAN), auth(ADMIN, admin=True), {}):
        for path in ("", "/check", "/comments", "/gifts/x"):
            answer = await client.get(f"/api/streams/{stream_id}{path}", headers=reader)
            assert answer.status_code in (404, 422), (path, answer.status_code)
        listed = (await client.get("/api/streams", headers=reader)).json()["data"]
        assert stream_id not in [s["id"] for s in listed]
        mine = (await client.get(f"/api/streams/user/{OWNER}", headers=reader)).json()["data"]
        assert stream_id not in [s["id"] for s in mine]
    again = await client.delete(f"/api/streams/{stream_id}", headers=auth(OWNER))
    assert again.status_code == 404
    gift = await client.post(
        f"/api/streams/{stream_id}/gifts", json={"gift_id": rose}, headers=auth(FAN)
    )
    assert gift.status_code == 404
    async with runtime.sessions() as session:
        assert await session.get(LiveStream, stream_id) is None
    async with runtime.sessions() as session:
        row = await session.scalar(
            sa.select(LiveStream)
            .where(LiveStream.id == stream_id)
            .execution_options(**{INCLUDE_DELETED: True})
        )
        assert row is not None and row.deleted_at is not None
        assert row.stream_key_expires_at is not None  # the key is revoked
        gifts = await session.scalar(
            sa.select(sa.func.count()).where(StreamGift.stream_id == stream_id)
        )
        assert gifts == 1 and await ledger_is_balanced(session)
    wallet = (await client.get("/api/wallet", headers=auth(OWNER))).json()["data"]
    assert wallet["balance"] > 0  # the creator keeps what the gift paid


async def test_a_stream_without_money_is_deleted_outright(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    import sqlalchemy as sa

    from tajiri_live.streams.models import LiveStream
    from tajiri_live.streams.softdelete import INCLUDE_DELETED

    created = await client.post("/api/streams", json={"title": "x"}, headers=auth(OWNER))
    stream_id = created.json()["data"]["id"]
    assert (
        await client.delete(f"/api/streams/{stream_id}", headers=auth(OWNER))
    ).status_code == 200
    async with runtime.sessions() as session:
        found = await session.scalar(
            sa.select(sa.func.count())
            .select_from(LiveStream)
            .where(LiveStream.id == stream_id)
            .execution_options(**{INCLUDE_DELETED: True})
        )
    assert found == 0


# --- 8. dependencies are named; 9. /metrics can be protected ---------------------------------


async def test_ready_names_each_dependency_and_answers_503_when_one_is_down(
    client: httpx.AsyncClient, app: Any
) -> None:
    from tajiri_live.core.availability import ReadinessCheck

    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"

    async def away() -> str | None:
        return "unreachable (ConnectionRefusedError)"

    app.state.services.readiness_checks.append(ReadinessCheck("sanctum database", away))
    down = await client.get("/ready")
    assert down.status_code == 503 and down.headers["Retry-After"]
    assert down.json()["checks"] == {
        "database": "ok",
        "sanctum database": "unreachable (ConnectionRefusedError)",
    }
    assert "sanctum database" in down.json()["message"]


async def test_a_request_that_needs_an_unreachable_redis_answers_503(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    from redis.asyncio import Redis

    from servers import free_port
    from tajiri_live.core.ratelimit import RedisRateLimiter

    stream_id = await live_stream(client, auth)
    gone = Redis(port=free_port(), socket_connect_timeout=1)  # nothing listens there
    runtime.limiter = RedisRateLimiter(gone, prefix="gone:")
    try:
        answer = await client.post(
            f"/api/streams/{stream_id}/comments", json={"content": "hi"}, headers=auth(FAN)
        )
    finally:
        await gone.aclose()
    assert answer.status_code == 503
    assert int(answer.headers["Retry-After"]) >= 1
    assert "Redis" in answer.json()["message"] and answer.json()["success"] is False


async def test_metrics_can_require_a_bearer_token(settings: Any, clock: Any) -> None:
    from tajiri_live.app import create_app

    protected = create_app(
        settings.model_copy(update={"metrics_token": "m" * 32}), clock=clock, run_jobs=False
    )
    async with protected.router.lifespan_context(protected):
        transport = httpx.ASGITransport(app=protected)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/metrics")).status_code == 401
            wrong = {"Authorization": "Bearer nope"}
            assert (await client.get("/metrics", headers=wrong)).status_code == 401
            right = {"Authorization": "Bearer " + "m" * 32}
            answer = await client.get("/metrics", headers=right)
            assert answer.status_code == 200 and "tajiri_ws_connections" in answer.text
