"""The gateway: routes WebSocket handshakes to socket apps and owns the shared machinery."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from tajiri_live.realtime.flood import FloodGuard, FloodLimits, FloodStats
from tajiri_live.realtime.frames import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN_LATER,
    DEFAULT_MAX_FRAGMENTS,
    DEFAULT_MAX_MESSAGE_BYTES,
)
from tajiri_live.realtime.hub import Hub

if TYPE_CHECKING:
    from tajiri_live.realtime.server import WebSocketConnection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Handshake:
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    params: dict[str, str] = field(default_factory=dict)  # from the route pattern
    peer: str | None = None  # the connection's remote address (a proxy's, behind one)


class Refusal(Exception):
    """Refuse the upgrade with an HTTP status (401, 403, 404...) and a readable message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class CloseCodes:
    """The close code and reason a protocol uses for each server-side close."""

    going_away: tuple[int, str] = (CLOSE_GOING_AWAY, "server shutting down")
    slow: tuple[int, str] = (CLOSE_TRY_AGAIN_LATER, "slow consumer")
    idle: tuple[int, str] = (CLOSE_GOING_AWAY, "idle timeout")
    flood: tuple[int, str] = (CLOSE_POLICY, "policy violation: too many messages")


class SocketSession(Protocol):
    """What a socket app does for one admitted connection."""

    encoder: str  # the wire encoder of this connection's subscriptions
    user_id: int | None
    close_codes: CloseCodes

    def opened(self, connection: WebSocketConnection) -> None: ...
    def received(self, connection: WebSocketConnection, text: str) -> None: ...
    def closed(self, connection: WebSocketConnection) -> None: ...


SocketApp = Callable[[Handshake], Awaitable[SocketSession]]


class Gateway:
    def __init__(
        self,
        hub: Hub,
        *,
        idle_timeout: float = 180.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_fragments: int = DEFAULT_MAX_FRAGMENTS,
        flood_limits: FloodLimits | None = None,
    ) -> None:
        self.hub = hub
        self.idle_timeout = idle_timeout
        self.max_message_bytes = max_message_bytes  # a client message, assembled
        self.max_fragments = max_fragments  # frames one client message may be split into
        self.flood_limits = flood_limits or FloodLimits()  # per socket (realtime/flood.py)
        self.flood_stats = FloodStats()
        self.connections: set[WebSocketConnection] = set()
        self._routes: list[tuple[re.Pattern[str], SocketApp]] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    def route(self, pattern: str, app: SocketApp) -> None:
        """Register `app` for paths matching `pattern` (a regex with named groups)."""
        self._routes.append((re.compile(f"^{pattern}$"), app))

    async def admit(
        self, path: str, query: dict[str, str], headers: dict[str, str], peer: str | None = None
    ) -> SocketSession:
        for pattern, app in self._routes:
            match = pattern.match(path)
            if match:
                return await app(Handshake(path, query, headers, match.groupdict(), peer))
        raise Refusal(404, "No WebSocket endpoint at this path.")

    def flood_guard(self, *, burst: int | None = None) -> FloodGuard:
        """A fresh per-socket budget (one per admitted connection); `burst` for a budget
        that may be spent at once more than messages may (subscriptions at connect)."""
        limits = self.flood_limits if burst is None else replace(self.flood_limits, burst=burst)
        return FloodGuard(limits, self.spawn, self.flood_stats)

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run background work tied to a connection; failures are logged, never raised."""
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for background work (used at shutdown and by tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def sweep_idle(self, now: float) -> int:
        """Close sockets that sent nothing for `idle_timeout` seconds."""
        stale = [c for c in self.connections if now - c.last_seen > self.idle_timeout]
        for connection in stale:
            connection.close(*connection.close_codes.idle)
        return len(stale)
