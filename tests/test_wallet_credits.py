"""The main app's credit route: signed as a PHP client signs it (hash_hmac('sha256', ...)),
a five-minute window, idempotent by reference, coins issued by the mint."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import shutil
import subprocess
from typing import Any

import httpx
import pytest

from tajiri_live.core.clock import ManualClock
from tajiri_live.wallet.service import ledger_is_balanced

URL = "/api/internal/wallet/credits"
SECRET = "main-app-shared-secret-0123456789abcdef"
USER = 42

# What the main app (Laravel) runs: the raw body as sent, then its signature.
PHP_SIGNER = """
$body = stream_get_contents(STDIN);
$timestamp = getenv('CREDIT_TIMESTAMP');
echo hash_hmac('sha256', $timestamp . '.' . $body, getenv('CREDIT_SECRET'));
"""


def php_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Signed by PHP itself when it is installed; else the same bytes through HMAC-SHA256
    (hash_hmac hashes the bytes of its strings as they are: no encoding step, lowercase hex)."""
    php = shutil.which("php")
    if php is None:
        return hmac.new(
            secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
    done = subprocess.run(
        [php, "-r", PHP_SIGNER],
        input=body,
        capture_output=True,
        check=True,
        env={"CREDIT_TIMESTAMP": timestamp, "CREDIT_SECRET": secret},
    )
    return done.stdout.decode()


@pytest.fixture
def signed(runtime: Any, clock: ManualClock) -> Any:
    runtime.settings.wallet_credit_secret = SECRET

    def make(
        body: Any, *, age: float = 0, secret: str = SECRET, tamper: bool = False
    ) -> dict[str, Any]:
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        timestamp = str(int(clock.now().timestamp() - age))
        signature = php_signature(secret, timestamp, raw)
        if tamper:
            raw = raw.replace(b'"amount": 700', b'"amount": 7000')  # a greedy proxy
        return {
            "content": raw,
            "headers": {
                "Content-Type": "application/json",
                "X-Tajiri-Timestamp": timestamp,
                "X-Tajiri-Signature": signature,
            },
        }

    return make


async def balance_of(runtime: Any, user_id: int) -> int:
    from tajiri_live.wallet.service import balance_of

    async with runtime.sessions() as session:
        return await balance_of(session, user_id)


async def balanced(runtime: Any) -> bool:
    async with runtime.sessions() as session:
        return await ledger_is_balanced(session)


def test_production_refuses_a_weak_credit_secret() -> None:
    from pydantic import ValidationError

    from tajiri_live.core.settings import Settings

    strong = {"env": "production", "jwt_secret": "j" * 40}
    for weak in ("changeme", "short-secret"):
        with pytest.raises(ValidationError, match="WALLET_CREDIT_SECRET"):
            Settings(**strong, wallet_credit_secret=weak)
    assert Settings(**strong, wallet_credit_secret=SECRET).wallet_credit_secret == SECRET
    assert Settings(**strong).wallet_credit_secret is None  # unset: the route is closed


def test_the_php_signer_is_what_the_server_checks() -> None:
    from tajiri_live.wallet.deposits import signature

    body = json.dumps({"reference": "amana-é-✓", "amount": 5}, ensure_ascii=False).encode()
    assert php_signature(SECRET, "1764400000", body) == signature(SECRET, "1764400000", body)


async def test_a_signed_credit_is_issued_by_the_mint_once(
    client: httpx.AsyncClient, auth: Any, runtime: Any, signed: Any
) -> None:
    body = {"user_id": USER, "amount": 5000, "reference": "mpesa-QK81-é"}
    first = await client.post(URL, **signed(body))
    assert first.status_code == 201, first.text
    data = first.json()["data"]
    assert (data["user_id"], data["amount"], data["balance"]) == (USER, 5000, 5000)
    assert data["reference"] == "mpesa-QK81-é"
    again = await client.post(URL, **signed(body))  # the main app retries
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["data"] == data
    history = (await client.get("/api/wallet", headers=auth(USER))).json()["data"]
    assert history["balance"] == 5000
    assert [(h["kind"], h["amount"]) for h in history["history"]] == [("deposit", 5000)]
    assert await balanced(runtime)


async def test_a_reused_reference_for_something_else_is_refused_naming_it(
    client: httpx.AsyncClient, runtime: Any, signed: Any
) -> None:
    body = {"user_id": USER, "amount": 1000, "reference": "dep-7"}
    assert (await client.post(URL, **signed(body))).status_code == 201
    for changed in ({**body, "amount": 2000}, {**body, "user_id": USER + 1}):
        refused = await client.post(URL, **signed(changed))
        assert refused.status_code == 409
        message = refused.json()["message"]
        assert "'dep-7'" in message and "1000 coins to user 42" in message
        assert refused.json()["errors"]["reference"] == [message]
    assert await balance_of(runtime, USER) == 1000
    assert await balance_of(runtime, USER + 1) == 0
    assert await balanced(runtime)


async def test_unsigned_late_or_forged_credits_are_refused_and_nothing_moves(
    client: httpx.AsyncClient, runtime: Any, signed: Any
) -> None:
    body = {"user_id": USER, "amount": 700, "reference": "dep-x"}
    old = await client.post(URL, **signed(body, age=301))
    assert old.status_code == 401 and "301 s away" in old.json()["message"]
    ahead = await client.post(URL, **signed(body, age=-400))
    assert ahead.status_code == 401
    forged = await client.post(URL, **signed(body, secret="guessed-secret"))
    assert forged.status_code == 401 and "signature" in forged.json()["message"]
    tampered = await client.post(URL, **signed(body, tamper=True))
    assert tampered.status_code == 401
    request = signed(body)
    unsigned = await client.post(
        URL, content=request["content"], headers={"Content-Type": "application/json"}
    )
    assert unsigned.status_code == 401 and "X-Tajiri-Signature" in unsigned.json()["message"]
    request["headers"]["X-Tajiri-Timestamp"] = "yesterday"
    assert (await client.post(URL, **request)).status_code == 401
    assert await balance_of(runtime, USER) == 0
    # Within the window, the same body goes through (once).
    assert (await client.post(URL, **signed(body, age=299))).status_code == 201
    assert await balance_of(runtime, USER) == 700
    runtime.settings.wallet_credit_secret = None
    closed = await client.post(URL, **signed({**body, "reference": "dep-y"}))
    assert closed.status_code == 403
    assert await balance_of(runtime, USER) == 700 and await balanced(runtime)


@pytest.mark.parametrize(
    "body",
    [
        {"user_id": USER, "amount": 0, "reference": "r"},
        {"user_id": USER, "amount": -500, "reference": "r"},
        {"user_id": USER, "amount": 1.5, "reference": "r"},
        {"user_id": USER, "amount": 10**13, "reference": "r"},
        {"user_id": USER, "amount": "NaN", "reference": "r"},
        {"user_id": USER, "amount": 100},
        {"user_id": USER, "amount": 100, "reference": "x" * 101},
        {"user_id": 0, "amount": 100, "reference": "r"},
        {"amount": 100, "reference": "r"},
        b'{"user_id": 42, "amount": NaN, "reference": "r"}',
        b"[1, 2]",
    ],
)
async def test_bad_bodies_are_422_even_when_signed(
    client: httpx.AsyncClient, runtime: Any, signed: Any, body: Any
) -> None:
    answer = await client.post(URL, **signed(body))
    assert answer.status_code == 422, answer.text
    assert answer.json()["message"]
    assert await balance_of(runtime, USER) == 0 and await balanced(runtime)


async def test_concurrent_retries_of_one_reference_credit_once(
    client: httpx.AsyncClient, runtime: Any, signed: Any
) -> None:
    body = {"user_id": USER, "amount": 250, "reference": "burst"}
    answers = await asyncio.gather(*(client.post(URL, **signed(body)) for _ in range(20)))
    codes = sorted(a.status_code for a in answers)
    assert codes.count(201) == 1 and set(codes) <= {200, 201}
    assert len({a.json()["data"]["transaction_id"] for a in answers}) == 1
    assert await balance_of(runtime, USER) == 250 and await balanced(runtime)
