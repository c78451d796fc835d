"""Request bodies are limited while they stream in, before any route, token or signature
check reads them: pure ASGI, counting the bytes of each `http.request` message.

A `Content-Length` over the route's limit is refused before a byte of the body is read; a
body without one (chunked) is refused as soon as it passes the limit. The answer is the
project's 413 envelope with `Connection: close`, so the rest of the body is not read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def too_large_message(limit: int) -> str:
    return f"The request body is too large: at most {limit:,} bytes are accepted here."


class BodyTooLarge(HTTPException):
    """Raised from `receive()` inside the application: answered as the 413 envelope."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_message(limit), headers={"Connection": "close"})


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


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

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
        if declared is not None:
            if not declared.strip().isdigit():
                await _answer(send, 400, "The Content-Length header is not a number.")
                return
            if int(declared) > limit:
                await _answer(send, 413, too_large_message(limit))
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            # Normally answered inside the application; this catches code that re-raised it.
            if started:
                raise
            await _answer(send, 413, too_large_message(limit))


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
