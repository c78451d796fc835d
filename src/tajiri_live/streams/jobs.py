"""The lifecycle's scheduled jobs. Each is idempotent and safe on several nodes at once."""

from __future__ import annotations

from tajiri_live.core.runtime import Runtime
from tajiri_live.core.scheduler import PeriodicJob
from tajiri_live.streams import service


def lifecycle_jobs(runtime: Runtime) -> list[PeriodicJob]:
    settings = runtime.settings
    return [
        PeriodicJob(
            "streams.to_pre_live",
            settings.job_to_pre_live_every_seconds,
            lambda: service.promote_due_to_pre_live(runtime),
        ),
        PeriodicJob(
            "streams.to_ended",
            settings.job_to_ended_every_seconds,
            lambda: service.finish_ending(runtime),
        ),
        PeriodicJob(
            "streams.no_show",
            settings.job_no_show_every_seconds,
            lambda: service.cancel_no_shows(runtime),
        ),
    ]
