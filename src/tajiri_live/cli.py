"""The `tajiri-live` command: one entry point for serving, migrating, jobs and tokens."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import signal
from pathlib import Path
from typing import Any

import click

from tajiri_live.core import migrations
from tajiri_live.core.scheduler import Scheduler
from tajiri_live.core.settings import Settings, load_settings


def _settings() -> Settings:
    settings = load_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    return settings


def _preflight(settings: Settings) -> None:
    """The database and Redis answer, or one line names what is unreachable (and exit 1)."""
    from tajiri_live.core.availability import DependencyUnavailable, check_dependencies

    try:
        asyncio.run(check_dependencies(settings))
    except DependencyUnavailable as error:
        raise click.ClickException(str(error)) from None


@click.group()
def main() -> None:
    """tajiri-live: livestreaming backend for TAJIRI."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
@click.option(
    "--migrate/--no-migrate",
    default=None,
    help="Apply pending migrations first (default: on for the embedded SQLite).",
)
def serve(host: str, port: int, workers: int, migrate: bool | None) -> None:
    """Serve the REST API and WebSockets (and run the scheduled jobs)."""
    import uvicorn

    from tajiri_live.realtime.httpupgrade import FirstBytesProtocol
    from tajiri_live.realtime.server import WebSocketConnection

    settings = _settings()
    if migrate if migrate is not None else settings.is_embedded_database:
        migrations.upgrade(settings.resolved_database_url)
    if workers > 1 and not settings.redis_url:
        raise click.UsageError(
            "the in-memory backends serve one process; "
            "set TAJIRI_REDIS_URL (and a PostgreSQL database) for --workers."
        )
    _preflight(settings)
    uvicorn.run(
        "tajiri_live.asgi:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http=FirstBytesProtocol,  # an upgrade to our sockets at once, the rest to httptools
        ws=WebSocketConnection,  # the fan-out engine owns the socket after the upgrade
        log_level=settings.log_level,
        log_config=_log_config(settings.log_level),
        proxy_headers=True,
        server_header=False,
    )


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging, and the service's own loggers (ingest decisions, jobs, outages)
    beside its access lines: uvicorn configures only its own."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["service"] = {
        "()": "uvicorn.logging.DefaultFormatter",
        "fmt": "%(levelprefix)s %(name)s: %(message)s",
    }
    config["handlers"]["service"] = {
        "formatter": "service",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["tajiri_live"] = {
        "handlers": ["service"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


@main.command()
@click.option("--print-config", is_flag=True, help="Print nginx's configuration and exit.")
def ingest(print_config: bool) -> None:
    """Run nginx-rtmp (RTMP in, signed HLS out) configured from the TAJIRI_* settings."""
    import os
    import shutil

    from tajiri_live.ingest import nginx

    settings = _settings()
    run_dir = (settings.var_dir / "nginx").resolve()
    as_root = os.geteuid() == 0
    config = nginx.render(settings, run_dir=run_dir, as_root=as_root)
    if print_config:
        click.echo(config, nl=False)
        return
    user = settings.ingest_nginx_user
    for path in (run_dir / "tmp", *nginx.media_dirs(settings).all()):
        path.mkdir(parents=True, exist_ok=True)
        if as_root and user != "root":
            _reachable_by(user, path)
            shutil.chown(path, user=user)
    binary = shutil.which(settings.ingest_nginx_binary)
    if binary is None:
        raise click.ClickException(
            f"{settings.ingest_nginx_binary} not found: apt-get install nginx libnginx-mod-rtmp"
        )
    conf = run_dir / "nginx.conf"
    conf.write_text(config)
    conf.chmod(0o600)  # it holds the callback and link secrets
    click.echo(
        f"ingest: rtmp://{settings.ingest_listen_host}:{settings.ingest_rtmp_port}/live, "
        f"HLS on http://{settings.ingest_listen_host}:{settings.ingest_http_port}"
    )
    args = [binary, "-p", str(run_dir), "-c", str(conf), "-e", str(run_dir / "error.log")]
    os.execv(binary, args)  # nginx runs in the foreground (daemon off) in this process


def _reachable_by(user: str, path: Path) -> None:
    """Refuse to start an nginx whose workers could not write its files (it would run, and
    no stream would ever become playable)."""
    from tajiri_live.ingest import nginx

    try:
        closed = nginx.closed_to(user, path)
    except KeyError as exc:
        raise click.ClickException(
            f"there is no user {user!r} for nginx's workers: set TAJIRI_INGEST_NGINX_USER"
        ) from exc
    if closed is not None:
        raise click.ClickException(
            f"nginx's workers run as {user}, who may not enter {closed} on the way to {path}. "
            f"Keep the service's folders where {user} can reach them (TAJIRI_VAR_DIR, "
            f"TAJIRI_INGEST_MEDIA_DIR), let it pass with `chmod o+x {closed}`, or choose "
            "another TAJIRI_INGEST_NGINX_USER."
        )


@main.command()
def migrate() -> None:
    """Upgrade the configured database to the newest schema."""
    settings = _settings()
    migrations.upgrade(settings.resolved_database_url)
    click.echo("database is at the newest revision")


@main.command()
def worker() -> None:
    """Run the scheduled jobs without serving HTTP (for multi-process deployments)."""
    import uvloop

    from tajiri_live.app import build_services

    settings = _settings()
    _preflight(settings)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )

    async def run() -> None:
        services = build_services(settings)
        scheduler = Scheduler(services.cluster_jobs())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        scheduler.start()
        click.echo(f"worker running {len(scheduler.jobs)} jobs; Ctrl-C to stop")
        try:
            await stop.wait()
        finally:
            await scheduler.stop()
            await services.stop()

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(run())


@main.command()
@click.argument("user_id", type=int)
@click.option("--first-name")
@click.option("--last-name")
@click.option("--username")
@click.option("--picture")
@click.option("--region", help="The profile's region (analytics: viewers by region).")
@click.option("--admin", is_flag=True, help="Grant the admin role.")
@click.option("--ttl", type=int, default=None, help="Lifetime in seconds.")
def token(
    user_id: int,
    first_name: str | None,
    last_name: str | None,
    username: str | None,
    picture: str | None,
    region: str | None,
    admin: bool,
    ttl: int | None,
) -> None:
    """Print a bearer token for USER_ID signed with the configured key."""
    from tajiri_live.core.auth import TokenCodec

    if user_id <= 0:
        raise click.BadParameter("must be a positive user id", param_hint="USER_ID")
    codec = TokenCodec(_settings())
    click.echo(
        codec.encode(
            user_id,
            first_name=first_name,
            last_name=last_name,
            username=username,
            picture=picture,
            region=region,
            admin=admin,
            ttl_seconds=ttl,
        )
    )


@main.group()
def wallet() -> None:
    """Coins."""


@wallet.command("credit")
@click.argument("user_id", type=int)
@click.argument("amount", type=int)
def wallet_credit(user_id: int, amount: int) -> None:
    """Credit AMOUNT coins to USER_ID (issued by the mint, written to the ledger)."""
    from tajiri_live.app import build_services
    from tajiri_live.wallet.service import admin_credit

    async def run() -> int:
        services = build_services(_settings())
        try:
            async with services.runtime.sessions() as session:
                return await admin_credit(
                    session, runtime=services.runtime, user_id=user_id, amount=amount, actor_id=None
                )
        finally:
            await services.runtime.engine.dispose()
            if services.redis is not None:
                await services.redis.aclose(close_connection_pool=True)

    click.echo(f"user {user_id} now has {asyncio.run(run())} coins")


@main.command("pusher-apps")
def pusher_apps() -> None:
    """Print the Pusher apps' credentials, as a Laravel app's .env wants them."""
    from tajiri_live.broadcasting.apps import PusherApps

    settings = _settings()
    host = settings.public_base_url.split("://", 1)[-1].split("/")[0]
    hostname, _, port = host.partition(":")
    scheme = "https" if settings.public_base_url.startswith("https://") else "http"
    for app in PusherApps.from_settings(settings).apps:
        click.echo(
            f"# app {app.id} (event names: {app.event_names})\n"
            "BROADCAST_CONNECTION=pusher\n"
            f"PUSHER_APP_ID={app.id}\nPUSHER_APP_KEY={app.key}\nPUSHER_APP_SECRET={app.secret}\n"
            f"PUSHER_HOST={hostname}\nPUSHER_PORT={port or (443 if scheme == 'https' else 80)}\n"
            f"PUSHER_SCHEME={scheme}\n"
        )
