"""Super chats: tiers from the amount, coins through the ledger split like gifts, moderation
before payment, idempotency, refunds, the catch-up list, bad input, and concurrency."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from dbutil import backend
from tajiri_live.core.clock import ManualClock
from tajiri_live.realtime.events import GIFT_SENT, SUPER_CHAT_SENT, Event
from tajiri_live.wallet.models import LedgerTransaction
from tajiri_live.wallet.service import ledger_is_balanced

OWNER, FAN, COHOST, ADMIN = 1, 2, 3, 9


async def live_stream(client: httpx.AsyncClient, auth: Any, **fields: Any) -> int:
    created = await client.post("/api/streams", json={"title": "x", **fields}, headers=auth(OWNER))
    stream_id = int(created.json()["data"]["id"])
    await client.post(f"/api/streams/{stream_id}/start", headers=auth(OWNER))
    return stream_id


async def credit(client: httpx.AsyncClient, auth: Any, user: int, coins: int) -> None:
    await client.get("/api/streams", headers=auth(user))  # the user's row
    credited = await client.post(
        "/api/wallet/credit",
        json={"user_id": user, "amount": coins},
        headers=auth(ADMIN, admin=True),
    )
    assert credited.status_code == 200, credited.text


async def balance(client: httpx.AsyncClient, auth: Any, user: int) -> int:
    return int((await client.get("/api/wallet", headers=auth(user))).json()["data"]["balance"])


async def balanced(runtime: Any) -> bool:
    async with runtime.sessions() as session:
        return await ledger_is_balanced(session)


async def rose_of(client: httpx.AsyncClient) -> dict[str, Any]:
    """The seeded catalog's rose."""
    gifts = (await client.get("/api/streams/gifts")).json()["data"]
    return dict(next(g for g in gifts if g["slug"] == "rose"))


async def send(
    client: httpx.AsyncClient, auth: Any, stream_id: int, body: Any, **headers: str
) -> httpx.Response:
    return await client.post(
        f"/api/streams/{stream_id}/super-chats", json=body, headers={**auth(FAN), **headers}
    )


@pytest.mark.parametrize(
    ("amount", "tier", "duration"),
    [
        (1000, "low", 5),
        (2999.0, "low", 5),
        (3000, "medium", 10),
        (9999, "medium", 10),
        (10_000, "high", 15),
        ("250000", "high", 15),
    ],
)
async def test_the_tier_and_display_time_follow_the_amount(
    client: httpx.AsyncClient, auth: Any, runtime: Any, amount: Any, tier: str, duration: int
) -> None:
    stream_id = await live_stream(client, auth)
    await credit(client, auth, FAN, 300_000)
    sent = await send(client, auth, stream_id, {"message": "Hongera!", "amount": amount})
    assert sent.status_code == 201, sent.text
    body = sent.json()
    assert body["data"] == body["super_chat"]
    assert (body["data"]["tier"], body["data"]["duration"]) == (tier, duration)
    assert body["data"]["amount"] == int(float(amount)) == body["data"]["coins"]


async def test_a_super_chat_is_paid_split_recorded_and_published(
    client: httpx.AsyncClient, auth: Any, runtime: Any, events: list[Event]
) -> None:
    stream_id = await live_stream(client, auth)
    await credit(client, auth, FAN, 5000)
    sent = await send(
        client,
        auth,
        stream_id,
        {
            "message": "Salamu kutoka Arusha",
            "amount": 3000.0,  # the client sends a double
            "payment_method": "wallet",
            "payment_reference": "app-77",
        },
    )
    assert sent.status_code == 201, sent.text
    data = sent.json()["data"]
    assert (data["user_id"], data["message"], data["amount"]) == (FAN, "Salamu kutoka Arusha", 3000)
    assert (data["payment_method"], data["payment_reference"]) == ("wallet", "app-77")
    assert await balance(client, auth, FAN) == 2000
    assert await balance(client, auth, OWNER) == 2100  # 70 % of 3,000 coins
    (event,) = [e for e in events if e.name == SUPER_CHAT_SENT]
    assert event.channel == f"stream.{stream_id}"
    assert {k: event.data[k] for k in ("user_id", "message", "amount", "tier", "duration")} == {
        "user_id": FAN,
        "message": "Salamu kutoka Arusha",
        "amount": 3000,
        "tier": "medium",
        "duration": 10,
    }
    assert event.data["username"] and event.data["timestamp"]
    history = (await client.get("/api/wallet", headers=auth(FAN))).json()["data"]["history"]
    assert [(h["kind"], h["amount"]) for h in history] == [("super_chat", -3000), ("credit", 5000)]
    listed = (await client.get(f"/api/streams/{stream_id}/super-chats")).json()
    assert [c["id"] for c in listed["super_chats"]] == [data["id"]]
    assert await balanced(runtime)


async def test_coins_per_tzs_converts_the_amount(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    runtime.settings.coins_per_tzs = 3
    stream_id = await live_stream(client, auth)
    await credit(client, auth, FAN, 3000)
    sent = await send(client, auth, stream_id, {"message": "x", "amount": 1000})
    assert sent.status_code == 201 and sent.json()["data"]["coins"] == 3000
    assert await balance(client, auth, FAN) == 0 and await balanced(runtime)


async def test_it_shows_pinned_in_the_catch_up_list_for_its_display_time(
    client: httpx.AsyncClient, auth: Any, runtime: Any, clock: ManualClock
) -> None:
    runtime.settings.comment_limit = 10**6
    stream_id = await live_stream(client, auth)
    await credit(client, auth, FAN, 10_000)
    sent = await send(client, auth, stream_id, {"message": "Niko hapa!", "amount": 1000})
    chat = sent.json()["data"]
    for n in range(5):
        await client.post(
            f"/api/streams/{stream_id}/comments",
            json={"content": f"comment {n}"},
            headers=auth(COHOST),
        )
        clock.advance(0.1)
    url = f"/api/streams/{stream_id}/comments"
    late = (await client.get(url, params={"limit": 3})).json()["data"]
    # The super chat is older than the page, but still on screen: it comes first, pinned.
    assert late[0]["id"] == chat["comment_id"]
    assert late[0]["is_pinned"] is True and late[0]["is_highlighted"] is True
    assert late[0]["content"] == "Niko hapa!" and late[0]["user_id"] == FAN
    assert len(late) == 4
    on_screen = (await client.get(f"/api/streams/{stream_id}/super-chats?on_screen=1")).json()
    assert [c["id"] for c in on_screen["data"]] == [chat["id"]]
    clock.advance(5)  # the low tier's 5 s are over
    later = (await client.get(url, params={"limit": 3})).json()["data"]
    assert chat["comment_id"] not in [c["id"] for c in later]
    everything = (await client.get(url)).json()["data"]
    kept = next(c for c in everything if c["id"] == chat["comment_id"])
    assert kept["is_pinned"] is False and kept["is_highlighted"] is True
    assert not (await client.get(f"/api/streams/{stream_id}/super-chats?on_screen=1")).json()[
        "data"
    ]
    stream = (await client.get(f"/api/streams/{stream_id}")).json()["data"]
    assert stream["comments_count"] == 6


async def test_a_rejected_message_charges_nothing(
    client: httpx.AsyncClient, auth: Any, runtime: Any, events: list[Event]
) -> None:
    runtime.settings.bad_word_action = "reject"
    stream_id = await live_stream(client, auth)
    await credit(client, auth, FAN, 5000)
    rejected = await send(client, auth, stream_id, {"message": "wewe ni malaya", "amount": 1000})
    assert rejected.status_code == 422
    assert rejected.json()["errors"]["message"] == ["Please keep the chat respectful."]
    spam = await send(
        client,
        auth,
        stream_id,
        {"message": "http://a.example http://b.example http://c.example", "amount": 1000},
    )
    assert spam.status_code == 422
    await client.post(
        f"/api/streams/{stream_id}/mutes",
        json={"user_id": FAN, "minutes": 5},
        headers=auth(OWNER),
    )
    muted = await send(client, auth, stream_id, {"message": "hello", "amount": 1000})
    assert muted.status_code == 403 and "muted" in muted.json()["message"]
    assert await balance(client, auth, FAN) == 5000 and await balanced(runtime)
    assert not [e for e in events if e.name == SUPER_CHAT_SENT]


BAD_AMOUNTS: list[tuple[Any, str]] = [
    (999, "at least 1000"),
    (-5000, "at least 1000"),
    (0, "at least 1000"),
    ("NaN", "finite"),
    ("Infinity", "finite"),
    (1e308, "greater than"),
    ("1e308", "greater than"),
    ("1e600000", "greater than"),
    ("9" * 41, "at most 40 characters"),
    (1000.5, "whole number"),
    ("lots", "a number"),
    ("1_000", "a number"),
    (True, "a number"),
    (None, "a number"),
    ([1000], "a number"),
]


def test_an_absurd_exponent_is_refused_before_it_is_expanded() -> None:
    """ "1e999999999" as an integer is a billion digits: expanding it would hold the event
    loop for hours (every request waits); it must be refused from its exponent alone."""
    from tajiri_live.superchats.schemas import whole_tzs

    started = time.perf_counter()
    for amount in ("1e999999999", "-1e999999999", "0e999999999", "1e-999999999"):
        with pytest.raises(ValueError):
            whole_tzs(amount)
    assert time.perf_counter() - started < 1.0


async def test_bad_input_is_refused_and_charges_nothing(
    client: httpx.AsyncClient, auth: Any, runtime: Any, events: list[Event]
) -> None:
    stream_id = await live_stream(client, auth)
    await credit(client, auth, FAN, 50_000)
    for amount, why in BAD_AMOUNTS:
        answer = await send(client, auth, stream_id, {"message": "hi", "amount": amount})
        assert answer.status_code == 422, (amount, answer.text)
        assert why in answer.json()["errors"]["amount"][0], (amount, answer.text)
    raw_nan = await client.post(
        f"/api/streams/{stream_id}/super-chats",
        content=b'{"message": "hi", "amount": NaN}',
        headers={**auth(FAN), "Content-Type": "application/json"},
    )
    assert raw_nan.status_code == 422
    long = await send(client, auth, stream_id, {"message": "x" * 10_240, "amount": 1000})
    assert long.status_code == 422 and long.json()["errors"]["message"]
    runtime.settings.super_chat_max_length = 20
    assert (
        await send(client, auth, stream_id, {"message": "x" * 21, "amount": 1000})
    ).status_code == 422
    for body in ({"amount": 1000}, {"message": "", "amount": 1000}, {"message": "hi"}):
        assert (await send(client, auth, stream_id, body)).status_code == 422
    assert (
        await send(client, auth, stream_id, {"message": "a\x00b", "amount": 1000})
    ).status_code == 422
    others = await send(client, auth, stream_id, {"message": "hi", "amount": 1000, "user_id": 7})
    assert others.status_code == 403
    poor = await send(client, auth, stream_id, {"message": "hi", "amount": 60_000})
    assert poor.status_code == 402
    assert poor.json()["message"] == (
        "Not enough coins: this super chat costs 60000 and your balance is 50000."
    )
    own = await client.post(
        f"/api/streams/{stream_id}/super-chats",
        json={"message": "me", "amount": 1000},
        headers=auth(OWNER),
    )
    assert own.status_code == 403 and "own stream" in own.json()["message"]
    later = await client.post("/api/streams", json={"title": "later"}, headers=auth(OWNER))
    not_live = await send(
        client, auth, int(later.json()["data"]["id"]), {"message": "hi", "amount": 1000}
    )
    assert not_live.status_code == 403 and "live" in not_live.json()["message"]
    assert (await send(client, auth, 10**9, {"message": "hi", "amount": 1000})).status_code == 404
    assert await balance(client, auth, FAN) == 50_000 and await balanced(runtime)
    assert not [e for e in events if e.name == SUPER_CHAT_SENT]


async def test_super_chats_have_a_rate_limit(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    runtime.settings.super_chat_limit = 1
    stream_id = await live_stream(client, auth)
    await credit(client, auth, FAN, 5000)
    assert (
        await send(client, auth, stream_id, {"message": "a", "amount": 1000})
    ).status_code == 201
    again = await send(client, auth, stream_id, {"message": "b", "amount": 1000})
    assert again.status_code == 429 and again.headers["Retry-After"]
    assert await balance(client, auth, FAN) == 4000 and await balanced(runtime)


async def test_a_retried_request_is_charged_once(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    stream_id = await live_stream(client, auth)
    await credit(client, auth, FAN, 5000)
    body = {"message": "Mara moja", "amount": 2000}
    first = await send(client, auth, stream_id, body, **{"Idempotency-Key": "sc-1"})
    again = await send(client, auth, stream_id, body, **{"Idempotency-Key": "sc-1"})
    assert first.status_code == again.status_code == 201
    assert again.json()["data"] == first.json()["data"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await send(
        client, auth, stream_id, {**body, "amount": 3000}, **{"Idempotency-Key": "sc-1"}
    )
    assert other.status_code == 422
    assert await balance(client, auth, FAN) == 3000 and await balanced(runtime)


async def test_refunds_reverse_with_new_entries_once(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    stream_id = await live_stream(client, auth)
    await credit(client, auth, FAN, 5000)
    chat = (await send(client, auth, stream_id, {"message": "Rudisha", "amount": 4000})).json()
    url = f"/api/streams/{stream_id}/super-chats/{chat['data']['id']}/refund"
    assert (await client.post(url, headers=auth(FAN))).status_code == 403
    refunded = await client.post(url, headers=auth(ADMIN, admin=True))
    assert refunded.status_code == 200 and refunded.json()["super_chat"]["refunded_at"]
    again = await client.post(url, headers=auth(ADMIN, admin=True))
    assert again.status_code == 409 and again.json()["message"]
    assert await balance(client, auth, FAN) == 5000 and await balance(client, auth, OWNER) == 0
    kinds = [
        h["kind"]
        for h in (await client.get("/api/wallet", headers=auth(FAN))).json()["data"]["history"]
    ]
    assert kinds == ["refund", "super_chat", "credit"]
    comments = (await client.get(f"/api/streams/{stream_id}/comments")).json()["data"]
    assert comments == []  # taken down with the refund
    assert not (await client.get(f"/api/streams/{stream_id}/super-chats")).json()["data"]
    assert await balanced(runtime)


async def test_the_creator_share_is_split_with_accepted_cohosts(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    from tajiri_live.streams.models import StreamCoHost

    stream_id = await live_stream(client, auth, split_gifts_with_cohosts=True)
    await credit(client, auth, FAN, 10_000)
    await client.get("/api/streams", headers=auth(COHOST))
    async with runtime.sessions() as session:
        session.add(StreamCoHost(stream_id=stream_id, user_id=COHOST, status="accepted"))
        await session.commit()
    sent = await send(client, auth, stream_id, {"message": "Wote wawili", "amount": 10_000})
    assert sent.status_code == 201, sent.text
    # 7,000 coins to the creators: 3,500 each; the platform keeps 3,000.
    assert await balance(client, auth, OWNER) == 3500
    assert await balance(client, auth, COHOST) == 3500
    assert await balanced(runtime)


async def test_analytics_put_super_chat_revenue_beside_gift_revenue(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    runtime.settings.coins_per_tzs = 2
    stream_id = await live_stream(client, auth)
    await credit(client, auth, FAN, 100_000)
    rose = await rose_of(client)
    gift = await client.post(
        f"/api/streams/{stream_id}/gifts", json={"gift_id": rose["id"]}, headers=auth(FAN)
    )
    assert gift.status_code == 201
    kept = await send(client, auth, stream_id, {"message": "moja", "amount": 5000})
    refunded = await send(client, auth, stream_id, {"message": "mbili", "amount": 20_000})
    await client.post(
        f"/api/streams/{stream_id}/super-chats/{refunded.json()['data']['id']}/refund",
        headers=auth(ADMIN, admin=True),
    )
    assert kept.json()["data"]["coins"] == 10_000
    report = (await client.get(f"/api/streams/{stream_id}/analytics", headers=auth(OWNER))).json()[
        "data"
    ]
    assert report["total_super_chats"] == 1  # the refunded one does not count
    assert report["revenue"]["super_chats"] == {
        "gross": 10_000,
        "creator_share": 7_000,
        "tzs": 5000,
    }
    assert report["revenue"]["gifts"] == {"gross": 100, "creator_share": 70}
    assert report["total_revenue"] == report["revenue"]["gross"] == 10_100
    assert report["revenue"]["creator_share"] == 7_070
    assert await balance(client, auth, OWNER) == 7_070


async def test_super_chats_and_gifts_share_payment_batches_each_with_its_own_rows(
    app: Any, client: httpx.AsyncClient, auth: Any, runtime: Any, events: list[Event]
) -> None:
    runtime.settings.gift_limit = 10**6
    runtime.settings.super_chat_limit = 10**6
    stream_id = await live_stream(client, auth)
    rose = await rose_of(client)
    await credit(client, auth, FAN, 20 * 1000 + 20 * int(rose["price"]))
    batches = app.state.payment_writer.batches
    before = (batches.batches, batches.items)

    async def chat(n: int) -> httpx.Response:
        return await send(client, auth, stream_id, {"message": f"chat {n}", "amount": 1000})

    async def gift() -> httpx.Response:
        url = f"/api/streams/{stream_id}/gifts"
        return await client.post(url, json={"gift_id": rose["id"]}, headers=auth(FAN))

    answers = await asyncio.gather(*(chat(n) if n % 2 else gift() for n in range(40)))
    assert [a.status_code for a in answers] == [201] * 40, [a.text for a in answers]
    assert batches.items - before[1] == 40
    assert batches.batches - before[0] < 40  # they went in batches, not one by one
    assert await balance(client, auth, FAN) == 0
    chats = [a.json()["data"] for n, a in enumerate(answers) if n % 2]
    assert sorted(c["message"] for c in chats) == sorted(f"chat {n}" for n in range(1, 40, 2))
    listed = (await client.get(f"/api/streams/{stream_id}/super-chats")).json()["data"]
    assert sorted(c["id"] for c in listed) == sorted(c["id"] for c in chats)
    assert {c["id"]: c["comment_id"] for c in listed} == {c["id"]: c["comment_id"] for c in chats}
    comments = (await client.get(f"/api/streams/{stream_id}/comments")).json()["data"]
    shown = {c["id"]: c for c in comments}
    for chat_answer in chats:
        comment = shown[chat_answer["comment_id"]]
        assert comment["content"] == chat_answer["message"] and comment["is_highlighted"]
    stream = (await client.get(f"/api/streams/{stream_id}")).json()["data"]
    assert stream["comments_count"] == 20 and stream["gifts_count"] == 20
    sent = [e.data for e in events if e.name == SUPER_CHAT_SENT]
    assert sorted(e["super_chat_id"] for e in sent) == sorted(c["id"] for c in chats)
    assert await balanced(runtime)
    async with runtime.sessions() as session:
        recorded = (
            await session.execute(
                select(LedgerTransaction.response).where(LedgerTransaction.kind == "super_chat")
            )
        ).scalars()
        assert sorted(r["id"] for r in recorded) == sorted(c["id"] for c in chats)


@pytest.mark.parametrize("requests", [1000 if backend() == "postgresql" else 100])
async def test_concurrent_super_chats_and_gifts_never_overdraw(
    client: httpx.AsyncClient, auth: Any, runtime: Any, events: list[Event], requests: int
) -> None:
    runtime.settings.gift_limit = 10**6  # the storm is the point, not the rate limits
    runtime.settings.super_chat_limit = 10**6
    stream_id = await live_stream(client, auth)
    rose = await rose_of(client)
    # Half of them can be paid: each super chat costs 1,000 coins, each rose 100.
    chats, gifts = requests // 2, requests - requests // 2
    affordable = (chats * 1000 + gifts * int(rose["price"])) // 2
    await credit(client, auth, FAN, affordable)

    async def attempt(index: int) -> tuple[str, int]:
        headers = {**auth(FAN), "Idempotency-Key": uuid.uuid4().hex}
        if index % 2:
            url, body, kind = f"/api/streams/{stream_id}/gifts", {"gift_id": rose["id"]}, "gift"
        else:
            url, body, kind = (
                f"/api/streams/{stream_id}/super-chats",
                {"message": f"storm {index}", "amount": 1000},
                "chat",
            )
        while True:
            answer = await client.post(url, json=body, headers=headers)
            if answer.status_code != 503:  # the pool was busy for too long: come back
                return kind, answer.status_code
            await asyncio.sleep(0.5)

    results = await asyncio.gather(*(attempt(i) for i in range(requests)))
    assert {code for _, code in results} <= {201, 402}
    paid_chats = sum(1 for kind, code in results if kind == "chat" and code == 201)
    paid_gifts = sum(1 for kind, code in results if kind == "gift" and code == 201)
    spent = paid_chats * 1000 + paid_gifts * int(rose["price"])
    assert spent <= affordable
    remaining = await balance(client, auth, FAN)
    assert remaining == affordable - spent >= 0
    # Every refusal was right: what was left could not pay for what was refused.
    refused = [kind for kind, code in results if code == 402]
    assert not refused or remaining < min(1000 if k == "chat" else 100 for k in refused)
    assert len([e for e in events if e.name == SUPER_CHAT_SENT]) == paid_chats
    assert len([e for e in events if e.name == GIFT_SENT]) == paid_gifts
    assert await balanced(runtime)


@pytest.mark.parametrize("change", ["end", "gifts off"])
async def test_a_super_chat_never_lands_on_a_stream_that_ended_or_stopped_paid_messages(
    client: httpx.AsyncClient, auth: Any, runtime: Any, monkeypatch: Any, change: str
) -> None:
    """The stream changes while the super chat is checked (after the request read it): the
    payment reads it again under its lock and charges nothing."""
    from tajiri_live.superchats import service

    if backend() != "postgresql":
        pytest.skip("a second writer in the middle of a request needs row locks")
    stream_id = await live_stream(client, auth)
    await credit(client, auth, FAN, 5000)
    checked = service.enforce_rate

    async def checked_then_changed(*args: Any, **kwargs: Any) -> None:
        await checked(*args, **kwargs)
        if change == "end":
            answer = await client.post(f"/api/streams/{stream_id}/end", headers=auth(OWNER))
        else:
            answer = await client.put(
                f"/api/streams/{stream_id}", json={"allow_gifts": False}, headers=auth(OWNER)
            )
        assert answer.status_code == 200, answer.text

    monkeypatch.setattr(service, "enforce_rate", checked_then_changed)
    sent = await send(client, auth, stream_id, {"message": "Hongera", "amount": 1000})
    assert sent.status_code == 403, sent.text
    assert await balance(client, auth, FAN) == 5000 and await balance(client, auth, OWNER) == 0
    listed = await client.get(f"/api/streams/{stream_id}/super-chats", headers=auth(OWNER))
    assert listed.json()["data"] == []
    assert await balanced(runtime)
