"""Comments, reactions, likes and shares of the client contract."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from tajiri_live.core.clock import iso
from tajiri_live.core.dependencies import RuntimeDep, SessionDep
from tajiri_live.core.hotroutes import json_response
from tajiri_live.core.payload import MAX_ID, DbId, body_doc, read_payload, validated
from tajiri_live.core.text import Text
from tajiri_live.engagement import cohosts, service
from tajiri_live.engagement.presenters import comment_dict
from tajiri_live.engagement.schemas import CommentCreate, ReactionCreate
from tajiri_live.streams.dependencies import (
    StreamCall,
    StreamCallDep,
    StreamRowDep,
    hot_stream_route,
)
from tajiri_live.streams.presenters import cohost_dict, storage_base_url
from tajiri_live.users.dependencies import (
    CurrentPrincipal,
    ensure_same_user,
    ensure_verified_for,
)
from tajiri_live.users.presenters import user_dict

router = APIRouter(prefix="/streams", tags=["engagement"])

CommentId = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/{stream_id}/comments", summary="Comments, oldest first")
async def list_comments(
    stream: StreamRowDep,
    session: SessionDep,
    runtime: RuntimeDep,
    last_id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_COMMENT_PAGE)] = 50,
) -> dict[str, Any]:
    now = runtime.clock.now()
    comments = await service.list_comments(
        session, stream_id=stream.id, last_id=last_id, limit=limit, now=now
    )
    return {
        "success": True,
        "data": [comment_dict(c, runtime.settings, now=now) for c in comments],
    }


@router.post(
    "/{stream_id}/comments",
    status_code=201,
    summary="Post a comment",
    openapi_extra=body_doc(CommentCreate),
)
async def post_comment(request: Request, call: StreamCallDep) -> Response:
    """Served in front of FastAPI (`hot_routes`); this route documents it and answers
    what the hot one declines."""
    return await _post_comment(request, call)


async def _post_comment(request: Request, call: StreamCall) -> Response:
    runtime, principal, stream = call.runtime, call.principal, call.stream
    payload = await read_payload(request)
    ensure_same_user(payload.pop("user_id", None), principal)
    data = validated(CommentCreate, payload)
    comment = await service.post_comment(
        runtime=runtime,
        stream=stream,
        principal=principal,
        content=data.content,
        writer=request.app.state.comment_writer,
        checks=request.app.state.commenter_checks,
    )
    return json_response({"success": True, "message": "Comment posted.", "data": comment}, 201)


async def _mark(
    stream: Any, session: Any, runtime: Any, principal: Any, comment_id: int, **change: bool
) -> dict[str, Any]:
    comment = await service.mark_comment(
        session,
        runtime=runtime,
        stream=stream,
        principal=principal,
        comment_id=comment_id,
        **change,
    )
    return {"success": True, "data": comment_dict(comment, runtime.settings)}


@router.post("/{stream_id}/comments/{comment_id}/pin", summary="Pin (owner, co-hosts)")
async def pin(
    stream: StreamRowDep,
    comment_id: CommentId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    return await _mark(stream, session, runtime, principal, comment_id, pinned=True)


@router.delete("/{stream_id}/comments/{comment_id}/pin", summary="Unpin")
async def unpin(
    stream: StreamRowDep,
    comment_id: CommentId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    return await _mark(stream, session, runtime, principal, comment_id, pinned=False)


@router.post("/{stream_id}/comments/{comment_id}/highlight", summary="Highlight")
async def highlight(
    stream: StreamRowDep,
    comment_id: CommentId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    return await _mark(stream, session, runtime, principal, comment_id, highlighted=True)


@router.delete("/{stream_id}/comments/{comment_id}/highlight", summary="Remove the highlight")
async def unhighlight(
    stream: StreamRowDep,
    comment_id: CommentId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    return await _mark(stream, session, runtime, principal, comment_id, highlighted=False)


@router.delete("/{stream_id}/comments/{comment_id}", summary="Delete (author, owner, co-hosts)")
async def delete_comment(
    stream: StreamRowDep,
    comment_id: CommentId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    await service.delete_comment(
        session, runtime=runtime, stream=stream, principal=principal, comment_id=comment_id
    )
    return {"success": True, "message": "Comment deleted."}


@router.post(
    "/{stream_id}/reactions",
    status_code=201,
    summary="React",
    openapi_extra=body_doc(ReactionCreate),
)
async def react(
    request: Request,
    stream: StreamRowDep,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> JSONResponse:
    payload = await read_payload(request)
    ensure_same_user(payload.pop("user_id", None), principal)
    data = validated(ReactionCreate, payload)
    counts = await service.react(
        session,
        runtime=runtime,
        stream=stream,
        principal=principal,
        reaction_type=data.reaction_type,
    )
    return JSONResponse(
        {
            "success": True,
            "data": {
                "stream_id": stream.id,
                "reaction_type": data.reaction_type,
                "reaction_counts": counts,
            },
        },
        status_code=201,
    )


@router.post("/{stream_id}/like", summary="Like, or take the like back")
async def like(
    request: Request,
    stream: StreamRowDep,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    ensure_same_user((await read_payload(request)).get("user_id"), principal)
    liked, count = await service.toggle_like(
        session, runtime=runtime, stream=stream, principal=principal
    )
    return {
        "success": True,
        "is_liked": liked,
        "likes_count": count,
        "data": {"is_liked": liked, "likes_count": count},
    }


@router.post("/{stream_id}/share", summary="Count a share")
async def share(
    request: Request,
    stream: StreamRowDep,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    ensure_same_user((await read_payload(request)).get("user_id"), principal)
    count = await service.share(session, runtime=runtime, stream=stream, principal=principal)
    return {"success": True, "shares_count": count, "data": {"shares_count": count}}


class CohostInvite(BaseModel):
    user_id: DbId


class CohostAnswer(BaseModel):
    status: Text = Field(max_length=20)


CohostId = Annotated[int, Path(ge=1, le=2**62)]


@router.post(
    "/{stream_id}/cohosts",
    status_code=201,
    summary="Invite a co-host (owner)",
    openapi_extra=body_doc(CohostInvite),
)
async def invite_cohost(
    request: Request,
    stream: StreamRowDep,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> JSONResponse:
    if stream.split_gifts_with_cohosts:
        ensure_verified_for(principal, "Changing the co-hosts of a stream that splits gifts")
    data = validated(CohostInvite, await read_payload(request))
    cohost = await cohosts.invite(
        session, runtime=runtime, stream=stream, principal=principal, user_id=data.user_id
    )
    return JSONResponse(
        {
            "success": True,
            "message": "Co-host invited.",
            "data": cohost_dict(cohost, runtime.settings),
        },
        status_code=201,
    )


@router.put(
    "/{stream_id}/cohosts/{cohost_id}",
    summary="Accept or decline (the invitee)",
    openapi_extra=body_doc(CohostAnswer),
)
async def answer_cohost(
    request: Request,
    stream: StreamRowDep,
    cohost_id: CohostId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    if stream.split_gifts_with_cohosts:
        ensure_verified_for(principal, "Changing the co-hosts of a stream that splits gifts")
    data = validated(CohostAnswer, await read_payload(request))
    cohost = await cohosts.answer(
        session,
        runtime=runtime,
        stream=stream,
        principal=principal,
        cohost_id=cohost_id,
        status=data.status,
    )
    return {"success": True, "data": cohost_dict(cohost, runtime.settings)}


@router.delete("/{stream_id}/cohosts/{cohost_id}", summary="Remove (owner) or leave (co-host)")
async def end_cohost(
    stream: StreamRowDep,
    cohost_id: CohostId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    if stream.split_gifts_with_cohosts:
        ensure_verified_for(principal, "Changing the co-hosts of a stream that splits gifts")
    cohost = await cohosts.end(
        session, runtime=runtime, stream=stream, principal=principal, cohost_id=cohost_id
    )
    return {"success": True, "data": cohost_dict(cohost, runtime.settings)}


@router.get("/{stream_id}/viewers", summary="Signed-in viewers watching now")
async def list_viewers(
    stream: StreamRowDep,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    viewers = await cohosts.current_viewers(session, stream.id, limit)
    base = storage_base_url(runtime.settings)
    return {
        "success": True,
        "data": [
            {
                "id": v.id,
                "stream_id": v.stream_id,
                "user_id": v.user_id,
                "joined_at": iso(v.joined_at),
                "left_at": iso(v.left_at),
                "watch_duration": v.watch_duration,
                "user": user_dict(v.user, storage_base_url=base),
            }
            for v in viewers
        ],
    }


hot_routes = (hot_stream_route("POST", f"{router.prefix}/{{stream_id}}/comments", _post_comment),)
