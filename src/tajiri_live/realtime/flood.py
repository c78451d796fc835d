"""Per-socket budgets: what one connection may ask of the server, decided in memory before
any database or Redis work.

Every client message spends a token of a bucket (`rate` per second, up to `burst` saved up).
Messages that do work (actions that query the database) also wait in a small queue and run
one at a time, in order. A message that finds no token, or an action that finds the queue
full, is dropped: the socket is told once (`rate_limited`), and a socket that goes on
sending past `tolerance` drops is closed with the policy close code. The count starts over
once the bucket is full again, that is once the client has kept to its rate for a while.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from enum import Enum
from typing import Any

log = logging.getLogger(__name__)

Work = Callable[[], Awaitable[None]]
Spawn = Callable[[Coroutine[Any, Any, Any], str], object]  # starts background work


@dataclass(frozen=True)
class FloodLimits:
    rate: float = 10.0  # messages per second, sustained
    burst: int = 30  # messages a client may send at once
    queue: int = 8  # actions waiting for the one that runs
    tolerance: int = 90  # drops after which the socket is closed


@dataclass
class FloodStats:
    """Counted across every socket of the process (exported in /metrics)."""

    dropped: int = 0  # messages dropped for being over a socket's budget
    closed: int = 0  # sockets closed for flooding


class Verdict(Enum):
    ACCEPTED = "accepted"
    TOLD = "told"  # dropped, and this is the first drop: tell the client
    DROPPED = "dropped"  # dropped again: stay quiet
    CLOSE = "close"  # still flooding after being told: close with the policy code


class FloodGuard:
    """One socket's token bucket and action queue."""

    __slots__ = (
        "_clock",
        "_drops",
        "_pending",
        "_running",
        "_spawn",
        "_stamp",
        "_tokens",
        "limits",
        "stats",
    )

    def __init__(
        self,
        limits: FloodLimits,
        spawn: Spawn,
        stats: FloodStats | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self.stats = stats or FloodStats()
        self._spawn = spawn
        self._clock = clock
        self._tokens = float(limits.burst)
        self._stamp = clock()
        self._drops = 0
        self._pending: deque[tuple[Work, str]] = deque()
        self._running = False

    def message(self) -> Verdict:
        """Spend a token for a message the client sent."""
        now = self._clock()
        limits = self.limits
        self._tokens = min(limits.burst, self._tokens + (now - self._stamp) * limits.rate)
        self._stamp = now
        if self._tokens >= limits.burst:
            self._drops = 0  # the client kept to its rate: forget earlier floods
        if self._tokens >= 1:
            self._tokens -= 1
            return Verdict.ACCEPTED
        return self.refuse()

    def action(self, work: Work, name: str) -> Verdict:
        """Queue work for this socket (after `message()` accepted it); runs in order."""
        if len(self._pending) >= self.limits.queue:
            return self.refuse()
        self._pending.append((work, name))
        if not self._running:
            self._running = True
            self._spawn(self._run(), f"ws-actions-{name}")
        return Verdict.ACCEPTED

    def refuse(self) -> Verdict:
        """Count a message dropped for being over a budget (this one's or the caller's)."""
        self._drops += 1
        self.stats.dropped += 1
        if self._drops > self.limits.tolerance:
            if self._drops == self.limits.tolerance + 1:
                self.stats.closed += 1
            return Verdict.CLOSE
        return Verdict.TOLD if self._drops == 1 else Verdict.DROPPED

    @property
    def retry_after(self) -> int:
        """Whole seconds until a message would be accepted again."""
        missing = max(0.0, 1 - self._tokens)
        return max(1, int(missing / self.limits.rate + 0.999))

    def clear(self) -> None:
        """The socket closed: queued work is not started."""
        self._pending.clear()

    async def _run(self) -> None:
        try:
            while self._pending:
                work, name = self._pending.popleft()
                try:
                    await work()
                except Exception:  # one failed action must not stop the socket's others
                    log.exception("socket action %s failed", name)
        finally:
            self._running = False
