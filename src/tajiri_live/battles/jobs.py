"""The battles' scheduled job: idempotent and safe on several nodes at once."""

from __future__ import annotations

from tajiri_live.battles import service
from tajiri_live.core.runtime import Runtime
from tajiri_live.core.scheduler import PeriodicJob


def battle_jobs(runtime: Runtime) -> list[PeriodicJob]:
    return [
        PeriodicJob(
            "battles.finish_due",
            runtime.settings.job_battles_every_seconds,
            lambda: service.finish_due(runtime),
        )
    ]
