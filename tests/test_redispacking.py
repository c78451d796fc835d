"""Redis commands packed by hiredis: the same bytes as redis-py's packer, its refusals where
hiredis cannot pack, and a real server reads them (the presence scripts' batches included)."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import BlockingConnectionPool, Connection, UnixDomainSocketConnection
from redis.exceptions import DataError

from redisutil import delete_prefix, new_prefix, require_redis
from tajiri_live.core.redispacking import CompiledPacking, pack_with_hiredis
from tajiri_live.core.settings import Settings
from tajiri_live.realtime.backends import build_backends

ARGUMENTS: list[tuple[Any, ...]] = [
    ("GET", "key"),
    ("SET", "k", "héllo wörld ✓"),
    ("SET", b"k", b"\x00\xff raw"),
    ("SCRIPT LOAD", "return 1"),  # a command of two words
    (b"CONFIG GET", b"maxmemory"),
    ("CLIENT\tLIST",),  # any whitespace splits a str command, as redis-py splits it
    ("ZADD", "z", 1.5, "a", 0.1, "b", 1e20, "c", -0.0, "d", float("inf"), "e"),
    ("INCRBY", "n", 12345678901234567890),
    ("INCRBY", "n", -3),
    ("SET", "k", memoryview(b"view")),
    ("SET", "k", "x" * 100_000),  # past redis-py's buffer cutoff: it sends it in pieces
    ("EVALSHA", "a" * 40, 0, *[f"arg{i}" for i in range(200)]),
]


def redis_py(*args: Any) -> bytes:
    return b"".join(bytes(part) for part in Connection().pack_command(*args))


def compiled(*args: Any) -> bytes:
    connection = type("PackedConnection", (CompiledPacking, Connection), {})()
    return b"".join(connection.pack_command(*args))


@pytest.mark.parametrize("args", ARGUMENTS, ids=lambda args: str(args[0])[:12])
def test_the_same_bytes_as_redis_py(args: tuple[Any, ...]) -> None:
    assert compiled(*args) == redis_py(*args)


@pytest.mark.parametrize("bad", [True, None, [1], {"a": 1}, "\ud800"])
def test_what_hiredis_cannot_pack_is_refused_as_redis_py_refuses_it(bad: Any) -> None:
    with pytest.raises((DataError, UnicodeError)) as ours:
        compiled("SET", "k", bad)
    with pytest.raises((DataError, UnicodeError)) as theirs:
        redis_py("SET", "k", bad)
    assert type(ours.value) is type(theirs.value)


def test_another_encoding_is_packed_by_redis_py() -> None:
    connection = type("PackedConnection", (CompiledPacking, Connection), {})(encoding="latin-1")
    assert b"".join(connection.pack_command("SET", "k", "é")) == b"".join(
        Connection(encoding="latin-1").pack_command("SET", "k", "é")
    )


def test_the_pool_keeps_its_connection_class_and_is_wrapped_once() -> None:
    pool = BlockingConnectionPool.from_url("unix:///tmp/redis.sock")
    pack_with_hiredis(pool)
    pack_with_hiredis(pool)
    kind = pool.connection_class
    assert issubclass(kind, CompiledPacking) and issubclass(kind, UnixDomainSocketConnection)
    assert kind.__mro__.count(CompiledPacking) == 1


async def test_a_real_server_reads_what_hiredis_packed() -> None:
    url = require_redis()
    prefix = new_prefix()
    backends = build_backends(Settings(redis_url=url, redis_prefix=prefix))
    redis = backends.redis
    assert redis is not None
    assert issubclass(redis.connection_pool.connection_class, CompiledPacking)
    try:
        await redis.set(prefix + "text", "héllo ✓")
        assert (await redis.get(prefix + "text")).decode() == "héllo ✓"
        await redis.zadd(prefix + "z", {"a": 1.5, "b": 0.1})
        assert await redis.zrange(prefix + "z", 0, -1, withscores=True) == [
            (b"b", 0.1),
            (b"a", 1.5),
        ]
        big = "x" * 300_000
        await redis.set(prefix + "big", big)
        assert await redis.strlen(prefix + "big") == len(big)
        sha = await redis.script_load("return #ARGV")  # SCRIPT LOAD: two words
        assert await redis.evalsha(sha, 0, *range(500)) == 500
        with pytest.raises(DataError):
            await redis.set(prefix + "bad", True)  # type: ignore[arg-type]
        # The presence scripts, batched, through the same connections.
        presence = backends.presence
        await presence.register()
        holds = [await presence.hold("stream.1", f"u:{n}", at=1.0, region="TZ") for n in (7, 8)]
        assert all(held.counted and held.started is not None for held in holds)
        assert (await presence.counts("stream.1")).current == 2
        await presence.deregister()
    finally:
        await backends.presence.close()
        await delete_prefix(url, prefix)
        await redis.aclose(close_connection_pool=True)
