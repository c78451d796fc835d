"""The compiled HTTP load client the hot paths benchmark measures with (bench/httpload.c).

A benchmark is only as true as its client: these run it against a small local server.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from httploadclient import build, compiled_load, http_request

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


async def answer_ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
async def server() -> AsyncIterator[int]:
    """A server that closes keep-alive connections idle for a second (uvicorn's default: 5)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)  # connections wait in the backlog until the server accepts them
    config = uvicorn.Config(answer_ok, timeout_keep_alive=1, log_level="warning", lifespan="off")
    instance = uvicorn.Server(config)
    task = asyncio.create_task(instance.serve(sockets=[listener]))
    yield int(listener.getsockname()[1])
    instance.should_exit = True
    await task
    listener.close()


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("httpload"))


def requests(count: int) -> list[bytes]:
    return [http_request("GET", "/", {}) for _ in range(count)]


async def test_a_paced_run_ends_with_its_window(binary: Path, server: int) -> None:
    # 20 connections at 100/s for 2 s: connection 0's eleventh request falls due at the very
    # end of the window, give or take rounding, and every other connection's next one after
    # it. The run must end then, not wait for an event that never comes.
    for _ in range(3):
        result = await compiled_load(binary, server, 20, 2.0, 100.0, requests(220))
        assert result["codes"] == {200: result["sent"]}
        assert 199 <= result["sent"] <= 201
        assert result["elapsed"] < 2.5
        assert result["per_second"] > 90


async def test_connections_the_server_closes_are_opened_again(binary: Path, server: int) -> None:
    # Each connection sends every 2 s; the server closes them after 1 s idle.
    result = await compiled_load(binary, server, 2, 4.5, 1.0, requests(10))
    assert result["codes"] == {200: result["sent"]}
    assert result["sent"] >= 4
    assert result["reconnects"] >= 2
