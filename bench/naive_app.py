"""The naive baseline: FastAPI/uvicorn, one `await ws.send_text()` per socket per event.

It receives the same events from the same Redis channel as tajiri-live, so the benchmark
compares only how each one delivers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import orjson
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from redis.asyncio import Redis

clients: set[WebSocket] = set()


async def relay(redis_url: str, channel: str) -> None:
    redis = Redis.from_url(redis_url)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel)
    async for message in pubsub.listen():
        body = orjson.loads(message["data"])
        text = orjson.dumps({"event": body["n"], "data": body["d"]}).decode()
        for ws in list(clients):
            with contextlib.suppress(Exception):
                await ws.send_text(text)


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    channel = os.environ["TAJIRI_REDIS_PREFIX"] + "events"
    task = asyncio.create_task(relay(os.environ["TAJIRI_REDIS_URL"], channel))
    yield
    task.cancel()


app = FastAPI(lifespan=lifespan)


@app.websocket("/streams/{stream_id}")
async def stream_socket(ws: WebSocket, stream_id: int) -> None:
    await ws.accept()
    clients.add(ws)
    try:
        while True:
            await ws.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        clients.discard(ws)
