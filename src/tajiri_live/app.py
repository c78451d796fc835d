"""The application factory: everything is built here and in the lifespan, nothing at import."""

from __future__ import annotations

import gc
import hmac
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis

from tajiri_live import __version__
from tajiri_live.analytics.jobs import analytics_jobs
from tajiri_live.analytics.router import router as analytics_router
from tajiri_live.analytics.service import LiveReportCache
from tajiri_live.apidocs.router import install as install_api_docs
from tajiri_live.battles.jobs import battle_jobs
from tajiri_live.battles.router import router as battles_router
from tajiri_live.battles.socket_actions import battle_actions
from tajiri_live.broadcasting.apps import PusherApps
from tajiri_live.broadcasting.router import MAX_BATCH as PUSHER_MAX_BATCH
from tajiri_live.broadcasting.router import router as broadcasting_router
from tajiri_live.broadcasting.socket import PusherSocketApp
from tajiri_live.console.router import install as install_console
from tajiri_live.core import idempotency, logredact
from tajiri_live.core.auth.identity import build_identity, build_token_codec
from tajiri_live.core.availability import (
    RETRY_AFTER_SECONDS,
    ReadinessCheck,
    database_check,
    preflight,
    redis_check,
    run_checks,
)
from tajiri_live.core.batches import QUARANTINED
from tajiri_live.core.bodylimit import BodyLimitMiddleware, BodyLimits
from tajiri_live.core.clock import Clock, SystemClock
from tajiri_live.core.db import create_engine, create_sessionmaker
from tajiri_live.core.errors import ApiError, document_envelopes, install_error_handlers
from tajiri_live.core.gcpauses import PAUSES
from tajiri_live.core.hotroutes import SERVED as HOT_SERVED
from tajiri_live.core.hotroutes import HotEntryApp, HotRoutesMiddleware
from tajiri_live.core.runtime import Runtime
from tajiri_live.core.scheduler import PeriodicJob, Scheduler
from tajiri_live.core.settings import Settings
from tajiri_live.engagement.router import hot_routes as engagement_hot_routes
from tajiri_live.engagement.router import router as engagement_router
from tajiri_live.engagement.socket_actions import reaction_action
from tajiri_live.engagement.writer import CommentWriter
from tajiri_live.gifts import artwork
from tajiri_live.gifts.router import hot_routes as gifts_hot_routes
from tajiri_live.gifts.router import router as gifts_router
from tajiri_live.gifts.writer import PaymentWriter
from tajiri_live.health.router import router as health_router
from tajiri_live.ingest.jobs import ingest_jobs
from tajiri_live.ingest.router import callbacks as ingest_callbacks
from tajiri_live.ingest.router import owner as ingest_owner_router
from tajiri_live.ingest.service import Ingest
from tajiri_live.moderation import bans
from tajiri_live.moderation.commenters import CommenterChecks
from tajiri_live.moderation.router import router as moderation_router
from tajiri_live.notifications.jobs import build_sender, notification_jobs
from tajiri_live.notifications.push import PushSender
from tajiri_live.notifications.router import router as notifications_router
from tajiri_live.polls.router import router as polls_router
from tajiri_live.polls.socket_actions import poll_actions
from tajiri_live.polls.votes import VoteCounter
from tajiri_live.questions.router import router as questions_router
from tajiri_live.questions.socket_actions import question_actions
from tajiri_live.realtime import slots
from tajiri_live.realtime.backends import build_backends
from tajiri_live.realtime.coalesce import Coalescer
from tajiri_live.realtime.encoders import PlainEncoder
from tajiri_live.realtime.events import Event
from tajiri_live.realtime.flood import FloodLimits
from tajiri_live.realtime.gateway import Gateway
from tajiri_live.realtime.hub import Hub, HubSettings
from tajiri_live.realtime.nodeslot import NodeSlot
from tajiri_live.realtime.pusher import PusherEncoder
from tajiri_live.streams import admission
from tajiri_live.streams.jobs import lifecycle_jobs
from tajiri_live.streams.router import router as streams_router
from tajiri_live.streams.softdelete import hide_deleted_streams
from tajiri_live.superchats.router import router as super_chats_router
from tajiri_live.superchats.socket_actions import super_chat_actions
from tajiri_live.users.router import router as users_router
from tajiri_live.users.writer import ProfileWriter
from tajiri_live.viewers.router import hot_routes as viewers_hot_routes
from tajiri_live.viewers.router import router as viewers_router
from tajiri_live.viewers.router import socket_paths
from tajiri_live.viewers.service import Viewers
from tajiri_live.viewers.sessions import ViewerLog
from tajiri_live.viewers.socket import PlainSocketApp
from tajiri_live.wallet.internal_router import router as wallet_internal_router
from tajiri_live.wallet.router import router as wallet_router

log = logging.getLogger(__name__)

# (young, middle, old) collection thresholds; CPython's defaults are (700, 10, 10).
GC_THRESHOLDS = (50_000, 20, 10)

IDLE_SWEEP_SECONDS = 30.0
IDENTITY_FLUSH_SECONDS = 10.0  # Sanctum's last_used_at, written off the request path
# Batched writers that quarantine rows they cannot store (core/batches.py), always listed.
QUARANTINE_WRITERS = frozenset(
    {"viewer_sessions", "comments", "analytics_snapshots", "notification_triggers", "push_results"}
)
UPLOAD_FORM_OVERHEAD = 64 * 1024  # a thumbnail's form also carries the stream's text fields
PUSHER_ENVELOPE_HEADROOM = 32 * 1024  # name, up to 100 channel names, socket_id, info


def body_limits(settings: Settings) -> BodyLimits:
    """Per route: uploads get the thumbnail limit, the Pusher HTTP API Pusher's data limit
    (escaped inside JSON: up to twice as long) plus its envelope, everything else 1 MB."""
    upload = settings.max_thumbnail_bytes + UPLOAD_FORM_OVERHEAD
    pusher_event = 2 * settings.pusher_max_payload_bytes + PUSHER_ENVELOPE_HEADROOM
    return BodyLimits.build(
        settings.max_body_bytes,
        [
            (r"/api/streams(/\d+)?", ("POST", "PUT"), upload, "multipart/form-data"),
            (r"/apps/[^/]+/events", ("POST",), pusher_event, None),
            (r"/apps/[^/]+/batch_events", ("POST",), PUSHER_MAX_BATCH * pusher_event, None),
        ],
    )


@dataclass
class Services:
    """Everything one process runs: shared state for the API, the sockets and the jobs."""

    runtime: Runtime
    redis: Redis | None
    hub: Hub
    gateway: Gateway
    viewers: Viewers
    sockets: PlainSocketApp
    pusher: PusherSocketApp
    push: PushSender
    ingest: Ingest
    comment_writer: CommentWriter
    commenter_checks: CommenterChecks
    payment_writer: PaymentWriter
    profile_writer: ProfileWriter
    slot: NodeSlot
    coalescer: Coalescer  # counters published at most once per tick (poll totals, upvotes)
    poll_votes: VoteCounter
    # What /ready asks, by name; others append theirs (e.g. a second database).
    readiness_checks: list[ReadinessCheck] = field(default_factory=list)

    def cluster_jobs(self) -> list[PeriodicJob]:
        """Jobs any node (or a worker) may run; each is safe on many nodes at once."""
        settings = self.runtime.settings
        return [
            *lifecycle_jobs(self.runtime),
            *ingest_jobs(self.runtime),
            *analytics_jobs(self.runtime),
            *battle_jobs(self.runtime),
            *notification_jobs(self.runtime, self.push),
            PeriodicJob(
                "viewers.publish_counts",
                settings.viewer_count_interval_seconds,
                self.viewers.publish_counts,
            ),
            PeriodicJob(
                "idempotency.purge_expired",
                settings.job_idempotency_purge_every_seconds,
                lambda: idempotency.purge_expired(self.runtime),
            ),
        ]

    def node_jobs(self) -> list[PeriodicJob]:
        """Jobs about this process's own sockets: every serving node runs them."""
        settings = self.runtime.settings
        return [
            PeriodicJob("viewers.heartbeat", settings.node_heartbeat_seconds, self._heartbeat),
            PeriodicJob("viewers.sweep", settings.node_heartbeat_seconds, self.viewers.sweep),
            PeriodicJob(
                "viewers.flush_sessions", settings.viewer_log_flush_seconds, self.viewers.log.flush
            ),
            PeriodicJob("sockets.sweep_idle", IDLE_SWEEP_SECONDS, self._sweep_idle),
            PeriodicJob(
                "channels.renew", settings.presence_renew_seconds, self.runtime.channels.renew
            ),
            PeriodicJob("identity.flush", IDENTITY_FLUSH_SECONDS, self.runtime.identity.flush),
        ]

    async def _sweep_idle(self) -> None:
        self.gateway.sweep_idle(time.monotonic())

    async def _heartbeat(self) -> None:
        await self.viewers.heartbeat()
        self.slot.beat(self.runtime.presence.node_id, self.runtime.clock.now().timestamp())

    async def _heard(self, event: Event) -> None:
        """Every event from any node: first what it makes stale here, then its sockets."""
        admission.heard(self.runtime, event)
        bans.heard(self.runtime, event)
        await self.hub.handle(event)

    async def start(self) -> None:
        """Serve as a node: events in, and a place among the cluster's viewers' nodes."""
        # Fails in seconds with the (masked) URL rather than ten seconds of retries
        await preflight(redis_url=self.runtime.settings.redis_url, redis=self.redis)
        await self.runtime.broker.start(self._heard)
        runtime = self.runtime
        predecessor = self.slot.acquire(runtime.presence.node_id, runtime.clock.now().timestamp())
        await self.viewers.start(predecessor)
        if self.runtime.settings.legacy_client_identity:
            log.warning(
                "TAJIRI_LEGACY_CLIENT_IDENTITY is on: requests without a token act as the user "
                "id they name (see docs/operations.md); money and admin still need tokens"
            )

    async def stop(self) -> None:
        for connection in list(self.gateway.connections):
            connection.shutdown()
        await self.gateway.drain()
        await self.viewers.stop()
        self.slot.release()
        self.hub.close()
        await self.poll_votes.close()
        await self.coalescer.close()  # its last values, before the broker closes
        await self.runtime.broker.close()
        await self.runtime.presence.close()
        await self.runtime.limiter.close()
        await self.runtime.channels.close()
        await self.push.close()
        await self.ingest.close()
        await self.comment_writer.close()
        await self.commenter_checks.close()
        await self.payment_writer.close()
        await self.profile_writer.close()
        await self.runtime.identity.close()
        if self.redis is not None:
            await self.redis.aclose(close_connection_pool=True)  # the pool is ours
        await self.runtime.reader.close()
        await self.runtime.engine.dispose()


def build_services(settings: Settings, *, clock: Clock | None = None) -> Services:
    hide_deleted_streams()
    engine = create_engine(settings.resolved_database_url, echo=settings.database_echo)
    backends = build_backends(settings)
    tokens = build_token_codec(settings)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        sessions=create_sessionmaker(engine),
        clock=clock or SystemClock(),
        broker=backends.broker,
        tokens=tokens,
        identity=build_identity(settings, tokens),
        presence=backends.presence,
        limiter=backends.limiter,
        channels=backends.channels,
    )
    apps = PusherApps.from_settings(settings)
    pusher_encoders = {
        names: PusherEncoder(names, settings.pusher_echo_namespace)
        for names in {app.event_names for app in apps.apps}
    }
    hub = Hub(
        encoders={"plain": PlainEncoder(), **{e.name: e for e in pusher_encoders.values()}},
        settings=HubSettings(
            tick_seconds=settings.realtime_tick_ms / 1000,
            latency_budget_seconds=settings.realtime_latency_budget_ms / 1000,
            sockets_per_step=settings.realtime_sockets_per_step,
            max_buffer_bytes=settings.slow_consumer_bytes,
            max_buffered_total_bytes=settings.slow_consumers_total_bytes,
            sample_room_size=settings.sample_room_size,
            sample_per_second=settings.sample_comments_per_second,
        ),
    )
    gateway = Gateway(
        hub,
        idle_timeout=settings.ws_idle_timeout_seconds,
        max_message_bytes=settings.ws_max_message_bytes,
        max_fragments=settings.ws_max_fragments,
        flood_limits=FloodLimits(
            rate=settings.ws_messages_per_second,
            burst=settings.ws_message_burst,
            queue=settings.ws_action_queue,
            tolerance=settings.ws_flood_tolerance,
        ),
    )
    viewers = Viewers(runtime, ViewerLog(runtime.sessions, runtime.reader))
    coalescer = Coalescer(runtime.broker.publish, tick_seconds=settings.realtime_coalesce_ms / 1000)
    runtime.coalescer = coalescer
    poll_votes = VoteCounter(runtime, coalescer)
    profile_writer = ProfileWriter(runtime.engine, runtime.synced_profiles, runtime.reader)
    sockets = PlainSocketApp(runtime, gateway, viewers, profile_writer)
    sockets.actions["reaction"] = reaction_action(runtime)
    sockets.actions.update(poll_actions(runtime, poll_votes))
    sockets.actions.update(question_actions(runtime, coalescer))
    payment_writer = PaymentWriter(runtime)  # gifts and super chats, batched together
    sockets.actions.update(super_chat_actions(runtime, payment_writer))
    sockets.actions.update(battle_actions(runtime))
    sockets.install()
    pusher = PusherSocketApp(runtime, gateway, viewers, apps, plain_actions=sockets.actions)
    pusher.install()
    checks = [ReadinessCheck("database", database_check(engine))]
    if backends.redis is not None:
        checks.append(ReadinessCheck("redis", redis_check(backends.redis)))
    checks += [ReadinessCheck(name, check) for name, check in runtime.identity.readiness()]
    return Services(
        runtime,
        backends.redis,
        hub,
        gateway,
        viewers,
        sockets,
        pusher,
        build_sender(settings),
        Ingest(runtime),
        CommentWriter(runtime.engine, runtime.reader),
        CommenterChecks(runtime),
        payment_writer,
        profile_writer,
        NodeSlot(settings.var_dir / "nodes"),
        coalescer,
        poll_votes,
        checks,
    )


# The REST routers, each included in the app under /api, in matching order: FastAPI walks
# the included routers' routes in order on every request (a comment went through 40
# candidate routes nested in one /api router with engagement fourth, now 6). The hot paths
# (join, comments, likes, gifts) first; the gift catalog before /streams/{id}.
API_ROUTERS = (
    viewers_router,
    engagement_router,
    gifts_router,
    streams_router,
    super_chats_router,
    polls_router,
    questions_router,
    battles_router,
    health_router,
    wallet_router,
    wallet_internal_router,
    moderation_router,
    analytics_router,
    notifications_router,
    ingest_callbacks,
    ingest_owner_router,
    users_router,
)

# Served in front of FastAPI (core/hotroutes.py), each also declared in its router above.
HOT_ROUTES = (*viewers_hot_routes, *engagement_hot_routes, *gifts_hot_routes)


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    run_jobs: bool | None = None,
) -> FastAPI:
    """Build the service. `clock` is injectable for tests; jobs follow settings unless told."""
    settings.media_dir.mkdir(parents=True, exist_ok=True)
    artwork.install(settings.media_dir)  # the seeded gifts' icons, served under /storage
    logredact.install("uvicorn.access")
    logredact.install("uvicorn.error")
    services = build_services(settings, clock=clock)
    runtime = services.runtime
    cluster_jobs_enabled = settings.run_jobs if run_jobs is None else run_jobs

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        await services.start()
        jobs = services.node_jobs() + (services.cluster_jobs() if cluster_jobs_enabled else [])
        scheduler = Scheduler(jobs)
        scheduler.start()
        # What exists now (modules, settings, pools) lives as long as the process: keep it out
        # of every later full collection, whose pause stops the loop and the fan-out with it.
        gc.collect()
        gc.freeze()
        # A join storm allocates long-lived objects (sockets, sessions) by the hundred
        # thousand: at the default 700 allocations per young collection, each collection
        # promotes them and full collections follow one another over an ever larger heap.
        thresholds = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLDS)
        PAUSES.install()
        try:
            # uvicorn hands this state to the WebSocket protocol after an upgrade
            yield {"realtime_gateway": services.gateway}
        finally:
            PAUSES.uninstall()
            gc.unfreeze()
            gc.set_threshold(*thresholds)
            await scheduler.stop()
            await services.stop()

    app = HotEntryApp(
        title="tajiri-live",
        version=__version__,
        description="Livestreaming backend for the TAJIRI app.",
        lifespan=lifespan,
        docs_url=None,  # served by apidocs with local assets, not from a CDN
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.services = services
    app.state.viewers = services.viewers
    app.state.ingest = services.ingest
    app.state.comment_writer = services.comment_writer
    app.state.commenter_checks = services.commenter_checks
    app.state.payment_writer = services.payment_writer
    app.state.profile_writer = services.profile_writer
    app.state.coalescer = services.coalescer
    app.state.poll_votes = services.poll_votes
    app.state.pusher_apps = services.pusher.apps
    app.state.analytics_cache = LiveReportCache(settings.analytics_live_cache_seconds)
    install_error_handlers(app)
    document_envelopes(app)
    # In front of FastAPI: every body is limited first, then the hot routes answer theirs
    # (the app's own exception handlers render their errors) and pass the rest on.
    hot_routes = [route.under("/api") for route in HOT_ROUTES]
    app.entry = BodyLimitMiddleware(
        HotRoutesMiddleware(app.framework, hot_routes, app.exception_handlers),
        limits=body_limits(settings),
        timeout=settings.body_timeout_seconds,
    )

    for router in API_ROUTERS:
        app.include_router(router, prefix="/api")
    app.include_router(socket_paths)
    app.include_router(broadcasting_router)
    install_console(app, settings)
    install_api_docs(app)
    app.mount("/storage", StaticFiles(directory=settings.media_dir), name="storage")

    @app.get("/health", tags=["ops"], summary="The process is up")
    async def health() -> dict[str, Any]:
        return {"success": True, "status": "ok", "version": __version__}

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics of this process")
    async def metrics(
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> PlainTextResponse:
        expected = settings.metrics_token
        if expected and not hmac.compare_digest(
            (authorization or "").encode(), f"Bearer {expected}".encode()
        ):
            raise ApiError(
                401,
                "The metrics need the bearer token of TAJIRI_METRICS_TOKEN.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        stats = services.hub.stats
        identity = runtime.identity.stats
        lines = [
            ("tajiri_ws_connections", "gauge", len(services.gateway.connections)),
            ("tajiri_ws_events_total", "counter", stats.events),
            ("tajiri_ws_frames_out_total", "counter", stats.frames_out),
            ("tajiri_ws_writes_total", "counter", stats.writes),
            ("tajiri_ws_sampled_out_total", "counter", stats.sampled_out),
            ("tajiri_ws_slow_closed_total", "counter", stats.slow_closed),
            ("tajiri_ws_budget_closed_total", "counter", stats.budget_closed),
            ("tajiri_ws_turns_total", "counter", stats.turns),
            ("tajiri_ws_turn_seconds_total", "counter", round(stats.turn_seconds, 6)),
            ("tajiri_ws_turn_seconds_max", "gauge", round(stats.max_turn_seconds, 6)),
            ("tajiri_ws_turn_gap_seconds", "gauge", round(stats.gap_seconds, 6)),
            ("tajiri_ws_frame_wait_seconds_max", "gauge", round(stats.max_wait_seconds, 6)),
            # 1: the wheel's compiled write loop (realtime/_wheel.c); 0: built without it
            ("tajiri_ws_compiled_writes", "gauge", int(slots.compiled)),
            ("tajiri_ws_dropped_messages_total", "counter", services.gateway.flood_stats.dropped),
            ("tajiri_ws_flood_closed_total", "counter", services.gateway.flood_stats.closed),
            ("tajiri_poll_vote_batches_total", "counter", services.poll_votes.writer.batches),
            ("tajiri_poll_votes_counted_total", "counter", services.poll_votes.writer.counted),
            ("tajiri_counters_offered_total", "counter", services.coalescer.offered),
            ("tajiri_counters_published_total", "counter", services.coalescer.published),
            ("tajiri_gc_collections_total", "counter", PAUSES.collections),
            ("tajiri_gc_full_collections_total", "counter", PAUSES.full_collections),
            ("tajiri_gc_seconds_total", "counter", round(PAUSES.seconds, 6)),
            ("tajiri_gc_pause_seconds_max", "gauge", round(PAUSES.max_seconds, 6)),
            ("tajiri_auth_legacy_requests_total", "counter", identity.legacy_requests),
            ("tajiri_auth_legacy_sockets_total", "counter", identity.legacy_sockets),
            ("tajiri_auth_cache_hits_total", "counter", identity.cache_hits),
            ("tajiri_auth_lookups_total", "counter", identity.lookups),
            ("tajiri_auth_refused_total", "counter", identity.refused),
            ("tajiri_auth_unavailable_total", "counter", identity.unavailable),
        ]
        body = "".join(f"# TYPE {name} {kind}\n{name} {value}\n" for name, kind, value in lines)
        body += "# TYPE tajiri_quarantined_rows_total counter\n" + "".join(
            f'tajiri_quarantined_rows_total{{writer="{writer}"}} {QUARANTINED[writer]}\n'
            for writer in sorted(QUARANTINE_WRITERS | set(QUARANTINED))
        )
        body += "# TYPE tajiri_hot_route_requests_total counter\n" + "".join(
            f'tajiri_hot_route_requests_total{{method="{route.method}",route="{route.path}"}} '
            f"{HOT_SERVED[route.path]}\n"
            for route in hot_routes
        )
        return PlainTextResponse(body, media_type="text/plain; version=0.0.4")

    @app.get("/ready", tags=["ops"], summary="Every dependency answers (503 names those down)")
    async def ready() -> JSONResponse:
        checks = await run_checks(services.readiness_checks)
        down = {name: problem for name, problem in checks.items() if problem != "ok"}
        if down:
            log.warning("not ready: %s", down)
            problems = "; ".join(f"{name}: {problem}" for name, problem in down.items())
            return JSONResponse(
                {
                    "success": False,
                    "status": "unavailable",
                    "message": f"Not ready: {problems}.",
                    "checks": checks,
                    "identity": runtime.identity.describe(),
                },
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        return JSONResponse(
            {
                "success": True,
                "status": "ready",
                "checks": checks,
                "identity": runtime.identity.describe(),
            }
        )

    return app
