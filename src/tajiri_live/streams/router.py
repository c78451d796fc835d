"""The stream routes of the client contract."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from tajiri_live.analytics import service as analytics_service
from tajiri_live.core import clienttime
from tajiri_live.core.auth import Principal
from tajiri_live.core.clock import iso
from tajiri_live.core.dependencies import RuntimeDep, SessionDep
from tajiri_live.core.media import store_image
from tajiri_live.core.pagination import page_links
from tajiri_live.core.payload import MAX_ID, body_doc, read_payload, upload, validated
from tajiri_live.core.runtime import Runtime
from tajiri_live.core.settings import Settings
from tajiri_live.core.text import Text
from tajiri_live.engagement import service as engagement_service
from tajiri_live.ingest.dependencies import IngestDep
from tajiri_live.streams import presenters, service
from tajiri_live.streams.dependencies import OwnedStreamDep, StreamDep
from tajiri_live.streams.lifecycle import FINAL_STATUSES, StatusFilter, StreamStatus, statuses_of
from tajiri_live.streams.models import LiveStream
from tajiri_live.streams.schemas import StatusUpdate, StreamCreate, StreamUpdate
from tajiri_live.users.dependencies import (
    CurrentPrincipal,
    OptionalPrincipal,
    ensure_same_user,
    ensure_verified_for,
)

router = APIRouter(prefix="/streams", tags=["streams"])

CurrentUserIdQuery = Annotated[
    Text | None,
    Query(
        max_length=40, description="Ignored for identity; must match the token when both are sent"
    ),
]


def _body_doc(model: type[StreamCreate] | type[StreamUpdate]) -> dict[str, Any]:
    schema = model.model_json_schema()
    multipart = {
        "type": "object",
        "properties": {
            **schema["properties"],
            "tags[0]": {"type": "string"},
            "thumbnail": {"type": "string", "format": "binary"},
        },
    }
    return {
        "requestBody": {
            "content": {
                "application/json": {"schema": schema},
                "multipart/form-data": {"schema": multipart},
            },
        }
    }


def _page_links(request: Request, page: service.Page) -> tuple[dict[str, Any], dict[str, Any]]:
    return page_links(
        request, page=page.page, per_page=page.per_page, total=page.total, count=len(page.items)
    )


async def _streams_data(
    session: AsyncSession, streams: list[LiveStream], viewer: Any, settings: Settings
) -> list[dict[str, Any]]:
    """Streams with what depends on the reader (is_liked) and the reaction tallies."""
    ids = [s.id for s in streams]
    liked = await engagement_service.liked_by(session, viewer.user_id, ids) if viewer else set()
    reactions = await engagement_service.reaction_counts(session, ids)
    return [
        presenters.stream_dict(
            s,
            viewer=viewer,
            settings=settings,
            is_liked=s.id in liked,
            reaction_counts=reactions.get(s.id),
        )
        for s in streams
    ]


async def _stream_data(
    session: AsyncSession, stream: LiveStream, viewer: Any, settings: Settings
) -> dict[str, Any]:
    return (await _streams_data(session, [stream], viewer, settings))[0]


async def _list(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    viewer: Any,
    *,
    status: StatusFilter | None,
    owner_id: int | None,
    category: str | None,
    page: int,
    per_page: int | None,
    following: bool = False,
) -> dict[str, Any]:
    settings = runtime.settings
    size = min(per_page or settings.page_size, settings.max_page_size)
    result = await service.list_streams(
        session,
        viewer=viewer,
        statuses=statuses_of(status) if status is not None else None,
        owner_id=owner_id,
        category=category,
        following=following,
        page=page,
        per_page=size,
    )
    meta, links = _page_links(request, result)
    return {
        "success": True,
        "data": await _streams_data(session, result.items, viewer, settings),
        "meta": meta,
        "links": links,
    }


@router.get("", summary="List streams visible to the caller")
async def list_streams(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    viewer: OptionalPrincipal,
    status: StatusFilter | None = None,
    user_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    category: Annotated[Text | None, Query(max_length=100)] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int | None, Query(ge=1, le=1_000)] = None,
    current_user_id: CurrentUserIdQuery = None,
    following: Annotated[bool, Query(description="only streamers the caller follows")] = False,
) -> dict[str, Any]:
    ensure_same_user(current_user_id, viewer, "current_user_id")
    return await _list(
        request,
        session,
        runtime,
        viewer,
        status=status,
        owner_id=user_id,
        category=category,
        page=page,
        per_page=per_page,
        following=following,
    )


@router.get("/user/{user_id}", summary="A user's streams")
async def user_streams(
    request: Request,
    user_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    session: SessionDep,
    runtime: RuntimeDep,
    viewer: OptionalPrincipal,
    status: StatusFilter | None = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int | None, Query(ge=1, le=1_000)] = None,
) -> dict[str, Any]:
    return await _list(
        request,
        session,
        runtime,
        viewer,
        status=status,
        owner_id=user_id,
        category=None,
        page=page,
        per_page=per_page,
    )


async def _thumbnail(payload: dict[str, Any], runtime: Runtime) -> str | None:
    file = upload(payload, "thumbnail")
    if file is None:
        return None
    return await store_image(
        file,
        field="thumbnail",
        storage_dir=runtime.settings.media_dir,
        folder="live-thumbnails",
        max_bytes=runtime.settings.max_thumbnail_bytes,
    )


@router.post("", status_code=201, summary="Create a stream", openapi_extra=_body_doc(StreamCreate))
async def create_stream(
    request: Request, session: SessionDep, runtime: RuntimeDep, principal: CurrentPrincipal
) -> JSONResponse:
    payload = await read_payload(request)
    ensure_same_user(payload.pop("user_id", None), principal)
    thumbnail_file_present = "thumbnail" in payload
    fields = {k: v for k, v in payload.items() if k != "thumbnail"}
    data = validated(StreamCreate, fields, context=clienttime.context(runtime.settings))
    if data.split_gifts_with_cohosts:
        ensure_verified_for(principal, "Splitting gifts with co-hosts")
    await service.creation_allowed(runtime, principal)
    thumbnail = await _thumbnail(payload, runtime) if thumbnail_file_present else None
    stream = await service.create_stream(
        session, runtime=runtime, owner=principal, data=data, thumbnail_path=thumbnail
    )
    body = {
        "success": True,
        "message": "Stream created.",
        "data": await _stream_data(session, stream, principal, runtime.settings),
    }
    return JSONResponse(body, status_code=201)


async def _show_body(
    session: AsyncSession, stream: LiveStream, viewer: Any, settings: Settings
) -> dict[str, Any]:
    on_air = stream.status_enum not in FINAL_STATUSES
    return {
        "success": True,
        "data": await _stream_data(session, stream, viewer, settings),
        "playback_url": presenters.playback_url(
            stream, settings, viewer_id=viewer.user_id if viewer else 0
        ),
        "websocket": presenters.websocket_info(
            stream.id, settings, public=stream.privacy == "public"
        )
        if on_air
        else None,
        "stream_status_info": presenters.status_info(stream),
        "ended_summary": presenters.ended_summary(stream),
    }


@router.get("/{stream_id}", summary="One stream, with its status info")
async def show_stream(
    stream: StreamDep,
    session: SessionDep,
    runtime: RuntimeDep,
    viewer: OptionalPrincipal,
    current_user_id: CurrentUserIdQuery = None,
) -> dict[str, Any]:
    ensure_same_user(current_user_id, viewer, "current_user_id")
    return await _show_body(session, stream, viewer, runtime.settings)


@router.put("/{stream_id}", summary="Edit a stream", openapi_extra=_body_doc(StreamUpdate))
async def update_stream(
    request: Request,
    stream: OwnedStreamDep,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    payload = await read_payload(request)
    ensure_same_user(payload.pop("user_id", None), principal)
    has_thumbnail = "thumbnail" in payload
    fields = {k: v for k, v in payload.items() if k != "thumbnail"}
    data = validated(StreamUpdate, fields, context=clienttime.context(runtime.settings))
    if data.split_gifts_with_cohosts is not None:
        ensure_verified_for(principal, "Changing how gifts are split")
    thumbnail = await _thumbnail(payload, runtime) if has_thumbnail else None
    stream = await service.update_stream(
        session, runtime=runtime, stream=stream, data=data, thumbnail_path=thumbnail
    )
    return {
        "success": True,
        "message": "Stream updated.",
        "data": await _stream_data(session, stream, principal, runtime.settings),
    }


@router.delete("/{stream_id}", summary="Delete a stream (not while live)")
async def delete_stream(
    stream: OwnedStreamDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    await service.delete_stream(session, runtime=runtime, stream=stream)
    return {"success": True, "message": "Stream deleted."}


@router.patch(
    "/{stream_id}/status",
    summary="Move a stream to another status",
    openapi_extra=body_doc(StatusUpdate),
)
async def patch_status(
    request: Request,
    stream: OwnedStreamDep,
    ingest: IngestDep,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    data = validated(StatusUpdate, await read_payload(request))
    await service.change_status(session, runtime=runtime, stream=stream, target=data.status)
    if stream.status_enum not in (StreamStatus.LIVE, StreamStatus.PRE_LIVE):
        await ingest.drop_publisher(stream)
    return {
        "success": True,
        "message": f"Stream is now {stream.status}.",
        "data": await _stream_data(session, stream, principal, runtime.settings),
    }


@router.post("/{stream_id}/start", summary="Go live")
async def start_stream(
    stream: OwnedStreamDep, session: SessionDep, runtime: RuntimeDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    await service.start(session, runtime=runtime, stream=stream)
    return {
        "success": True,
        "message": "Stream is live.",
        "data": await _stream_data(session, stream, principal, runtime.settings),
        "playback_url": presenters.playback_url(
            stream, runtime.settings, viewer_id=principal.user_id
        ),
        "websocket": presenters.websocket_info(
            stream.id, runtime.settings, public=stream.privacy == "public"
        ),
    }


async def _end_analytics(
    stream: LiveStream, runtime: Runtime, principal: Principal
) -> dict[str, Any]:
    """The contract's `analytics` block of the end answer, from the same report as
    `GET /streams/{id}/analytics`; its money figures only for a verified caller (a claimed
    id of the legacy client gets null there, as it cannot read the analytics either)."""
    report = await analytics_service.build_report(runtime, stream=stream)
    money = principal.verified
    return {
        "total_viewers": report["total_viewers"],
        "unique_viewers": report["unique_viewers"],
        "peak_viewers": report["peak_viewers"],
        "average_watch_time": report["average_watch_time"],
        "total_gifts": report["total_gifts"] if money else None,
        "revenue": report["total_revenue"] if money else None,
        "creator_revenue": report["revenue"]["creator_share"] if money else None,
    }


@router.post("/{stream_id}/end", summary="End the stream (outro, then ended)")
async def end_stream(
    stream: OwnedStreamDep,
    ingest: IngestDep,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    await service.end(session, runtime=runtime, stream=stream)
    await ingest.drop_publisher(stream)
    return {
        "success": True,
        "message": "Stream is ending.",
        "data": await _stream_data(session, stream, principal, runtime.settings),
        "analytics": await _end_analytics(stream, runtime, principal),
    }


@router.post("/{stream_id}/cancel", summary="Call off a stream that has not finished")
async def cancel_stream(
    stream: OwnedStreamDep,
    ingest: IngestDep,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    await service.move(session, runtime=runtime, stream=stream, target=StreamStatus.CANCELLED)
    await ingest.drop_publisher(stream)
    return {
        "success": True,
        "message": "Stream cancelled.",
        "data": await _stream_data(session, stream, principal, runtime.settings),
    }


@router.get("/{stream_id}/check", summary="Is this stream on air? (flat answer)")
async def check_stream(stream: StreamDep, runtime: RuntimeDep) -> dict[str, Any]:
    settings = runtime.settings
    info = presenters.status_info(stream)
    ended = bool(info["is_ended"])
    messages = {
        StreamStatus.SCHEDULED: "Stream has not started yet.",
        StreamStatus.PRE_LIVE: "Stream is starting soon.",
        StreamStatus.LIVE: "Stream is live.",
        StreamStatus.ENDING: "Stream is ending.",
        StreamStatus.ENDED: "Stream has ended.",
        StreamStatus.CANCELLED: "Stream was cancelled.",
    }
    return {
        "success": True,
        "exists": True,
        "is_active": info["is_active"],
        "stream_ended": ended,
        "stream_id": stream.id,
        "status": stream.status,
        "playback_url": presenters.playback_url(stream, settings),
        "current_viewers": stream.current_viewers,
        "websocket": None
        if ended
        else presenters.websocket_info(stream.id, settings, public=stream.privacy == "public"),
        "ended_at": iso(stream.ended_at),
        "duration": stream.duration,
        "total_viewers": stream.total_viewers,
        "peak_viewers": stream.peak_viewers,
        "message": messages[stream.status_enum],
    }
