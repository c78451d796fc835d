"""`GET /streams/{id}/analytics`: for the owner, co-hosts and admins, during and after."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from tajiri_live.analytics import service
from tajiri_live.core.dependencies import RuntimeDep, SessionDep
from tajiri_live.moderation import service as moderation
from tajiri_live.streams.dependencies import StreamRowDep
from tajiri_live.streams.lifecycle import FINAL_STATUSES
from tajiri_live.users.dependencies import VerifiedPrincipal

router = APIRouter(prefix="/streams", tags=["analytics"])


@router.get("/{stream_id}/analytics", summary="The stream's analytics (live or the report)")
async def stream_analytics(
    request: Request,
    stream: StreamRowDep,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: VerifiedPrincipal,  # revenue and gifters: never for a claimed id
) -> dict[str, Any]:
    await moderation.ensure_moderator(session, stream, principal)
    if stream.status_enum in FINAL_STATUSES:
        stored = await service.stored_report(session, stream.id)
        if stored is not None:
            return {"success": True, "data": stored.data}
    cache: service.LiveReportCache = request.app.state.analytics_cache
    data = cache.get(stream.id)
    if data is None:
        data = await service.build_report(runtime, stream=stream)
        if stream.status_enum not in FINAL_STATUSES:
            cache.put(stream.id, data)
    return {"success": True, "data": data}
