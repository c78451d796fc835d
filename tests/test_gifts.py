"""Gifts and coins: exact splits, a balanced ledger, idempotency, refunds, concurrency."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from dbutil import backend
from tajiri_live.realtime.events import GIFT_SENT, Event
from tajiri_live.wallet.service import ledger_is_balanced

OWNER, FAN, ADMIN = 1, 2, 9
ROSE_PRICE = 100  # the seeded catalog's first gift


async def setup(client: httpx.AsyncClient, auth: Any, coins: int, **fields: Any) -> tuple[int, int]:
    created = await client.post("/api/streams", json={"title": "x", **fields}, headers=auth(OWNER))
    stream_id = int(created.json()["data"]["id"])
    await client.post(f"/api/streams/{stream_id}/start", headers=auth(OWNER))
    await client.get("/api/streams", headers=auth(FAN))  # the fan's user row
    if coins:
        credited = await client.post(
            "/api/wallet/credit",
            json={"user_id": FAN, "amount": coins},
            headers=auth(ADMIN, admin=True),
        )
        assert credited.status_code == 200, credited.text
    gifts = (await client.get("/api/streams/gifts")).json()["data"]
    rose = next(g for g in gifts if g["slug"] == "rose")
    return stream_id, int(rose["id"])


async def balance(client: httpx.AsyncClient, auth: Any, user: int) -> int:
    return int((await client.get("/api/wallet", headers=auth(user))).json()["data"]["balance"])


async def balanced(runtime: Any) -> bool:
    async with runtime.sessions() as session:
        return await ledger_is_balanced(session)


async def test_a_gift_moves_coins_exactly_and_is_published(
    client: httpx.AsyncClient, auth: Any, runtime: Any, events: list[Event]
) -> None:
    stream_id, rose = await setup(client, auth, 1000)
    sent = await client.post(
        f"/api/streams/{stream_id}/gifts",
        json={"gift_id": rose, "quantity": 3, "message": "Hongera!"},
        headers=auth(FAN),
    )
    assert sent.status_code == 201, sent.text
    data = sent.json()["data"]
    assert (data["quantity"], data["total_value"], data["message"]) == (3, 300, "Hongera!")
    assert data["sender"]["id"] == FAN and data["gift"]["price"] == ROSE_PRICE
    assert await balance(client, auth, FAN) == 700
    assert await balance(client, auth, OWNER) == 210  # 70 % of 300
    stream = (await client.get(f"/api/streams/{stream_id}")).json()["data"]
    assert (stream["gifts_count"], stream["gifts_value"]) == (3, 300)
    assert [e.data["id"] for e in events if e.name == GIFT_SENT] == [data["id"]]
    history = (await client.get("/api/wallet", headers=auth(FAN))).json()["data"]["history"]
    assert [(h["kind"], h["amount"]) for h in history] == [("gift", -300), ("credit", 1000)]
    assert await balanced(runtime)


async def test_gift_rules(client: httpx.AsyncClient, auth: Any, runtime: Any) -> None:
    stream_id, rose = await setup(client, auth, 150)
    url = f"/api/streams/{stream_id}/gifts"
    poor = await client.post(url, json={"gift_id": rose, "quantity": 2}, headers=auth(FAN))
    assert poor.status_code == 402
    assert (
        poor.json()["message"] == "Not enough coins: this gift costs 200 and your balance is 150."
    )
    assert (
        await client.post(url, json={"gift_id": rose, "quantity": 100}, headers=auth(FAN))
    ).status_code == 422
    assert (await client.post(url, json={"gift_id": 99999}, headers=auth(FAN))).status_code == 422
    assert (
        await client.post(url, json={"gift_id": rose, "sender_id": OWNER}, headers=auth(FAN))
    ).status_code == 403
    own = await client.post(url, json={"gift_id": rose}, headers=auth(OWNER))
    assert own.status_code == 403 and "own stream" in own.json()["message"]
    closed, _ = await setup(client, auth, 0, allow_gifts=False)
    assert (
        await client.post(f"/api/streams/{closed}/gifts", json={"gift_id": rose}, headers=auth(FAN))
    ).status_code == 403
    await client.post(f"/api/streams/{stream_id}/end", headers=auth(OWNER))
    assert (await client.post(url, json={"gift_id": rose}, headers=auth(FAN))).status_code == 403
    assert await balance(client, auth, FAN) == 150 and await balanced(runtime)


async def test_a_retried_request_is_charged_once(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    stream_id, rose = await setup(client, auth, 500)
    headers = {**auth(FAN), "Idempotency-Key": "tap-42"}
    first = await client.post(
        f"/api/streams/{stream_id}/gifts", json={"gift_id": rose}, headers=headers
    )
    again = await client.post(
        f"/api/streams/{stream_id}/gifts", json={"gift_id": rose}, headers=headers
    )
    assert first.status_code == again.status_code == 201
    assert again.json()["data"] == first.json()["data"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await balance(client, auth, FAN) == 400 and await balanced(runtime)


async def test_refunds_reverse_with_new_entries_once(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    stream_id, rose = await setup(client, auth, 500)
    sent = (
        await client.post(
            f"/api/streams/{stream_id}/gifts",
            json={"gift_id": rose, "quantity": 2},
            headers=auth(FAN),
        )
    ).json()
    url = f"/api/streams/{stream_id}/gifts/{sent['data']['id']}/refund"
    assert (await client.post(url, headers=auth(FAN))).status_code == 403
    refunded = await client.post(url, headers=auth(ADMIN, admin=True))
    assert refunded.status_code == 200 and refunded.json()["data"]["refunded_at"]
    assert (await client.post(url, headers=auth(ADMIN, admin=True))).status_code == 409
    assert await balance(client, auth, FAN) == 500 and await balance(client, auth, OWNER) == 0
    stream = (await client.get(f"/api/streams/{stream_id}")).json()["data"]
    assert (stream["gifts_count"], stream["gifts_value"]) == (0, 0)
    kinds = [
        h["kind"]
        for h in (await client.get("/api/wallet", headers=auth(FAN))).json()["data"]["history"]
    ]
    assert kinds == ["refund", "gift", "credit"]  # reversed by a new entry, never edited
    assert await balanced(runtime)


async def test_a_refund_the_creator_cannot_cover_is_refused(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    stream_id, rose = await setup(client, auth, 100)
    sent = (
        await client.post(
            f"/api/streams/{stream_id}/gifts", json={"gift_id": rose}, headers=auth(FAN)
        )
    ).json()
    # The creator spends the 70 coins on someone else's stream.
    other = (await client.post("/api/streams", json={"title": "y"}, headers=auth(FAN))).json()
    await client.post(f"/api/streams/{other['data']['id']}/start", headers=auth(FAN))
    spent = await client.post(
        f"/api/streams/{other['data']['id']}/gifts", json={"gift_id": rose}, headers=auth(OWNER)
    )
    assert spent.status_code == 402  # 70 < 100: it cannot even do that
    answer = await client.post(
        f"/api/streams/{stream_id}/gifts/{sent['data']['id']}/refund",
        headers=auth(ADMIN, admin=True),
    )
    assert answer.status_code == 200  # 70 still there: refundable
    assert await balanced(runtime)


@pytest.mark.parametrize("requests", [1000 if backend() == "postgresql" else 100])
@pytest.mark.parametrize("keyed", [True, False], ids=["with-keys", "without-keys"])
async def test_concurrent_gifts_never_overdraw(
    app: Any, client: httpx.AsyncClient, auth: Any, runtime: Any, requests: int, keyed: bool
) -> None:
    runtime.settings.gift_limit = 10**6  # the storm is the point, not the rate limit
    covered = requests // 2
    stream_id, rose = await setup(client, auth, covered * ROSE_PRICE)
    writer = app.state.payment_writer

    async def gift() -> int:
        headers = {**auth(FAN), "Idempotency-Key": uuid.uuid4().hex} if keyed else auth(FAN)
        while True:
            answer = await client.post(
                f"/api/streams/{stream_id}/gifts", json={"gift_id": rose}, headers=headers
            )
            if answer.status_code != 503:  # the pool was busy for too long: come back, as told
                return answer.status_code
            await asyncio.sleep(0.5)

    codes = await asyncio.gather(*(gift() for _ in range(requests)))
    assert codes.count(201) == covered and codes.count(402) == requests - covered
    assert await balance(client, auth, FAN) == 0
    stream = (await client.get(f"/api/streams/{stream_id}")).json()["data"]
    assert stream["gifts_value"] == covered * ROSE_PRICE
    assert await balanced(runtime)
    # Concurrent gifts shared transactions.
    assert writer.batches.items == requests and writer.batches.batches < requests / 2


@pytest.mark.parametrize("retries", [200 if backend() == "postgresql" else 50])
async def test_concurrent_retries_of_one_key_charge_once(
    client: httpx.AsyncClient, auth: Any, runtime: Any, retries: int
) -> None:
    runtime.settings.gift_limit = 10**6
    stream_id, rose = await setup(client, auth, 1000)
    headers = {**auth(FAN), "Idempotency-Key": "the-same-tap"}
    answers = await asyncio.gather(
        *(
            client.post(f"/api/streams/{stream_id}/gifts", json={"gift_id": rose}, headers=headers)
            for _ in range(retries)
        )
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["data"]["id"] for a in answers}) == 1
    assert await balance(client, auth, FAN) == 900 and await balanced(runtime)


def test_wallet_credit_command(database_url: str, tmp_path: Any, monkeypatch: Any) -> None:
    from tajiri_live.cli import main

    monkeypatch.setenv("TAJIRI_DATABASE_URL", database_url)
    monkeypatch.setenv("TAJIRI_VAR_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["wallet", "credit", "55", "250"])
    assert result.exit_code == 0, result.output
    assert "user 55 now has 250 coins" in result.output


async def test_the_creator_share_is_split_with_accepted_cohosts(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    from tajiri_live.streams.models import StreamCoHost

    stream_id, rose = await setup(client, auth, 1000, split_gifts_with_cohosts=True)
    for user in (5, 6, 7):
        await client.get("/api/streams", headers=auth(user))
    async with runtime.sessions() as session:
        session.add_all(
            [
                StreamCoHost(stream_id=stream_id, user_id=5, status="accepted"),
                StreamCoHost(stream_id=stream_id, user_id=6, status="accepted"),
                StreamCoHost(stream_id=stream_id, user_id=7, status="declined"),
            ]
        )
        await session.commit()
    sent = await client.post(
        f"/api/streams/{stream_id}/gifts", json={"gift_id": rose, "quantity": 5}, headers=auth(FAN)
    )
    assert sent.status_code == 201
    # 500 coins: 350 to the creators, 116 each to two co-hosts, 118 to the owner
    assert [await balance(client, auth, u) for u in (OWNER, 5, 6, 7)] == [118, 116, 116, 0]
    assert await balanced(runtime)
    refunded = await client.post(
        f"/api/streams/{stream_id}/gifts/{sent.json()['data']['id']}/refund",
        headers=auth(ADMIN, admin=True),
    )
    assert refunded.status_code == 200
    assert [await balance(client, auth, u) for u in (OWNER, 5, 6, FAN)] == [0, 0, 0, 1000]
    assert await balanced(runtime)


async def credit(client: httpx.AsyncClient, auth: Any, user: int, coins: int) -> None:
    await client.get("/api/streams", headers=auth(user))  # the user's row
    answer = await client.post(
        "/api/wallet/credit",
        json={"user_id": user, "amount": coins},
        headers=auth(ADMIN, admin=True),
    )
    assert answer.status_code == 200, answer.text


async def test_a_batch_decides_each_gift_on_its_own(
    app: Any, client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    """Gifts paid in one transaction are decided one after another, as if alone: each
    refusal is its own and the others are paid."""
    from tajiri_live.core.errors import ApiError
    from tajiri_live.gifts.writer import GiftOrder, Sent

    stream_id, rose = await setup(client, auth, 150)  # the fan covers one rose, not two
    banned, wrong_gift, rich = 3, 4, 5
    for user in (banned, wrong_gift, rich):
        await credit(client, auth, user, 1000)
    ban = await client.post(
        f"/api/streams/{stream_id}/bans", json={"user_id": banned}, headers=auth(OWNER)
    )
    assert ban.status_code in (200, 201), ban.text
    writer = app.state.payment_writer
    now = runtime.clock.now()

    def order(sender: int, gift_id: int = rose, quantity: int = 1) -> GiftOrder:
        return GiftOrder(stream_id, sender, gift_id, quantity, None, now)

    outcomes = await asyncio.gather(
        writer.send(order(FAN)),
        writer.send(order(FAN)),
        writer.send(order(banned)),
        writer.send(order(wrong_gift, gift_id=10**9)),
        writer.send(order(OWNER)),
        writer.send(order(rich, quantity=2)),
        return_exceptions=True,
    )
    assert writer.batches.batches == 1 and writer.batches.items == 6
    statuses = [o.status_code if isinstance(o, ApiError) else 201 for o in outcomes]
    assert statuses == [201, 402, 403, 422, 403, 201]
    assert "balance is 50" in str(outcomes[1])
    assert [await balance(client, auth, u) for u in (FAN, banned, wrong_gift, rich)] == [
        50,
        1000,
        1000,
        800,
    ]
    assert await balance(client, auth, OWNER) == 70 * 3  # 70 % of three roses
    stream = (await client.get(f"/api/streams/{stream_id}")).json()["data"]
    assert (stream["gifts_count"], stream["gifts_value"]) == (3, 300)
    paid = [o.answer for o in outcomes if isinstance(o, Sent)]
    assert [p["sender"]["id"] for p in paid] == [FAN, rich]
    assert paid[0]["id"] != paid[1]["id"] and paid[1]["total_value"] == 200
    history = (await client.get("/api/wallet", headers=auth(rich))).json()["data"]["history"]
    newest = history[0]
    assert (newest["kind"], newest["amount"], newest["stream_gift_id"]) == (
        "gift",
        -200,
        paid[1]["id"],
    )
    assert await balanced(runtime)


async def test_a_gift_waiting_for_its_batch_never_lands_on_an_ended_stream(
    app: Any, client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    """The batch reads the stream again under its lock: what the request saw is not enough."""
    from tajiri_live.core.errors import ApiError
    from tajiri_live.gifts.writer import GiftOrder

    stream_id, rose = await setup(client, auth, 1000)
    ended = await client.post(f"/api/streams/{stream_id}/end", headers=auth(OWNER))
    assert ended.status_code == 200, ended.text
    with pytest.raises(ApiError) as refused:
        await app.state.payment_writer.send(
            GiftOrder(stream_id, FAN, rose, 1, None, runtime.clock.now())
        )
    assert refused.value.status_code == 403 and "live" in refused.value.message
    assert await balance(client, auth, FAN) == 1000 and await balance(client, auth, OWNER) == 0
    assert await balanced(runtime)


async def test_a_refused_gift_gives_its_key_back(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    """A 402 happened to nobody: the same key, once the fan has coins, pays (once)."""
    stream_id, rose = await setup(client, auth, 50)
    path, body = f"/api/streams/{stream_id}/gifts", {"gift_id": rose}
    headers = {**auth(FAN), "Idempotency-Key": "tap-1"}
    short = await client.post(path, json=body, headers=headers)
    assert short.status_code == 402, short.text
    await credit(client, auth, FAN, 100)
    paid, again = [await client.post(path, json=body, headers=headers) for _ in range(2)]
    assert (paid.status_code, again.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in paid.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["data"] == paid.json()["data"]
    other = await client.post(path, json={**body, "quantity": 2}, headers=headers)
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["errors"]
    assert await balance(client, auth, FAN) == 50 and await balanced(runtime)


async def test_a_retry_queued_behind_another_body_with_its_key_is_replayed(
    app: Any, client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    """A key paid in an earlier batch: in the next batch a request with another body comes
    first; the retry of the paid request behind it still gets the first answer, not a 422."""
    from tajiri_live.core.errors import ApiError
    from tajiri_live.gifts.writer import GiftOrder, Sent

    stream_id, rose = await setup(client, auth, 1000)
    writer = app.state.payment_writer
    now = runtime.clock.now()

    def order(quantity: int) -> GiftOrder:
        return GiftOrder(
            stream_id, FAN, rose, quantity, None, now, key="tap", fingerprint=f"x{quantity}"
        )

    paid = await writer.send(order(1))
    other, retry = await asyncio.gather(
        writer.send(order(2)), writer.send(order(1)), return_exceptions=True
    )
    assert writer.batches.batches == 2
    assert isinstance(other, ApiError) and other.status_code == 422
    assert isinstance(retry, Sent), retry
    assert retry.replayed and retry.answer == paid.answer
    assert await balance(client, auth, FAN) == 900 and await balanced(runtime)


async def test_two_bodies_with_one_new_key_in_one_batch_pay_the_first_once(
    app: Any, client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    from tajiri_live.core.errors import ApiError
    from tajiri_live.gifts.writer import GiftOrder, Sent

    stream_id, rose = await setup(client, auth, 1000)
    writer = app.state.payment_writer
    now = runtime.clock.now()

    def order(quantity: int) -> GiftOrder:
        return GiftOrder(
            stream_id, FAN, rose, quantity, None, now, key="tap", fingerprint=f"x{quantity}"
        )

    outcomes = await asyncio.gather(
        writer.send(order(2)),
        writer.send(order(1)),
        writer.send(order(2)),
        writer.send(order(1)),
        return_exceptions=True,
    )
    assert writer.batches.batches == 1
    first, other, again, other_again = outcomes
    assert isinstance(first, Sent) and not first.replayed
    assert isinstance(again, Sent) and again.replayed and again.answer == first.answer
    for refused in (other, other_again):
        assert isinstance(refused, ApiError) and refused.status_code == 422
    assert await balance(client, auth, FAN) == 800 and await balanced(runtime)


async def test_a_database_connection_lost_under_a_batch_is_a_503(
    app: Any, client: httpx.AsyncClient, auth: Any, monkeypatch: Any
) -> None:
    """asyncpg reports a connection closed mid-statement with a plain driver error; it is
    still the database that is away: 503 and Retry-After, not a 500."""
    from sqlalchemy.exc import DBAPIError

    stream_id, rose = await setup(client, auth, 1000)

    async def lost(_: Any) -> list[Any]:
        raise DBAPIError(
            "SELECT 1",
            None,
            Exception("connection was closed in the middle of operation"),
            connection_invalidated=True,
        )

    monkeypatch.setattr(app.state.payment_writer.batches, "_write_items", lost)
    answer = await client.post(
        f"/api/streams/{stream_id}/gifts", json={"gift_id": rose}, headers=auth(FAN)
    )
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] and "database" in answer.json()["message"]


async def test_a_batch_written_again_in_halves_counts_each_keyed_gift_once(
    app: Any, client: httpx.AsyncClient, auth: Any, runtime: Any, monkeypatch: Any
) -> None:
    """A batch the database refuses is written again in halves (core/batches.py); a keyed
    gift's rate limit was counted in the first attempt and must not be counted again."""
    from sqlalchemy.exc import IntegrityError

    from tajiri_live.gifts import writer as payment_writer
    from tajiri_live.gifts.writer import GiftOrder

    stream_id, rose = await setup(client, auth, 1000)
    other = 5
    await credit(client, auth, other, 1000)
    runtime.settings.gift_limit = 1  # a second count in the window would be a 429
    insert_gifts = payment_writer._Batch._insert_gifts
    attempts: list[int] = []

    async def refuse_the_whole_batch(self: Any, paid: list[Any]) -> list[int]:
        attempts.append(len(paid))
        if len(paid) > 1:
            raise IntegrityError("INSERT INTO stream_gifts", {}, Exception("refused"))
        return await insert_gifts(self, paid)

    monkeypatch.setattr(payment_writer._Batch, "_insert_gifts", refuse_the_whole_batch)
    now = runtime.clock.now()
    sent = await asyncio.gather(
        *(
            app.state.payment_writer.send(
                GiftOrder(stream_id, user, rose, 1, None, now, key=f"k-{user}", fingerprint="f")
            )
            for user in (FAN, other)
        )
    )
    assert attempts == [2, 1, 1]  # the batch, then each half
    assert [s.answer["sender_id"] for s in sent] == [FAN, other]
    assert [await balance(client, auth, u) for u in (FAN, other)] == [900, 900]
    assert await balanced(runtime)
