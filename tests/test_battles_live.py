"""PK battles on real server processes: a replay of the mobile client's battle messages with
every frame parsed cast for cast (viewers of each side read their own stream's score), and a
battle whose server is killed mid-battle and restarted still ends on time, once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from conftest import TEST_SECRET
from dartclient import CastFailed, parse, parse_pusher
from dbutil import backend
from redisutil import delete_prefix, new_prefix, require_redis
from servers import ServerProcess
from tajiri_live.core.auth import TokenCodec
from tajiri_live.core.db import create_engine, create_sessionmaker
from tajiri_live.core.settings import Settings
from tajiri_live.wallet.models import MINT, Wallet
from tajiri_live.wallet.service import ledger_is_balanced
from test_live_sockets import connect, parsed
from wsclient import Viewer

ASHA, BARAKA, FAN_A, FAN_B, STRANGER, ADMIN = 1, 2, 3, 4, 5, 9
BATTLE_SECONDS = 4.0
RESTART_BATTLE_SECONDS = 20.0  # a restart (two process starts on a busy machine) fits in it


@pytest.fixture
def tokens() -> TokenCodec:
    return TokenCodec(Settings(jwt_secret=TEST_SECRET))


def battle_server(
    tmp_path: Path, database_url: str, seconds: float = BATTLE_SECONDS, **env: str
) -> ServerProcess:
    return ServerProcess(
        tmp_path,
        database_url,
        **env,
        TAJIRI_REALTIME_COALESCE_MS="50",
        TAJIRI_BATTLE_DURATION_SECONDS=str(seconds),
        TAJIRI_JOB_BATTLES_EVERY_SECONDS="0.2",
        TAJIRI_GIFT_LIMIT="1000",
    )


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    process = battle_server(tmp_path, database_url).start()
    yield process
    process.stop()


@pytest.fixture
def long_server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    """Battles that outlast what a test does to them."""
    process = battle_server(tmp_path, database_url, seconds=3600).start()
    yield process
    process.stop()


@contextlib.asynccontextmanager
async def api_of(server: ServerProcess, tokens: TokenCodec) -> AsyncIterator[Any]:
    """An API client with `as_user(id, **claims)` for bearer headers."""
    # Patient: a storm of gifts queues on the wallets, on a host other tests share.
    async with httpx.AsyncClient(base_url=f"{server.url}/api", timeout=60) as client:

        def as_user(user_id: int, **claims: Any) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens.encode(user_id, **claims)}"}

        client.as_user = as_user  # type: ignore[attr-defined]
        yield client


@pytest.fixture
async def api(server: ServerProcess, tokens: TokenCodec) -> AsyncIterator[Any]:
    async with api_of(server, tokens) as client:
        yield client


async def live_stream(api: Any, owner: int) -> int:
    headers = api.as_user(owner, first_name=f"Owner{owner}")
    created = await api.post("/streams", json={"title": f"Show {owner}"}, headers=headers)
    stream_id = int(created.json()["data"]["id"])
    assert (await api.post(f"/streams/{stream_id}/start", headers=headers)).is_success
    return stream_id


async def fund(api: Any, user: int, coins: int) -> int:
    """Credit a fan; returns the rose's gift id."""
    await api.get("/streams", headers=api.as_user(user))  # the user's row
    credited = await api.post(
        "/wallet/credit",
        json={"user_id": user, "amount": coins},
        headers=api.as_user(ADMIN, admin=True),
    )
    assert credited.status_code == 200, credited.text
    gifts = (await api.get("/streams/gifts")).json()["data"]
    return int(next(g for g in gifts if g["slug"] == "rose")["id"])


async def gift(api: Any, stream_id: int, rose: int, quantity: int, user: int) -> None:
    sent = await api.post(
        f"/streams/{stream_id}/gifts",
        json={"gift_id": rose, "quantity": quantity},
        headers=api.as_user(user),
    )
    assert sent.status_code == 201, sent.text


def refusal(words: str) -> Any:
    def check(event: dict[str, Any]) -> bool:
        return event["event"] == "error" and words in event["data"]["message"]

    return check


def scored(mine: int, theirs: int) -> Any:
    def check(event: dict[str, Any]) -> bool:
        return event["event"] == "battle_score_update" and (
            event["data"]["my_score"],
            event["data"]["opponent_score"],
        ) == (mine, theirs)

    return check


async def test_the_client_replay_battles_and_each_side_reads_its_own_score(
    server: ServerProcess, api: Any, tokens: TokenCodec
) -> None:
    a = await live_stream(api, ASHA)
    b = await live_stream(api, BARAKA)
    owner_a = await connect(server, tokens, a, ASHA)
    owner_b = await connect(server, tokens, b, BARAKA)
    fan_a = await connect(server, tokens, a, FAN_A)
    fan_b = await connect(server, tokens, b, FAN_B)
    anonymous_b = await connect(server, tokens, b, None)
    pusher_a = await Viewer.connect(f"{server.ws}/app/tajiri-live?protocol=7")
    await pusher_a.send("pusher:subscribe", {"channel": f"stream.{a}"})
    await pusher_a.wait_for(lambda e: e["event"] == "pusher_internal:subscription_succeeded")
    side_a, side_b = (owner_a, fan_a), (owner_b, fan_b, anonymous_b)

    # inviteBattle: refused ones answer `error` to the sender alone, the socket stays
    await owner_a.send("invite_battle", {"opponent_stream_id": a})
    itself = await owner_a.wait_for(refusal("cannot battle itself"))
    assert itself["data"]["event"] == "invite_battle"
    await fan_a.send("invite_battle", {"opponent_stream_id": b})
    await fan_a.wait_for(refusal("Only the stream's owner"))
    await owner_a.send("invite_battle", {"opponent_stream_id": b})
    await owner_b.wait_for(lambda e: e["event"] == "battle_invite")
    (offer,) = parsed(owner_b, "battle_invite")
    assert offer.value["opponent_id"] == ASHA and offer.value["opponent_name"] == f"Owner{ASHA}"
    battle_id = offer.value["battle_id"]

    # someone else's invitation; then acceptBattle, twice
    await owner_a.send("accept_battle", {"battle_id": battle_id})
    await owner_a.wait_for(refusal("invited stream's owner"))
    await owner_b.send("accept_battle", {"battle_id": battle_id})
    for viewer in (*side_a, *side_b, pusher_a):
        await viewer.wait_for(lambda e: e["event"] == "battle_accepted")
    await owner_b.send("accept_battle", {"battle_id": battle_id})
    await owner_b.wait_for(refusal("already accepted"))
    for viewer in side_a:
        (accepted,) = parsed(viewer, "battle_accepted")
        assert (accepted.value["battle_id"], accepted.value["opponent_id"]) == (battle_id, BARAKA)
    for viewer in side_b:
        (accepted,) = parsed(viewer, "battle_accepted")
        assert accepted.value["opponent_id"] == ASHA

    # gifts to both sides: each side reads its own score as `my_score`
    rose = await fund(api, STRANGER, 100_000)
    for stream_id, quantity in ((a, 3), (b, 1), (a, 2), (b, 4), (b, 1)):
        await gift(api, stream_id, rose, quantity, STRANGER)
    for viewer in side_a:
        await viewer.wait_for(scored(500, 600))
    for viewer in side_b:
        await viewer.wait_for(scored(600, 500))

    # the end, by time: battle_ended to both sides, each from its own point of view
    for viewer in (*side_a, *side_b, pusher_a):
        await viewer.wait_for(lambda e: e["event"] == "battle_ended", within=BATTLE_SECONDS + 5)
    await asyncio.sleep(0.5)  # nothing more comes
    for viewer in side_a:
        (ended,) = parsed(viewer, "battle_ended")
        assert ended.value == {
            "battle_id": battle_id,
            "winner_id": BARAKA,
            "my_score": 500,
            "opponent_score": 600,
        }
        assert parsed(viewer, "battle_score_update")[-1].value["my_score"] == 500
    for viewer in side_b:
        (ended,) = parsed(viewer, "battle_ended")
        assert (ended.value["my_score"], ended.value["opponent_score"]) == (600, 500)
        assert ended.value["winner_id"] == BARAKA
    # the invitation went to Baraka's sockets only
    assert [len(parsed(v, "battle_invite")) for v in (owner_a, fan_a, owner_b, fan_b)] == [
        0,
        0,
        1,
        0,
    ]
    for viewer in (*side_a, *side_b):
        for frame in viewer.events:
            parse(json.dumps(frame))
    ended_frames = [p for p in map(lambda e: parse_pusher(json.dumps(e)), pusher_a.events) if p]
    assert [p.value["my_score"] for p in ended_frames if p.event == "battle_ended"] == [500]

    # declineBattle and forfeitBattle on a second battle
    await owner_b.send("invite_battle", {"opponent_stream_id": a})
    offer_a = await owner_a.wait_for(lambda e: e["event"] == "battle_invite")
    await owner_a.send("decline_battle", {"battle_id": offer_a["data"]["battle_id"]})
    await owner_b.wait_for(lambda e: e["event"] == "battle_declined")
    await owner_b.send("invite_battle", {"opponent_stream_id": a})
    await owner_a.wait_for(
        lambda e: (
            e["event"] == "battle_invite" and e["data"]["battle_id"] != offer_a["data"]["battle_id"]
        )
    )
    third = parsed(owner_a, "battle_invite")[-1].value["battle_id"]
    await owner_a.send("accept_battle", {"battle_id": third})
    await fan_b.wait_for(
        lambda e: e["event"] == "battle_accepted" and e["data"]["battle_id"] == third
    )
    await owner_a.send("forfeit_battle", {"battle_id": third})
    lost = await fan_b.wait_for(
        lambda e: e["event"] == "battle_ended" and e["data"]["battle_id"] == third
    )
    assert lost["data"]["winner_id"] == BARAKA and lost["data"]["reason"] == "forfeit"
    shown = (await api.get(f"/battles/{third}")).json()
    assert shown["battle"]["status"] == "ended" and shown["data"] == shown["battle"]
    for viewer in (*side_a, *side_b, pusher_a):
        await viewer.close()


async def test_a_server_killed_mid_battle_still_ends_it_on_time_once(
    tmp_path: Path, database_url: str, tokens: TokenCodec
) -> None:
    server = battle_server(tmp_path, database_url, RESTART_BATTLE_SECONDS).start()
    try:
        async with api_of(server, tokens) as api:
            as_user = api.as_user
            a = await live_stream(api, ASHA)
            b = await live_stream(api, BARAKA)
            invited = await api.post(
                f"/streams/{a}/battles/invite",
                json={"opponent_stream_id": b},
                headers=as_user(ASHA),
            )
            battle_id = invited.json()["battle"]["id"]
            accepted = await api.post(f"/battles/{battle_id}/accept", headers=as_user(BARAKA))
            ends_at = datetime.fromisoformat(accepted.json()["battle"]["ends_at"])
            rose = await fund(api, STRANGER, 10_000)
            await gift(api, b, rose, 2, STRANGER)

            server.kill()  # mid-battle, without a goodbye
            server.start()
            viewer_a = await connect(server, tokens, a, FAN_A)
            viewer_b = await connect(server, tokens, b, FAN_B)
            assert datetime.now(UTC) < ends_at, "the restart took longer than the battle"
            for viewer in (viewer_a, viewer_b):
                await viewer.wait_for(
                    lambda e: e["event"] == "battle_ended", within=RESTART_BATTLE_SECONDS + 5
                )
            noticed = datetime.now(UTC)
            await asyncio.sleep(1.0)  # later runs of the job change nothing
            for viewer, mine in ((viewer_a, 0), (viewer_b, 200)):
                (ended,) = parsed(viewer, "battle_ended")
                assert ended.value["winner_id"] == BARAKA and ended.value["my_score"] == mine
                await viewer.close()
            battle = (await api.get(f"/battles/{battle_id}")).json()["battle"]
            assert battle["status"] == "ended" and battle["end_reason"] == "time"
            assert datetime.fromisoformat(battle["ended_at"]) == ends_at
            assert battle["final_scores"] == {"stream_1": 0, "stream_2": 200}
            assert (noticed - ends_at).total_seconds() < 2.0  # the job runs every 0.2 s here
    finally:
        server.stop()


async def ledger_state(database_url: str) -> tuple[bool, int]:
    """(the ledger sums to zero, the lowest balance of a wallet that is not the mint's)."""
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            lowest = await session.scalar(
                sa.select(sa.func.min(Wallet.balance)).where(Wallet.kind != MINT)
            )
            return await ledger_is_balanced(session), int(lowest or 0)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("gifts", [400 if backend() == "postgresql" else 80])
async def test_concurrent_gifts_to_both_sides_score_exactly_and_viewers_hear_the_last_score(
    long_server: ServerProcess, tokens: TokenCodec, database_url: str, gifts: int
) -> None:
    """A scaled-down storm (bench/battles.py runs the full one): fans who cannot pay for all
    their gifts send them to both sides at once, a dozen in flight at a time."""
    async with api_of(long_server, tokens) as api:
        await storm(long_server, api, tokens, database_url, gifts)


async def storm(
    server: ServerProcess, api: Any, tokens: TokenCodec, database_url: str, gifts: int
) -> None:
    a = await live_stream(api, ASHA)
    b = await live_stream(api, BARAKA)
    battle_id = (
        await api.post(
            f"/streams/{a}/battles/invite",
            json={"opponent_stream_id": b},
            headers=api.as_user(ASHA),
        )
    ).json()["battle"]["id"]
    accepted = await api.post(f"/battles/{battle_id}/accept", headers=api.as_user(BARAKA))
    assert accepted.status_code == 200, accepted.text
    viewers = {
        side: [await connect(server, tokens, side, 100 + side * 10 + n) for n in range(3)]
        for side in (a, b)
    }
    fans = list(range(1000, 1010))
    rose = 0
    for fan in fans:  # each can pay for a third of its gifts
        rose = await fund(api, fan, (gifts // len(fans) // 3) * 100)
    gate = asyncio.Semaphore(12)

    async def send(number: int) -> int:
        fan, stream_id = fans[number % len(fans)], (a, b)[number % 3 == 0]
        headers = {**api.as_user(fan), "Idempotency-Key": uuid.uuid4().hex}
        async with gate:
            while True:
                answer = await api.post(
                    f"/streams/{stream_id}/gifts", json={"gift_id": rose}, headers=headers
                )
                if answer.status_code != 503:  # the pool was busy too long: back, as told
                    return answer.status_code
                await asyncio.sleep(0.2)

    codes = await asyncio.gather(*(send(n) for n in range(gifts)))
    assert set(codes) <= {201, 402} and codes.count(201) > 0 and codes.count(402) > 0
    received = {
        side: (await api.get(f"/streams/{side}")).json()["data"]["gifts_value"] for side in (a, b)
    }
    assert received[a] + received[b] == codes.count(201) * 100
    battle = (await api.get(f"/battles/{battle_id}")).json()["battle"]
    assert (battle["stream_1"]["score"], battle["stream_2"]["score"]) == (received[a], received[b])
    balanced, lowest = await ledger_state(database_url)
    assert balanced and lowest >= 0
    for side, other in ((a, b), (b, a)):
        for viewer in viewers[side]:  # the last update each viewer got is the stored score
            await viewer.wait_for(scored(received[side], received[other]))
            await asyncio.sleep(0.3)  # nothing older arrives after it
            last = parsed(viewer, "battle_score_update")[-1].value
            assert (last["my_score"], last["opponent_score"]) == (received[side], received[other])
    ended = await api.post(f"/battles/{battle_id}/end", headers=api.as_user(ASHA))
    assert ended.json()["battle"]["final_scores"] == {
        "stream_1": received[a],
        "stream_2": received[b],
    }
    for side in (a, b):
        for viewer in viewers[side]:
            final = await viewer.wait_for(lambda e: e["event"] == "battle_ended")
            assert final["data"]["my_score"] == received[side]
            await viewer.close()


async def test_on_two_nodes_scores_from_both_reach_every_viewer_and_the_end_comes_once(
    tmp_path: Path, database_url: str, tokens: TokenCodec
) -> None:
    """Two nodes share the database and Redis and both run the job: gifts paid through
    either node, viewers of each side on each node. Every viewer's last score is the stored
    one (the hubs keep the highest), and each hears the end once."""
    url, prefix = require_redis(), new_prefix()
    nodes = [
        battle_server(
            tmp_path / name, database_url, TAJIRI_REDIS_URL=url, TAJIRI_REDIS_PREFIX=prefix
        )
        for name in ("a", "b")
    ]
    try:
        for node in nodes:
            node.workdir.mkdir()
            node.start()
        async with api_of(nodes[0], tokens) as api, api_of(nodes[1], tokens) as other_api:
            a = await live_stream(api, ASHA)
            b = await live_stream(api, BARAKA)
            battle_id = (
                await api.post(
                    f"/streams/{a}/battles/invite",
                    json={"opponent_stream_id": b},
                    headers=api.as_user(ASHA),
                )
            ).json()["battle"]["id"]
            viewers = {
                side: [
                    await connect(node, tokens, side, 100 + side * 10 + n)
                    for n, node in enumerate(nodes)
                ]
                for side in (a, b)
            }
            accepted = await other_api.post(
                f"/battles/{battle_id}/accept", headers=api.as_user(BARAKA)
            )
            assert accepted.status_code == 200, accepted.text
            rose = await fund(api, STRANGER, 100_000)
            for number in range(12):
                client = (api, other_api)[number % 2]
                await gift(client, (a, b)[number % 3 == 0], rose, 1 + number % 4, STRANGER)
            battle = (await api.get(f"/battles/{battle_id}")).json()["battle"]
            scores = {a: battle["stream_1"]["score"], b: battle["stream_2"]["score"]}
            for side, other in ((a, b), (b, a)):
                for viewer in viewers[side]:
                    await viewer.wait_for(scored(scores[side], scores[other]))
                    await viewer.wait_for(
                        lambda e: e["event"] == "battle_ended", within=BATTLE_SECONDS + 5
                    )
            await asyncio.sleep(1.0)  # the other node's job finds nothing left to end
            for side in (a, b):
                for viewer in viewers[side]:
                    (ended,) = parsed(viewer, "battle_ended")
                    assert ended.value["my_score"] == scores[side]
                    last = parsed(viewer, "battle_score_update")[-1].value
                    assert last["my_score"] == scores[side]
                    await viewer.close()
    finally:
        for node in nodes:
            node.stop()
        await delete_prefix(url, prefix)


def test_the_replay_drops_battle_events_the_client_would_drop() -> None:
    """The replay's own check for the battle events: a draw's null winner is fine, a wrong
    type or a missing field is what the client throws on."""
    ended = {"battle_id": 1, "winner_id": None, "my_score": 0, "opponent_score": 0}
    assert parse(json.dumps({"event": "battle_ended", "data": ended})).value["winner_id"] is None
    for name, bad in (
        ("battle_ended", {**ended, "winner_id": "2"}),
        ("battle_ended", {**ended, "my_score": 1.0}),
        ("battle_score_update", {"battle_id": 1, "my_score": 1}),
        ("battle_invite", {"battle_id": 1, "opponent_id": 2, "opponent_name": None}),
        ("battle_accepted", {"battle_id": "1", "opponent_id": 2, "opponent_name": "A"}),
    ):
        with pytest.raises(CastFailed):
            parse(json.dumps({"event": name, "data": bad}))
