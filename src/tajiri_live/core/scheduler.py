"""Periodic in-process jobs. Each job must be idempotent: several nodes may run it at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    every_seconds: float
    run: Callable[[], Awaitable[object]]


class Scheduler:
    def __init__(self, jobs: list[PeriodicJob]) -> None:
        self.jobs = jobs
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._loop(job), name=f"job:{job.name}") for job in self.jobs
        ]

    async def _loop(self, job: PeriodicJob) -> None:
        while True:
            try:
                await job.run()
            except Exception:  # a failing run is logged and retried next tick
                log.exception("job %s failed", job.name)
            await asyncio.sleep(job.every_seconds)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
