"""Settings safety, the dev secret, the CLI, and the real `serve` process."""

from __future__ import annotations

import asyncio
import os
import pwd
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from tajiri_live.cli import main
from tajiri_live.core.settings import Settings
from tajiri_live.ingest import nginx


def test_production_refuses_missing_or_placeholder_secret() -> None:
    with pytest.raises(ValidationError):
        Settings(env="production", jwt_secret=None)
    with pytest.raises(ValidationError):
        Settings(env="production", jwt_secret="changeme")
    with pytest.raises(ValidationError):
        Settings(env="production", jwt_secret="short-but-not-placeholder")
    assert Settings(env="production", jwt_secret="k" * 40).jwt_secret == "k" * 40
    with pytest.raises(ValidationError, match="PUSHER_APP_SECRET"):
        Settings(env="production", jwt_public_key="a public key cannot sign Pusher channels")


def test_production_verifying_elsewhere_needs_what_it_cannot_derive() -> None:
    sanctum = "mysql+asyncmy://live@db/tajiri"
    with pytest.raises(ValidationError, match="VIEWER_TOKEN_SECRET"):
        Settings(env="production", auth_sanctum_database_url=sanctum, pusher_app_secret="p" * 40)
    assert Settings(
        env="production",
        auth_sanctum_database_url=sanctum,
        pusher_app_secret="p" * 40,
        viewer_token_secret="v" * 40,
    ).verifies_elsewhere
    with pytest.raises(ValidationError, match="ISSUER"):
        Settings(
            env="production",
            jwt_jwks_url="https://idp.example/jwks",
            pusher_app_secret="p" * 40,
            viewer_token_secret="v" * 40,
        )
    with pytest.raises(ValidationError, match="JWT_SECRET"):  # a weak secret is never fine
        Settings(
            env="production",
            jwt_secret="changeme",
            auth_sanctum_database_url=sanctum,
            pusher_app_secret="p" * 40,
        )


def test_dev_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = Settings(var_dir=tmp_path).ensure_dev_secret()
    second = Settings(var_dir=tmp_path).ensure_dev_secret()
    assert first.jwt_secret and len(first.jwt_secret) >= 32
    assert first.jwt_secret == second.jwt_secret
    assert (tmp_path / "jwt_secret").stat().st_mode & 0o077 == 0


def test_token_command_signs_with_the_configured_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAJIRI_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("TAJIRI_JWT_SECRET", raising=False)
    result = CliRunner().invoke(
        main, ["token", "42", "--first-name", "Neema", "--admin", "--ttl", "60"]
    )
    assert result.exit_code == 0, result.output
    secret = (tmp_path / "jwt_secret").read_text().strip()
    claims = jwt.decode(result.output.strip(), secret, algorithms=["HS256"])
    assert claims["sub"] == "42" and claims["given_name"] == "Neema" and claims["admin"] is True
    assert claims["exp"] - claims["iat"] == 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_on_the_embedded_default(tmp_path: Path) -> None:
    """`tajiri-live serve` migrates its SQLite file and answers; a token from the CLI works."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAJIRI_")}
    env["TAJIRI_VAR_DIR"] = str(tmp_path / "var")
    port = free_port()
    command = [sys.executable, "-m", "tajiri_live", "serve", "--port", str(port)]
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "serve did not become ready"
            time.sleep(0.2)
        token = subprocess.run(
            [sys.executable, "-m", "tajiri_live", "token", "3"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        headers = {"Authorization": f"Bearer {token}"}
        created = httpx.post(f"{base}/api/streams", json={"title": "Live"}, headers=headers)
        assert created.status_code == 201
        sid = created.json()["data"]["id"]
        started = httpx.post(f"{base}/api/streams/{sid}/start", headers=headers)
        assert started.json()["data"]["status"] == "live"
    finally:
        process.terminate()
        process.wait(timeout=15)
    log = log_path.read_text()
    assert "POST /api/streams" in log  # the access log is there, so the check below means it
    key = created.json()["data"]["stream_key"]
    assert key not in log  # the stream key never reaches a log line


async def test_worker_runs_the_scheduled_jobs_without_http(
    client: httpx.AsyncClient, auth: Any, clock: Any, database_url: str, tmp_path: Path
) -> None:
    """`tajiri-live worker` moves a stream due within the lead time to pre_live."""
    from datetime import timedelta

    when = (clock.now() + timedelta(minutes=5)).isoformat()
    created = await client.post(
        "/api/streams", json={"title": "soon", "scheduled_at": when}, headers=auth(4)
    )
    stream_id = created.json()["data"]["id"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAJIRI_")}
    env.update(
        {
            "TAJIRI_VAR_DIR": str(tmp_path / "worker-var"),
            "TAJIRI_DATABASE_URL": database_url,
            "TAJIRI_JWT_SECRET": "w" * 40,
            "TAJIRI_JOB_TO_PRE_LIVE_EVERY_SECONDS": "0.2",
        }
    )
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log_file:
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tajiri_live",
            "worker",
            env=env,
            cwd=tmp_path,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        status = "scheduled"
        while status != "pre_live" and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            status = (await client.get(f"/api/streams/{stream_id}")).json()["data"]["status"]
        assert status == "pre_live", log_path.read_text()
    finally:
        worker.terminate()
        await asyncio.wait_for(worker.wait(), 15)
    assert worker.returncode == 0, log_path.read_text()


def test_rs256_tokens_with_a_public_key_and_issuer_audience_checks() -> None:
    """Behind TAJIRI's own identity: verify with its public key, sign nothing here."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from tajiri_live.core.auth import TokenCodec
    from tajiri_live.core.errors import ApiError

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    identity = TokenCodec(
        Settings(
            jwt_private_key=private_pem,
            jwt_public_key=public_pem,
            jwt_issuer="tajiri",
            jwt_audience="live",
        )
    )
    service = TokenCodec(
        Settings(
            env="production",
            jwt_public_key=public_pem,
            jwt_issuer="tajiri",
            jwt_audience="live",
            pusher_app_secret="p" * 40,  # nothing to derive it from when only verifying
            viewer_token_secret="v" * 40,  # likewise for the sockets' own tokens
        )
    )
    token = identity.encode(12, first_name="Zawadi", admin=True)
    principal = service.decode(token)
    assert (principal.user_id, principal.first_name, principal.is_admin) == (12, "Zawadi", True)

    forged = jwt.encode(
        {"sub": "12", "exp": int(time.time()) + 60, "iss": "tajiri", "aud": "live"},
        "some-shared-secret-" + "x" * 30,
        algorithm="HS256",
    )
    with pytest.raises(ApiError) as refused:
        service.decode(forged)  # an HS256 token is not accepted where RS256 is configured
    assert refused.value.status_code == 401
    elsewhere = TokenCodec(
        Settings(
            jwt_private_key=private_pem,
            jwt_public_key=public_pem,
            jwt_issuer="someone-else",
            jwt_audience="live",
        )
    )
    with pytest.raises(ApiError):
        service.decode(elsewhere.encode(12))


def test_pusher_apps_prints_laravel_credentials(tmp_path: Path) -> None:
    env = {
        "TAJIRI_VAR_DIR": str(tmp_path),
        "TAJIRI_JWT_SECRET": "j" * 40,
        "TAJIRI_PUBLIC_BASE_URL": "https://live.example.org",
    }
    result = CliRunner().invoke(main, ["pusher-apps"], env=env)
    assert result.exit_code == 0, result.output
    lines = dict(line.split("=", 1) for line in result.output.splitlines() if "=" in line)
    assert lines["PUSHER_APP_ID"] == "1" and lines["PUSHER_APP_KEY"] == "tajiri-live"
    assert lines["PUSHER_HOST"] == "live.example.org" and lines["PUSHER_PORT"] == "443"
    secret = lines["PUSHER_APP_SECRET"]
    assert len(secret) == 40 and "j" * 10 not in secret  # derived, not the JWT secret itself


def test_ingest_prints_its_nginx_configuration(tmp_path: Path) -> None:
    env = {
        "TAJIRI_VAR_DIR": str(tmp_path),
        "TAJIRI_JWT_SECRET": "j" * 40,
        "TAJIRI_INGEST_CALLBACK_BASE_URL": "http://10.0.0.2:8000",
        "TAJIRI_INGEST_RTMP_PORT": "1936",
        "TAJIRI_INGEST_ABR_ENABLED": "true",
    }
    result = CliRunner().invoke(main, ["ingest", "--print-config"], env=env)
    assert result.exit_code == 0, result.output
    config = result.output
    assert "listen 127.0.0.1:1936;" in config
    assert "on_publish http://10.0.0.2:8000/api/rtmp/publish?secret=" in config
    assert "-var_stream_map" in config and "name:720p" in config  # the default ladder
    assert "secure_link_md5" in config and "j" * 10 not in config  # derived secrets only


def test_a_folder_closed_to_nginx_workers_is_found(tmp_path: Path) -> None:
    me = pwd.getpwuid(os.getuid()).pw_name
    assert nginx.closed_to(me, tmp_path / "media") is None
    # pytest keeps its folders in pytest-of-<user>, open to that user alone.
    closed = nginx.closed_to("nobody", tmp_path / "media")
    assert closed is not None and closed.name == f"pytest-of-{me}"


@pytest.mark.skipif(os.geteuid() != 0, reason="nginx's workers change user only under root")
def test_ingest_refuses_workers_that_could_not_reach_the_media(tmp_path: Path) -> None:
    env = {
        "TAJIRI_VAR_DIR": str(tmp_path / "var"),
        "TAJIRI_JWT_SECRET": "j" * 40,
        "TAJIRI_INGEST_NGINX_USER": "nobody",
        "TAJIRI_INGEST_NGINX_BINARY": str(tmp_path / "no-nginx"),  # never exec'd by a test
    }
    result = CliRunner().invoke(main, ["ingest"], env=env)
    assert result.exit_code != 0
    assert "nobody, who may not enter" in result.output and "pytest-of-root" in result.output


def test_a_remembered_token_still_expires_and_a_forged_one_is_not_remembered() -> None:
    from tajiri_live.core.auth import TokenCodec
    from tajiri_live.core.errors import ApiError

    codec = TokenCodec(Settings(jwt_secret="k" * 40))
    token = codec.encode(5, ttl_seconds=1)
    assert codec.decode(token).user_id == 5
    assert codec.decode(token).user_id == 5  # from the cache of verified tokens
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(ApiError):
        codec.decode(forged)
    time.sleep(1.1)
    with pytest.raises(ApiError, match="expired"):
        codec.decode(token)


def test_a_sockets_client_address_is_believed_only_from_trusted_proxies() -> None:
    from tajiri_live.core.clientaddr import client_address

    lb = ["10.0.0.0/8", "127.0.0.1"]
    assert client_address("203.0.113.5", "1.2.3.4", lb) == "203.0.113.5"  # not a proxy: ignored
    assert client_address("10.0.0.2", "198.51.100.7", lb) == "198.51.100.7"
    # Read from the right: what the client wrote on the left is never believed.
    assert client_address("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.0.0.9", lb) == "198.51.100.7"
    assert client_address("10.0.0.2", "10.0.0.9", lb) == "10.0.0.2"  # only proxies in it
    assert client_address("10.0.0.2", "not-an-address", lb) == "10.0.0.2"
    assert client_address("10.0.0.2", None, lb) == "10.0.0.2"
    assert client_address("::1", "2001:db8::7", ["::1"]) == "2001:db8::7"
    with pytest.raises(ValidationError) as refused:
        Settings(trusted_proxies=["10.0.0.0/8", "the load balancer"])
    assert "the load balancer" in str(refused.value)


def test_the_fan_out_latency_budget_is_checked_at_startup() -> None:
    assert Settings().realtime_latency_budget_ms == 150
    assert Settings(realtime_latency_budget_ms=300).realtime_latency_budget_ms == 300
    for nonsense in (0, -5, 60_000):
        with pytest.raises(ValidationError, match="realtime_latency_budget_ms"):
            Settings(realtime_latency_budget_ms=nonsense)
    with pytest.raises(ValidationError, match="LATENCY_BUDGET_MS \\(15\\) must be larger"):
        Settings(realtime_latency_budget_ms=15)  # below the 20 ms tick: never kept
