"""Identity: Sanctum tokens from a Laravel-shaped database (PostgreSQL and MariaDB), JWKS,
introspection, the cache, viewer tokens, and dependencies that are down."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from jwt.algorithms import HMACAlgorithm, RSAAlgorithm

from authservers import IntrospectionServer, JwksServer, SigningKey
from laravel import MainAppDatabase, server_url
from tajiri_live.app import create_app
from tajiri_live.core.auth.hs256 import Hs256Checker, Hs256Signer
from tajiri_live.core.auth.jwt import TokenCodec, prepared_key_jwt, unverified_header
from tajiri_live.core.auth.principal import JWT, Principal
from tajiri_live.core.auth.viewer import AUDIENCE, ViewerTokens
from tajiri_live.core.clock import ManualClock
from tajiri_live.core.errors import ApiError
from tajiri_live.core.settings import Settings

NEEMA = 501


@asynccontextmanager
async def serving(
    settings: Settings, clock: ManualClock, **changes: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    application = create_app(settings.model_copy(update=changes), clock=clock, run_jobs=False)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield application, client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(params=["postgresql", "mariadb"])
async def mainapp(request: pytest.FixtureRequest) -> AsyncIterator[MainAppDatabase]:
    database = await MainAppDatabase(request.param, server_url(request.param)).create()
    try:
        yield database
    finally:
        await database.drop()


# --- Sanctum -------------------------------------------------------------------------------


async def test_a_sanctum_token_signs_the_caller_in_with_the_main_apps_names(
    mainapp: MainAppDatabase, settings: Settings, clock: ManualClock
) -> None:
    await mainapp.add_user(
        NEEMA,
        first_name="Neema",
        last_name="Juma",
        username="neema",
        profile_photo_path="avatars/neema.jpg",
    )
    _, token = await mainapp.issue_token(NEEMA)
    async with serving(settings, clock, auth_sanctum_database_url=mainapp.url) as (_app, client):
        created = await client.post("/api/streams", json={"title": "Habari"}, headers=bearer(token))
        assert created.status_code == 201, created.text
        stream = created.json()["data"]
        assert stream["user_id"] == NEEMA
        user = stream["user"]
        assert (user["first_name"], user["last_name"], user["username"]) == (
            "Neema",
            "Juma",
            "neema",
        )
        assert user["profile_photo_path"] == "avatars/neema.jpg"
        # A token without its id is found by its hash, as Sanctum does.
        plain = token.partition("|")[2]
        assert (await client.get("/api/wallet", headers=bearer(plain))).status_code == 200
        ready = (await client.get("/ready")).json()
        assert ready["status"] == "ready"
        assert "sanctum" in ready["identity"]["authenticators"]


async def test_deleted_expired_foreign_and_orphaned_tokens_are_refused(
    mainapp: MainAppDatabase, settings: Settings, clock: ManualClock
) -> None:
    await mainapp.add_user(NEEMA, first_name="Neema")
    token_id, token = await mainapp.issue_token(NEEMA)
    now = datetime.now(UTC)
    _, expired = await mainapp.issue_token(NEEMA, expires_at=now - timedelta(minutes=1))
    _, old = await mainapp.issue_token(NEEMA, created_at=now - timedelta(hours=2))
    _, foreign = await mainapp.issue_token(NEEMA, model="App\\Models\\Merchant")
    _, orphan = await mainapp.issue_token(9_999)  # no such user
    async with serving(
        settings,
        clock,
        auth_sanctum_database_url=mainapp.url,
        auth_sanctum_expiration_minutes=60,
        auth_cache_seconds=1.0,
    ) as (_app, client):
        assert (await client.get("/api/wallet", headers=bearer(token))).status_code == 200
        for bad, why in (
            (expired, "expired"),
            (old, "expired"),
            (foreign, "does not belong to a user"),
            (orphan, "no longer exists"),
        ):
            answer = await client.get("/api/wallet", headers=bearer(bad))
            assert answer.status_code == 401, (bad, answer.text)
            assert why in answer.json()["message"]
        # Revoked (the row deleted): refused once the cached answer is older than the window.
        await mainapp.execute("DELETE FROM personal_access_tokens WHERE id = :id", id=token_id)
        assert (await client.get("/api/wallet", headers=bearer(token))).status_code == 200
        await asyncio.sleep(1.1)
        assert (await client.get("/api/wallet", headers=bearer(token))).status_code == 401


async def test_malformed_tokens_are_refused_without_a_lookup(
    mainapp: MainAppDatabase, settings: Settings, clock: ManualClock
) -> None:
    async with serving(settings, clock, auth_sanctum_database_url=mainapp.url) as (app, client):
        sanctum = app.state.runtime.identity.sanctum
        for bad in ("abc|0123456789", "12x|abc", "|", "x" * 10_240, "a.b.c", "0|abc"):
            answer = await client.get("/api/wallet", headers=bearer(bad))
            assert answer.status_code == 401, (bad[:20], answer.text)
            assert answer.json()["success"] is False
        assert sanctum.lookups == 0
        identity = app.state.runtime.identity
        for bad in ("1|abc\x00def", "é|x", "1|" + "y" * 300):
            with pytest.raises(ApiError) as refused:
                await identity.authenticate(bad)
            assert refused.value.status_code == 401


async def test_last_used_at_is_written_off_the_request_path_once_a_minute(
    mainapp: MainAppDatabase, settings: Settings, clock: ManualClock
) -> None:
    await mainapp.add_user(NEEMA)
    token_id, token = await mainapp.issue_token(NEEMA)
    last_used = "SELECT last_used_at FROM personal_access_tokens WHERE id = :id"
    async with serving(settings, clock, auth_sanctum_database_url=mainapp.url) as (app, client):
        identity = app.state.runtime.identity
        assert (await client.get("/api/wallet", headers=bearer(token))).status_code == 200
        assert await mainapp.scalar(last_used, id=token_id) is None  # not while the request ran
        assert await identity.sanctum.flush_last_used() == 1
        written = await mainapp.scalar(last_used, id=token_id)
        assert written is not None
        assert (await client.get("/api/streams", headers=bearer(token))).status_code == 200
        assert await identity.sanctum.flush_last_used() == 0  # within the minute
    async with serving(
        settings,
        clock,
        auth_sanctum_database_url=mainapp.url,
        auth_sanctum_touch_last_used=False,
    ) as (app, client):
        _, fresh = await mainapp.issue_token(NEEMA)
        assert (await client.get("/api/wallet", headers=bearer(fresh))).status_code == 200
        assert await app.state.runtime.identity.sanctum.flush_last_used() == 0


async def test_a_flood_of_bad_tokens_costs_one_lookup_per_distinct_token(
    mainapp: MainAppDatabase, settings: Settings, clock: ManualClock
) -> None:
    """10,000 requests with 50 distinct bad tokens: 50 lookups in the window, not 10,000."""
    await mainapp.add_user(NEEMA)
    _, good = await mainapp.issue_token(NEEMA)
    bad = [f"{n}|{'wrong' * 8}" for n in range(1, 51)]
    # One window for the whole flood, however slow the machine running it. The per-address
    # bound on refused lookups (tested on its own) sits just above the flood's 50 lookups:
    # requests waiting on a lookup under way must not count as lookups of their own.
    async with serving(
        settings,
        clock,
        auth_sanctum_database_url=mainapp.url,
        auth_cache_seconds=3600,
        auth_refusals_per_address=len(bad) + 1,
    ) as (app, client):
        sanctum = app.state.runtime.identity.sanctum

        async def call(token: str) -> int:
            return (await client.get("/api/wallet", headers=bearer(token))).status_code

        statuses: list[int] = []
        for start in range(0, 10_000, 500):  # 500 at a time, the same tokens over and over
            batch = [bad[n % len(bad)] for n in range(start, start + 500)]
            statuses += await asyncio.gather(*(call(t) for t in batch))
        assert statuses.count(401) == 10_000
        assert sanctum.lookups == len(bad)
        # The good token is looked up once however often it is used.
        assert {await call(good) for _ in range(20)} == {200}
        assert sanctum.lookups == len(bad) + 1


async def test_legacy_ids_are_checked_against_the_main_apps_users(
    mainapp: MainAppDatabase, settings: Settings, clock: ManualClock
) -> None:
    await mainapp.add_user(NEEMA, first_name="Neema", username="neema")
    async with serving(
        settings, clock, auth_sanctum_database_url=mainapp.url, legacy_client_identity=True
    ) as (_app, client):
        created = await client.post("/api/streams", data={"user_id": str(NEEMA), "title": "x"})
        assert created.status_code == 201, created.text
        assert created.json()["data"]["user"]["first_name"] == "Neema"
        unknown = await client.post("/api/streams", data={"user_id": "424242", "title": "x"})
        assert unknown.status_code == 401
        # Following: ids the main app knows are followed (and named); others are 404.
        _, token = await mainapp.issue_token(NEEMA)
        await mainapp.add_user(502, first_name="Juma")
        followed = await client.post("/api/users/502/follow", headers=bearer(token))
        assert followed.status_code == 200, followed.text
        missing = await client.post("/api/users/777777/follow", headers=bearer(token))
        assert missing.status_code == 404


async def test_a_sanctum_database_that_is_down_is_a_503_and_jwts_still_work(
    settings: Settings, clock: ManualClock
) -> None:
    down = "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"
    async with serving(settings, clock, auth_sanctum_database_url=down) as (app, client):
        answer = await client.get("/api/wallet", headers=bearer("5|" + "a" * 40))
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == "5"
        assert "cannot be reached" in answer.json()["message"]
        ready = await client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["sanctum_database"].startswith("unreachable")
        jwt_token = app.state.runtime.tokens.encode(8)
        assert (await client.get("/api/wallet", headers=bearer(jwt_token))).status_code == 200
        # "Cannot tell now" is not remembered as a refusal.
        assert app.state.runtime.identity.stats.refused == 0


# --- JWKS ----------------------------------------------------------------------------------


def claims(user_id: int | str, **more: Any) -> dict[str, Any]:
    return {"sub": str(user_id), "exp": int(time.time()) + 600, **more}


async def test_jwks_keys_by_kid_rotation_rate_limit_and_bad_answers(
    settings: Settings, clock: ManualClock
) -> None:
    first, second = SigningKey("k1"), SigningKey("k2")
    provider = await JwksServer([first]).start()
    try:
        async with serving(
            settings,
            clock,
            jwt_jwks_url=provider.jwks_url,
            jwt_jwks_min_refresh_seconds=1,
            jwt_jwks_timeout_seconds=0.5,
        ) as (_app, client):
            wallet = "/api/wallet"
            assert (await client.get(wallet, headers=bearer(first.sign(claims(41))))).is_success
            assert provider.hits == 1
            # The provider rotates: an unknown kid fetches the set again (once the minimum
            # interval since the last fetch has passed).
            provider.keys = [first, second]
            await asyncio.sleep(1.1)
            assert (await client.get(wallet, headers=bearer(second.sign(claims(42))))).is_success
            assert provider.hits == 2
            # Forged kids within the refresh interval cost no request to the provider.
            stranger = SigningKey("k9")
            for n in range(20):
                forged = stranger.sign(claims(43, n=n))
                assert (await client.get(wallet, headers=bearer(forged))).status_code == 401
            assert provider.hits == 2
            # Garbage, then a slow answer: the keys already known keep working, and a new kid
            # cannot be judged (503, not a refusal the cache would keep).
            provider.garbage = b"<html>oops</html>"
            await asyncio.sleep(1.1)
            third = SigningKey("k3")
            unknown = third.sign(claims(44))
            outage = await client.get(wallet, headers=bearer(unknown))
            assert outage.status_code == 503 and outage.headers["Retry-After"]
            assert provider.hits == 3
            assert (await client.get(wallet, headers=bearer(first.sign(claims(45))))).is_success
            provider.garbage, provider.delay = None, 3.0
            await asyncio.sleep(1.1)
            started = time.monotonic()
            assert (await client.get(wallet, headers=bearer(unknown))).status_code == 503
            assert time.monotonic() - started < 2.5  # the fetch gave up, the request did not hang
            assert (await client.get(wallet, headers=bearer(second.sign(claims(46))))).is_success
            # The provider is back with the new key, answering in two chunks: the token that
            # could not be judged signs in at once.
            provider.delay, provider.chunked = 0.0, True
            provider.keys = [first, second, third]
            await asyncio.sleep(1.1)
            assert (await client.get(wallet, headers=bearer(unknown))).is_success
            # An HS256 token naming a JWKS kid is not verified with the public key as a secret.
            confused = jwt.encode(
                claims(47), "k1-" + "x" * 40, algorithm="HS256", headers={"kid": "k1"}
            )
            assert (await client.get(wallet, headers=bearer(confused))).status_code == 401
    finally:
        await provider.stop()


async def test_oidc_tokens_name_the_tajiri_user_in_a_claim_and_join_works_verify_only(
    settings: Settings, clock: ManualClock
) -> None:
    """Firebase-style: `sub` is the provider's uid; the TAJIRI id is a custom claim. The
    service holds no secret that signs user tokens, and `join` still mints viewer tokens."""
    key = SigningKey("fb1")
    provider = await JwksServer([key]).start()
    try:
        async with serving(
            settings,
            clock,
            jwt_secret=None,
            jwt_jwks_url=provider.jwks_url,
            jwt_user_id_claim="tajiri_user_id",
        ) as (app, client):
            owner = bearer(key.sign(claims("firebase-uid-1", tajiri_user_id=71)))
            fan = bearer(key.sign(claims("firebase-uid-2", tajiri_user_id=72)))
            created = await client.post("/api/streams", json={"title": "x"}, headers=owner)
            assert created.status_code == 201, created.text
            assert created.json()["data"]["user_id"] == 71
            stream_id = created.json()["data"]["id"]
            assert (await client.post(f"/api/streams/{stream_id}/start", headers=owner)).is_success
            joined = await client.post(f"/api/streams/{stream_id}/join", headers=fan)
            assert joined.status_code == 200, joined.text
            viewer = await app.state.runtime.identity.authenticate_socket(
                joined.json()["viewer_token"]
            )
            assert viewer.user_id == 72
            no_claim = bearer(key.sign(claims("firebase-uid-3")))
            refused = await client.get("/api/wallet", headers=no_claim)
            assert refused.status_code == 401
            assert "tajiri_user_id" in refused.json()["message"]
    finally:
        await provider.stop()


# --- introspection ---------------------------------------------------------------------------


async def test_introspection_signs_in_refuses_and_never_caches_an_outage(
    settings: Settings, clock: ManualClock
) -> None:
    account = await IntrospectionServer().start()
    account.users["opaque-token-baraka"] = {
        "data": {"id": 61, "first_name": "Baraka", "username": "baraka"}
    }
    try:
        async with serving(
            settings, clock, auth_introspection_url=account.user_url, auth_cache_seconds=60
        ) as (_app, client):
            good = bearer("opaque-token-baraka")
            created = await client.post("/api/streams", json={"title": "x"}, headers=good)
            assert created.status_code == 201, created.text
            assert created.json()["data"]["user"]["first_name"] == "Baraka"
            assert (await client.get("/api/wallet", headers=good)).status_code == 200
            assert account.hits == 1  # cached
            for _ in range(5):
                refused = await client.get("/api/wallet", headers=bearer("opaque-unknown"))
                assert refused.status_code == 401
            assert account.hits == 2  # the refusal is cached too
            account.status = 500
            outage = await client.get("/api/wallet", headers=bearer("opaque-new"))
            assert outage.status_code == 503
            account.status = None
            account.users["opaque-new"] = {"id": 62}
            account.chunked = True  # a whole answer, however it is cut
            assert (await client.get("/api/wallet", headers=bearer("opaque-new"))).is_success
            # Its viewer tokens cannot be checked again: they are short-lived.
            stream_id = await live_stream(client, good)
            joined = await client.post(
                f"/api/streams/{stream_id}/join", headers=bearer("opaque-new")
            )
            exp = jwt.decode(joined.json()["viewer_token"], options={"verify_signature": False})
            assert exp["exp"] <= time.time() + 900
    finally:
        await account.stop()


# --- viewer tokens -------------------------------------------------------------------------


async def live_stream(client: httpx.AsyncClient, owner: dict[str, str]) -> int:
    created = await client.post("/api/streams", json={"title": "x"}, headers=owner)
    stream_id = int(created.json()["data"]["id"])
    assert (await client.post(f"/api/streams/{stream_id}/start", headers=owner)).is_success
    return stream_id


async def test_viewer_tokens_open_sockets_only_and_expire_with_their_source(
    app: FastAPI, client: httpx.AsyncClient, auth: Any
) -> None:
    stream_id = await live_stream(client, auth(1))
    tokens = app.state.runtime.tokens
    short = tokens.encode(2, first_name="Amani", ttl_seconds=120)
    joined = await client.post(f"/api/streams/{stream_id}/join", headers=bearer(short))
    assert joined.status_code == 200, joined.text
    viewer_token = joined.json()["viewer_token"]
    refused = await client.get("/api/wallet", headers=bearer(viewer_token))
    assert refused.status_code == 401
    assert "viewer token" in refused.json()["message"]
    again = await client.post(f"/api/streams/{stream_id}/join", headers=bearer(viewer_token))
    assert again.status_code == 401  # it cannot mint itself a successor
    identity = app.state.runtime.identity
    viewer = await identity.authenticate_socket(viewer_token)
    assert (viewer.user_id, viewer.first_name) == (2, "Amani")
    exp = jwt.decode(viewer_token, options={"verify_signature": False})["exp"]
    assert exp <= time.time() + 120  # not the 6 h default: capped by the token it came from
    forged = jwt.encode(
        {"sub": "3", "aud": "tajiri-live:sockets", "exp": int(time.time()) + 60},
        "not-our-secret-" + "x" * 30,
        headers={"typ": "viewer+jwt"},
    )
    with pytest.raises(ApiError):
        await identity.authenticate_socket(forged)


async def test_join_answers_200_when_the_service_only_holds_a_public_key(
    settings: Settings, clock: ManualClock
) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )

    def user(user_id: int) -> dict[str, str]:
        return bearer(jwt.encode(claims(user_id), private, algorithm="RS256"))

    async with serving(settings, clock, jwt_secret=None, jwt_public_key=public_pem) as (
        app,
        client,
    ):
        stream_id = await live_stream(client, user(1))
        joined = await client.post(f"/api/streams/{stream_id}/join", headers=user(2))
        assert joined.status_code == 200, joined.text
        viewer = await app.state.runtime.identity.authenticate_socket(joined.json()["viewer_token"])
        assert viewer.user_id == 2


async def test_a_reused_sanctum_token_id_does_not_revive_a_viewer_token(
    mainapp: MainAppDatabase, settings: Settings, clock: ManualClock
) -> None:
    await mainapp.add_user(1)
    await mainapp.add_user(2)
    await mainapp.add_user(3)
    _, owner = await mainapp.issue_token(1)
    token_id, fan = await mainapp.issue_token(2)
    async with serving(
        settings, clock, auth_sanctum_database_url=mainapp.url, auth_cache_seconds=0.3
    ) as (app, client):
        stream_id = await live_stream(client, bearer(owner))
        joined = await client.post(f"/api/streams/{stream_id}/join", headers=bearer(fan))
        viewer_token = joined.json()["viewer_token"]
        await mainapp.execute("DELETE FROM personal_access_tokens WHERE id = :id", id=token_id)
        await mainapp.execute(
            "INSERT INTO personal_access_tokens (id, tokenable_type, tokenable_id, name, token) "
            "VALUES (:id, :model, 3, 'app', :token)",
            id=token_id,
            model="App\\Models\\User",
            token="f" * 64,
        )
        await asyncio.sleep(0.4)
        with pytest.raises(ApiError):
            await app.state.runtime.identity.authenticate_socket(viewer_token)


async def test_a_sanctum_viewer_token_dies_with_its_sanctum_token(
    mainapp: MainAppDatabase, settings: Settings, clock: ManualClock
) -> None:
    await mainapp.add_user(1)
    await mainapp.add_user(2)
    _, owner = await mainapp.issue_token(1)
    token_id, fan = await mainapp.issue_token(2)
    async with serving(
        settings, clock, auth_sanctum_database_url=mainapp.url, auth_cache_seconds=0.5
    ) as (app, client):
        stream_id = await live_stream(client, bearer(owner))
        joined = await client.post(f"/api/streams/{stream_id}/join", headers=bearer(fan))
        viewer_token = joined.json()["viewer_token"]
        identity = app.state.runtime.identity
        assert (await identity.authenticate_socket(viewer_token)).user_id == 2
        await mainapp.execute("DELETE FROM personal_access_tokens WHERE id = :id", id=token_id)
        await asyncio.sleep(0.6)
        with pytest.raises(ApiError) as refused:
            await identity.authenticate_socket(viewer_token)
        assert "revoked" in refused.value.message


async def test_legacy_viewer_tokens_stop_when_legacy_identity_is_turned_off(
    settings: Settings, clock: ManualClock
) -> None:
    async with serving(settings, clock, legacy_client_identity=True) as (app, client):
        created = await client.post("/api/streams", data={"user_id": "1", "title": "x"})
        stream_id = created.json()["data"]["id"]
        assert (await client.post(f"/api/streams/{stream_id}/start")).is_success
        joined = await client.post(f"/api/streams/{stream_id}/join", json={"user_id": 2})
        assert joined.status_code == 200, joined.text
        identity = app.state.runtime.identity
        viewer_token = joined.json()["viewer_token"]
        assert (await identity.authenticate_socket(viewer_token)).user_id == 2
        identity.legacy_client_identity = False
        with pytest.raises(ApiError):
            await identity.authenticate_socket(viewer_token)


async def test_a_claimed_id_never_pays_whatever_the_route_tables_say() -> None:
    from tajiri_live.core.auth.principal import LEGACY, SANCTUM, VIEWER, Principal
    from tajiri_live.users.dependencies import require_verified

    for source in (LEGACY, VIEWER):
        with pytest.raises(ApiError) as refused:
            await require_verified(Principal(user_id=5, source=source))
        assert refused.value.status_code == 401
    assert (await require_verified(Principal(user_id=5, source=SANCTUM))).user_id == 5


async def test_cached_refusals_are_small(settings: Settings, clock: ManualClock) -> None:
    """A refusal is remembered as its status and message, not as an exception holding its
    traceback and the token: 2,000 distinct 4 KB bad tokens must not cost megabytes."""
    import tracemalloc

    async with serving(settings, clock, auth_refusals_per_address=0) as (app, _client):
        identity = app.state.runtime.identity
        garbage = "eyJhbGciOiJIUzI1NiJ9." + "A" * 4000 + ".sig"
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for n in range(2000):
            with pytest.raises(ApiError):
                await identity.authenticate(f"{n}{garbage}")
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert identity.stats.refused == 2000
        assert grown < 2000 * 1024, grown  # about 20 KB a token when the exception was kept


async def test_one_address_cannot_hammer_the_lookups(
    mainapp: MainAppDatabase, settings: Settings, clock: ManualClock
) -> None:
    await mainapp.add_user(NEEMA)
    _, good = await mainapp.issue_token(NEEMA)
    async with serving(
        settings, clock, auth_sanctum_database_url=mainapp.url, auth_refusals_per_address=20
    ) as (app, client):
        assert (await client.get("/api/wallet", headers=bearer(good))).status_code == 200
        answers = [
            (await client.get("/api/wallet", headers=bearer(f"{n}|{'z' * 40}"))).status_code
            for n in range(1, 31)
        ]
        assert answers == [401] * 20 + [429] * 10
        assert app.state.runtime.identity.sanctum.lookups == 21  # the good one and 20 bad
        limited = await client.get("/api/wallet", headers=bearer("31|" + "z" * 40))
        assert limited.headers["Retry-After"]
        # Answers the cache holds still come: the good token, and the bad ones as 401.
        assert (await client.get("/api/wallet", headers=bearer(good))).status_code == 200
        again = await client.get("/api/wallet", headers=bearer("1|" + "z" * 40))
        assert again.status_code == 401


async def test_legacy_ids_cannot_decide_who_is_paid(settings: Settings, clock: ManualClock) -> None:
    async with serving(settings, clock, legacy_client_identity=True) as (legacy_app, legacy):
        owner = bearer(legacy_app.state.runtime.tokens.encode(1))
        created = await legacy.post(
            "/api/streams", json={"title": "x", "split_gifts_with_cohosts": True}, headers=owner
        )
        sid = created.json()["data"]["id"]
        assert created.json()["data"]["stream_key"]  # the owner, signed in, sees the key
        refused = await legacy.post(
            "/api/streams", data={"user_id": "1", "title": "y", "split_gifts_with_cohosts": "1"}
        )
        assert refused.status_code == 403 and "who is paid" in refused.json()["message"]
        plain = await legacy.post("/api/streams", data={"user_id": "1", "title": "z"})
        assert plain.status_code == 201 and plain.json()["data"]["stream_key"] is None
        resplit = await legacy.put(
            f"/api/streams/{plain.json()['data']['id']}", json={"split_gifts_with_cohosts": True}
        )
        assert resplit.status_code == 403
        invited = await legacy.post(
            f"/api/streams/{sid}/cohosts", json={"user_id": 4}, headers=owner
        )
        cohost = invited.json()["data"]["id"]
        for call in (
            legacy.post(f"/api/streams/{sid}/cohosts", json={"user_id": 3}),
            legacy.put(f"/api/streams/{sid}/cohosts/{cohost}", json={"status": "accepted"}),
            legacy.delete(f"/api/streams/{sid}/cohosts/{cohost}"),
        ):
            assert (await call).status_code == 403
        shown = await legacy.get(f"/api/streams/{sid}?current_user_id=1")
        assert shown.json()["data"]["stream_key"] is None  # a claimed id never sees the key
        assert (await legacy.get("/api/wallet", headers={"Authorization": ""})).status_code == 401


async def test_tokens_with_absurd_expiries_and_unknown_streamers(
    app: FastAPI, client: httpx.AsyncClient, auth: Any, settings: Settings
) -> None:
    absurd = jwt.encode({"sub": "5", "exp": 10**400}, settings.jwt_secret, algorithm="HS256")
    refused = await client.get("/api/wallet", headers=bearer(absurd))
    assert refused.status_code == 401
    preference = await client.put(
        "/api/users/5/notification-preferences",
        json={"streamer_id": 123456789, "enabled": True},
        headers=auth(5),
    )
    assert preference.status_code == 404
    assert (await client.post("/api/users/123456789/follow", headers=auth(5))).status_code == 404


async def test_a_static_key_is_prepared_once_and_still_checks_every_token(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    intruder = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    prepared: list[str] = []
    for algorithm in (HMACAlgorithm, RSAAlgorithm):
        original = algorithm.prepare_key

        def counting(self: Any, key: Any, _original: Any = original) -> Any:
            prepared.append(type(self).__name__)
            return _original(self, key)

        monkeypatch.setattr(algorithm, "prepare_key", counting)
    for secret, public, sign_key, algorithm, wrong_key in (
        (settings.jwt_secret, None, settings.jwt_secret, "HS256", "another secret " * 4),
        (None, public_pem, private, "RS256", intruder),
    ):
        prepared.clear()
        codec = TokenCodec(
            settings.model_copy(update={"jwt_secret": secret, "jwt_public_key": public})
        )
        tokens = [jwt.encode(claims(n), sign_key, algorithm=algorithm) for n in range(1, 51)]
        prepared.clear()  # signing prepares the key too
        for user_id, token in enumerate(tokens, start=1):
            assert (await codec.verify(token)).user_id == user_id
        # The key was read once for 50 tokens; plain HS256 ones are checked without PyJWT
        # (core/auth/hs256.py), which reads the key only for the others.
        assert len(prepared) == (0 if algorithm == "HS256" else 1)
        forged = jwt.encode(claims(77), wrong_key, algorithm=algorithm)
        with pytest.raises(ApiError) as refused:
            await codec.verify(forged)
        assert refused.value.status_code == 401
        good = jwt.encode(claims(78), sign_key, algorithm=algorithm)
        tampered = good.rsplit(".", 1)[0] + "." + good.rsplit(".", 1)[1][::-1]
        with pytest.raises(ApiError):
            await codec.verify(tampered)
        expired = jwt.encode(claims(79, exp=int(time.time()) - 60), sign_key, algorithm=algorithm)
        with pytest.raises(ApiError, match="expired"):
            await codec.verify(expired)


def test_the_segment_reader_answers_as_pyjwts_own_for_every_kind_of_segment() -> None:
    codec = prepared_key_jwt()
    signatures = codec._jws
    fast = signatures._decode_base64url_segment
    own = jwt.api_jws.PyJWS._decode_base64url_segment
    assert fast is not own  # the reader is replaced, so the comparison below means something
    rng = random.Random(20)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    segments = [b"", b"=", b"==", b"===", b"e30", b"e30=", b"e30==", b"e31", b"eyJ", b"A", b"AB"]
    for length in range(0, 40):
        raw = bytes(rng.randrange(256) for _ in range(length))
        canonical = base64.urlsafe_b64encode(raw)
        segments += [canonical, canonical.rstrip(b"="), canonical.replace(b"-", b"+")]
        # Random letters: their last one may not be a canonical end.
        segments.append(bytes(rng.choice(alphabet) for _ in range(length)))
        segments.append(canonical.rstrip(b"=") + b"\x00")
        segments.append(b"!" * length)
        segments.append(canonical.rstrip(b"=") + b"\n")
        segments.append("é".encode() + canonical.rstrip(b"="))
    outcomes: dict[str, int] = {"same value": 0, "same refusal": 0}
    for segment in segments:
        try:
            expected: bytes | str = own(segment, "payload")
        except jwt.DecodeError as exc:
            expected = f"refused: {exc}"
        try:
            got: bytes | str = fast(segment, "payload")
        except jwt.DecodeError as exc:
            got = f"refused: {exc}"
        assert got == expected, segment
        outcomes["same refusal" if isinstance(got, str) else "same value"] += 1
    assert outcomes["same value"] > 50 and outcomes["same refusal"] > 50
    key = "k" * 40
    token = codec.encode(claims(9), key, algorithm="HS256")
    assert codec.decode(token, key, algorithms=["HS256"])["sub"] == "9"
    header, payload, signature = token.split(".")
    for bad in (
        f"{header}.{payload}!.{signature}",
        f"{header}.{payload}.{signature[:-1]}",
        f"{header}.{payload[:-1]}.{signature}",
        f"{header}.{payload}.{signature}A",
    ):
        with pytest.raises(jwt.PyJWTError):
            codec.decode(bad, key, algorithms=["HS256"])


def test_a_header_read_before_verifying_is_read_only_and_remembered_per_segment() -> None:
    first = jwt.encode(claims(1), "k" * 40, algorithm="HS256")
    second = jwt.encode(claims(2), "k" * 40, algorithm="HS256")
    header = unverified_header(first)
    assert header is not None and header["alg"] == "HS256"
    assert unverified_header(second) is header  # the same header segment: parsed once
    with pytest.raises(TypeError):
        header["alg"] = "none"  # type: ignore[index]
    assert unverified_header("!!!." + first.partition(".")[2]) is None
    assert unverified_header("") is None


def test_viewer_tokens_are_standard_hs256_jwts_whatever_the_names() -> None:
    secret = "v" * 40
    tokens = ViewerTokens(secret, ttl_seconds=600)
    for name in ("Asha", "Zawadi 🎉", "\ud800 lone surrogate", "x" * 200):
        principal = Principal(user_id=42, first_name=name, source=JWT, expires_at=time.time() + 60)
        token = tokens.mint(principal)
        header = jwt.get_unverified_header(token)
        assert header == {"alg": "HS256", "typ": "viewer+jwt"}
        claims_read = jwt.decode(
            token, secret, algorithms=["HS256"], audience="tajiri-live:sockets"
        )
        assert claims_read["sub"] == "42" and claims_read["given_name"] == name
        assert claims_read["exp"] <= time.time() + 60  # never outlives its credential
        read = tokens.read(token)
        assert read is not None and read.user_id == 42 and read.first_name == name
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(token, "w" * 40, algorithms=["HS256"], audience=AUDIENCE)
        head, _, signature = token.split(".")
        forged = jwt.utils.base64url_encode(
            json.dumps({**claims_read, "sub": "1"}).encode()
        ).decode()
        with pytest.raises(ApiError):
            tokens.read(f"{head}.{forged}.{signature}")


def _raw_token(header: bytes, payload: bytes, key: bytes, *, padded: bool = False) -> str:
    def encode(data: bytes) -> bytes:
        text = base64.urlsafe_b64encode(data)
        return text if padded else text.rstrip(b"=")

    signing_input = encode(header) + b"." + encode(payload)
    signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + encode(signature)).decode()


def test_the_quick_hs256_check_only_accepts_what_pyjwt_accepts_with_the_same_claims() -> None:
    secret = "q" * 40
    now = int(time.time())
    future, past, soon = now + 600, now - 600, now + 1
    headers = [
        b'{"alg":"HS256","typ":"JWT"}',
        b'{"typ":"JWT","alg":"HS256"}',
        b'{"alg":"HS256"}',
        b'{"alg": "HS256", "typ": "JWT"}',
        b'{"alg":"HS512","typ":"JWT"}',
        b'{"alg":"none","typ":"JWT"}',
        b'{"alg":"HS256","typ":"JWT","kid":"k1"}',
        b'{"alg":"HS256","typ":"JWT","crit":["b64"],"b64":false}',
        b'{"alg":"HS256","typ":"viewer+jwt"}',
    ]
    bodies = [
        f'"sub":"7","exp":{future}',
        f'"sub":"7","exp":{past}',
        f'"sub":"7","exp":{now}',
        f'"sub":"7","exp":{soon}',
        f'"sub":"7","exp":{future}.5',
        f'"sub":"7","exp":"{future}"',
        '"sub":"7","exp":true',
        '"sub":"7","exp":null',
        '"sub":"7"',
        '"sub":"7","exp":1e400',
        f'"sub":"7","exp":{future},"iat":{past}',
        f'"sub":"7","exp":{future},"iat":{future}',
        f'"sub":"7","exp":{future},"iat":{past}.5',
        f'"sub":"7","exp":{future},"iat":"{past}"',
        f'"sub":"7","exp":{future},"iat":true',
        f'"sub":"7","exp":{future},"nbf":{past}',
        f'"sub":"7","exp":{future},"nbf":{future}',
        f'"sub":"7","exp":{future},"nbf":"x"',
        f'"sub":7,"exp":{future}',
        f'"sub":"7","exp":{future},"jti":5',
        f'"sub":"7","exp":{future},"jti":"j"',
        f'"sub":"7","exp":{future},"aud":"tajiri-live"',
        f'"sub":"7","exp":{future},"aud":["x","tajiri-live"]',
        f'"sub":"7","exp":{future},"aud":["x"]',
        f'"sub":"7","exp":{future},"aud":""',
        f'"sub":"7","exp":{future},"aud":[]',
        f'"sub":"7","exp":{future},"aud":[1,"tajiri-live"]',
        f'"sub":"7","exp":{future},"aud":5',
        f'"sub":"7","exp":{future},"iss":"https://id.tajiri"',
        f'"sub":"7","exp":{future},"iss":"https://other"',
        f'"sub":"7","exp":{future},"iss":5',
        f'"sub":"7","exp":{future},"iss":"https://id.tajiri","aud":"tajiri-live"',
        f'"sub":"7","exp":{past},"exp":{future}',
        f'"sub":"7","exp":{future},"exp":{past}',
        f'"sub":"7","exp":{future},"x":NaN',
        f'"sub":"7","exp":{future},"given_name":"Zawadi 🎉"',
        f'"sub":"7","exp":{future},"given_name":"\\ud800"',
        f'"exp":{future},"aud":"tajiri-live"',
        f'"sub":null,"exp":{future},"aud":"tajiri-live"',
        f'"sub":"7","exp":{future},"aud":"tajiri-live","legacy":true,"src":"sanctum:5:ab"',
        f'"sub":"7","exp":{future},"x":' + "[" * 1000 + "]" * 1000,  # json's recursion limit
        f'"sub":"7","exp":{future},"given_name":18446744073709551616',  # past 64 bits
        f'"sub":"7","exp":{future},"region":-9223372036854775809',
        f'"sub":"7","exp":{future},"iss":""',
    ]
    payloads = [("{" + body + "}").encode() for body in bodies] + [b"[1]", b'"x"', b"{"]
    tokens = [
        _raw_token(header, payload, key, padded=padded)
        for header in headers
        for payload in payloads
        for key in (secret.encode(), b"w" * 40)
        for padded in (False, True)
    ]
    tokens += [token[:-1] + ("A" if token[-1] != "A" else "B") for token in tokens[:200]]
    tokens += [token + ".x" for token in tokens[:50]] + ["", "a.b", "é.é.é"]
    quick_accepts = 0
    for issuer, audience, required, token_type in (
        (None, None, (), "JWT"),
        ("https://id.tajiri", None, (), "JWT"),
        (None, "tajiri-live", (), "JWT"),
        ("https://id.tajiri", "tajiri-live", (), "JWT"),
        (None, "tajiri-live", ("sub", "exp"), "viewer+jwt"),  # as viewer tokens are read
        ("", "", (), "JWT"),  # blank settings are not None: PyJWT then wants a (non-empty) claim
    ):
        quick = Hs256Checker(
            secret, issuer=issuer, audience=audience, required=required, token_type=token_type
        )
        for token in tokens:
            try:
                expected: Any = jwt.decode(
                    token,
                    secret,
                    algorithms=["HS256"],
                    issuer=issuer,
                    audience=audience,
                    options={"require": list(required or ("exp",))},
                )
            except jwt.PyJWTError as exc:
                expected = exc
            accepted = quick.claims(token)
            if accepted is not None:
                quick_accepts += 1
                assert accepted == expected, token  # PyJWT accepts it too, with these claims
    assert quick_accepts >= 40  # the quick check did take the plain tokens


async def test_a_codec_answers_the_same_with_and_without_the_quick_check(
    settings: Settings,
) -> None:
    quick = TokenCodec(settings)
    slow = TokenCodec(settings)
    slow._plain_tokens = None
    assert quick._plain_tokens is not None
    now = int(time.time())
    key = settings.jwt_secret.encode()
    cases = [
        _raw_token(b'{"alg":"HS256","typ":"JWT"}', body.encode(), key)
        for body in (
            f'{{"sub":"5","exp":{now + 600},"given_name":"Asha"}}',
            f'{{"sub":"5","exp":{now - 5}}}',
            f'{{"sub":"abc","exp":{now + 600}}}',
            f'{{"sub":"5","exp":{2**41}}}',
            f'{{"sub":"5","exp":{now + 600},"roles":["admin"]}}',
        )
    ] + [_raw_token(b'{"alg":"HS256","typ":"viewer+jwt"}', b'{"sub":"5"}', key)]
    for token in cases:
        answers = []
        for codec in (quick, slow):
            try:
                answers.append(codec.decode(token))
            except ApiError as exc:
                answers.append((exc.status_code, exc.message))
        assert answers[0] == answers[1], token


def test_a_secret_pyjwt_refuses_as_an_hmac_key_is_refused_by_the_quick_path_too() -> None:
    pem_like = (
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----"
    )
    token = _raw_token(
        b'{"alg":"HS256","typ":"JWT"}',
        f'{{"sub":"7","exp":{int(time.time()) + 600}}}'.encode(),
        pem_like.encode(),
    )
    with pytest.raises(jwt.InvalidKeyError):
        jwt.decode(token, pem_like, algorithms=["HS256"])
    assert Hs256Checker(pem_like, issuer=None, audience=None).claims(token) is None
    with pytest.raises(ValueError, match="not a PEM"):
        Hs256Signer(pem_like)
