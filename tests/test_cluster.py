"""Two `serve` processes sharing the database and Redis: one cluster, as in production."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import websockets
from redis.asyncio import Redis

from conftest import TEST_SECRET
from redisutil import delete_prefix, new_prefix, require_redis
from servers import ServerProcess
from tajiri_live.core.auth import TokenCodec
from tajiri_live.core.db import create_engine
from tajiri_live.core.settings import Settings
from tajiri_live.realtime.broker_redis import encode_event
from tajiri_live.realtime.events import Event
from tajiri_live.streams.models import StreamViewer
from wsclient import Viewer

CREATOR = 1


@pytest.fixture
def cluster(tmp_path: Path, database_url: str) -> Iterator[tuple[ServerProcess, ...]]:
    url = require_redis()
    prefix = new_prefix()
    env = {
        "TAJIRI_REDIS_URL": url,
        "TAJIRI_REDIS_PREFIX": prefix,
        "TAJIRI_SLOW_CONSUMER_BYTES": "262144",
    }
    nodes = tuple(ServerProcess(tmp_path / name, database_url, **env) for name in ("a", "b"))
    for node in nodes:
        node.workdir.mkdir()
        node.start()
    yield nodes
    for node in nodes:
        node.stop()
    asyncio.run(delete_prefix(url, prefix))


@pytest.fixture
def tokens() -> TokenCodec:
    return TokenCodec(Settings(jwt_secret=TEST_SECRET))


@pytest.fixture
async def creator(cluster: tuple[ServerProcess, ...], tokens: TokenCodec) -> AsyncIterator[Any]:
    headers = {"Authorization": f"Bearer {tokens.encode(CREATOR)}"}
    async with httpx.AsyncClient(base_url=cluster[0].url, headers=headers) as client:
        yield client


async def test_status_and_counts_are_cluster_wide_and_survive_a_dead_node(
    cluster: tuple[ServerProcess, ...], creator: Any, tokens: TokenCodec
) -> None:
    node_a, node_b = cluster
    stream_id = (await creator.post("/api/streams", json={"title": "x"})).json()["data"]["id"]
    on_a = [
        await Viewer.connect(f"{node_a.ws}/streams/{stream_id}?token={tokens.encode(10 + i)}")
        for i in range(3)
    ]
    on_b = [
        await Viewer.connect(f"{node_b.ws}/streams/{stream_id}?token={tokens.encode(20 + i)}")
        for i in range(2)
    ]
    for viewer in on_a + on_b:
        await viewer.wait_for(lambda e: e["event"] == "connected")

    started = time.monotonic()
    await creator.post(f"/api/streams/{stream_id}/start")  # on node A
    for viewer in on_b:
        await viewer.wait_for(
            lambda e: e["event"] == "status_changed" and e["data"]["status"] == "live"
        )
    print(f"status_changed A->B in {(time.monotonic() - started) * 1000:.1f} ms")

    def five(e: dict[str, Any]) -> bool:
        return e["event"] == "viewer_count_updated" and e["data"]["current_viewers"] == 5

    for viewer in on_a + on_b:
        await viewer.wait_for(five)
    # One cluster-wide stream of numbers: whoever connected later saw a later part of it.
    sequences = [
        tuple(d["current_viewers"] for d in v.named("viewer_count_updated")) for v in on_a + on_b
    ]
    longest = max(sequences, key=len)
    assert all(longest[len(longest) - len(seq) :] == seq for seq in sequences), sequences

    node_a.kill()  # its three viewers vanish without a goodbye
    for viewer in on_b:
        await viewer.wait_for(
            lambda e: (
                e["event"] == "viewer_count_updated"
                and e["data"]["current_viewers"] == 2
                and e["data"]["peak_viewers"] == 5
            ),
            within=10,
        )
    for viewer in on_b:
        await viewer.close()
    for viewer in on_a:
        await viewer.close()


async def test_a_consumer_that_does_not_read_is_closed_and_others_lose_nothing(
    cluster: tuple[ServerProcess, ...], creator: Any, tokens: TokenCodec
) -> None:
    _, node_b = cluster
    stream_id = (await creator.post("/api/streams", json={"title": "x"})).json()["data"]["id"]
    reader = await Viewer.connect(f"{node_b.ws}/streams/{stream_id}", max_size=None)
    await reader.wait_for(lambda e: e["event"] == "connected")

    # A raw client that completes the handshake and then never reads.
    stalled = socket.create_connection(("127.0.0.1", node_b.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(
        f"GET /streams/{stream_id} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode()
    )
    assert b"101" in stalled.recv(200)

    redis = Redis.from_url(require_redis())
    channel = node_b.env["TAJIRI_REDIS_PREFIX"] + "events"
    blob = "x" * 50_000
    total = 800  # 40 MB: far beyond kernel buffers and the 256 KB limit
    for n in range(total):
        event = Event(f"stream.{stream_id}", "gift_sent", {"n": n, "pad": blob})
        await redis.publish(channel, encode_event(event))
        if n % 50 == 0:
            await asyncio.sleep(0.01)
    await redis.aclose()

    await reader.wait_for(
        lambda e: e["event"] == "gift_sent" and e["data"]["n"] == total - 1, within=30
    )
    assert [d["n"] for d in reader.named("gift_sent")] == list(range(total))
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(f"{node_b.url}/metrics")).text
    slow_closed = next(
        int(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith("tajiri_ws_slow_closed_total")
    )
    assert slow_closed == 1
    stalled.close()
    await reader.close()


async def test_comments_cross_nodes_and_rate_limits_hold_across_them(
    cluster: tuple[ServerProcess, ...], tokens: TokenCodec
) -> None:
    node_a, node_b = cluster
    owner = {"Authorization": f"Bearer {tokens.encode(CREATOR)}"}
    fan = {"Authorization": f"Bearer {tokens.encode(7)}"}
    async with httpx.AsyncClient() as client:
        created = await client.post(f"{node_a.url}/api/streams", json={"title": "x"}, headers=owner)
        stream_id = created.json()["data"]["id"]
        await client.post(f"{node_a.url}/api/streams/{stream_id}/start", headers=owner)
        viewer = await Viewer.connect(f"{node_b.ws}/streams/{stream_id}")
        await viewer.wait_for(lambda e: e["event"] == "connected")
        first = await client.post(
            f"{node_a.url}/api/streams/{stream_id}/comments",
            json={"content": "from A"},
            headers=fan,
        )
        assert first.status_code == 201
        seen = await viewer.wait_for(lambda e: e["event"] == "new_comment")
        assert seen["data"]["content"] == "from A" and seen["data"]["user_id"] == 7
        second = await client.post(
            f"{node_b.url}/api/streams/{stream_id}/comments",
            json={"content": "from B, too soon"},
            headers=fan,
        )
        assert second.status_code == 429 and int(second.headers["Retry-After"]) >= 1
        await viewer.close()


async def test_a_ban_on_one_node_closes_the_users_sockets_on_the_other(
    cluster: tuple[ServerProcess, ...], tokens: TokenCodec
) -> None:
    node_a, node_b = cluster
    owner = {"Authorization": f"Bearer {tokens.encode(CREATOR)}"}
    async with httpx.AsyncClient() as client:
        created = await client.post(f"{node_a.url}/api/streams", json={"title": "x"}, headers=owner)
        stream_id = created.json()["data"]["id"]
        await client.post(f"{node_a.url}/api/streams/{stream_id}/start", headers=owner)
        url = f"{node_b.ws}/streams/{stream_id}?token={tokens.encode(8)}"
        troll = await Viewer.connect(url)
        bystander = await Viewer.connect(f"{node_b.ws}/streams/{stream_id}")
        for viewer in (troll, bystander):
            await viewer.wait_for(lambda e: e["event"] == "connected")
        banned = await client.post(
            f"{node_a.url}/api/streams/{stream_id}/bans",
            json={"user_id": 8, "reason": "spam"},
            headers=owner,
        )
        assert banned.status_code == 201
        told = await troll.wait_for(lambda e: e["event"] == "user_banned")
        assert told["data"]["user_id"] == 8
        await asyncio.wait_for(troll.connection.wait_closed(), 5)
        assert troll.connection.close_code == 1008
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(url)
        assert refused.value.response.status_code == 403
        await bystander.send("ping", {"timestamp": 1})
        await bystander.wait_for(lambda e: e["event"] == "pong")  # others stay
        await bystander.close()
        await troll.close()


async def test_a_node_drops_the_stream_facts_it_keeps_when_another_node_changes_them(
    cluster: tuple[ServerProcess, ...], creator: Any, tokens: TokenCodec
) -> None:
    """Node B admits from facts it keeps; `status_changed` and `cohost_joined` published by
    node A drop them there before B's sockets hear the event."""
    node_a, node_b = cluster
    stream_id = (await creator.post("/api/streams", json={"title": "x"})).json()["data"]["id"]
    await creator.post(f"/api/streams/{stream_id}/start")
    watcher = await Viewer.connect(f"{node_b.ws}/streams/{stream_id}?token={tokens.encode(40)}")
    await watcher.wait_for(lambda e: e["event"] == "connected")
    async with httpx.AsyncClient(base_url=node_b.url) as on_b:

        async def join(user: int) -> httpx.Response:
            headers = {"Authorization": f"Bearer {tokens.encode(user)}"}
            return await on_b.post(f"/api/streams/{stream_id}/join", headers=headers)

        assert (await join(41)).status_code == 200  # B keeps the facts now
        invited = await creator.post(f"/api/streams/{stream_id}/cohosts", json={"user_id": 42})
        cohost_id = invited.json()["data"]["id"]
        cohost = {"Authorization": f"Bearer {tokens.encode(42)}"}
        async with httpx.AsyncClient(base_url=node_a.url, headers=cohost) as as_cohost:
            accepted = await as_cohost.put(
                f"/api/streams/{stream_id}/cohosts/{cohost_id}", json={"status": "accepted"}
            )
            assert accepted.status_code == 200, accepted.text
        await watcher.wait_for(lambda e: e["event"] == "cohost_joined")
        hosting = await join(42)
        assert hosting.status_code == 200
        # A broadcaster is never a viewer: B counts the socket's 40 and the join's 41 only.
        assert hosting.json()["current_viewers"] == 2

        await creator.post(f"/api/streams/{stream_id}/end")  # on node A
        await watcher.wait_for(
            lambda e: e["event"] == "status_changed" and e["data"]["status"] == "ending"
        )
        late = await join(43)
        assert late.status_code == 410 and late.json()["stream_status"] == "ending"
    await watcher.close()


async def test_pusher_clients_on_two_nodes_share_channels_presence_and_events(
    cluster: tuple[ServerProcess, ...], creator: Any, tokens: TokenCodec
) -> None:
    import pusher

    from jsclient import JsClient
    from tajiri_live.broadcasting.apps import derived_secret

    node_a, node_b = cluster
    stream_id = (await creator.post("/api/streams", json={"title": "x"})).json()["data"]["id"]
    presence = f"presence-stream.{stream_id}"
    on_b = await JsClient.start(
        node_b,
        token=tokens.encode(10),
        subscribe=[
            {"channel": f"stream.{stream_id}"},
            {"channel": presence},
            {"channel": "orders"},
        ],
    )
    await on_b.subscribed(presence)
    on_a = await JsClient.start(node_a, token=tokens.encode(11), subscribe=[{"channel": presence}])
    plain = await Viewer.connect(f"{node_a.ws}/streams/{stream_id}?token={tokens.encode(12)}")
    try:
        await on_b.subscribed("orders")
        added = await on_b.wait_for(lambda line: line["type"] == "member_added")
        assert added["member"]["id"] == "11"  # a member on the other node
        await on_a.subscribed(presence)

        secret = derived_secret(Settings(jwt_secret=TEST_SECRET))
        sdk_a, sdk_b = (
            pusher.Pusher(
                app_id="1",
                key="tajiri-live",
                secret=secret,
                host="127.0.0.1",
                port=n.port,
                ssl=False,
            )
            for n in (node_a, node_b)
        )
        sdk_a.trigger("orders", "shipped", {"order": 1})  # HTTP API on A, subscriber on B
        shipped = await on_b.wait_for(lambda line: line.get("event") == "shipped")
        assert shipped["data"] == {"order": 1}
        users = sdk_b.users_info(presence)["users"]
        assert sorted(u["id"] for u in users) == ["10", "11"]
        channels = sdk_a.channels_info(prefix_filter="presence-", attributes=["user_count"])
        assert channels["channels"] == {presence: {"user_count": 2}}

        await creator.post(f"/api/streams/{stream_id}/start")
        posted = await creator.post(
            f"/api/streams/{stream_id}/comments", json={"content": "salamu"}
        )
        comment_id = posted.json()["data"]["id"]
        heard = await on_b.wait_for(lambda line: line.get("event") == "new_comment")
        seen = await plain.wait_for(lambda e: e["event"] == "new_comment")
        assert heard["data"]["id"] == seen["data"]["id"] == comment_id

        await on_a.close()
        removed = await on_b.wait_for(lambda line: line["type"] == "member_removed")
        assert removed["member"]["id"] == "11"
    finally:
        await on_b.close()
        await on_a.close()
        await plain.close()


async def session_rows(database_url: str, stream_id: int) -> list[Any]:
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                sa.select(StreamViewer.user_id, StreamViewer.joined_at, StreamViewer.left_at)
                .where(StreamViewer.stream_id == stream_id)
                .order_by(StreamViewer.id)
            )
        ).all()
    await engine.dispose()
    return list(rows)


async def until(check: Any, within: float = 60.0) -> Any:
    """Poll `check()` until it returns something true (the bar: right within 60 s)."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.2)


async def test_after_kill_9_counts_sessions_and_the_viewers_list_are_right_and_no_ghost_peaks(
    cluster: tuple[ServerProcess, ...], creator: Any, tokens: TokenCodec, database_url: str
) -> None:
    node_a, node_b = cluster
    stream_id = (await creator.post("/api/streams", json={"title": "x"})).json()["data"]["id"]
    await creator.post(f"/api/streams/{stream_id}/start")
    path = f"/streams/{stream_id}"

    async def on_a() -> list[Viewer]:
        return [
            await Viewer.connect(f"{node_a.ws}{path}?token={tokens.encode(10)}"),
            await Viewer.connect(f"{node_a.ws}{path}?token={tokens.encode(11)}"),
            await Viewer.connect(f"{node_a.ws}{path}"),
            await Viewer.connect(f"{node_a.ws}{path}"),
        ]

    doomed = await on_a()
    on_b = [
        await Viewer.connect(f"{node_b.ws}{path}?token={tokens.encode(10)}"),  # 10 on both
        await Viewer.connect(f"{node_b.ws}{path}?token={tokens.encode(20)}"),
        await Viewer.connect(f"{node_b.ws}{path}?token={tokens.encode(CREATOR)}"),  # not one
    ]
    joined = await creator.post(
        f"/api/streams/{stream_id}/join", headers={"Authorization": f"Bearer {tokens.encode(30)}"}
    )
    assert joined.status_code == 200
    # People 10, 11, 20, 30 and two anonymous sockets.
    await on_b[1].wait_for(
        lambda e: e["event"] == "viewer_count_updated" and e["data"]["current_viewers"] == 6
    )

    owner = {"Authorization": f"Bearer {tokens.encode(CREATOR)}"}
    survivor = httpx.AsyncClient(base_url=node_b.url, headers=owner)  # A is about to die

    async def stream() -> dict[str, Any]:
        data: dict[str, Any] = (await survivor.get(f"/api/streams/{stream_id}")).json()["data"]
        return data

    async def watching() -> list[int]:
        listed = (await survivor.get(f"/api/streams/{stream_id}/viewers")).json()["data"]
        return sorted(v["user_id"] for v in listed)

    assert await until(lambda: _open_count(database_url, stream_id, 6))
    assert await watching() == [10, 11, 20, 30]

    node_a.kill()  # 11 and the two anonymous viewers vanish; 10 still watches on B
    killed_at = datetime.now(UTC)
    for viewer in doomed:
        await viewer.close()
    assert await until(lambda: _current_is(stream, 3)), "counts not right within 60 s"

    async def listed_without_the_dead_nodes_viewers() -> bool:
        return await watching() == [10, 20, 30]

    # The count (the count job) and the visits' ends (the viewer log's flush) are written by
    # two jobs, up to a second apart: each must be right within the same bound.
    assert await until(listed_without_the_dead_nodes_viewers), await watching()
    rows = await session_rows(database_url, stream_id)
    ended = [r for r in rows if r.left_at is not None]
    assert sorted(r.user_id or 0 for r in ended) == [0, 0, 11]
    for row in ended:  # at A's last heartbeat (every 0.2 s), not when B noticed (2 s later)
        assert killed_at - timedelta(seconds=5) <= row.left_at <= killed_at
    assert len(rows) == 6  # person 10's visit goes on: the same row, still open
    assert (await stream())["peak_viewers"] == 6

    node_a.start()  # restarted: everyone comes back to it
    doomed = await on_a()
    assert await until(lambda: _current_is(stream, 6))
    # And again, restarted at once this time: the viewers are back before any timeout.
    node_a.kill()
    for viewer in doomed:
        await viewer.close()
    node_a.start()
    doomed = await on_a()
    assert await until(lambda: _current_is(stream, 6))
    await asyncio.sleep(1.5)  # several count periods
    shown = await stream()
    assert (shown["current_viewers"], shown["peak_viewers"]) == (6, 6)  # no ghost peak
    assert await watching() == [10, 11, 20, 30]
    rows = await session_rows(database_url, stream_id)
    assert len([r for r in rows if r.left_at is None]) == 6  # one open visit each
    for viewer in doomed + on_b:
        await viewer.close()
    await survivor.aclose()


async def _open_count(database_url: str, stream_id: int, expected: int) -> bool:
    rows = await session_rows(database_url, stream_id)
    return len([r for r in rows if r.left_at is None]) == expected


async def _current_is(stream: Any, expected: int) -> bool:
    return bool((await stream())["current_viewers"] == expected)


async def test_a_vote_on_one_node_reaches_viewers_on_the_other_and_totals_stay_exact(
    cluster: tuple[ServerProcess, ...], creator: Any, tokens: TokenCodec
) -> None:
    node_a, node_b = cluster
    stream_id = (await creator.post("/api/streams", json={"title": "x"})).json()["data"]["id"]
    await creator.post(f"/api/streams/{stream_id}/start")
    poll = (
        await creator.post(
            f"/api/streams/{stream_id}/polls",
            json={"question": "Ndiyo?", "options": ["Ndiyo", "Hapana"]},
        )
    ).json()["poll"]
    yes = poll["options"][0]["id"]
    on_b = await Viewer.connect(f"{node_b.ws}/streams/{stream_id}")
    voters = [
        await Viewer.connect(f"{node.ws}/streams/{stream_id}?token={tokens.encode(100 + n)}")
        for n, node in enumerate([node_a, node_b] * 10)
    ]
    for viewer in [on_b, *voters]:
        await viewer.wait_for(lambda e: e["event"] == "connected")
    started = time.monotonic()
    await voters[0].send("vote_poll", {"poll_id": poll["id"], "option_id": yes})  # on node A
    await on_b.wait_for(lambda e: e["event"] == "poll_vote" and e["data"]["votes"] == 1)
    print(f"poll_vote A->B in {(time.monotonic() - started) * 1000:.1f} ms")
    # both nodes count at once, and each voter a second time on the other node
    for voter in voters[1:]:
        await voter.send("vote_poll", {"poll_id": poll["id"], "option_id": yes})
    async with httpx.AsyncClient() as client:
        for n in range(20):
            twice = await client.post(
                f"{(node_b if n % 2 == 0 else node_a).url}/api/streams/{stream_id}/polls/"
                f"{poll['id']}/vote",
                json={"option_id": yes},
                headers={"Authorization": f"Bearer {tokens.encode(100 + n)}"},
            )
            assert twice.status_code == 409
    for viewer in [on_b, *voters]:  # every viewer, on either node, ends on the exact total
        await viewer.wait_for(lambda e: e["event"] == "poll_vote" and e["data"]["votes"] == 20)
        assert max(d["votes"] for d in viewer.named("poll_vote")) == 20
    closed = await creator.post(f"/api/streams/{stream_id}/polls/{poll['id']}/close")
    assert closed.json()["poll"]["options"][0]["votes"] == 20
    for viewer in [on_b, *voters]:
        await viewer.close()
