"""The in-process broker: the embedded default, one node."""

from __future__ import annotations

import logging

from tajiri_live.realtime.broker import EventHandler
from tajiri_live.realtime.events import Event

log = logging.getLogger(__name__)


class MemoryBroker:
    def __init__(self) -> None:
        self._handlers: list[EventHandler] = []

    async def start(self, handler: EventHandler) -> None:
        self._handlers.append(handler)

    async def publish(self, event: Event) -> None:
        for handler in self._handlers:
            try:
                await handler(event)
            except Exception:  # one failing consumer must not stop the others
                log.exception("event handler failed for %s", event.name)

    async def close(self) -> None:
        self._handlers.clear()
