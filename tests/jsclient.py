"""The official JavaScript clients (pusher-js, Laravel Echo) run by Node for the tests."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

JS_DIR = Path(__file__).parent / "js"
Line = dict[str, Any]


def require_node() -> str:
    """The node binary with the clients installed; in CI their absence is a failure."""
    node = shutil.which("node")
    installed = (JS_DIR / "node_modules" / "pusher-js").is_dir()
    if node and installed:
        return node
    message = "install Node and run `npm ci` in tests/js to run the Pusher client tests"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


class JsClient:
    """One client process: what it heard, line by line, and a way to tell it what to do."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[Line] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls,
        server: Any,
        *,
        mode: str = "pusher",
        key: str = "tajiri-live",
        token: str | None = None,
        subscribe: list[Line],
    ) -> JsClient:
        config = {
            "mode": mode,
            "host": "127.0.0.1",
            "port": server.port,
            "key": key,
            "token": token,
            "authEndpoint": f"{server.url}/broadcasting/auth",
            "subscribe": subscribe,
        }
        process = await asyncio.create_subprocess_exec(
            require_node(),
            str(JS_DIR / "client.mjs"),
            orjson.dumps(config).decode(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=JS_DIR,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            line = orjson.loads(raw)
            async with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[Line], bool], within: float = 10.0) -> Line:
        async def found() -> Line:
            async with self._changed:
                while True:
                    for line in self.lines:
                        if predicate(line):
                            return line
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(found(), within)
        except TimeoutError:
            raise AssertionError(f"not heard within {within}s; heard: {self.lines}") from None

    async def subscribed(self, channel: str) -> Line:
        return await self.wait_for(
            lambda line: line["type"] == "subscribed" and line["channel"] == channel
        )

    def events(self, name: str) -> list[Any]:
        return [
            line["data"] for line in self.lines if line["type"] == "event" and line["event"] == name
        ]

    async def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(orjson.dumps(command) + b"\n")
        await self.process.stdin.drain()

    async def close(self) -> None:
        if self.process.returncode is None:
            try:
                await self.send(cmd="close")
                await asyncio.wait_for(self.process.wait(), 5)
            except (TimeoutError, ConnectionError):
                self.process.kill()
                await self.process.wait()
        self._reader.cancel()
