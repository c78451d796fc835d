"""Bans, mutes and the moderation log (owner, co-hosts, admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from tajiri_live.core.dependencies import RuntimeDep, SessionDep
from tajiri_live.core.payload import DbId, body_doc, read_payload, validated
from tajiri_live.core.text import Text
from tajiri_live.moderation import service
from tajiri_live.streams.dependencies import StreamRowDep
from tajiri_live.users.dependencies import CurrentPrincipal

router = APIRouter(prefix="/streams", tags=["moderation"])

UserId = Annotated[int, Path(ge=1, le=2**62)]


class BanCreate(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    user_id: DbId
    reason: Text | None = Field(default=None, max_length=255)


class MuteCreate(BanCreate):
    minutes: int = Field(default=10, ge=1, le=24 * 60)


@router.post(
    "/{stream_id}/bans",
    status_code=201,
    summary="Ban a user from the stream",
    openapi_extra=body_doc(BanCreate),
)
async def ban(
    request: Request,
    stream: StreamRowDep,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> JSONResponse:
    data = validated(BanCreate, await read_payload(request))
    entry = await service.restrict(
        session,
        runtime=runtime,
        stream=stream,
        actor=principal,
        user_id=data.user_id,
        kind="ban",
        reason=data.reason,
    )
    return JSONResponse(
        {"success": True, "message": "User banned.", "data": service.restriction_dict(entry)},
        status_code=201,
    )


@router.post(
    "/{stream_id}/mutes",
    status_code=201,
    summary="Mute a user for N minutes",
    openapi_extra=body_doc(MuteCreate),
)
async def mute(
    request: Request,
    stream: StreamRowDep,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> JSONResponse:
    data = validated(MuteCreate, await read_payload(request))
    minutes = min(data.minutes, runtime.settings.max_mute_minutes)
    entry = await service.restrict(
        session,
        runtime=runtime,
        stream=stream,
        actor=principal,
        user_id=data.user_id,
        kind="mute",
        reason=data.reason,
        minutes=minutes,
    )
    return JSONResponse(
        {"success": True, "message": "User muted.", "data": service.restriction_dict(entry)},
        status_code=201,
    )


async def _lift(
    stream: Any, session: Any, runtime: Any, principal: Any, user_id: int, kind: str
) -> dict[str, Any]:
    lifted = await service.lift(
        session, runtime=runtime, stream=stream, actor=principal, user_id=user_id, kind=kind
    )
    return {"success": True, "data": {"lifted": lifted}}


@router.delete("/{stream_id}/bans/{user_id}", summary="Lift a ban")
async def unban(
    stream: StreamRowDep,
    user_id: UserId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    return await _lift(stream, session, runtime, principal, user_id, "ban")


@router.delete("/{stream_id}/mutes/{user_id}", summary="Lift a mute")
async def unmute(
    stream: StreamRowDep,
    user_id: UserId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    return await _lift(stream, session, runtime, principal, user_id, "mute")


async def _list(
    stream: Any, session: Any, runtime: Any, principal: Any, kind: str
) -> dict[str, Any]:
    await service.ensure_moderator(session, stream, principal)
    entries = await service.active(session, runtime=runtime, stream_id=stream.id, kind=kind)
    return {"success": True, "data": [service.restriction_dict(e) for e in entries]}


@router.get("/{stream_id}/bans", summary="Active bans")
async def bans(
    stream: StreamRowDep, session: SessionDep, runtime: RuntimeDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    return await _list(stream, session, runtime, principal, "ban")


@router.get("/{stream_id}/mutes", summary="Active mutes")
async def mutes(
    stream: StreamRowDep, session: SessionDep, runtime: RuntimeDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    return await _list(stream, session, runtime, principal, "mute")


@router.get("/{stream_id}/moderation-log", summary="Who did what, newest first")
async def moderation_log(
    stream: StreamRowDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    await service.ensure_moderator(session, stream, principal)
    entries = await service.log(session, stream_id=stream.id, limit=limit)
    return {"success": True, "data": [service.action_dict(e) for e in entries]}
