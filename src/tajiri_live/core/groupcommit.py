"""Group commit: what concurrent requests hand in is written together, one transaction a batch.

Nothing waits for a batch to fill: the batch is what arrived while the previous one was
being written, so a lone item is written at once and a busy moment costs a few statements
per batch instead of a transaction per request. Each caller still hears only once its item
is committed (or why it was not).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tajiri_live.core.batches import write_in_halves

Item = TypeVar("Item")
Result = TypeVar("Result")
MAX_BATCH = 500


@dataclass(eq=False)
class _Pending(Generic[Item, Result]):
    item: Item
    done: asyncio.Future[Result] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommit(Generic[Item, Result]):
    """`write` stores a batch in one transaction and returns one result per item, in order.
    An item the database refuses is quarantined (core/batches.py) and answered alone with
    `refused(item)`; the rest of its batch is written."""

    def __init__(
        self,
        name: str,
        write: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        *,
        describe: Callable[[Item], str],
        refused: Callable[[Item, Exception], BaseException],
        linger: float = 0.0,
    ) -> None:
        self.name = name
        self._write_items = write
        self._describe = describe
        self._refused = refused
        # Seconds a batch waits for company once its first item came: for items nobody waits
        # on at once (a socket's profile), where a transaction per item or two costs more.
        self._linger = linger
        self._queue: asyncio.Queue[_Pending[Item, Result]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # batches written (attempted), and the items they held
        self.items = 0

    async def write(self, item: Item) -> Result:
        """The item's result once its batch is committed."""
        return await self.submit(item)

    def submit(self, item: Item) -> asyncio.Future[Result]:
        """Queue the item; its result once its batch is committed. For a caller that goes on
        meanwhile: a future, not a task to run `write` in (which cost a join storm a task and
        a turn of the loop per handshake). Cancelling it does not take the item back."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"{self.name}.writer")
        pending: _Pending[Item, Result] = _Pending(item)
        self._queue.put_nowait(pending)
        return pending.done

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._linger:
                await asyncio.sleep(self._linger)
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self.batches += 1
            self.items += len(batch)
            try:
                failed = await write_in_halves(
                    batch, self._write, writer=self.name, describe=self._describe_pending
                )
            except asyncio.CancelledError:
                for pending in batch:
                    pending.done.cancel()
                raise
            except Exception as exc:  # the database is away: each waiting request hears it
                for pending in batch:
                    _fail(pending, exc)
                continue
            for pending, error in failed:
                _fail(pending, self._refused(pending.item, error))

    async def _write(self, batch: Sequence[_Pending[Item, Result]]) -> None:
        results = await self._write_items([pending.item for pending in batch])
        for pending, result in zip(batch, results, strict=True):
            if not pending.done.done():
                pending.done.set_result(result)

    def _describe_pending(self, pending: _Pending[Item, Result]) -> str:
        return self._describe(pending.item)


def _fail(pending: _Pending[Item, Result], exc: BaseException) -> None:
    if not pending.done.done():
        pending.done.set_exception(exc)
