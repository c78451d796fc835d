"""Many calls of one Redis script as one: what callers ask while a call runs goes in the next.

A redis-py call costs the caller far more CPU than a short script costs Redis (about 120 µs
of the caller's core a call on a slow host, against 10 µs per item in a batch of 30), and
the hot paths make a few each: a hit on a rate limit, a published event, a viewer's hold.
The script takes a head of arguments and then the items, each a fixed number of arguments,
and answers one reply per item in order; an item it refuses answers `{'err', message}` and
the others still count. One call at a time, so items are applied in the order they were
asked for (a hold never passes its release, events keep their order).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass
from typing import Any

from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

MAX_ITEMS = 200  # items one call carries
CLOSE_WAIT_SECONDS = 2.0  # what closing waits for the items already asked for

# How a script answers for an item it refused (Lua): `{'err', message}`.
LUA_ITEM_ERROR = """
local function item_error(reason)
  return {'err', type(reason) == 'table' and tostring(reason.err) or tostring(reason)}
end
"""


class ItemRefused(ResponseError):
    """Redis refused one item of a batch (the others were applied)."""


@dataclass(eq=False, slots=True)
class _Item:
    args: tuple[Any, ...]
    done: asyncio.Future[Any]


class ScriptBatches:
    def __init__(self, name: str, script: AsyncScript, head: list[Any]) -> None:
        self.name = name
        self._script = script
        self._head = head
        self._queue: deque[_Item] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # nothing queued, nothing in flight
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.calls = 0  # script calls made, and the items they carried
        self.items = 0

    async def call(self, *args: Any) -> Any:
        """The item's reply, once the call that carries it is answered."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"{self.name}.batches")
        item = _Item(args, asyncio.get_running_loop().create_future())
        self._queue.append(item)
        self._idle.clear()
        self._wake.set()
        return await item.done

    async def close(self) -> None:
        """Stop, once what was asked for is sent (a shutdown's last events still go out)."""
        if self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), CLOSE_WAIT_SECONDS)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                count = min(MAX_ITEMS, len(self._queue))
                await self._send([self._queue.popleft() for _ in range(count)])
            self._idle.set()

    async def _send(self, batch: list[_Item]) -> None:
        args = list(self._head)
        for item in batch:
            args += item.args
        self.calls += 1
        self.items += len(batch)
        try:
            replies = await self._script(keys=[], args=args)
        except asyncio.CancelledError:
            for item in batch:
                item.done.cancel()
            raise
        except Exception as exc:  # Redis is away: each waiting caller hears it
            for item in batch:
                if not item.done.done():
                    item.done.set_exception(exc)
            return
        for item, reply in zip(batch, replies, strict=True):
            if item.done.done():
                continue
            if isinstance(reply, list) and len(reply) == 2 and reply[0] in (b"err", "err"):
                message = reply[1]
                text = message.decode() if isinstance(message, bytes) else str(message)
                item.done.set_exception(ItemRefused(text))
            else:
                item.done.set_result(reply)
