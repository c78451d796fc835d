"""Periodic in-process jobs. Each job must be idempotent: several nodes may run it at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tajiri_live.core.availability import dependency_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    every_seconds: float
    run: Callable[[], Awaitable[object]]


class Scheduler:
    def __init__(self, jobs: list[PeriodicJob], *, grace_seconds: float = 10.0) -> None:
        self.jobs = jobs
        self.grace_seconds = grace_seconds
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._stopping.clear()
        self._tasks = [
            asyncio.create_task(self._loop(job), name=f"job:{job.name}") for job in self.jobs
        ]

    async def _loop(self, job: PeriodicJob) -> None:
        while not self._stopping.is_set():
            try:
                await job.run()
            except Exception as exc:  # a failing run is logged and retried next tick
                dependency = dependency_of(exc)
                if dependency is None:
                    log.exception("job %s failed", job.name)
                else:  # an outage, not a bug: one line per run, no traceback
                    log.warning(
                        "job %s skipped: %s unavailable (%s)",
                        job.name,
                        dependency,
                        type(exc).__name__,
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), job.every_seconds)

    async def stop(self) -> None:
        """Let running jobs finish their run (up to the grace period), then cancel the rest:
        a job stopped mid-run could leave work it did unrecorded."""
        self._stopping.set()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=self.grace_seconds)
            for task in late:
                log.warning("job %s still running at shutdown: cancelled", task.get_name())
                task.cancel()
            for task in late:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks = []
