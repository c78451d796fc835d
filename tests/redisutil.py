"""A Redis for tests: its own key prefix, cleaned afterwards; required in CI."""

from __future__ import annotations

import os
import uuid

import pytest

REDIS_URL = os.environ.get("TAJIRI_TEST_REDIS_URL") or None
if REDIS_URL is None and os.environ.get("CI") == "true":
    REDIS_URL = "redis://127.0.0.1:6379/0"


def require_redis() -> str:
    if REDIS_URL is None:
        pytest.skip("set TAJIRI_TEST_REDIS_URL to run the Redis tests")
    return REDIS_URL


def new_prefix() -> str:
    return f"tajiri-test:{uuid.uuid4().hex[:10]}:"


async def delete_prefix(url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()
