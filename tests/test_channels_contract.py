"""One contract for Pusher channel occupancy, run on memory and on Redis (two nodes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from redisutil import delete_prefix, new_prefix, require_redis
from tajiri_live.realtime.channels_memory import MemoryChannelRegistry
from tajiri_live.realtime.channels_redis import RedisChannelRegistry

TTL = 0.4


@pytest.fixture(params=["memory", "redis"])
async def make_registry(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], Any]]:
    """A factory of registries sharing one store (one per node)."""
    if request.param == "memory":
        shared = MemoryChannelRegistry()
        yield lambda: shared
        return
    url = require_redis()
    prefix = new_prefix()
    clients: list[Redis] = []

    def make() -> RedisChannelRegistry:
        client = Redis.from_url(url)
        clients.append(client)
        return RedisChannelRegistry(client, prefix=prefix, ttl=TTL)

    yield make
    for client in clients:
        await client.aclose()
    await delete_prefix(url, prefix)


async def test_subscriptions_are_counted_per_socket_and_per_app(
    make_registry: Callable[[], Any],
) -> None:
    node_a, node_b = make_registry(), make_registry()
    await node_a.subscribe("1", "orders", "1.1")
    await node_b.subscribe("1", "orders", "2.1")
    await node_b.subscribe("1", "news", "2.1")
    await node_b.subscribe("2", "orders", "2.2")  # another app's channel of the same name
    assert await node_a.subscription_count("1", "orders") == 2
    assert await node_a.occupied("1") == {"orders": 2, "news": 1}
    assert await node_a.occupied("1", "ord") == {"orders": 2}
    assert await node_a.occupied("2") == {"orders": 1}
    await node_b.unsubscribe("1", "orders", "2.1")
    await node_b.unsubscribe("1", "news", "2.1")
    assert await node_a.occupied("1") == {"orders": 1}


async def test_presence_members_are_added_and_removed_once_per_user(
    make_registry: Callable[[], Any],
) -> None:
    node_a, node_b = make_registry(), make_registry()
    channel = "presence-stream.5"
    assert await node_a.add_member("1", channel, "1.1", "7", {"name": "Amani"}) is True
    # The same user on another node: not a new member.
    assert await node_b.add_member("1", channel, "2.1", "7", {"name": "Amani"}) is False
    assert await node_b.add_member("1", channel, "2.2", "8", {"name": "Baraka"}) is True
    assert await node_a.members("1", channel) == {"7": {"name": "Amani"}, "8": {"name": "Baraka"}}
    assert await node_a.remove_member("1", channel, "1.1", "7") is False  # still on node B
    assert await node_b.remove_member("1", channel, "2.1", "7") is True  # the last socket
    assert await node_b.remove_member("1", channel, "2.1", "7") is False  # repeated: no-op
    assert await node_a.members("1", channel) == {"8": {"name": "Baraka"}}


@pytest.fixture
async def redis_nodes() -> AsyncIterator[tuple[RedisChannelRegistry, RedisChannelRegistry]]:
    """Two nodes on Redis (in memory there is one process: no other node can die)."""
    url = require_redis()
    prefix = new_prefix()
    clients = [Redis.from_url(url), Redis.from_url(url)]
    yield (
        RedisChannelRegistry(clients[0], prefix=prefix, ttl=TTL),
        RedisChannelRegistry(clients[1], prefix=prefix, ttl=TTL),
    )
    for client in clients:
        await client.aclose()
    await delete_prefix(url, prefix)


async def test_a_dead_nodes_sockets_expire_and_live_ones_are_renewed(
    redis_nodes: tuple[RedisChannelRegistry, RedisChannelRegistry],
) -> None:
    live, dead = redis_nodes
    await live.subscribe("1", "orders", "1.1")
    await live.add_member("1", "presence-x", "1.1", "7", None)
    await dead.subscribe("1", "orders", "2.1")
    await dead.add_member("1", "presence-x", "2.1", "8", None)
    for _ in range(4):
        await asyncio.sleep(TTL / 2)
        await live.renew()  # the dead node renews nothing
    assert await live.subscription_count("1", "orders") == 1
    assert await live.members("1", "presence-x") == {"7": None}
    assert await live.occupied("1") == {"orders": 1}
