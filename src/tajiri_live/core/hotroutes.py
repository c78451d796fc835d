"""A few hot routes served in front of FastAPI.

Under load a join or a comment spends more of the core in the framework around its handler
than in the handler: FastAPI's telemetry check and middleware layers, Starlette's exception
layer, FastAPI's routing, its AsyncExitStacks, dependency solving and response encoding
(about 80-100 µs a request on a 2-core host, against under 10 µs for a plain ASGI callable).
A hot route is still declared as a normal FastAPI route (documented, validated, and the
fallback); this layer, which sits inside the body limit and in front of the app
(`HotEntryApp`), answers the same requests first with a handler that takes the request and
returns the response, and renders its errors with the app's own exception handlers (its
generic one for a bug), so the client sees the same answers either way.

A route's parameters are ids (digits). A handler may decline a request (return None)
before it reads anything from it: the documented route then answers, e.g. with its 422.
"""

from __future__ import annotations

import inspect
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

HotHandler = Callable[[Request], Awaitable[Response | None]]
ErrorHandler = Callable[[Request, Any], Response | Awaitable[Response]]

_PARAM = re.compile(r"{(\w+)}")
# A request id has at most 19 digits (2**62 has 19); longer ones go to the documented route.
_ID = r"(?P<\1>[0-9]{1,19})"
# Requests each hot route answered, by template (for /metrics): the documented route
# answers the rest.
SERVED: Counter[str] = Counter()


@dataclass(frozen=True, slots=True)
class HotRoute:
    method: str
    path: str  # the documented route's template, e.g. "/streams/{stream_id}/join"
    handler: HotHandler
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", re.compile(_PARAM.sub(_ID, self.path)))

    def under(self, prefix: str) -> HotRoute:
        """The route as included under `prefix` (as its router is: `/api`)."""
        return HotRoute(self.method, prefix + self.path, self.handler)


def json_response(content: Any, status_code: int = 200) -> Response:
    """What FastAPI's JSONResponse sends for plain JSON values (compact, UTF-8)."""
    return Response(orjson.dumps(content), status_code, media_type="application/json")


def _route_path(scope: Scope) -> str:
    """The path the router matches: without the app's mount point (uvicorn's --root-path)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        return path[len(root) :]
    return path


class HotRoutesMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        routes: Sequence[HotRoute],
        exception_handlers: Mapping[Any, ErrorHandler],
    ) -> None:
        self.app = app
        self._routes: dict[str, tuple[HotRoute, ...]] = {}
        for route in routes:
            self._routes[route.method] = (*self._routes.get(route.method, ()), route)
        # The app's own mapping: handlers installed after this layer count too.
        self._exception_handlers = exception_handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            candidates = self._routes.get(scope["method"])
            if candidates:
                path = _route_path(scope)
                for route in candidates:
                    match = route.pattern.fullmatch(path)
                    if match is not None:
                        if await self._serve(route, match, scope, receive, send):
                            return
                        break
        await self.app(scope, receive, send)

    async def _serve(
        self, route: HotRoute, match: re.Match[str], scope: Scope, receive: Receive, send: Send
    ) -> bool:
        scope["path_params"] = match.groupdict()
        scope["route"] = route  # for code that reads the matched template (legacy identity)
        request = Request(scope, receive, send)
        try:
            response = await route.handler(request)
        except Exception as exc:
            handler = self._handler_for(exc)
            if handler is None:
                raise  # a bug, and the app has no handler for any: the server answers 500
            answer = handler(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
        if response is None:
            return False
        SERVED[route.path] += 1
        await response(scope, receive, send)
        return True

    def _handler_for(self, exc: Exception) -> ErrorHandler | None:
        """The app's handler for the error's nearest kind (its generic one, which logs, for
        anything else)."""
        for kind in type(exc).__mro__:
            handler = self._exception_handlers.get(kind)
            if handler is not None:
                return handler
        return self._exception_handlers.get(500)


class HotEntryApp(FastAPI):
    """FastAPI entered through `entry` (the body limit, then the hot routes) for HTTP: a
    hot route's request never goes through FastAPI's own layers."""

    entry: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.entry is None or scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self  # as Starlette sets it: handlers read `request.app`
        await self.entry(scope, receive, send)

    async def framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app past the entry: FastAPI's own layers, then its router."""
        await super().__call__(scope, receive, send)
