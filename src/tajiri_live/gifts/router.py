"""Gift routes. `/streams/gifts` is registered before `/streams/{id}` so it wins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from tajiri_live.core import idempotency
from tajiri_live.core.dependencies import RuntimeDep, SessionDep
from tajiri_live.core.errors import forbidden
from tajiri_live.core.payload import DbId, body_doc, read_payload, validated
from tajiri_live.core.text import Text
from tajiri_live.gifts import service
from tajiri_live.gifts.presenters import gift_dict, sent_gift_dict
from tajiri_live.moderation import service as moderation
from tajiri_live.streams.dependencies import (
    StreamCall,
    StreamCallDep,
    StreamRowDep,
    hot_stream_route,
)
from tajiri_live.users.dependencies import (
    CurrentPrincipal,
    ensure_same_user,
    require_verified,
)

router = APIRouter(prefix="/streams", tags=["gifts"])


class GiftSend(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    gift_id: DbId
    quantity: int = Field(default=1, ge=1, le=99)
    message: Text | None = Field(default=None, max_length=255)


@router.get("/gifts", summary="The active gift catalog")
async def catalog(session: SessionDep) -> dict[str, Any]:
    return {"success": True, "data": [gift_dict(g) for g in await service.active_catalog(session)]}


@router.post(
    "/{stream_id}/gifts",
    status_code=201,
    summary="Send a gift (paid in coins)",
    openapi_extra=body_doc(GiftSend),
)
async def send_gift(
    request: Request, call: StreamCallDep, idempotency_key: idempotency.KeyHeader = None
) -> Response:
    """Served in front of FastAPI (`hot_routes`); this route documents it and answers
    what the hot one declines."""
    return await _send_gift(request, call, idempotency_key)


async def _send_gift_hot(request: Request, call: StreamCall) -> Response:
    return await _send_gift(request, call, request.headers.get(idempotency.HEADER))


async def _send_gift(request: Request, call: StreamCall, idempotency_key: str | None) -> Response:
    runtime, stream = call.runtime, call.stream
    principal = await require_verified(call.principal)
    payload = await read_payload(request)
    # What makes a retry the same request: only a keyed gift needs it (hashed before the
    # ids the legacy client sends are taken out of the body).
    fingerprint = (
        idempotency.fingerprint(request.method, request.url.path, payload)
        if idempotency_key is not None
        else ""
    )
    ensure_same_user(payload.pop("sender_id", None), principal, "sender_id")
    ensure_same_user(payload.pop("user_id", None), principal)
    data = validated(GiftSend, payload)  # a refused body never claims the key
    # No connection is held while the gift waits for its batch.
    sent = await service.send_gift(
        runtime=runtime,
        writer=request.app.state.payment_writer,
        stream=stream,
        principal=principal,
        gift_id=data.gift_id,
        quantity=data.quantity,
        message=data.message or None,
        key=idempotency_key,
        fingerprint=fingerprint,
    )
    return idempotency.created(
        {"success": True, "message": "Gift sent.", "data": sent.answer}, replayed=sent.replayed
    )


@router.get("/{stream_id}/gifts", summary="Gifts sent on the stream, newest first (moderators)")
async def sent_gifts(
    stream: StreamRowDep,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    await moderation.ensure_moderator(session, stream, principal)
    rows = await service.sent_on(session, stream_id=stream.id, limit=limit)
    return {"success": True, "data": [sent_gift_dict(g, runtime.settings) for g in rows]}


@router.post("/{stream_id}/gifts/{sent_id}/refund", summary="Refund a sent gift (admins)")
async def refund_gift(
    stream: StreamRowDep,
    sent_id: Annotated[int, Path(ge=1, le=2**62)],
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    if not principal.is_admin:
        raise forbidden("Only administrators can refund gifts.")
    refunded = await service.refund(
        session, runtime=runtime, stream=stream, sent_id=sent_id, admin=principal
    )
    return {"success": True, "message": "Gift refunded.", "data": refunded}


hot_routes = (
    hot_stream_route(
        "POST",
        f"{router.prefix}/{{stream_id}}/gifts",
        _send_gift_hot,
        accepts=idempotency.key_absent_or_valid,
    ),
)
