"""`POST /streams/{id}/health`: the encoder's report (owner, co-hosts); `GET` reads it back."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from tajiri_live.core.dependencies import RuntimeDep, SessionDep
from tajiri_live.core.payload import read_payload, validated
from tajiri_live.health import service
from tajiri_live.health.schemas import HealthReport
from tajiri_live.moderation.service import ensure_moderator
from tajiri_live.streams.dependencies import StreamRowDep
from tajiri_live.streams.hosts import ensure_host
from tajiri_live.users.dependencies import CurrentPrincipal

router = APIRouter(prefix="/streams", tags=["health"])


@router.post("/{stream_id}/health", summary="Report the encoder's health (owner, co-hosts)")
async def report(
    request: Request,
    stream: StreamRowDep,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    await ensure_host(session, stream, principal, "report its health")
    body = validated(HealthReport, await read_payload(request))
    stream = await service.report(session, runtime=runtime, stream=stream, body=body)
    return {
        "success": True,
        "message": "Health metrics recorded.",
        "data": service.health_dict(stream),
    }


@router.get("/{stream_id}/health", summary="The stream's health and its latest samples")
async def show(
    stream: StreamRowDep, session: SessionDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    await ensure_moderator(session, stream, principal)
    samples = await service.recent_samples(session, stream.id)
    return {
        "success": True,
        "data": {
            **service.health_dict(stream),
            "recent_samples": [service.sample_dict(s) for s in samples],
        },
    }
