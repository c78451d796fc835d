"""A small WebSocket client for tests, on the `websockets` library."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection


class Viewer:
    """Connects, collects every event, and waits for the ones a test expects."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.events: list[dict[str, Any]] = []
        self._arrived = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str, **kwargs: Any) -> Viewer:
        return cls(await websockets.connect(url, **kwargs))

    async def _read(self) -> None:
        try:
            async for raw in self.connection:
                event = json.loads(raw)
                async with self._arrived:
                    self.events.append(event)
                    self._arrived.notify_all()
        except websockets.ConnectionClosed:
            pass

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], within: float = 5.0
    ) -> dict[str, Any]:
        async def find() -> dict[str, Any]:
            async with self._arrived:
                while True:
                    for event in self.events:
                        if predicate(event):
                            return event
                    await self._arrived.wait()

        return await asyncio.wait_for(find(), within)

    async def send(self, event: str, data: dict[str, Any] | None = None) -> None:
        await self.connection.send(json.dumps({"event": event, "data": data or {}}))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e["data"] for e in self.events if e["event"] == name]

    async def close(self) -> None:
        await self.connection.close()
        await self._reader


def refused_status(error: BaseException) -> int:
    response = getattr(error, "response", None)
    return int(response.status_code) if response is not None else -1
