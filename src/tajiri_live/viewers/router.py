"""REST join/leave, and a readable 426 for plain GETs on the WebSocket paths."""

from __future__ import annotations

from typing import Any, cast

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from tajiri_live.core.auth import Principal
from tajiri_live.core.clock import iso
from tajiri_live.core.dependencies import SessionDep
from tajiri_live.core.errors import ApiError
from tajiri_live.core.hotroutes import json_response
from tajiri_live.core.payload import read_payload
from tajiri_live.core.runtime import Runtime
from tajiri_live.core.text import Text
from tajiri_live.streams import presenters
from tajiri_live.streams import service as streams_service
from tajiri_live.streams.dependencies import (
    StreamCall,
    StreamCallDep,
    StreamRowDep,
    hot_stream_route,
)
from tajiri_live.streams.lifecycle import StreamStatus
from tajiri_live.streams.models import LiveStream
from tajiri_live.users.dependencies import CurrentPrincipal, ensure_same_user
from tajiri_live.viewers.service import Viewers
from tajiri_live.viewers.sessions import clean_region

router = APIRouter(prefix="/streams", tags=["viewers"])
socket_paths = APIRouter(tags=["websocket"])

NOT_STARTED = frozenset({StreamStatus.SCHEDULED, StreamStatus.PRE_LIVE})


def viewers_of(request: Request) -> Viewers:
    return cast(Viewers, request.app.state.viewers)


@router.post("/{stream_id}/join", summary="Join as a viewer (REST; the socket also counts)")
async def join(request: Request, call: StreamCallDep) -> Response:
    """Served in front of FastAPI (`hot_routes`); this route documents it and answers
    what the hot one declines."""
    return await _join(request, call)


async def _join(request: Request, call: StreamCall) -> Response:
    runtime, principal, stream = call.runtime, call.principal, call.stream
    payload = await read_payload(request)
    ensure_same_user(payload.get("user_id"), principal)
    status = stream.status_enum
    if status is not StreamStatus.LIVE:
        raise _not_live(await _visible_row(runtime, stream.id, principal))
    current = await viewers_of(request).rest_join(
        stream=stream,
        user_id=principal.user_id,
        region=clean_region(payload.get("region")) or clean_region(principal.region),
    )
    settings = runtime.settings
    return json_response(
        {
            "success": True,
            "message": "Joined the stream.",
            "playback_url": presenters.playback_url(stream, settings, viewer_id=principal.user_id),
            "current_viewers": current,
            "websocket": presenters.websocket_info(stream.id, settings, public=stream.public),
            # For the socket only; it expires no later than the credential it was joined with.
            "viewer_token": runtime.identity.mint_viewer_token(principal),
        }
    )


async def _visible_row(runtime: Runtime, stream_id: int, principal: Principal) -> LiveStream:
    async with runtime.sessions() as session:
        return await streams_service.get_visible_stream(
            session, stream_id=stream_id, viewer=principal, people=False
        )


def _not_live(stream: LiveStream) -> ApiError:
    """Why a stream that is not live cannot be joined: not yet (409) or no more (410)."""
    status = stream.status_enum
    if status in NOT_STARTED:
        return ApiError(
            409,
            "The stream has not started yet.",
            stream_status=status.value,
            scheduled_at=iso(stream.scheduled_at),
        )
    return ApiError(
        410,
        "The stream has ended.",
        stream_ended=True,
        stream_status=status.value,
        ended_at=iso(stream.ended_at),
        duration=stream.duration,
        total_viewers=stream.total_viewers,
        peak_viewers=stream.peak_viewers,
    )


@router.post("/{stream_id}/leave", summary="Leave (stops counting a REST join)")
async def leave(
    request: Request,
    stream: StreamRowDep,
    session: SessionDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    payload = await read_payload(request)
    ensure_same_user(payload.get("user_id"), principal)
    await viewers_of(request).rest_leave(session, stream_id=stream.id, user_id=principal.user_id)
    return {"success": True, "message": "Left the stream."}


def _upgrade_required() -> JSONResponse:
    return JSONResponse(
        {
            "success": False,
            "message": "This is a WebSocket endpoint: connect with a WebSocket client.",
        },
        status_code=426,
        headers={"Upgrade": "websocket", "Connection": "Upgrade"},
    )


@socket_paths.get("/streams/all", include_in_schema=False)
async def feed_over_http() -> JSONResponse:
    return _upgrade_required()


@socket_paths.get("/streams/{stream_id}", include_in_schema=False)
async def stream_over_http(stream_id: Text) -> JSONResponse:
    return _upgrade_required()


hot_routes = (hot_stream_route("POST", f"{router.prefix}/{{stream_id}}/join", _join),)
