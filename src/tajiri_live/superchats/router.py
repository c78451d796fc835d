"""Super chat routes of the fuller spec. Each answer puts the super chat in `data` and under
`super_chat`, so both kinds of reader find it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from tajiri_live.core import idempotency
from tajiri_live.core.dependencies import RuntimeDep, SessionDep
from tajiri_live.core.errors import forbidden
from tajiri_live.core.payload import body_doc, read_payload, validated
from tajiri_live.streams.dependencies import StreamRowDep
from tajiri_live.streams.presenters import storage_base_url
from tajiri_live.superchats import service
from tajiri_live.superchats.presenters import super_chat_dict
from tajiri_live.superchats.schemas import SuperChatCreate
from tajiri_live.users.dependencies import CurrentPrincipal, VerifiedPrincipal, ensure_same_user

router = APIRouter(prefix="/streams", tags=["super chats"])

ChatId = Annotated[int, Path(ge=1, le=2**62)]


def request_of(data: SuperChatCreate) -> service.SuperChatRequest:
    return service.SuperChatRequest(
        message=data.message,
        amount=data.amount,
        payment_method=data.payment_method or None,
        payment_reference=data.payment_reference or None,
    )


@router.post(
    "/{stream_id}/super-chats",
    status_code=201,
    summary="Send a super chat (paid in coins: amount in TZS x TAJIRI_COINS_PER_TZS)",
    openapi_extra=body_doc(SuperChatCreate),
)
async def send_super_chat(
    request: Request,
    stream: StreamRowDep,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: VerifiedPrincipal,
    idempotency_key: idempotency.KeyHeader = None,
) -> JSONResponse:
    payload = await read_payload(request)
    # What makes a retry the same request: only a keyed super chat needs it.
    fingerprint = (
        idempotency.fingerprint(request.method, request.url.path, payload)
        if idempotency_key is not None
        else ""
    )
    ensure_same_user(payload.pop("user_id", None), principal)
    data = validated(SuperChatCreate, payload)  # a refused body never claims the key
    sent = await service.send(
        session,
        runtime=runtime,
        writer=request.app.state.payment_writer,
        stream=stream,
        principal=principal,
        request=request_of(data),
        key=idempotency_key,
        fingerprint=fingerprint,
    )
    body = {
        "success": True,
        "message": "Super chat sent.",
        "data": sent.answer,
        "super_chat": sent.answer,
    }
    return idempotency.created(body, replayed=sent.replayed)


@router.get("/{stream_id}/super-chats", summary="The stream's super chats, newest first")
async def list_super_chats(
    stream: StreamRowDep,
    session: SessionDep,
    runtime: RuntimeDep,
    on_screen: Annotated[bool, Query(description="Only those still on screen")] = False,
    limit: Annotated[int, Query(ge=1, le=service.MAX_LISTED)] = 50,
) -> dict[str, Any]:
    chats = await service.list_for_stream(
        session, runtime=runtime, stream_id=stream.id, on_screen=on_screen, limit=limit
    )
    base = storage_base_url(runtime.settings)
    data = [super_chat_dict(chat, storage_base_url=base) for chat in chats]
    return {"success": True, "data": data, "super_chats": data}


@router.post("/{stream_id}/super-chats/{chat_id}/refund", summary="Refund a super chat (admins)")
async def refund_super_chat(
    stream: StreamRowDep,
    chat_id: ChatId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    if not principal.is_admin:
        raise forbidden("Only administrators can refund super chats.")
    refunded = await service.refund(
        session, runtime=runtime, stream=stream, chat_id=chat_id, admin=principal
    )
    return {
        "success": True,
        "message": "Super chat refunded.",
        "data": refunded,
        "super_chat": refunded,
    }
