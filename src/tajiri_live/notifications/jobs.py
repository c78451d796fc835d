"""Notification jobs: triggers into rows and outbox, then the outbox to FCM. Safe on many
nodes and workers at once (idempotent inserts, leased outbox rows)."""

from __future__ import annotations

from tajiri_live.core.runtime import Runtime
from tajiri_live.core.scheduler import PeriodicJob
from tajiri_live.core.settings import Settings
from tajiri_live.notifications import service
from tajiri_live.notifications.push import FcmSender, LogSender, PushSender


def build_sender(settings: Settings) -> PushSender:
    if settings.push_sender == "fcm" and settings.fcm_service_account_file is not None:
        return FcmSender(
            settings.fcm_service_account_file,
            base_url=settings.fcm_base_url,
            concurrency=settings.push_concurrency,
        )
    return LogSender()


async def run_notifications(runtime: Runtime, sender: PushSender) -> int:
    await service.process_triggers(runtime)
    return await service.deliver(runtime, sender)


def notification_jobs(runtime: Runtime, sender: PushSender) -> list[PeriodicJob]:
    return [
        PeriodicJob(
            "notifications.push",
            runtime.settings.job_notifications_every_seconds,
            lambda: run_notifications(runtime, sender),
        )
    ]
