"""The Redis broker: every node publishes to one pub/sub channel and delivers to its sockets.

One channel for all events keeps resubscription trivial after an outage; a node ignores events
for channels it has no sockets on, which costs one dict lookup per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tajiri_live.core.scriptbatch import ScriptBatches
from tajiri_live.realtime.broker import EventHandler
from tajiri_live.realtime.events import Event

log = logging.getLogger(__name__)

RETRY_MIN_SECONDS = 0.1
RETRY_MAX_SECONDS = 2.0

# ARGV: the channel, then the events in the order they were published.
PUBLISH_MANY = """
for i = 2, #ARGV do redis.call('PUBLISH', ARGV[1], ARGV[i]) end
local replies = {}
for i = 2, #ARGV do replies[i - 1] = 0 end
return replies
"""


def encode_event(event: Event) -> bytes:
    return orjson.dumps(
        {
            "c": event.channel,
            "n": event.name,
            "d": event.data,
            "a": event.also,
            "u": event.actor_id,
            "w": event.wire,
            "x": event.except_socket,
            "t": event.to_users,
            "k": event.latest_key,
            "v": event.version,
        }
    )


def decode_event(raw: bytes) -> Event:
    body: dict[str, Any] = orjson.loads(raw)
    return Event(
        channel=body["c"],
        name=body["n"],
        data=body["d"],
        also=tuple(body.get("a") or ()),
        actor_id=body.get("u"),
        wire=body.get("w"),
        except_socket=body.get("x"),
        to_users=tuple(body["t"]) if body.get("t") is not None else None,
        latest_key=body.get("k"),
        version=body.get("v"),
    )


class RedisBroker:
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._redis = redis
        self._channel = f"{prefix}events"
        # The events of concurrent requests, one script call for all, in publishing order.
        self._publishes = ScriptBatches(
            "broker", redis.register_script(PUBLISH_MANY), [self._channel]
        )
        self._handler: EventHandler | None = None
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    async def start(self, handler: EventHandler) -> None:
        self._handler = handler
        self._task = asyncio.create_task(self._listen(), name="redis-broker")
        await asyncio.wait_for(self.subscribed.wait(), timeout=10)

    async def _listen(self) -> None:
        delay = RETRY_MIN_SECONDS
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                self.subscribed.set()
                delay = RETRY_MIN_SECONDS
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await self._dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                log.warning(
                    "redis subscription lost (%s); retrying in %.1fs", type(exc).__name__, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _dispatch(self, raw: bytes) -> None:
        assert self._handler is not None
        try:
            event = decode_event(raw)
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("dropped a malformed event from redis")
            return
        try:
            await self._handler(event)
        except Exception:  # a failing consumer must not end the subscription
            log.exception("event handler failed for %s", event.name)

    async def publish(self, event: Event) -> None:
        try:
            await self._publishes.call(encode_event(event))
        except (RedisError, OSError):
            # Redis is down: this node's own sockets still hear it; other nodes miss it.
            log.warning("redis publish failed for %s; delivering locally only", event.name)
            if self._handler is not None:
                await self._handler(event)

    async def close(self) -> None:
        await self._publishes.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
