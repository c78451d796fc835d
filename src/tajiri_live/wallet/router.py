"""The caller's wallet, and crediting coins (administrators)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from tajiri_live.core.dependencies import RuntimeDep, SessionDep
from tajiri_live.core.errors import forbidden
from tajiri_live.core.payload import DbId, body_doc, read_payload, validated
from tajiri_live.users.dependencies import CurrentPrincipal
from tajiri_live.wallet import service

router = APIRouter(prefix="/wallet", tags=["wallet"])


class Credit(BaseModel):
    user_id: DbId
    amount: int = Field(ge=1, le=10**12)


@router.get("", summary="My balance and recent movements")
async def my_wallet(
    session: SessionDep,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    return {
        "success": True,
        "data": {
            "balance": await service.balance_of(session, principal.user_id),
            "history": await service.history(session, user_id=principal.user_id, limit=limit),
        },
    }


@router.post(
    "/credit", summary="Credit coins to a user (administrators)", openapi_extra=body_doc(Credit)
)
async def credit(
    request: Request, session: SessionDep, runtime: RuntimeDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    if not principal.is_admin:
        raise forbidden("Only administrators can credit coins.")
    data = validated(Credit, await read_payload(request))
    balance = await service.admin_credit(
        session,
        runtime=runtime,
        user_id=data.user_id,
        amount=data.amount,
        actor_id=principal.user_id,
    )
    return {"success": True, "data": {"user_id": data.user_id, "balance": balance}}
