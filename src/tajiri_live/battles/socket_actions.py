"""`invite_battle`, `accept_battle`, `decline_battle` and `forfeit_battle` over the plain
WebSocket: the REST rules, and a refusal as an `error` event to the sender alone. A host's
actions: a claimed `?user_id=` may not make them (their REST twins need a token too)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tajiri_live.battles import service
from tajiri_live.battles.opponents import opponent_stream
from tajiri_live.battles.schemas import BattleInvite, BattleRef
from tajiri_live.core.auth import Principal
from tajiri_live.core.payload import validated
from tajiri_live.core.runtime import Runtime
from tajiri_live.streams.models import LiveStream
from tajiri_live.viewers.socket import (
    ActionHandler,
    SocketContext,
    StreamAction,
    stream_action,
    visible_stream_action,
)


def battle_actions(runtime: Runtime) -> dict[str, ActionHandler]:
    async def invite(
        session: AsyncSession, stream: LiveStream, principal: Principal, body: BattleInvite
    ) -> None:
        opponent = await opponent_stream(
            session, stream_id=body.opponent_stream_id, principal=principal
        )
        await service.invite(
            session, runtime=runtime, stream=stream, opponent=opponent, principal=principal
        )

    def by_id(act: service.BattleAct) -> StreamAction:
        async def handle(
            context: SocketContext, principal: Principal, stream_id: int, data: dict[str, Any]
        ) -> None:
            body = validated(BattleRef, data)
            async with runtime.sessions() as session:
                await act(session, runtime=runtime, battle_id=body.battle_id, principal=principal)

        return handle

    return {
        "invite_battle": visible_stream_action(
            runtime, "invite_battle", BattleInvite, invite, verified=True
        ),
        "accept_battle": stream_action("accept_battle", by_id(service.accept), verified=True),
        "decline_battle": stream_action("decline_battle", by_id(service.decline), verified=True),
        "forfeit_battle": stream_action("forfeit_battle", by_id(service.forfeit), verified=True),
    }
