"""PK battle routes of the fuller spec. Each answer puts the battle in `data` and under
`battle`, so both kinds of reader find it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from tajiri_live.battles import service
from tajiri_live.battles.models import StreamBattle
from tajiri_live.battles.opponents import opponent_stream
from tajiri_live.battles.presenters import battle_dict
from tajiri_live.battles.schemas import BattleInvite
from tajiri_live.core.dependencies import RuntimeDep, SessionDep
from tajiri_live.core.payload import body_doc, read_payload, validated
from tajiri_live.streams.dependencies import StreamRowDep
from tajiri_live.users.dependencies import CurrentPrincipal, ensure_same_user

router = APIRouter(tags=["battles"])

BattleId = Annotated[int, Path(ge=1, le=2**62, description="The battle's id")]


async def _answer(
    session: AsyncSession, battle: StreamBattle, message: str, status_code: int = 200
) -> JSONResponse:
    body = battle_dict(battle, await service.sides_of(session, battle))
    return JSONResponse(
        {"success": True, "message": message, "data": body, "battle": body},
        status_code=status_code,
    )


@router.post(
    "/streams/{stream_id}/battles/invite",
    status_code=201,
    summary="Invite another live stream to a battle (the stream's owner)",
    openapi_extra=body_doc(BattleInvite),
)
async def invite(
    request: Request,
    stream: StreamRowDep,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> JSONResponse:
    payload = await read_payload(request)
    ensure_same_user(payload.pop("user_id", None), principal)
    data = validated(BattleInvite, payload)
    opponent = await opponent_stream(
        session, stream_id=data.opponent_stream_id, principal=principal
    )
    battle = await service.invite(
        session, runtime=runtime, stream=stream, opponent=opponent, principal=principal
    )
    return await _answer(session, battle, "Battle invitation sent.", 201)


@router.get("/streams/{stream_id}/battles/current", summary="The stream's open battle, if any")
async def current(stream: StreamRowDep, session: SessionDep) -> dict[str, Any]:
    battle = await service.current_battle(session, stream.id)
    body = None if battle is None else battle_dict(battle, await service.sides_of(session, battle))
    return {"success": True, "data": body, "battle": body}


@router.get("/battles/{battle_id}", summary="A battle with both sides' scores")
async def show(battle_id: BattleId, session: SessionDep) -> JSONResponse:
    return await _answer(session, await service.load_battle(session, battle_id), "")


def _battle_route(act: service.BattleAct, message: str) -> Callable[..., Awaitable[JSONResponse]]:
    """A route that does `act` to the battle in its path, as the signed-in owner."""

    async def route(
        battle_id: BattleId, session: SessionDep, runtime: RuntimeDep, principal: CurrentPrincipal
    ) -> JSONResponse:
        battle = await act(session, runtime=runtime, battle_id=battle_id, principal=principal)
        return await _answer(session, battle, message)

    return route


for action, act, summary, message in (
    (
        "accept",
        service.accept,
        "Accept an invitation (the invited owner)",
        "Battle accepted: it has started.",
    ),
    ("decline", service.decline, "Decline an invitation (the invited owner)", "Battle declined."),
    ("end", service.end, "End a running battle now (either owner, admins)", "Battle ended."),
    (
        "forfeit",
        service.forfeit,
        "Give up a running battle (either owner): the other side wins",
        "Battle forfeited: the other side wins.",
    ),
):
    router.add_api_route(
        f"/battles/{{battle_id}}/{action}",
        _battle_route(act, message),
        methods=["POST"],
        summary=summary,
        name=f"battle_{action}",
    )
