"""Server-to-server wallet routes (`/api/internal/wallet`): the main app's credits."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from tajiri_live.core.dependencies import RuntimeDep, SessionDep
from tajiri_live.core.payload import body_doc, read_payload, validated
from tajiri_live.core.text import Text
from tajiri_live.wallet import deposits

router = APIRouter(prefix="/internal/wallet", tags=["wallet"])


@router.post(
    "/credits",
    status_code=201,
    summary="Credit coins the main app sold (signed with TAJIRI_WALLET_CREDIT_SECRET)",
    openapi_extra=body_doc(deposits.DepositCreate, forms=False),
)
async def credit(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    timestamp: Annotated[
        Text | None,
        Header(alias=deposits.TIMESTAMP_HEADER, max_length=20, description="Unix seconds"),
    ] = None,
    signature: Annotated[
        Text | None,
        Header(
            alias=deposits.SIGNATURE_HEADER,
            max_length=128,
            description="hex HMAC-SHA256 of `{timestamp}.{body}` with the shared secret",
        ),
    ] = None,
) -> JSONResponse:
    deposits.verify(runtime, timestamp=timestamp, signed=signature, body=await request.body())
    data = validated(deposits.DepositCreate, await read_payload(request))
    answer, replayed = await deposits.deposit(session, runtime=runtime, data=data)
    return JSONResponse(
        {
            "success": True,
            "message": "Already credited." if replayed else "Coins credited.",
            "data": answer,
        },
        status_code=200 if replayed else 201,
        headers={"Idempotent-Replayed": "true"} if replayed else {},
    )
