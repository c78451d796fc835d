"""`GET /streams/{id}/analytics`: for the owner, co-hosts and admins, during and after."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tajiri_live.analytics import service
from tajiri_live.core.dependencies import RuntimeDep, SessionDep
from tajiri_live.moderation import service as moderation
from tajiri_live.streams.dependencies import StreamRowDep
from tajiri_live.streams.lifecycle import StreamStatus
from tajiri_live.streams.presenters import storage_base_url
from tajiri_live.users.dependencies import CurrentPrincipal

router = APIRouter(prefix="/streams", tags=["analytics"])


@router.get("/{stream_id}/analytics", summary="The stream's analytics (live or the report)")
async def stream_analytics(
    stream: StreamRowDep, session: SessionDep, runtime: RuntimeDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    await moderation.ensure_moderator(session, stream, principal)
    stored = await service.stored_report(session, stream.id)
    if stored is not None and stream.status_enum is StreamStatus.ENDED:
        data = stored.data
    else:
        data = await service.build_report(
            session,
            stream=stream,
            now=runtime.clock.now(),
            storage_base_url=storage_base_url(runtime.settings),
        )
    return {"success": True, "data": data}
