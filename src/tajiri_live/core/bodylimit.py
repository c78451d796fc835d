"""Request bodies are limited and received whole before any route, token or signature check
runs: pure ASGI, as a buffering proxy would do it.

A `Content-Length` over the route's limit is refused before a byte of the body is read; a
body without one (chunked) is refused as soon as it passes the limit. The answer is the
project's 413 envelope with `Connection: close`, so the rest of the body is not read.

The body must also arrive within `timeout` seconds (408 otherwise). Receiving it before the
application sees the request is what keeps a slow sender from holding anything that matters:
a route opens its database session before it reads its body, so a few dozen bodies sent a
byte at a time would otherwise hold the whole pool. A body that arrives in one message (a
JSON body, as a rule) is handed on as it came; longer ones are gathered, up to 1 MiB in
memory, larger ones (uploads) in a temporary file. A request without a body (no
`Content-Length` or 0, not chunked) has nothing to wait for and passes straight through.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def too_large_message(limit: int) -> str:
    return f"The request body is too large: at most {limit:,} bytes are accepted here."


@dataclass(frozen=True)
class BodyRule:
    """A limit for the requests this rule matches (path pattern, methods, content type)."""

    pattern: re.Pattern[str]
    methods: frozenset[str]
    limit: int
    content_type: str | None = None  # e.g. multipart/form-data; None: any

    def matches(self, method: str, path: str, content_type: str) -> bool:
        return (
            method in self.methods
            and (self.content_type is None or content_type == self.content_type)
            and self.pattern.fullmatch(path) is not None
        )


@dataclass(frozen=True)
class BodyLimits:
    default: int
    rules: tuple[BodyRule, ...] = field(default_factory=tuple)

    @classmethod
    def build(
        cls, default: int, rules: Iterable[tuple[str, Iterable[str], int, str | None]]
    ) -> BodyLimits:
        return cls(
            default,
            tuple(
                BodyRule(re.compile(pattern), frozenset(methods), limit, content_type)
                for pattern, methods, limit, content_type in rules
            ),
        )

    def limit_for(self, method: str, path: str, content_type: str) -> int:
        for rule in self.rules:
            if rule.matches(method, path, content_type):
                return rule.limit
        return self.default


SPOOL_IN_MEMORY = 1024 * 1024  # larger bodies wait in a temporary file
REPLAY_CHUNK = 64 * 1024


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limits: BodyLimits, timeout: float = 20.0) -> None:
        self.app = app
        self.limits = limits
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        limit = self.limits.limit_for(
            scope["method"], scope["path"], content_type.decode("latin-1")
        )
        declared = headers.get(b"content-length")
        if declared is not None and not declared.strip().isdigit():
            await _answer(send, 400, "The Content-Length header is not a number.")
            return
        length = int(declared) if declared is not None else 0
        if length > limit:
            await _answer(send, 413, too_large_message(limit))
            return
        if length == 0 and b"transfer-encoding" not in headers:
            # No body (RFC 9112, 6.3): nothing to receive, limit or wait for.
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.timeout
        try:
            async with asyncio.timeout_at(deadline):
                first = await receive()
        except TimeoutError:
            await _answer(send, 408, self._too_slow())
            return
        if first["type"] != "http.request":
            return  # the client went away
        chunk = first.get("body", b"")
        if len(chunk) > limit:
            await _answer(send, 413, too_large_message(limit))
            return
        if not first.get("more_body", False):  # the whole body at once: a JSON body's case
            await self.app(scope, _replay_message(first, receive), send)
            return
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            spool.write(chunk)
            try:
                async with asyncio.timeout_at(deadline):
                    size = await _receive_body(receive, spool, limit, len(chunk))
            except TimeoutError:
                await _answer(send, 408, self._too_slow())
                return
            if size is None:
                return  # the client went away
            if size > limit:
                await _answer(send, 413, too_large_message(limit))
                return
            spool.seek(0)
            await self.app(scope, _replay(spool, size, receive), send)

    def _too_slow(self) -> str:
        return f"The request body arrived too slowly: send it within {self.timeout:g} s."


async def _receive_body(
    receive: Receive, spool: tempfile.SpooledTemporaryFile[bytes], limit: int, size: int
) -> int | None:
    """Reads the rest of the body into `spool` (`size` bytes of it are there): its size, a
    size over `limit` as soon as it passes it (the rest unread), or None when the client
    disconnected."""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return size
        spool.write(chunk)
        if not message.get("more_body", False):
            return size


def _replay_message(message: Message, receive: Receive) -> Receive:
    """The body's one message again; then the client's own messages (a disconnect)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return message

    return replay


def _replay(spool: tempfile.SpooledTemporaryFile[bytes], size: int, receive: Receive) -> Receive:
    """The body again, as `http.request` messages; then the client's own messages (a
    disconnect) as before."""
    done = False

    async def replayed() -> Message:
        nonlocal done
        if done:
            return await receive()
        chunk = spool.read(REPLAY_CHUNK)
        done = spool.tell() >= size
        return {"type": "http.request", "body": chunk, "more_body": not done}

    return replayed


async def _answer(send: Send, status: int, message: str) -> None:
    body = orjson.dumps({"success": False, "message": message})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
