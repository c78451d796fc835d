"""Ingest's scheduled jobs: recordings and live thumbnails (on nodes beside nginx)."""

from __future__ import annotations

from tajiri_live.core.runtime import Runtime
from tajiri_live.core.scheduler import PeriodicJob
from tajiri_live.ingest import media


def ingest_jobs(runtime: Runtime) -> list[PeriodicJob]:
    settings = runtime.settings
    if not settings.ingest_enabled:
        return []
    every = settings.job_ingest_media_every_seconds
    return [
        PeriodicJob("ingest.recordings", every, lambda: media.finalize_recordings(runtime)),
        PeriodicJob("ingest.thumbnails", every, lambda: media.refresh_live_thumbnails(runtime)),
        PeriodicJob("ingest.old_playlists", 60.0, lambda: media.remove_old_playlists(runtime)),
    ]
