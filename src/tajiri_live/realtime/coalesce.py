"""Coalesced counters: values that change many times a second, published at most once per key
per tick, the newest (highest) value winning.

A poll option's total, a question's upvotes, a battle's score: a subscriber needs only the
latest value, so a burst of ten thousand changes costs a few events per tick instead of one
frame per change per viewer. The first change after a quiet tick goes out at once (a lone
vote is not delayed); later ones wait for the tick's end. Values only grow, so the event's
`version` is the value itself and a hub drops one that arrives after a higher one (another
node's slower path): the last frame a subscriber gets is the highest value.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from tajiri_live.realtime.events import Event

log = logging.getLogger(__name__)

Publish = Callable[[Event], Awaitable[None]]


class Coalescer:
    """Per process; every node coalesces what it counted and the hubs keep the highest."""

    def __init__(self, publish: Publish, *, tick_seconds: float) -> None:
        self._publish = publish
        self.tick_seconds = tick_seconds
        self._pending: dict[str, Event] = {}
        self._last_flush = -1e9
        self._task: asyncio.Task[None] | None = None
        self.published = 0  # events sent (for metrics and tests)
        self.offered = 0  # values offered

    def offer(self, event: Event) -> None:
        """Publish `event` (which has a `latest_key`) within one tick, unless a higher value
        for its key is offered first."""
        key = event.latest_key
        if key is None:
            raise ValueError("a coalesced event needs a latest_key")
        self.offered += 1
        current = self._pending.get(key)
        if current is not None and (current.version or 0) > (event.version or 0):
            return
        self._pending[key] = event
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="coalescer")

    def discard(self, prefix: str) -> None:
        """Forget pending values whose key starts with `prefix` (their subject closed)."""
        for key in [k for k in self._pending if k.startswith(prefix)]:
            del self._pending[key]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            wait = self._last_flush + self.tick_seconds - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_flush = loop.time()
            await self.flush()

    async def flush(self) -> None:
        """Publish what is pending now (tests and shutdown; the task does it every tick)."""
        pending, self._pending = self._pending, {}
        for event in pending.values():
            try:
                await self._publish(event)
                self.published += 1
            except Exception:  # the next value of the key goes out with the next change
                log.exception("publishing %s failed", event.latest_key)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
