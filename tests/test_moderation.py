"""Moderation: the word filter, spam, bans, mutes and the audit log."""

from __future__ import annotations

import asyncio
import unicodedata
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tajiri_live.core.ratelimit import MemoryRateLimiter
from tajiri_live.moderation.wordfilter import (
    DEFAULT_WORDS,
    LOOKALIKES,
    WordFilter,
    fold_with_positions,
)

OWNER, FAN, COHOST, OTHER = 1, 2, 3, 4


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("what the FUCK", "what the ****"),
        ("f u c k this", "* * * * this"),
        ("fuuuuuck", "********"),
        ("sh1t happens", "**** happens"),
        ("a$$hole", "*******"),
        ("wewe ni MALAYA", "wewe ni ******"),
        ("m.a.l.a.y.a!", "***********!"),
        ("Scunthorpe and Dickens are fine", "Scunthorpe and Dickens are fine"),
        ("habari rafiki", "habari rafiki"),
    ],
)
def test_the_word_filter_sees_through_disguises(text: str, masked: str) -> None:
    words = WordFilter(DEFAULT_WORDS["en"] + DEFAULT_WORDS["sw"])
    assert words.mask(text) == masked


def folded_one_by_one(text: str) -> tuple[str, list[int]]:
    chars, positions = [], []
    for index, char in enumerate(text):
        decomposed = unicodedata.normalize("NFKD", char.lower())
        for c in "".join(c for c in decomposed if not unicodedata.combining(c)):
            chars.append(c.translate(LOOKALIKES))
            positions.append(index)
    return "".join(chars), positions


@pytest.mark.parametrize(
    "text",
    [
        "".join(map(chr, range(128))),  # every ASCII character: the quick fold
        "Hongera SH1T f.u.c.k @$$ 12345 !|+ \t\n",
        "Ḿálàyá ﬁne \uff26\uff55\uff43\uff4b ǅ İstanbul ß ﬀ",  # accents, wide, ligatures
    ],
)
def test_folding_keeps_each_characters_origin(text: str) -> None:
    folded, positions = fold_with_positions(text)
    expected_text, expected_positions = folded_one_by_one(text)
    assert folded == expected_text
    assert list(positions) == expected_positions


def test_a_word_found_only_by_a_later_pattern_is_still_found() -> None:
    # The first search over all words must not hide a word that only a later one matches,
    # nor report one whose every match sits inside a longer word.
    words = WordFilter(["zzz", "kuma", "dick"])
    assert [m.word for m in words.find("Dickens ni kuma")] == ["kuma"]
    assert words.find("Dickens") == []
    assert WordFilter([]).find("anything at all") == []


@pytest.fixture
def no_rate_limit(runtime: Any) -> None:
    runtime.limiter = MemoryRateLimiter(now=lambda: 0.0)
    runtime.settings.comment_limit = 10**6


async def live(client: httpx.AsyncClient, auth: Any) -> int:
    created = await client.post("/api/streams", json={"title": "x"}, headers=auth(OWNER))
    sid = int(created.json()["data"]["id"])
    await client.post(f"/api/streams/{sid}/start", headers=auth(OWNER))
    return sid


async def say(
    client: httpx.AsyncClient, auth: Any, sid: int, user: int, text: str
) -> httpx.Response:
    return await client.post(
        f"/api/streams/{sid}/comments", json={"content": text}, headers=auth(user)
    )


async def test_bad_words_are_masked_or_refused(
    client: httpx.AsyncClient, auth: Any, runtime: Any, no_rate_limit: None
) -> None:
    sid = await live(client, auth)
    masked = await say(client, auth, sid, FAN, "this is sh1t")
    assert masked.status_code == 201 and masked.json()["data"]["content"] == "this is ****"
    runtime.settings.bad_word_action = "reject"
    refused = await say(client, auth, sid, FAN, "F U C K")
    assert refused.status_code == 422
    assert refused.json()["errors"]["content"] == ["Please keep the chat respectful."]
    log = (await client.get(f"/api/streams/{sid}/moderation-log", headers=auth(OWNER))).json()
    assert [
        (e["action"], e["actor_id"], e["target_user_id"], e["reason"]) for e in log["data"]
    ] == [("comment_blocked", None, FAN, "bad words")]


async def test_spam_repeats_and_link_floods(
    client: httpx.AsyncClient, auth: Any, clock: Any, no_rate_limit: None
) -> None:
    sid = await live(client, auth)
    assert (await say(client, auth, sid, FAN, "follow me!")).status_code == 201
    repeat = await say(client, auth, sid, FAN, "follow me!")
    assert repeat.status_code == 422 and "already said" in repeat.json()["message"]
    assert (await say(client, auth, sid, OTHER, "follow me!")).status_code == 201
    clock.advance(seconds=61)
    assert (await say(client, auth, sid, FAN, "follow me!")).status_code == 201
    flood = await say(client, auth, sid, FAN, "http://a.tz www.b.tz https://c.tz")
    assert flood.status_code == 422 and "links" in flood.json()["message"]


async def test_bans_stop_everything_and_are_logged(
    client: httpx.AsyncClient, auth: Any, runtime: Any, no_rate_limit: None
) -> None:
    from tajiri_live.streams.models import StreamCoHost

    sid = await live(client, auth)
    for user in (FAN, COHOST, OTHER):
        await client.get("/api/streams", headers=auth(user))
    async with runtime.sessions() as session:
        session.add(StreamCoHost(stream_id=sid, user_id=COHOST, status="accepted"))
        await session.commit()
    bans = f"/api/streams/{sid}/bans"
    assert (await client.post(bans, json={"user_id": FAN}, headers=auth(OTHER))).status_code == 403
    assert (
        await client.post(bans, json={"user_id": OWNER}, headers=auth(COHOST))
    ).status_code == 403
    banned = await client.post(bans, json={"user_id": FAN, "reason": "spam"}, headers=auth(COHOST))
    assert banned.status_code == 201 and banned.json()["data"]["kind"] == "ban"
    refused = await say(client, auth, sid, FAN, "hello?")
    assert refused.status_code == 403 and "banned" in refused.json()["message"]
    react = await client.post(
        f"/api/streams/{sid}/reactions", json={"reaction_type": "fire"}, headers=auth(FAN)
    )
    assert react.status_code == 403
    gift = await client.post(f"/api/streams/{sid}/gifts", json={"gift_id": 1}, headers=auth(FAN))
    assert gift.status_code == 403
    listed = (await client.get(bans, headers=auth(OWNER))).json()["data"]
    assert [(b["user_id"], b["reason"]) for b in listed] == [(FAN, "spam")]
    assert (await client.get(bans, headers=auth(FAN))).status_code == 403
    lifted = await client.delete(f"{bans}/{FAN}", headers=auth(OWNER))
    assert lifted.json()["data"]["lifted"] is True
    assert (await say(client, auth, sid, FAN, "sorry")).status_code == 201
    log = (await client.get(f"/api/streams/{sid}/moderation-log", headers=auth(OWNER))).json()
    assert [(e["action"], e["actor_id"], e["target_user_id"]) for e in log["data"]] == [
        ("unban", OWNER, FAN),
        ("ban", COHOST, FAN),
    ]


async def test_comments_arriving_together_are_each_checked_as_if_alone(
    client: httpx.AsyncClient, app: Any, auth: Any, no_rate_limit: None
) -> None:
    """On PostgreSQL the checks of comments arriving at once are read in one statement:
    each still gets its own answer (a ban, a mute, a repeat, a new profile, a pass)."""
    sid = await live(client, auth)
    banned, muted, repeating, newcomer = FAN, COHOST, OTHER, 77
    for user in (banned, muted, repeating):
        await client.get("/api/streams", headers=auth(user))
    restrict = {"bans": banned, "mutes": muted}
    for kind, user in restrict.items():
        made = await client.post(
            f"/api/streams/{sid}/{kind}", json={"user_id": user}, headers=auth(OWNER)
        )
        assert made.status_code == 201
    assert (await say(client, auth, sid, repeating, "same old")).status_code == 201
    fine = list(range(100, 112))
    asked = [
        (banned, "hi"),
        (muted, "hi"),
        (repeating, "same old"),
        (newcomer, "first time here"),
        *[(user, f"hello from {user}") for user in fine],
    ]
    answers = await asyncio.gather(*(say(client, auth, sid, user, text) for user, text in asked))
    codes = {user: answer.status_code for (user, _), answer in zip(asked, answers, strict=True)}
    assert codes == {
        banned: 403,
        muted: 403,
        repeating: 422,
        newcomer: 201,
        **dict.fromkeys(fine, 201),
    }
    assert "banned" in answers[0].json()["message"] and "muted" in answers[1].json()["message"]
    assert answers[3].json()["data"]["user"]["id"] == newcomer
    for (user, text), answer in zip(asked[4:], answers[4:], strict=True):
        assert answer.json()["data"]["content"] == text and answer.json()["data"]["user_id"] == user
    stored = await client.get(f"/api/streams/{sid}/comments", headers=auth(OWNER))
    by_id = {c["id"]: (c["user_id"], c["content"]) for c in stored.json()["data"]}
    for answer in answers[3:]:  # each answer names its own row (ids matched in batch order)
        data = answer.json()["data"]
        assert by_id[data["id"]] == (data["user_id"], data["content"])
    batches, items = app.state.commenter_checks.batched
    if app.state.runtime.engine.dialect.name == "postgresql":
        assert items == len(asked) + 1 and batches < items  # read together, not one by one
    else:
        assert (batches, items) == (0, 0)


async def test_mutes_expire_and_still_allow_gifts(
    client: httpx.AsyncClient, auth: Any, clock: Any, no_rate_limit: None
) -> None:
    sid = await live(client, auth)
    muted = await client.post(
        f"/api/streams/{sid}/mutes",
        json={"user_id": FAN, "minutes": 10, "reason": "calm down"},
        headers=auth(OWNER),
    )
    assert muted.status_code == 201 and muted.json()["data"]["expires_at"]
    refused = await say(client, auth, sid, FAN, "hey")
    assert refused.status_code == 403 and "10 more minute" in refused.json()["message"]
    gift = await client.post(f"/api/streams/{sid}/gifts", json={"gift_id": 1}, headers=auth(FAN))
    assert gift.status_code == 402  # past the mute: only the balance stops it
    clock.advance(timedelta(minutes=10, seconds=1).total_seconds())
    assert (await say(client, auth, sid, FAN, "back")).status_code == 201
    assert (await client.get(f"/api/streams/{sid}/mutes", headers=auth(OWNER))).json()["data"] == []


async def test_moderators_actions_on_comments_are_logged(
    client: httpx.AsyncClient, auth: Any, no_rate_limit: None
) -> None:
    sid = await live(client, auth)
    comment_id = (await say(client, auth, sid, FAN, "nice")).json()["data"]["id"]
    await client.post(f"/api/streams/{sid}/comments/{comment_id}/pin", headers=auth(OWNER))
    await client.delete(f"/api/streams/{sid}/comments/{comment_id}", headers=auth(OWNER))
    log = (await client.get(f"/api/streams/{sid}/moderation-log", headers=auth(OWNER))).json()
    assert [(e["action"], e["comment_id"]) for e in log["data"]] == [
        ("comment_deleted", comment_id),
        ("pin", comment_id),
    ]
