"""Comments, reactions, likes and shares of the client contract."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from tajiri_live.core.dependencies import RuntimeDep, SessionDep
from tajiri_live.core.payload import read_payload, validated
from tajiri_live.engagement import service
from tajiri_live.engagement.presenters import comment_dict
from tajiri_live.engagement.schemas import CommentCreate, ReactionCreate
from tajiri_live.streams.dependencies import StreamDep
from tajiri_live.users.dependencies import CurrentPrincipal, ensure_same_user

router = APIRouter(prefix="/streams", tags=["engagement"])

CommentId = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/{stream_id}/comments", summary="Comments, oldest first")
async def list_comments(
    stream: StreamDep,
    session: SessionDep,
    runtime: RuntimeDep,
    last_id: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_COMMENT_PAGE)] = 50,
) -> dict[str, Any]:
    comments = await service.list_comments(
        session, stream_id=stream.id, last_id=last_id, limit=limit
    )
    return {"success": True, "data": [comment_dict(c, runtime.settings) for c in comments]}


@router.post("/{stream_id}/comments", status_code=201, summary="Post a comment")
async def post_comment(
    request: Request,
    stream: StreamDep,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> JSONResponse:
    payload = await read_payload(request)
    ensure_same_user(payload.pop("user_id", None), principal)
    data = validated(CommentCreate, payload)
    comment = await service.post_comment(
        session, runtime=runtime, stream=stream, principal=principal, content=data.content
    )
    return JSONResponse(
        {
            "success": True,
            "message": "Comment posted.",
            "data": comment_dict(comment, runtime.settings),
        },
        status_code=201,
    )


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
    stream: StreamDep,
    comment_id: CommentId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    return await _mark(stream, session, runtime, principal, comment_id, pinned=True)


@router.delete("/{stream_id}/comments/{comment_id}/pin", summary="Unpin")
async def unpin(
    stream: StreamDep,
    comment_id: CommentId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    return await _mark(stream, session, runtime, principal, comment_id, pinned=False)


@router.post("/{stream_id}/comments/{comment_id}/highlight", summary="Highlight")
async def highlight(
    stream: StreamDep,
    comment_id: CommentId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    return await _mark(stream, session, runtime, principal, comment_id, highlighted=True)


@router.delete("/{stream_id}/comments/{comment_id}/highlight", summary="Remove the highlight")
async def unhighlight(
    stream: StreamDep,
    comment_id: CommentId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    return await _mark(stream, session, runtime, principal, comment_id, highlighted=False)


@router.delete("/{stream_id}/comments/{comment_id}", summary="Delete (author, owner, co-hosts)")
async def delete_comment(
    stream: StreamDep,
    comment_id: CommentId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    await service.delete_comment(
        session, runtime=runtime, stream=stream, principal=principal, comment_id=comment_id
    )
    return {"success": True, "message": "Comment deleted."}


@router.post("/{stream_id}/reactions", status_code=201, summary="React")
async def react(
    request: Request,
    stream: StreamDep,
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
    stream: StreamDep,
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
    stream: StreamDep,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    ensure_same_user((await read_payload(request)).get("user_id"), principal)
    count = await service.share(session, runtime=runtime, stream=stream, principal=principal)
    return {"success": True, "shares_count": count, "data": {"shares_count": count}}
