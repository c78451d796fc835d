"""Values the database cannot hold are refused at the schema (issue 16): integers bounded by
their columns, dates that stay in range, a per-user limit on new streams, money data kept
from claimed ids, and what an Idempotency-Key may contain."""

from __future__ import annotations

import importlib
import pkgutil
from datetime import UTC, datetime, timedelta
from typing import Any

import annotated_types
import httpx
from sqlalchemy import BigInteger, Integer, select
from sqlalchemy.orm import InstrumentedAttribute

import tajiri_live
from tajiri_live.battles.models import StreamBattle
from tajiri_live.core.clock import ManualClock
from tajiri_live.core.payload import MAX_ID
from tajiri_live.core.settings import Settings
from tajiri_live.gifts.models import StreamGift, VirtualGift
from tajiri_live.health.models import StreamHealthSample
from tajiri_live.moderation.models import StreamRestriction
from tajiri_live.notifications.models import NotificationPreference
from tajiri_live.polls.models import StreamPoll, StreamPollVote
from tajiri_live.questions.models import StreamQuestion
from tajiri_live.streams.models import LiveStream, StreamCoHost
from tajiri_live.superchats.models import StreamSuperChat
from tajiri_live.users.models import Follow
from tajiri_live.wallet.models import LedgerEntry, Wallet
from test_hostile import _api_routes, _params, _subclasses
from test_identity import serving

OWNER, FAN, ADMIN = 1, 2, 9

# Where each integer a client sends ends up. A new integer field must be added here: the
# test then checks that its schema's bound fits the column (None: never stored, only used
# in arithmetic that its bound keeps small).
STORED_IN: dict[tuple[str, str], InstrumentedAttribute[Any] | None] = {
    ("CohostInvite", "user_id"): StreamCoHost.user_id,
    ("GiftSend", "gift_id"): VirtualGift.id,
    ("GiftSend", "quantity"): StreamGift.quantity,
    ("HealthReport", "bitrate"): StreamHealthSample.bitrate,
    ("HealthReport", "dropped_frames"): StreamHealthSample.dropped_frames,
    ("BanCreate", "user_id"): StreamRestriction.user_id,
    ("MuteCreate", "user_id"): StreamRestriction.user_id,
    ("MuteCreate", "minutes"): None,
    ("FollowPair", "follower_id"): Follow.follower_id,
    ("FollowPair", "followed_id"): Follow.followed_id,
    ("PreferenceIn", "streamer_id"): NotificationPreference.streamer_id,
    ("VoteCreate", "option_id"): StreamPollVote.option_id,
    ("PollRef", "poll_id"): StreamPoll.id,
    ("SocketVote", "poll_id"): StreamPollVote.poll_id,
    ("SocketVote", "option_id"): StreamPollVote.option_id,
    ("QuestionRef", "question_id"): StreamQuestion.id,
    ("SocketDismissal", "question_id"): StreamQuestion.id,
    ("Credit", "user_id"): Wallet.user_id,
    ("Credit", "amount"): LedgerEntry.amount,
    ("DepositCreate", "user_id"): Wallet.user_id,
    ("DepositCreate", "amount"): LedgerEntry.amount,
    ("SuperChatCreate", "amount"): StreamSuperChat.amount,
    ("BattleInvite", "opponent_stream_id"): StreamBattle.stream_id_2,
    ("BattleRef", "battle_id"): StreamBattle.id,
}


def _largest(column: InstrumentedAttribute[Any] | None) -> int:
    if column is None:
        return 10**9
    kind = column.property.columns[0].type
    if isinstance(kind, BigInteger):  # first: BIGINT is an Integer too
        return 2**63 - 1
    assert isinstance(kind, Integer), column
    return 2**31 - 1


def _upper_bound(metadata: list[Any]) -> int | None:
    for item in metadata:
        if isinstance(item, annotated_types.Le):
            return int(item.le)
        if isinstance(item, annotated_types.Lt):
            return int(item.lt) - 1
    return None


def _mentions_int(annotation: Any) -> bool:
    if annotation is int:
        return True
    return any(_mentions_int(arg) for arg in getattr(annotation, "__args__", ()))


def test_every_integer_a_client_sends_fits_its_column(app: Any) -> None:
    """Before: `dropped_frames` allowed 2**40 into an INTEGER column (a 500 on PostgreSQL)."""
    from fastapi.routing import APIRoute
    from pydantic import BaseModel
    from pydantic_settings import BaseSettings

    for module in pkgutil.walk_packages(tajiri_live.__path__, "tajiri_live."):
        if ".migrations" not in module.name and not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    checked: set[tuple[str, str]] = set()
    for model in _subclasses(BaseModel):
        if not model.__module__.startswith("tajiri_live.") or issubclass(model, BaseSettings):
            continue
        for name, field in model.model_fields.items():
            if not _mentions_int(field.annotation):
                continue
            assert (model.__name__, name) in STORED_IN, f"{model.__name__}.{name}: add it"
            bound = _upper_bound(field.metadata)
            column = STORED_IN[(model.__name__, name)]
            assert bound is not None and bound <= _largest(column), (model.__name__, name)
            checked.add((model.__name__, name))
    assert checked == set(STORED_IN)
    # Query and path integers are ids (BIGINT) or pages: all bounded.
    for route in _api_routes(app.routes, APIRoute):
        for param in _params(route.dependant):
            if _mentions_int(param.field_info.annotation):
                bound = _upper_bound(param.field_info.metadata)
                assert bound is not None and bound <= MAX_ID, (route.path, param.name)


async def test_a_dropped_frames_count_the_column_cannot_hold_is_a_422(
    client: httpx.AsyncClient, auth: Any
) -> None:
    created = await client.post("/api/streams", json={"title": "x"}, headers=auth(OWNER))
    stream_id = created.json()["data"]["id"]
    await client.post(f"/api/streams/{stream_id}/start", headers=auth(OWNER))
    url = f"/api/streams/{stream_id}/health"
    refused = await client.post(url, json={"dropped_frames": 2**40}, headers=auth(OWNER))
    assert refused.status_code == 422, refused.text
    assert list(refused.json()["errors"]) == ["dropped_frames"]
    largest = await client.post(url, json={"dropped_frames": 2**31 - 1}, headers=auth(OWNER))
    assert largest.status_code in (200, 201), largest.text


# --- dates -------------------------------------------------------------------------------------


async def test_a_schedule_too_far_or_out_of_range_is_a_422_and_stores_nothing(
    client: httpx.AsyncClient, auth: Any, clock: ManualClock
) -> None:
    """Before: 9999-12-30 was stored with a 500, after which the owner's list, the stream and
    its start answered 500 forever; 0001-01-01T00:00+05:00 was a 500 in the conversion."""
    now = clock.now()
    too_far = (now + timedelta(days=366)).isoformat()
    for scheduled_at in ("9999-12-30T00:00:00Z", "0001-01-01T00:00:00+05:00", too_far):
        answer = await client.post(
            "/api/streams",
            json={"title": "x", "scheduled_at": scheduled_at},
            headers=auth(OWNER),
        )
        assert answer.status_code == 422, (scheduled_at, answer.text)
        assert list(answer.json()["errors"]) == ["scheduled_at"], answer.text
    mine = await client.get(f"/api/streams/user/{OWNER}", headers=auth(OWNER))
    assert mine.status_code == 200 and mine.json()["data"] == []
    within = (now + timedelta(days=364)).isoformat()
    created = await client.post(
        "/api/streams", json={"title": "x", "scheduled_at": within}, headers=auth(OWNER)
    )
    assert created.status_code == 201, created.text
    moved = await client.put(
        f"/api/streams/{created.json()['data']['id']}",
        json={"scheduled_at": "9999-12-30T00:00:00Z"},
        headers=auth(OWNER),
    )
    assert moved.status_code == 422 and "scheduled_at" in moved.json()["errors"]


async def test_a_far_schedule_stored_before_the_bound_still_reads(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    created = await client.post("/api/streams", json={"title": "x"}, headers=auth(OWNER))
    stream_id = created.json()["data"]["id"]
    async with runtime.sessions() as session:
        stream = await session.scalar(select(LiveStream).where(LiveStream.id == stream_id))
        stream.scheduled_at = datetime(9999, 12, 30, tzinfo=UTC)
        await session.commit()
    for url in (f"/api/streams/{stream_id}", f"/api/streams/user/{OWNER}"):
        answer = await client.get(url, headers=auth(OWNER))
        assert answer.status_code == 200, answer.text


# --- a per-user limit on new streams -----------------------------------------------------------


async def test_creating_streams_is_limited_per_user(
    settings: Settings, clock: ManualClock, auth: Any
) -> None:
    async with serving(settings, clock, stream_create_limit=3) as (_, client):
        runtime = _.state.runtime

        def token(user: int) -> dict[str, str]:
            return {"Authorization": f"Bearer {runtime.tokens.encode(user)}"}

        answers = [
            await client.post("/api/streams", json={"title": "x"}, headers=token(OWNER))
            for _n in range(4)
        ]
        assert [a.status_code for a in answers] == [201, 201, 201, 429]
        refused = answers[-1]
        assert int(refused.headers["Retry-After"]) >= 1
        assert "Too many new streams" in refused.json()["message"]
        other = await client.post("/api/streams", json={"title": "x"}, headers=token(FAN))
        assert other.status_code == 201


# --- legacy client identity: money data needs a token ----------------------------------------


async def test_a_claimed_id_cannot_read_a_streams_analytics(
    settings: Settings, clock: ManualClock
) -> None:
    """Before: `GET analytics?current_user_id=<owner>` with no token answered the owner's
    revenue and top gifters to anyone."""
    async with serving(settings, clock, legacy_client_identity=True) as (app, client):
        created = await client.post("/api/streams", json={"title": "x", "user_id": OWNER})
        assert created.status_code == 201, created.text
        stream_id = created.json()["data"]["id"]
        await client.post(f"/api/streams/{stream_id}/start")
        claimed = await client.get(
            f"/api/streams/{stream_id}/analytics", params={"current_user_id": OWNER}
        )
        assert claimed.status_code == 401, claimed.text
        assert "signed-in token" in claimed.json()["message"]
        assert "revenue" in claimed.json()["message"]
        token = {"Authorization": f"Bearer {app.state.runtime.tokens.encode(OWNER)}"}
        signed = await client.get(f"/api/streams/{stream_id}/analytics", headers=token)
        assert signed.status_code == 200 and "total_revenue" in signed.json()["data"]
        ended = await client.post(f"/api/streams/{stream_id}/end")
        assert ended.status_code == 200, ended.text
        figures = ended.json()["analytics"]
        assert figures["revenue"] is None and figures["total_gifts"] is None
        assert figures["total_viewers"] == 0


# --- Idempotency-Key: printable ASCII, named one way -----------------------------------------


async def test_an_idempotency_key_is_printable_ascii_and_named_as_the_header(
    client: httpx.AsyncClient, auth: Any
) -> None:
    """Before: a UTF-8 key (read as latin-1) was refused for 'control characters' under the
    field `idempotency-key`, while the key's other errors said `Idempotency-Key`."""
    created = await client.post("/api/streams", json={"title": "x"}, headers=auth(OWNER))
    stream_id = created.json()["data"]["id"]
    await client.post(f"/api/streams/{stream_id}/start", headers=auth(OWNER))
    url = f"/api/streams/{stream_id}/gifts"
    gift = next(g["id"] for g in (await client.get("/api/streams/gifts")).json()["data"])
    bad_keys: list[bytes] = ["k😀".encode(), b"k" * 256, b"a\x01b", b"   "]
    for key in bad_keys:
        answer = await client.post(
            url, json={"gift_id": gift}, headers={**auth(FAN), "Idempotency-Key": key}
        )
        assert answer.status_code == 422, (key, answer.text)
        errors = answer.json()["errors"]
        assert list(errors) == ["Idempotency-Key"], (key, errors)
        assert "printable ASCII" in errors["Idempotency-Key"][0]
    fine = await client.post(
        url,
        json={"gift_id": gift},
        headers={**auth(FAN), "Idempotency-Key": "tap 42/{x}~" + "k" * 240},
    )
    assert fine.status_code != 422, fine.text  # judged on its merits (here: no coins)
