"""Pick the broker and presence implementations from settings."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import BlockingConnectionPool, Redis

from tajiri_live.core.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from tajiri_live.core.redispacking import pack_with_hiredis
from tajiri_live.core.settings import Settings
from tajiri_live.realtime.broker import Broker
from tajiri_live.realtime.broker_memory import MemoryBroker
from tajiri_live.realtime.broker_redis import RedisBroker
from tajiri_live.realtime.channels import ChannelRegistry
from tajiri_live.realtime.channels_memory import MemoryChannelRegistry
from tajiri_live.realtime.channels_redis import RedisChannelRegistry
from tajiri_live.realtime.presence import Presence, new_node_id
from tajiri_live.realtime.presence_memory import MemoryPresence
from tajiri_live.realtime.presence_redis import RedisPresence


@dataclass
class Backends:
    broker: Broker
    presence: Presence
    limiter: RateLimiter
    channels: ChannelRegistry
    redis: Redis | None


def build_backends(settings: Settings) -> Backends:
    ttl = settings.presence_member_ttl_seconds
    cap = settings.anonymous_viewers_per_address
    if not settings.redis_url:
        return Backends(
            MemoryBroker(),
            MemoryPresence(node_id=new_node_id(), address_cap=cap),
            MemoryRateLimiter(),
            MemoryChannelRegistry(),
            None,
        )
    # Blocking: a burst of requests waits for a free connection instead of failing.
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout_seconds,
        socket_connect_timeout=settings.redis_connect_timeout_seconds,
        socket_timeout=settings.redis_socket_timeout_seconds,  # pub/sub reads block regardless
        socket_keepalive=True,
        health_check_interval=15,
        retry_on_timeout=True,
    )
    pack_with_hiredis(pool)
    redis = Redis(connection_pool=pool)
    prefix = settings.redis_prefix
    return Backends(
        RedisBroker(redis, prefix=prefix),
        RedisPresence(
            redis,
            prefix=prefix,
            address_cap=cap,
            heartbeat_seconds=settings.node_heartbeat_seconds,
            node_timeout_seconds=settings.node_timeout_seconds,
        ),
        RedisRateLimiter(redis, prefix=prefix),
        RedisChannelRegistry(redis, prefix=prefix, ttl=ttl),
        redis,
    )
