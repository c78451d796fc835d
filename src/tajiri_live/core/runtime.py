"""What services need at run time, built once by `create_app` (or by the worker)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tajiri_live.core.auth import Identity, TokenCodec
from tajiri_live.core.clock import Clock
from tajiri_live.core.nodecache import ExpiringCache
from tajiri_live.core.ratelimit import RateLimiter
from tajiri_live.core.reads import Reader
from tajiri_live.core.settings import Settings
from tajiri_live.realtime.broker import Broker
from tajiri_live.realtime.channels import ChannelRegistry
from tajiri_live.realtime.coalesce import Coalescer
from tajiri_live.realtime.presence import Presence


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    broker: Broker
    tokens: TokenCodec | None  # the JWT signer/verifier, when JWTs are configured
    identity: Identity  # every authenticator, its cache, socket tokens
    presence: Presence
    limiter: RateLimiter
    channels: ChannelRegistry  # Pusher channel occupancy
    # Counters published at most once per tick (battle scores); set by the app's services
    coalescer: Coalescer | None = None
    # user id -> profile tuple last written, so the JIT user sync skips unchanged profiles
    synced_profiles: dict[int, tuple[str | None, ...]] = field(default_factory=dict)
    # Per node, what admitting a viewer reads (streams/admission.py, moderation/bans.py):
    # dropped by the events that change it, else kept `admission_cache_seconds` at most.
    stream_facts: ExpiringCache[int, Any] = field(init=False)
    stream_bans: ExpiringCache[int, Any] = field(init=False)
    reader: Reader = field(init=False)  # the hot paths' reads, outside any transaction

    def __post_init__(self) -> None:
        self.reader = Reader(self.engine)
        seconds = self.settings.admission_cache_seconds
        self.stream_facts = ExpiringCache(seconds)
        self.stream_bans = ExpiringCache(seconds)
