"""Settings from the environment (prefix ``TAJIRI_``), grouped by concern, safe dev defaults."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"", "secret", "changeme", "change-me", "please-change", "dev"})
MIN_SECRET_LENGTH = 32


class PusherAppSettings(BaseModel):
    """One more Pusher app (the first comes from the TAJIRI_PUSHER_APP_* fields)."""

    id: str = Field(pattern=r"^\d{1,20}$")
    key: str = Field(pattern=r"^[A-Za-z0-9_\-.]{1,64}$")
    secret: str = Field(min_length=16)
    event_names: Literal["mobile", "echo", "both"] = "both"


class Settings(BaseSettings):
    """All runtime configuration. Every field maps to ``TAJIRI_<FIELD_NAME>``."""

    model_config = SettingsConfigDict(env_prefix="TAJIRI_", extra="ignore")

    # --- process -------------------------------------------------------------------------
    env: Literal["dev", "test", "production"] = "dev"
    var_dir: Path = Path("var")
    public_base_url: str = "http://127.0.0.1:8000"
    log_level: str = "info"

    # --- database ------------------------------------------------------------------------
    # Unset: a SQLite file under var_dir (the embedded default).
    database_url: str | None = None
    database_echo: bool = False

    # --- redis (unset: in-memory backends, one process) ------------------------------------
    redis_url: str | None = None

    # --- auth ----------------------------------------------------------------------------
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_private_key: str | None = None
    jwt_algorithm: str | None = None  # default: HS256 with a secret, RS256 with a key pair
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_default_ttl_seconds: int = 7 * 24 * 3600

    # --- streams and lifecycle -------------------------------------------------------------
    pre_live_lead_seconds: int = 15 * 60
    outro_seconds: float = 5.0
    no_show_hours: float = 3.0
    page_size: int = 20
    max_page_size: int = 100

    # --- engagement ----------------------------------------------------------------------
    comment_max_length: int = 500
    comment_limit: int = 1  # comments per user per stream...
    comment_window_seconds: float = 3.0  # ...in this window (REST and WebSocket alike)
    reaction_limit: int = 10  # reactions per user per stream...
    reaction_window_seconds: float = 1.0  # ...in this window
    gift_limit: int = 5  # gifts per user per stream...
    gift_window_seconds: float = 1.0  # ...in this window
    share_limit: int = 5
    share_window_seconds: float = 60.0
    reaction_types: list[str] = Field(
        default_factory=lambda: ["heart", "fire", "clap", "wow", "laugh", "sad", "love", "like"]
    )

    # --- moderation ----------------------------------------------------------------------
    # Unset: the built-in Swahili and English lists (moderation/wordfilter.py).
    bad_words: list[str] | None = None
    bad_word_action: Literal["mask", "reject"] = "mask"
    spam_repeat_seconds: float = 60.0  # the same text again within this is spam
    spam_max_links: int = 2  # more links than this in one comment is spam
    max_mute_minutes: int = 24 * 60

    # --- uploads -------------------------------------------------------------------------
    max_thumbnail_bytes: int = 5 * 1024 * 1024

    # --- ingest and playback ---------------------------------------------------------------
    rtmp_ingest_url: str = "rtmp://127.0.0.1:1935/live"
    hls_base_url: str | None = None  # default: {public_base_url}/hls

    # --- real time -------------------------------------------------------------------------
    websocket_protocol: Literal["plain", "pusher"] = "plain"
    global_channel: str = "streams"
    redis_prefix: str = "tajiri:"
    realtime_tick_ms: float = 20.0  # frames to one socket are coalesced per tick
    realtime_max_tick_ms: float = 100.0  # big rooms stretch the tick up to this
    realtime_flush_cost_factor: float = 0.0  # next tick >= this x the last flush's duration
    slow_consumer_bytes: int = 4 * 1024 * 1024  # unread bytes before a socket is closed
    sample_room_size: int = 1000  # rooms this big...
    sample_comments_per_second: int = 50  # ...get at most this many comments a second
    ws_idle_timeout_seconds: float = 180.0  # the client pings every 30 s
    viewer_count_interval_seconds: float = 3.0
    presence_member_ttl_seconds: float = 30.0  # a dead node's viewers leave within this
    presence_renew_seconds: float = 10.0
    rest_join_ttl_seconds: float = 90.0  # a REST join counts this long unless renewed
    viewer_log_flush_seconds: float = 1.0

    # --- analytics -------------------------------------------------------------------------
    analytics_snapshot_seconds: float = Field(default=5.0, gt=0)  # one snapshot per live stream
    analytics_live_cache_seconds: float = 5.0  # a live stream's report is reused this long
    viewer_rows_retention_days: float = 30.0  # older viewer rows are folded into the report
    job_reports_every_seconds: float = 10.0
    job_purge_sessions_every_seconds: float = 3600.0

    # --- notifications and push -----------------------------------------------------------
    push_sender: Literal["log", "fcm"] = "log"  # log: the embedded default, no FCM account
    fcm_service_account_file: Path | None = None  # the service account's JSON key
    fcm_base_url: str = "https://fcm.googleapis.com"
    push_batch_size: int = Field(default=2000, ge=1)  # outbox rows claimed at a time
    push_concurrency: int = Field(default=64, ge=1)  # FCM requests in flight per worker
    push_max_attempts: int = Field(default=8, ge=1)  # then the push is marked failed
    push_lease_seconds: float = Field(default=60.0, gt=0)  # a dead worker's claim expires
    notify_quiet_minutes: float = 10.0  # no second now_live for a streamer within this
    notify_followers_cooldown_seconds: float = 600.0  # between two manual reminders
    job_notifications_every_seconds: float = 1.0

    # --- scheduled jobs --------------------------------------------------------------------
    run_jobs: bool = True
    job_to_pre_live_every_seconds: float = 60.0
    job_to_ended_every_seconds: float = 2.0
    job_no_show_every_seconds: float = 300.0

    # --- Pusher protocol: /app/{key}, /broadcasting/auth, the HTTP API /apps/{id}/... -------
    pusher_app_id: str = Field(default="1", pattern=r"^\d{1,20}$")
    pusher_app_key: str = Field(default="tajiri-live", pattern=r"^[A-Za-z0-9_\-.]{1,64}$")
    pusher_app_secret: str | None = None  # unset: derived from the JWT secret
    # Domain events under the mobile names, Laravel Echo's class names, or both.
    pusher_event_names: Literal["mobile", "echo", "both"] = "both"
    pusher_echo_namespace: str = "App\\Events"  # Echo's default namespace; "" for bare names
    pusher_extra_apps: list[PusherAppSettings] = Field(default_factory=list)  # JSON list
    pusher_activity_timeout_seconds: int = Field(default=120, ge=10)
    pusher_client_event_limit: int = 10  # client events per socket per second
    pusher_max_presence_members: int = 100
    pusher_max_payload_bytes: int = 10 * 1024  # an event's data, as Pusher limits it

    extra_cors_origins: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _refuse_placeholder_secret_in_production(self) -> Settings:
        if self.env == "production" and not (self.pusher_app_secret or self.jwt_secret):
            raise ValueError(
                "TAJIRI_PUSHER_APP_SECRET must be set in production when no TAJIRI_JWT_SECRET "
                "is there to derive it from"
            )
        if self.push_sender == "fcm" and self.fcm_service_account_file is None:
            raise ValueError("TAJIRI_PUSH_SENDER=fcm needs TAJIRI_FCM_SERVICE_ACCOUNT_FILE")
        if self.env == "production" and not self.jwt_public_key:
            secret = self.jwt_secret or ""
            if secret.strip().lower() in PLACEHOLDER_SECRETS or len(secret) < MIN_SECRET_LENGTH:
                raise ValueError(
                    "TAJIRI_JWT_SECRET must be set to a random value of at least "
                    f"{MIN_SECRET_LENGTH} characters (or TAJIRI_JWT_PUBLIC_KEY) in production"
                )
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.var_dir / 'tajiri.db').resolve()}"

    @property
    def is_embedded_database(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def resolved_hls_base_url(self) -> str:
        return (self.hls_base_url or f"{self.public_base_url.rstrip('/')}/hls").rstrip("/")

    @property
    def websocket_base_url(self) -> str:
        base = self.public_base_url.rstrip("/")
        if base.startswith("https://"):
            return "wss://" + base.removeprefix("https://")
        return "ws://" + base.removeprefix("http://")

    @property
    def media_dir(self) -> Path:
        return self.var_dir / "storage"

    def signing_algorithm(self) -> str:
        if self.jwt_algorithm:
            return self.jwt_algorithm
        return "RS256" if (self.jwt_public_key or self.jwt_private_key) else "HS256"

    def ensure_dev_secret(self) -> Settings:
        """In dev with no key configured, generate a secret once and keep it under var_dir.

        `tajiri-live token` and `serve` then agree without any configuration.
        """
        if self.jwt_secret or self.jwt_public_key or self.env == "production":
            return self
        path = self.var_dir / "jwt_secret"
        if not path.exists():
            self.var_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return self.model_copy(update={"jwt_secret": path.read_text().strip()})


def load_settings() -> Settings:
    return Settings().ensure_dev_secret()
