"""`invite_battle`, `accept_battle`, `decline_battle` and `forfeit_battle` over the plain
WebSocket: the REST rules, and a refusal as an `error` event to the sender alone."""

from __future__ import annotations

from typing import Any

from tajiri_live.battles import service
from tajiri_live.battles.opponents import opponent_stream
from tajiri_live.battles.schemas import BattleInvite, BattleRef
from tajiri_live.core.auth import Principal
from tajiri_live.core.payload import validated
from tajiri_live.core.runtime import Runtime
from tajiri_live.streams import service as streams_service
from tajiri_live.viewers.socket import ActionHandler, SocketContext, StreamAction, stream_action


def battle_actions(runtime: Runtime) -> dict[str, ActionHandler]:
    async def invite(
        context: SocketContext, principal: Principal, stream_id: int, data: dict[str, Any]
    ) -> None:
        body = validated(BattleInvite, data)
        async with runtime.sessions() as session:
            stream = await streams_service.get_visible_stream(
                session, stream_id=stream_id, viewer=principal, people=False
            )
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
        "invite_battle": stream_action("invite_battle", invite),
        "accept_battle": stream_action("accept_battle", by_id(service.accept)),
        "decline_battle": stream_action("decline_battle", by_id(service.decline)),
        "forfeit_battle": stream_action("forfeit_battle", by_id(service.forfeit)),
    }
