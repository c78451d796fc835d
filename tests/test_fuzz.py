"""Schemathesis over the OpenAPI schema, against a real `serve` process with valid tokens:
no answer may be a server error, and every answer must match the schema. Bounded (a few
hundred requests per generation mode); it runs in every pytest run, CI included."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from conftest import TEST_SECRET
from redisutil import REDIS_URL, delete_prefix, new_prefix
from servers import ServerProcess
from tajiri_live.core.auth import TokenCodec
from tajiri_live.core.settings import Settings

OWNER, FAN, ADMIN = 1, 2, 9
EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 8}


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    env = {
        # the fuzzer is no flood: it must reach the routes, not the limits
        "TAJIRI_COMMENT_LIMIT": "100000",
        "TAJIRI_REACTION_LIMIT": "100000",
        "TAJIRI_GIFT_LIMIT": "100000",
        "TAJIRI_SHARE_LIMIT": "100000",
        "TAJIRI_STREAM_CREATE_LIMIT": "100000",
        "TAJIRI_SPAM_REPEAT_SECONDS": "0",
    }
    prefix = new_prefix()
    if REDIS_URL:
        env.update(TAJIRI_REDIS_URL=REDIS_URL, TAJIRI_REDIS_PREFIX=prefix)
    process = ServerProcess(tmp_path, database_url, **env).start()
    yield process
    process.stop()
    if REDIS_URL:
        asyncio.run(delete_prefix(REDIS_URL, prefix))


def seed(server: ServerProcess, tokens: TokenCodec) -> None:
    """Streams in several states (ids 1 to 4), coins and a gift, so that small generated ids
    reach real rows."""
    owner = {"Authorization": f"Bearer {tokens.encode(OWNER)}"}
    admin = {"Authorization": f"Bearer {tokens.encode(ADMIN, admin=True)}"}
    fan = {"Authorization": f"Bearer {tokens.encode(FAN)}"}
    with httpx.Client(base_url=server.url, timeout=30) as api:
        ids = [
            api.post("/api/streams", json={"title": f"s{n}"}, headers=owner).json()["data"]["id"]
            for n in range(4)
        ]
        for stream_id in ids[:3]:
            api.post(f"/api/streams/{stream_id}/start", headers=owner)
        api.post(f"/api/streams/{ids[2]}/end", headers=owner)
        api.post("/api/wallet/credit", json={"user_id": FAN, "amount": 10**6}, headers=admin)
        api.post(f"/api/streams/{ids[0]}/gifts", json={"gift_id": 1}, headers=fan)
        api.post(f"/api/streams/{ids[0]}/comments", json={"content": "hello"}, headers=fan)


def test_the_schema_fuzzer_finds_no_server_error(server: ServerProcess) -> None:
    tokens = TokenCodec(Settings(jwt_secret=TEST_SECRET))
    seed(server, tokens)
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    headers = {"Authorization": f"Bearer {tokens.encode(ADMIN, admin=True)}"}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40
    runs = sorted(
        (
            (mode, examples, operation, fixed)
            for mode, examples in EXAMPLES.items()
            for operation in operations
            for fixed in _path_choices(operation)
        ),
        key=lambda run: fixed_last(run[2], run[3]),  # the seeded stream stays live longest
    )
    for mode, examples, operation, fixed in runs:
        strategy = operation.as_strategy(
            generation_mode=mode, headers=headers, path_parameters=fixed
        )

        @given(case=strategy)
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call(base_url=server.url, timeout=30)
            try:
                case.validate_response(
                    response, checks=[not_a_server_error, response_schema_conformance]
                )
            except (Exception, BaseExceptionGroup) as failure:  # every failing route
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{str(failure).splitlines()[0][:300]}\n  {case.as_curl_command()}"
                )

        try:
            run()
        except Unsatisfiable:  # nothing to negate in this operation (no parameters)
            continue
    assert not failures, "\n".join(dict.fromkeys(failures))
    assert len(runs) > 100
    log = server.log()
    assert "Traceback" not in log, log[-5000:]


SEEDED = {"stream_id": 1, "user_id": FAN}  # a live stream with a gift and a comment; a fan


def _path_choices(operation: Any) -> list[dict[str, Any] | None]:
    """Generated path parameters, and once more with the seeded rows where the path names
    them (random ids mostly meet a 404 and never reach the route's work)."""
    names = {p.name for p in operation.path_parameters}
    seeded = {name: value for name, value in SEEDED.items() if name in names}
    return [None, seeded] if seeded else [None]


def fixed_last(operation: Any, fixed: dict[str, Any] | None) -> bool:
    """Whether the run ends or deletes the seeded stream (those run last)."""
    ends = operation.method.upper() == "DELETE" and operation.path == "/api/streams/{stream_id}"
    ends = ends or operation.path.endswith(("/end", "/cancel", "/status"))
    return bool(fixed) and ends
