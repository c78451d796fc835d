"""One contract for the broker and presence backends, run on memory and on Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from redisutil import delete_prefix, new_prefix, require_redis
from tajiri_live.core.ratelimit import RedisRateLimiter
from tajiri_live.realtime.broker_memory import MemoryBroker
from tajiri_live.realtime.broker_redis import RedisBroker
from tajiri_live.realtime.events import Event
from tajiri_live.realtime.presence import Predecessor
from tajiri_live.realtime.presence_memory import MemoryPresence
from tajiri_live.realtime.presence_redis import RedisPresence

BEAT, TIMEOUT = 0.1, 0.5  # a node's heartbeat period and the silence that gets it reaped


@pytest.fixture(params=["memory", "redis"])
async def make_presence(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], Any]]:
    """A factory of registered nodes sharing one store (the memory backend is one node)."""
    if request.param == "memory":
        shared = MemoryPresence(address_cap=3)
        await shared.register()

        async def same() -> MemoryPresence:
            return shared

        yield same
        return
    url = require_redis()
    prefix = new_prefix()
    clients: list[Redis] = []

    async def make() -> RedisPresence:
        client = Redis.from_url(url)
        clients.append(client)
        node = RedisPresence(
            client,
            prefix=prefix,
            address_cap=3,
            heartbeat_seconds=BEAT,
            node_timeout_seconds=TIMEOUT,
        )
        await node.register()
        return node

    yield make
    for client in clients:
        await client.aclose()
    await delete_prefix(url, prefix)


async def test_a_person_is_one_visit_across_connections_nodes_and_rest_joins(
    make_presence: Callable[[], Any],
) -> None:
    node_a, node_b = await make_presence(), await make_presence()
    room, t = "stream:1", time.time()
    first = await node_a.hold(room, "u:1", at=t)
    assert first.counted and first.started is not None and first.started.started_at == t
    for held in (
        await node_a.hold(room, "u:1", at=t + 1),  # a second tab
        await node_b.hold(room, "u:1", at=t + 2),  # a phone on another node
        await node_b.hold_for(room, "u:1", seconds=90, at=t + 3),  # and a REST join
    ):
        assert held.counted and held.started is None
    await node_a.hold(room, "u:2", at=t)
    counts = await node_a.counts(room)
    assert (counts.current, counts.visits, counts.unique, counts.peak) == (2, 2, 2, 2)
    assert await node_a.release(room, "u:1", at=t + 4) is None
    assert await node_a.release(room, "u:1", at=t + 5) is None
    assert await node_b.release(room, "u:1", at=t + 6) is None  # the REST join still holds
    assert (await node_b.counts(room)).current == 2
    ended = await node_b.drop(room, "u:1", at=t + 7)  # the REST leave: the last holder
    assert ended is not None and ended.key == first.started.key and ended.ended_at == t + 7
    assert await node_b.drop(room, "u:1", at=t + 8) is None  # told once
    assert first.started.key in await node_a.visit_keys("stream:9") | {first.started.key}
    assert first.started.key not in await node_a.visit_keys(room)
    again = await node_b.hold(room, "u:1", at=t + 9)  # back later: a second visit
    assert again.started is not None and again.started.key != first.started.key
    counts = await node_a.counts(room)
    assert (counts.current, counts.visits, counts.unique) == (2, 3, 2)


async def test_a_rest_join_lapses_unless_renewed(make_presence: Callable[[], Any]) -> None:
    node = await make_presence()
    room, t = "stream:2", time.time()
    held = await node.hold_for(room, "u:5", seconds=90, at=t, region="Arusha")
    assert held.started is not None and held.started.region == "Arusha"
    await node.hold_for(room, "u:5", seconds=90, at=t + 60)  # renewed: counts until t + 150
    assert await node.sweep(at=t + 100) == []
    ended = await node.sweep(at=t + 150)
    assert [(v.member, v.key, v.ended_at) for v in ended] == [("u:5", held.started.key, t + 150)]
    counts = await node.counts(room)
    assert (counts.current, counts.visits) == (0, 1)  # a renewal is not a visit


async def test_broadcasters_are_never_counted(make_presence: Callable[[], Any]) -> None:
    node_a, node_b = await make_presence(), await make_presence()
    room, t = "stream:3", time.time()
    await node_a.hold(room, "u:7", at=t)  # watching, until accepted as a co-host
    await node_b.hold_for(room, "u:7", seconds=90, at=t)
    ended = await node_b.exclude(room, "u:7", at=t + 5)
    assert ended is not None and ended.ended_at == t + 5
    assert (await node_a.counts(room)).current == 0
    assert not (await node_b.hold(room, "u:7", at=t + 6)).counted
    assert not (await node_a.hold_for(room, "u:7", seconds=90, at=t + 6)).counted
    assert await node_a.release(room, "u:7", at=t + 7) is None
    assert await node_b.release(room, "u:7", at=t + 7) is None
    assert (await node_a.counts(room)).current == 0
    await node_a.include(room, "u:7")  # no longer a co-host
    assert (await node_b.hold(room, "u:7", at=t + 8)).started is not None
    assert (await node_a.counts(room)).peak == 1


async def test_anonymous_viewers_are_capped_per_address(make_presence: Callable[[], Any]) -> None:
    node_a, node_b = await make_presence(), await make_presence()
    room, t = "stream:4", time.time()
    nat = "198.51.100.7"
    counted = [
        (await node.hold(room, f"a:{n}", at=t, address=nat)).counted
        for n, node in enumerate((node_a, node_b, node_a, node_b, node_a))
    ]
    assert counted == [True, True, True, False, False]  # a script cannot inflate the count
    assert (await node_a.hold(room, "a:other", at=t, address="203.0.113.9")).counted
    assert (await node_a.hold(room, "u:1", at=t, address=nat)).counted  # people are not capped
    assert (await node_a.counts(room)).current == 5
    assert await node_b.release(room, "a:3", at=t) is None  # it never counted
    assert (await node_b.release(room, "a:1", at=t)) is not None
    assert (await node_b.hold(room, "a:5", at=t, address=nat)).counted  # a place came free


async def test_the_peak_is_monotonic(make_presence: Callable[[], Any]) -> None:
    presence = await make_presence()
    t = time.time()
    for n in range(4):
        await presence.hold("stream:5", f"u:{n}", at=t)
    for n in range(4):
        await presence.release("stream:5", f"u:{n}", at=t)
    counts = await presence.counts("stream:5")
    assert (counts.current, counts.peak) == (0, 4)


async def test_one_publisher_per_period_and_only_on_change(
    make_presence: Callable[[], Any],
) -> None:
    node_a, node_b = await make_presence(), await make_presence()
    results = await asyncio.gather(
        node_a.publish_if_changed("stream:6", "5|5", period=10),
        node_b.publish_if_changed("stream:6", "5|5", period=10),
    )
    assert sorted(results) == [False, True]
    assert not await node_a.publish_if_changed("stream:6", "6|6", period=10)  # same period
    # a new period: a changed value goes out once; the same value again does not
    later = await asyncio.gather(
        node_a.publish_if_changed("stream:6", "7|7", period=0.2),
        node_b.publish_if_changed("stream:6", "7|7", period=0.2),
    )
    assert sorted(later) == [False, True]
    await asyncio.sleep(0.25)
    assert not await node_b.publish_if_changed("stream:6", "7|7", period=0.2)


async def test_rooms_are_listed_until_retired_empty(make_presence: Callable[[], Any]) -> None:
    presence = await make_presence()
    t = time.time()
    await presence.hold_for("stream:7", "u:1", seconds=1, at=t)
    assert "stream:7" in await presence.rooms()
    await presence.retire("stream:7")
    assert "stream:7" in await presence.rooms()  # not empty yet
    await presence.sweep(at=t + 1)
    assert "stream:7" in await presence.rooms()  # its zero is still to be published
    await presence.retire("stream:7")
    assert "stream:7" not in await presence.rooms()
    assert (await presence.counts("stream:7")).peak == 1  # the totals stay


@pytest.fixture
async def redis_nodes() -> AsyncIterator[Callable[..., Any]]:
    """Redis only (the memory backend is one node by definition): nodes that may die."""
    url = require_redis()
    prefix = new_prefix()
    client = Redis.from_url(url)

    async def make(predecessor: Predecessor | None = None) -> RedisPresence:
        node = RedisPresence(
            client,
            prefix=prefix,
            heartbeat_seconds=BEAT,
            node_timeout_seconds=TIMEOUT,
        )
        node.ended = await node.register(predecessor=predecessor)  # type: ignore[attr-defined]
        return node

    yield make
    await client.aclose()
    await delete_prefix(url, prefix)


async def beat_for(seconds: float, *nodes: RedisPresence) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for node in nodes:
            await node.heartbeat(at=time.time())
        await asyncio.sleep(BEAT)


async def test_a_dead_nodes_visits_end_at_its_last_heartbeat(
    redis_nodes: Callable[..., Any],
) -> None:
    alive, dead = await redis_nodes(), await redis_nodes()
    room, t = "stream:8", time.time()
    await alive.hold(room, "u:1", at=t)
    await dead.hold(room, "u:1", at=t)  # the same person on both nodes
    await dead.hold(room, "a:x", at=t)  # and an anonymous viewer only on the dying one
    await dead.heartbeat(at=t)
    last_beat = time.time()
    await beat_for(TIMEOUT * 0.6, alive)  # `dead` has stopped beating: killed
    await alive.hold(room, "a:y", at=time.time())  # a reconnect while the other is in doubt
    assert (await alive.counts(room)).peak == 2  # 3 present, one a ghost: no peak of 3
    await beat_for(TIMEOUT, alive)
    ended = await alive.sweep(at=time.time())
    assert [v.member for v in ended] == ["a:x"]  # the person is still held by `alive`
    assert abs(ended[0].ended_at - last_beat) < 2 * BEAT + 0.05
    counts = await alive.counts(room)
    assert (counts.current, counts.peak) == (2, 2)
    assert await alive.sweep(at=time.time()) == []  # reaped once


async def test_a_successor_in_the_same_slot_reaps_its_predecessor_at_once(
    redis_nodes: Callable[..., Any],
) -> None:
    before = await redis_nodes()
    t = time.time()
    await before.hold("stream:9", "a:1", at=t)
    await before.hold("stream:9", "u:2", at=t)
    last = Predecessor(before.node_id, time.time())
    after = await redis_nodes(predecessor=last)  # no waiting for the timeout
    assert sorted(v.member for v in after.ended) == ["a:1", "u:2"]
    assert (await after.counts("stream:9")).current == 0
    again = await redis_nodes(predecessor=last)  # a later start finds nothing left
    assert again.ended == []


async def test_a_node_reaped_while_alive_holds_its_connections_again(
    redis_nodes: Callable[..., Any],
) -> None:
    paused, other = await redis_nodes(), await redis_nodes()
    room, t = "stream:10", time.time()
    first = await paused.hold(room, "u:3", at=t)
    await beat_for(TIMEOUT * 1.5, other)  # `paused` is silent: a long stall
    ended = await other.sweep(at=time.time())
    assert [v.key for v in ended] == [first.started.key]
    beat = await paused.heartbeat(at=time.time())  # it wakes up and finds itself reaped
    assert beat.recovered and [v.member for v in beat.started] == ["u:3"]
    assert beat.started[0].key != first.started.key  # a new visit
    assert (await other.counts(room)).current == 1
    assert await paused.release(room, "u:3", at=time.time()) is not None


@pytest.fixture(params=["memory", "redis"])
async def brokers(request: pytest.FixtureRequest) -> AsyncIterator[list[Any]]:
    """Two brokers that form one cluster."""
    if request.param == "memory":
        shared = MemoryBroker()
        yield [shared, shared]
        await shared.close()
        return
    url = require_redis()
    prefix = new_prefix()
    client = Redis.from_url(url, client_name=prefix + "broker")
    pair = [RedisBroker(client, prefix=prefix), RedisBroker(client, prefix=prefix)]
    yield pair
    for broker in pair:
        await broker.close()
    await client.aclose()


async def test_a_join_storms_holds_are_applied_in_batches_in_the_order_asked(
    redis_nodes: Callable[..., Any],
) -> None:
    node = await redis_nodes()
    room, t = "stream:21", time.time()
    members = [f"u:{n}" for n in range(300)]
    held = await asyncio.gather(*(node.hold(room, m, at=t) for m in members))
    assert all(h.counted and h.started is not None for h in held)
    assert len({h.started.key for h in held}) == 300
    assert node._changes.items == 300
    assert node._changes.calls < 30  # one script call per change would be 300
    # A hold and its release asked together: the release is applied after the hold, so
    # nobody is left counted (applied the other way round the hold would stay).
    before = node._changes.calls
    await asyncio.gather(node.hold(room, "u:late", at=t), node.release(room, "u:late", at=t))
    assert node._changes.calls == before + 1  # the two changes went in one call
    counts = await node.counts(room)
    assert (counts.current, counts.visits, counts.peak) == (300, 301, 301)


async def test_a_change_redis_refuses_fails_alone_in_its_batch(
    redis_nodes: Callable[..., Any],
) -> None:
    node = await redis_nodes()
    t = time.time()
    # A room whose visits key is not a hash: Redis refuses every change to it.
    await node._redis.set(node._key("visits", "stream:broken"), "x")
    broken, fine = await asyncio.gather(
        node.hold("stream:broken", "u:1", at=t),
        node.hold("stream:22", "u:1", at=t),
        return_exceptions=True,
    )
    assert isinstance(broken, ResponseError) and "WRONGTYPE" in str(broken)
    assert node.local.get("stream:broken", "u:1") is None  # not kept as held
    assert not isinstance(fine, BaseException) and fine.started is not None
    assert (await node.counts("stream:22")).current == 1


async def test_events_reach_every_node_in_order(brokers: list[Any]) -> None:
    seen: list[list[str]] = [[], []]
    done = asyncio.Event()

    def handler(index: int) -> Any:
        async def handle(event: Event) -> None:
            seen[index].append(event.data["n"])
            if all(len(s) >= 10 for s in seen) or (brokers[0] is brokers[1] and len(seen[1]) >= 10):
                done.set()

        return handle

    await brokers[0].start(handler(0))
    await brokers[1].start(handler(1))
    for n in range(10):
        await brokers[0].publish(Event("stream.1", "gift_sent", {"n": n}, also=("streams",)))
    await asyncio.wait_for(done.wait(), 5)
    assert seen[0] == list(range(10)) and seen[1] == list(range(10))


async def test_a_burst_of_events_goes_out_in_order_in_few_calls_and_closing_sends_the_rest() -> (
    None
):
    url = require_redis()
    prefix = new_prefix()
    client = Redis.from_url(url)
    publisher, listener = RedisBroker(client, prefix=prefix), RedisBroker(client, prefix=prefix)
    received: list[int] = []
    all_in = asyncio.Event()
    try:

        async def handle(event: Event) -> None:
            received.append(event.data["n"])
            if len(received) == 320:
                all_in.set()

        await listener.start(handle)
        await asyncio.gather(
            *(publisher.publish(Event("stream.1", "new_comment", {"n": n})) for n in range(300))
        )
        assert publisher._publishes.items == 300 and publisher._publishes.calls < 60
        # Published and not awaited, then closed at once: closing sends them first.
        late = [
            asyncio.create_task(publisher.publish(Event("stream.1", "new_comment", {"n": n})))
            for n in range(300, 320)
        ]
        await asyncio.sleep(0)
        await publisher.close()
        await asyncio.gather(*late)
        await asyncio.wait_for(all_in.wait(), 5)
        assert received == list(range(320))
    finally:
        await listener.close()
        await client.aclose()


async def test_concurrent_hits_on_one_limit_admit_exactly_the_limit() -> None:
    url = require_redis()
    prefix = new_prefix()
    client = Redis.from_url(url)
    limiter = RedisRateLimiter(client, prefix=prefix)
    try:
        waits = await asyncio.gather(
            *(limiter.hit("comment:1:7", limit=20, window=30) for _ in range(50)),
            limiter.hit("comment:1:8", limit=20, window=30),
        )
        assert waits.count(0.0) == 21  # 20 of the first person's, and the other person's one
        assert all(0 < wait <= 30 for wait in waits if wait)
        assert limiter._hits.calls < 51
    finally:
        await limiter.close()
        await client.aclose()
        await delete_prefix(url, prefix)


async def test_redis_subscription_comes_back_after_its_connection_is_killed() -> None:
    url = require_redis()
    prefix = new_prefix()
    name = prefix.replace(":", "-") + "sub"
    client = Redis.from_url(url, client_name=name)
    broker = RedisBroker(client, prefix=prefix)
    received: list[int] = []
    try:

        async def handle(event: Event) -> None:
            received.append(event.data["n"])

        await broker.start(handle)
        admin = Redis.from_url(url)
        killed = 0
        for entry in await admin.client_list():
            if entry.get("name") == name and "subscribe" in entry.get("cmd", ""):
                await admin.client_kill_filter(_id=entry["id"])
                killed += 1
        assert killed == 1
        deadline = time.monotonic() + 10
        n = 0
        while not received and time.monotonic() < deadline:
            n += 1
            await broker.publish(Event("stream.1", "gift_sent", {"n": n}))
            await asyncio.sleep(0.1)
        assert received, "no event arrived after the subscription was killed"
        await admin.aclose()
    finally:
        await broker.close()
        await client.aclose()
