"""The broker interface: publish events to every node, deliver them to local subscribers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from tajiri_live.realtime.events import Event

EventHandler = Callable[[Event], Awaitable[None]]


class Broker(Protocol):
    """Guarantees: every event published on any node reaches the handler of every node that
    is started, at most once, in publish order per publishing node. Delivery is best effort
    across a broker outage: after it, nodes resubscribe and carry on."""

    async def start(self, handler: EventHandler) -> None:
        """Begin delivering every event (from any node) to `handler`."""
        ...

    async def publish(self, event: Event) -> None:
        """Send `event` to every node, this one included."""
        ...

    async def close(self) -> None: ...
