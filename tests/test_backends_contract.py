"""One contract for the broker and presence backends, run on memory and on Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from redisutil import delete_prefix, new_prefix, require_redis
from tajiri_live.realtime.broker_memory import MemoryBroker
from tajiri_live.realtime.broker_redis import RedisBroker
from tajiri_live.realtime.events import Event
from tajiri_live.realtime.presence_memory import MemoryPresence
from tajiri_live.realtime.presence_redis import RedisPresence

TTL = 0.3


@pytest.fixture(params=["memory", "redis"])
async def make_presence(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], Any]]:
    """A factory of presence instances sharing one store (several nodes)."""
    if request.param == "memory":
        shared = MemoryPresence(member_ttl=TTL, now=time.time)
        yield lambda: shared
        return
    url = require_redis()
    prefix = new_prefix()
    clients: list[Redis] = []

    def make() -> RedisPresence:
        client = Redis.from_url(url)
        clients.append(client)
        return RedisPresence(client, prefix=prefix, member_ttl=TTL)

    yield make
    for client in clients:
        await client.aclose()
    await delete_prefix(url, prefix)


async def test_members_count_once_and_leave_when_their_last_connection_does(
    make_presence: Callable[[], Any],
) -> None:
    presence = make_presence()
    await presence.join("stream:1", "u:1")
    await presence.join("stream:1", "u:1")  # a second tab of the same user
    await presence.join("stream:1", "u:2")
    counts = await presence.counts("stream:1")
    assert (counts.current, counts.total_joins, counts.unique) == (2, 3, 2)
    await presence.leave("stream:1", "u:1")
    assert (await presence.counts("stream:1")).current == 2
    await presence.leave("stream:1", "u:1")
    assert (await presence.counts("stream:1")).current == 1


async def test_peak_is_monotonic(make_presence: Callable[[], Any]) -> None:
    presence = make_presence()
    for n in range(4):
        await presence.join("stream:2", f"u:{n}")
    for n in range(4):
        await presence.leave("stream:2", f"u:{n}")
    counts = await presence.counts("stream:2")
    assert (counts.current, counts.peak) == (0, 4)


async def test_entries_expire_unless_renewed(make_presence: Callable[[], Any]) -> None:
    node = make_presence()
    await node.join("stream:3", "u:1")  # a connection: renewed by its node
    await node.join("stream:3", "u:9", ttl=TTL)  # a REST join that is never renewed
    for _ in range(3):
        await asyncio.sleep(TTL / 2)
        await node.renew()
    counts = await node.counts("stream:3")
    assert counts.current == 1 and counts.peak == 2


async def test_a_dead_nodes_viewers_expire() -> None:
    """Redis only: the memory backend is one node by definition."""
    url = require_redis()
    prefix = new_prefix()
    client = Redis.from_url(url)
    alive = RedisPresence(client, prefix=prefix, member_ttl=TTL)
    dead = RedisPresence(client, prefix=prefix, member_ttl=TTL)
    await alive.join("stream:6", "u:1")
    await dead.join("stream:6", "u:2")
    assert (await alive.counts("stream:6")).current == 2
    for _ in range(3):
        await asyncio.sleep(TTL / 2)
        await alive.renew()  # `dead` stopped renewing: its process died
    assert (await alive.counts("stream:6")).current == 1
    await client.aclose()
    await delete_prefix(url, prefix)


async def test_one_publisher_per_period_and_only_on_change(
    make_presence: Callable[[], Any],
) -> None:
    node_a, node_b = make_presence(), make_presence()
    results = await asyncio.gather(
        node_a.publish_if_changed("stream:4", "5|5", period=10),
        node_b.publish_if_changed("stream:4", "5|5", period=10),
    )
    assert sorted(results) == [False, True]
    assert not await node_a.publish_if_changed("stream:4", "6|6", period=10)  # same period
    # a new period: a changed value goes out once; the same value again does not
    later = await asyncio.gather(
        node_a.publish_if_changed("stream:4", "7|7", period=0.2),
        node_b.publish_if_changed("stream:4", "7|7", period=0.2),
    )
    assert sorted(later) == [False, True]
    await asyncio.sleep(0.25)
    assert not await node_b.publish_if_changed("stream:4", "7|7", period=0.2)


async def test_rooms_are_listed_until_retired_empty(make_presence: Callable[[], Any]) -> None:
    presence = make_presence()
    await presence.join("stream:5", "u:1", ttl=TTL)
    assert "stream:5" in await presence.rooms()
    await presence.retire("stream:5")
    assert "stream:5" in await presence.rooms()  # not empty yet
    await asyncio.sleep(TTL + 0.05)
    await presence.retire("stream:5")
    assert "stream:5" not in await presence.rooms()


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
