"""Path dependencies that load a stream and check who may touch it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from starlette.responses import Response

from tajiri_live.core.auth import Principal
from tajiri_live.core.dependencies import RuntimeDep, SessionDep, get_runtime
from tajiri_live.core.hotroutes import HotRoute
from tajiri_live.core.runtime import Runtime
from tajiri_live.streams import service
from tajiri_live.streams.admission import StreamFacts
from tajiri_live.streams.models import LiveStream
from tajiri_live.users.dependencies import (
    CurrentPrincipal,
    OptionalPrincipal,
    optional_principal,
    require_principal,
)

MAX_STREAM_ID = 2**62
StreamId = Annotated[int, Path(ge=1, le=MAX_STREAM_ID, description="The stream's id")]


async def visible_stream(
    stream_id: StreamId, session: SessionDep, viewer: OptionalPrincipal
) -> LiveStream:
    return await service.get_visible_stream(session, stream_id=stream_id, viewer=viewer)


async def owned_stream(
    stream_id: StreamId, session: SessionDep, principal: CurrentPrincipal
) -> LiveStream:
    return await service.get_owned_stream(session, stream_id=stream_id, principal=principal)


async def visible_stream_row(
    stream_id: StreamId, session: SessionDep, viewer: OptionalPrincipal
) -> LiveStream:
    return await service.get_visible_stream(
        session, stream_id=stream_id, viewer=viewer, people=False
    )


async def visible_stream_facts(
    stream_id: StreamId, runtime: RuntimeDep, viewer: OptionalPrincipal
) -> StreamFacts:
    return await service.visible_facts(runtime, stream_id=stream_id, viewer=viewer)


StreamDep = Annotated[LiveStream, Depends(visible_stream)]
# For actions on a stream (comment, react, gift...): the row alone, visibility checked.
StreamRowDep = Annotated[LiveStream, Depends(visible_stream_row)]
# For the hot paths (join, comment): the admission facts, cached per node, visibility checked.
StreamFactsDep = Annotated[StreamFacts, Depends(visible_stream_facts)]
OwnedStreamDep = Annotated[LiveStream, Depends(owned_stream)]


@dataclass(frozen=True, slots=True)
class StreamCall:
    """Who calls, about which stream (its admission facts, visibility checked)."""

    runtime: Runtime
    principal: Principal
    stream: StreamFacts


async def stream_call(
    request: Request,
    stream_id: StreamId,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> StreamCall:
    """The hot routes' one dependency (join, comments, gifts): what `StreamFactsDep` and
    `CurrentPrincipal` give, in their order, solved as one. FastAPI's solving of a chain of
    small dependencies cost more than the work they do."""
    return await resolve_stream_call(request, stream_id, authorization)


async def resolve_stream_call(
    request: Request, stream_id: int, authorization: str | None
) -> StreamCall:
    """`stream_call` for a route served in front of FastAPI (core/hotroutes.py)."""
    runtime = get_runtime(request)
    viewer = await optional_principal(request, runtime, authorization)
    stream = await service.visible_facts(runtime, stream_id=stream_id, viewer=viewer)
    principal = await require_principal(request, runtime, viewer)
    return StreamCall(runtime, principal, stream)


StreamCallDep = Annotated[StreamCall, Depends(stream_call)]


def hot_stream_route(
    method: str,
    path: str,
    answer: Callable[[Request, StreamCall], Awaitable[Response]],
    *,
    accepts: Callable[[Request], bool] = lambda request: True,
) -> HotRoute:
    """A route whose one dependency is `stream_call`, served in front of FastAPI
    (core/hotroutes.py) by `answer`, which the documented route at `path` calls too.
    `accepts` says whether the route's other parameters are valid as the documented route
    declares them; if not, that route answers (its 422)."""

    async def handler(request: Request) -> Response | None:
        stream_id = int(request.path_params["stream_id"])
        if not 1 <= stream_id <= MAX_STREAM_ID or not accepts(request):
            return None  # the documented route's 422
        authorization = request.headers.get("authorization")
        return await answer(request, await resolve_stream_call(request, stream_id, authorization))

    return HotRoute(method, path, handler)
