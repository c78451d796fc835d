"""Settings from the environment (prefix ``TAJIRI_``), grouped by concern, safe dev defaults."""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator
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
    # The zone of times the client sends without an offset (an IANA name); answers are UTC.
    client_timezone: str = "UTC"
    metrics_token: str | None = None  # set: /metrics wants `Authorization: Bearer <it>`

    # --- database ------------------------------------------------------------------------
    # Unset: a SQLite file under var_dir (the embedded default).
    database_url: str | None = None
    database_echo: bool = False

    # --- redis (unset: in-memory backends, one process) ------------------------------------
    redis_url: str | None = None
    redis_max_connections: int = Field(default=64, ge=2)  # per process (pub/sub holds one)
    redis_pool_timeout_seconds: float = 10.0  # a request waits this long for a connection
    redis_connect_timeout_seconds: float = Field(default=3.0, gt=0)  # an unreachable host
    redis_socket_timeout_seconds: float = Field(default=5.0, gt=0)  # a command's answer

    # --- auth ----------------------------------------------------------------------------
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_private_key: str | None = None
    jwt_algorithm: str | None = None  # default: HS256 with a secret, RS256 with a key pair
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_default_ttl_seconds: int = 7 * 24 * 3600
    # Keys from an OIDC provider's JWKS endpoint (Firebase Auth, Keycloak...), chosen by `kid`.
    jwt_jwks_url: str | None = None
    jwt_jwks_min_refresh_seconds: float = Field(default=60.0, ge=1)  # on an unknown `kid`
    jwt_jwks_timeout_seconds: float = Field(default=5.0, gt=0)  # a slow provider gives up
    jwt_user_id_claim: str = "sub"  # the claim holding the TAJIRI user id (an integer)
    # Laravel Sanctum: the main app's database, where `personal_access_tokens` and `users` are.
    auth_sanctum_database_url: str | None = None
    auth_sanctum_user_model: str = "App\\Models\\User"  # `tokenable_type` of user tokens
    auth_sanctum_expiration_minutes: float | None = Field(default=None, gt=0)  # `expiration`
    auth_sanctum_tokens_table: str = Field(
        default="personal_access_tokens", pattern=r"^[A-Za-z_][A-Za-z0-9_.]{0,127}$"
    )
    auth_sanctum_users_table: str = Field(
        default="users", pattern=r"^[A-Za-z_][A-Za-z0-9_.]{0,127}$"
    )
    auth_sanctum_timezone: str = "UTC"  # the main app's APP_TIMEZONE (its timestamps are naive)
    auth_sanctum_touch_last_used: bool = True  # off: read-only credentials are enough
    auth_sanctum_admin_ability: str | None = None  # a token ability that makes its user admin
    # Introspection: the main app answers who a token is (e.g. its `/api/user`).
    auth_introspection_url: str | None = None
    auth_introspection_timeout_seconds: float = Field(default=5.0, gt=0)
    auth_cache_seconds: float = Field(default=60.0, ge=0)  # answers (and refusals) reused this long
    # Refused lookups one client address may cause per 10 s (then its unknown tokens get 429);
    # 0: no limit. Cached answers are not counted.
    auth_refusals_per_address: int = Field(default=50, ge=0)
    # The shipped mobile client sends no token: it names itself with `user_id` (and the like).
    # On, such requests act as that user for what the client does (never money, never admin).
    legacy_client_identity: bool = False
    # Socket tokens handed out by `join`; unset: derived from the JWT secret or private key.
    viewer_token_secret: str | None = None
    viewer_token_ttl_seconds: int = Field(default=6 * 3600, ge=60)
    # Introspection gives no expiry and no way to ask again without the user's token.
    viewer_token_unchecked_ttl_seconds: int = Field(default=900, ge=60)

    # --- streams and lifecycle -------------------------------------------------------------
    pre_live_lead_seconds: int = 15 * 60
    outro_seconds: float = 5.0
    no_show_hours: float = 3.0
    schedule_max_days_ahead: int = Field(default=365, ge=1, le=3650)  # scheduled_at at most
    stream_create_limit: int = Field(default=20, ge=1)  # streams a user may create...
    stream_create_window_seconds: float = Field(default=600.0, gt=0)  # ...in this window
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

    # --- super chats and coins (docs/architecture.md "Super chats", "Coins and TZS") ------
    # Coins a super chat of 1 TZS costs: an amount of N TZS is paid with N x this coins.
    coins_per_tzs: int = Field(default=1, ge=1, le=1_000_000)
    super_chat_max_tzs: int = Field(default=10_000_000, ge=10_000, le=10**12)  # the largest taken
    super_chat_max_length: int = Field(default=200, ge=1, le=5000)  # the message's characters
    super_chat_creator_share: int = Field(default=70, ge=0, le=100)  # percent, as gifts' default
    super_chat_limit: int = 3  # super chats per user per stream...
    super_chat_window_seconds: float = 10.0  # ...in this window
    # The main app's credit route (POST /api/internal/wallet/credits): unset, it is closed.
    wallet_credit_secret: str | None = None
    wallet_credit_window_seconds: float = Field(default=300.0, gt=0)  # a signature's age limit

    # --- idempotency (core/idempotency.py) -----------------------------------------------
    idempotency_ttl_hours: float = Field(default=24.0, gt=0)  # a key is remembered this long
    job_idempotency_purge_every_seconds: float = 3600.0
    # --- polls, Q&A and stream health (docs/architecture.md "Polls", "Q&A", "Stream health")
    poll_max_open: int = Field(default=1, ge=1)  # open polls per stream at a time
    poll_max_options: int = Field(default=6, ge=2, le=20)
    poll_create_limit: int = 5  # polls a host may open per stream...
    poll_create_window_seconds: float = 60.0  # ...in this window
    poll_vote_limit: int = 5  # vote attempts per user per stream (one counts per poll)...
    poll_vote_window_seconds: float = 10.0  # ...in this window
    question_max_length: int = Field(default=300, ge=1, le=5000)
    question_limit: int = 1  # questions per user per stream...
    question_window_seconds: float = 10.0  # ...in this window
    upvote_limit: int = 10  # question upvotes per user per stream...
    upvote_window_seconds: float = 10.0  # ...in this window
    # --- PK battles (docs/architecture.md "PK battles") ------------------------------------
    battle_duration_seconds: float = Field(default=300.0, gt=0, le=86400)  # an accepted battle
    battle_invite_ttl_seconds: float = Field(default=60.0, gt=0, le=3600)  # to accept an invite
    battle_invite_limit: int = 5  # invitations an owner may send per stream...
    battle_invite_window_seconds: float = 60.0  # ...in this window
    job_battles_every_seconds: float = Field(default=1.0, gt=0)  # ends due battles, expiries
    health_report_limit: int = 2  # encoder health reports per stream...
    health_report_window_seconds: float = 1.0  # ...in this window
    # Network quality from measured bitrate when the encoder's target is unknown (kbps).
    health_excellent_kbps: int = Field(default=1500, ge=1)
    health_poor_kbps: int = Field(default=300, ge=0)

    # --- moderation ----------------------------------------------------------------------
    # Unset: the built-in Swahili and English lists (moderation/wordfilter.py).
    bad_words: list[str] | None = None
    bad_word_action: Literal["mask", "reject"] = "mask"
    spam_repeat_seconds: float = 60.0  # the same text again within this is spam
    spam_max_links: int = 2  # more links than this in one comment is spam
    max_mute_minutes: int = 24 * 60

    # --- request bodies and uploads ---------------------------------------------------------
    # Received whole, counted while they stream in, before anything reads them
    # (core/bodylimit.py); uploads and the Pusher HTTP API have their own limits.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # The whole body must arrive within this (408 otherwise); nothing runs before it has.
    body_timeout_seconds: float = Field(default=20.0, gt=0, le=600)
    max_thumbnail_bytes: int = 5 * 1024 * 1024

    # --- ingest and playback (nginx-rtmp, ffmpeg; docs/operations.md "Ingest") ---------------
    # Off (the embedded default, no nginx): `start` puts a stream on air and its playback URL
    # is unsigned. On: nginx-rtmp's callbacks decide, keys are checked, HLS URLs are signed and
    # returned only once the playlist exists.
    ingest_enabled: bool = False
    rtmp_ingest_url: str = "rtmp://127.0.0.1:1935/live"
    # Ingest off: where another server serves HLS, as {this}/{id}/index.m3u8 (unsigned).
    # Unset: no playback_url (nothing here serves HLS without ingest).
    hls_base_url: str | None = None
    media_base_url: str | None = None  # ingest on: nginx's HTTP server as viewers reach it
    ingest_listen_host: str = "127.0.0.1"  # where nginx listens (RTMP and HLS)
    ingest_rtmp_port: int = 1935
    ingest_http_port: int = 8088
    ingest_media_dir: Path | None = None  # HLS, recordings, thumbnails; default var_dir/media
    ingest_callback_base_url: str | None = None  # where nginx calls us; default public_base_url
    ingest_control_url: str | None = None  # nginx's /control and /stat; default its HTTP port
    # Who may reach nginx's /control and /stat (the API nodes): addresses or CIDR blocks.
    ingest_control_allow: list[str] = Field(default_factory=lambda: ["127.0.0.1"])
    ingest_secret: str | None = None  # callbacks' shared secret; unset: derived from the JWT one
    hls_signing_secret: str | None = None  # secure_link's secret; unset: derived likewise
    hls_url_ttl_seconds: int = Field(default=4 * 3600, ge=60)
    hls_fragment_seconds: float = Field(default=1.0, gt=0)
    hls_playlist_seconds: float = Field(default=6.0, gt=0)
    ingest_reconnect_seconds: float = 60.0  # an encoder that drops may come back this long
    ingest_update_seconds: int = Field(default=5, ge=1)  # nginx's on_update period
    ingest_publisher_stale_seconds: float = 30.0  # no update this long: the publisher is gone
    ingest_playlist_wait_seconds: float = 30.0  # how long a publish waits for its playlist
    ingest_key_ttl_hours: float = Field(default=72.0, gt=0)  # after creation or the schedule
    # The shipped mobile SDK publishes to .../live/{stream_id} with no key: anyone who knows
    # a stream's id could then go live in its place. Off unless that client must be served.
    ingest_legacy_stream_id_names: bool = False
    ingest_abr_enabled: bool = False
    # name:WIDTHxHEIGHT:video bitrate:audio bitrate, best first
    ingest_abr_renditions: list[str] = Field(
        default_factory=lambda: [
            "720p:1280x720:2500k:128k",
            "480p:854x480:1200k:96k",
            "360p:640x360:700k:64k",
        ]
    )
    ingest_thumbnail_seconds: float = 15.0  # a live stream's thumbnail is refreshed this often
    ingest_nginx_binary: str = "nginx"
    ingest_ffmpeg_binary: str = "ffmpeg"
    ingest_rtmp_module: Path = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
    ingest_nginx_user: str = "www-data"  # when started as root, nginx's workers run as this
    job_ingest_media_every_seconds: float = 2.0

    # --- real time -------------------------------------------------------------------------
    websocket_protocol: Literal["plain", "pusher"] = "plain"
    global_channel: str = "streams"
    redis_prefix: str = "tajiri:"
    realtime_tick_ms: float = 20.0  # the least time between two writes to one socket
    # End to end (publisher to the client's read), the p99 the fan-out wheel keeps frames
    # within; it writes each socket as rarely as that allows (fewer writes: less CPU).
    realtime_latency_budget_ms: float = Field(default=150.0, gt=0, le=10_000)
    realtime_sockets_per_step: int = Field(default=100, ge=1)  # then the loop does other work
    # Counters (poll totals, upvotes): at most one event per counter per this tick and node.
    realtime_coalesce_ms: float = Field(default=200.0, gt=0)
    slow_consumer_bytes: int = 4 * 1024 * 1024  # unread bytes before a socket is closed
    # All sockets' unread bytes together, per process: past it the sockets holding the most
    # are closed as slow (many sockets that do not read would each stay under the above).
    slow_consumers_total_bytes: int = Field(default=512 * 1024 * 1024, ge=1024 * 1024)
    sample_room_size: int = 1000  # rooms this big...
    sample_comments_per_second: int = 50  # ...get at most this many comments a second
    ws_idle_timeout_seconds: float = 180.0  # the client pings every 30 s
    ws_max_message_bytes: int = Field(default=64 * 1024, ge=1024)  # a client message, assembled
    ws_max_fragments: int = Field(default=64, ge=1)  # frames one client message may span
    # What one socket may ask (realtime/flood.py): messages per second and at once, actions
    # queued behind the running one, and drops tolerated after `rate_limited` before a 1008.
    ws_messages_per_second: float = Field(default=10.0, gt=0)
    ws_message_burst: int = Field(default=30, ge=1)
    ws_action_queue: int = Field(default=8, ge=1)
    ws_flood_tolerance: int = Field(default=90, ge=1)
    viewer_count_interval_seconds: float = 3.0
    # Pusher channel occupancy: a dead node's subscriptions vanish within the TTL.
    presence_member_ttl_seconds: float = 30.0
    presence_renew_seconds: float = 10.0
    # Viewers (docs/architecture.md, "Counting viewers"): every serving node beats this often;
    # one silent for the timeout is reaped (its visits end at its last beat).
    node_heartbeat_seconds: float = Field(default=1.0, gt=0)
    node_timeout_seconds: float = Field(default=10.0, gt=0)
    rest_join_ttl_seconds: float = 90.0  # a REST join counts this long unless renewed
    # A node keeps a stream's admission facts (status, privacy, owner, co-hosts) and bans
    # this long at most; the events that change them drop them sooner (0: always read).
    admission_cache_seconds: float = Field(default=5.0, ge=0)
    anonymous_viewers_per_address: int = Field(default=3, ge=0)  # per stream, cluster-wide
    # Peers whose X-Forwarded-For is believed on sockets (addresses or CIDR blocks), as
    # uvicorn's --forwarded-allow-ips is for HTTP: the proxies in front of `serve`.
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
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
    pusher_max_subscriptions: int = Field(default=100, ge=1)  # channels per connection
    pusher_max_payload_bytes: int = 10 * 1024  # an event's data, as Pusher limits it

    extra_cors_origins: list[str] = Field(default_factory=list)

    @field_validator("client_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"{value!r} is not an IANA time zone name (such as Africa/Dar_es_Salaam)"
            ) from exc
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses_or_blocks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as error:
                raise ValueError(f"not an address or CIDR block: {entry!r}") from error
        return value

    @model_validator(mode="after")
    def _latency_budget_above_the_tick(self) -> Settings:
        # The wheel turns at least a tick apart: a smaller budget could never be kept.
        if self.realtime_latency_budget_ms <= self.realtime_tick_ms:
            raise ValueError(
                f"TAJIRI_REALTIME_LATENCY_BUDGET_MS ({self.realtime_latency_budget_ms:g}) must "
                f"be larger than TAJIRI_REALTIME_TICK_MS ({self.realtime_tick_ms:g})"
            )
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_secret_in_production(self) -> Settings:
        if self.env == "production" and not (self.pusher_app_secret or self.jwt_secret):
            raise ValueError(
                "TAJIRI_PUSHER_APP_SECRET must be set in production when no TAJIRI_JWT_SECRET "
                "is there to derive it from"
            )
        if (
            self.env == "production"
            and self.ingest_enabled
            and not (self.jwt_secret or self.jwt_private_key)
            and not (self.ingest_secret and self.hls_signing_secret)
        ):
            raise ValueError(
                "TAJIRI_INGEST_SECRET and TAJIRI_HLS_SIGNING_SECRET must be set in production "
                "when no JWT secret or private key is there to derive them from"
            )
        credit_secret = self.wallet_credit_secret
        if (
            self.env == "production"
            and credit_secret is not None
            and (
                credit_secret.strip().lower() in PLACEHOLDER_SECRETS
                or len(credit_secret) < MIN_SECRET_LENGTH
            )
        ):
            # Whoever knows it can issue coins.
            raise ValueError(
                "TAJIRI_WALLET_CREDIT_SECRET must be a random value of at least "
                f"{MIN_SECRET_LENGTH} characters in production (or unset: the route is closed)"
            )
        if self.push_sender == "fcm" and self.fcm_service_account_file is None:
            raise ValueError("TAJIRI_PUSH_SENDER=fcm needs TAJIRI_FCM_SERVICE_ACCOUNT_FILE")
        if self.env == "production" and not (
            self.jwt_secret or self.jwt_private_key or self.viewer_token_secret
        ):
            raise ValueError(
                "TAJIRI_VIEWER_TOKEN_SECRET must be set in production when no "
                "TAJIRI_JWT_SECRET or private key is there to derive it from"
            )
        if (
            self.env == "production"
            and self.jwt_jwks_url
            and not (self.jwt_issuer and self.jwt_audience)
        ):
            # A provider's keys sign tokens for every app of every tenant it serves.
            raise ValueError(
                "TAJIRI_JWT_ISSUER and TAJIRI_JWT_AUDIENCE must be set in production with "
                "TAJIRI_JWT_JWKS_URL"
            )
        # A weak shared secret lets anyone sign tokens, whatever else verifies them.
        if self.env == "production" and (self.jwt_secret or not self.verifies_elsewhere):
            secret = self.jwt_secret or ""
            if secret.strip().lower() in PLACEHOLDER_SECRETS or len(secret) < MIN_SECRET_LENGTH:
                raise ValueError(
                    "TAJIRI_JWT_SECRET must be set to a random value of at least "
                    f"{MIN_SECRET_LENGTH} characters in production (or leave it unset and "
                    "verify with TAJIRI_JWT_PUBLIC_KEY, TAJIRI_JWT_JWKS_URL, Sanctum or "
                    "introspection)"
                )
        return self

    @property
    def verifies_elsewhere(self) -> bool:
        """Tokens are checked with keys or services other than a shared HS256 secret."""
        return bool(
            self.jwt_public_key
            or self.jwt_jwks_url
            or self.auth_sanctum_database_url
            or self.auth_introspection_url
        )

    @property
    def client_zone(self) -> ZoneInfo:
        return ZoneInfo(self.client_timezone)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.var_dir / 'tajiri.db').resolve()}"

    @property
    def is_embedded_database(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def resolved_media_base_url(self) -> str:
        default = f"http://{self.ingest_listen_host}:{self.ingest_http_port}"
        return (self.media_base_url or default).rstrip("/")

    @property
    def resolved_ingest_media_dir(self) -> Path:
        return (self.ingest_media_dir or self.var_dir / "media").resolve()

    @property
    def resolved_ingest_control_url(self) -> str:
        default = f"http://127.0.0.1:{self.ingest_http_port}"
        return (self.ingest_control_url or default).rstrip("/")

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
