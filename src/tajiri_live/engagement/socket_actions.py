"""Client actions over the plain WebSocket, through the same services (and limits) as REST."""

from __future__ import annotations

from typing import Any

from tajiri_live.core.auth import Principal
from tajiri_live.core.errors import ValidationFailed
from tajiri_live.core.runtime import Runtime
from tajiri_live.engagement import service
from tajiri_live.streams import service as streams_service
from tajiri_live.viewers.socket import ActionHandler, SocketContext, stream_action


def reaction_action(runtime: Runtime) -> ActionHandler:
    async def react(
        context: SocketContext, principal: Principal, stream_id: int, data: dict[str, Any]
    ) -> None:
        reaction_type = data.get("reaction_type")
        if not isinstance(reaction_type, str):
            raise ValidationFailed({"reaction_type": ["The reaction type field is required."]})
        # The limiter answers before any query: a flood of reactions costs no database work.
        await service.reaction_allowed(
            runtime, stream_id=stream_id, user_id=principal.user_id, reaction_type=reaction_type
        )
        async with runtime.sessions() as session:
            stream = await streams_service.get_visible_stream(
                session, stream_id=stream_id, viewer=principal, people=False
            )
            await service.react(
                session,
                runtime=runtime,
                stream=stream,
                principal=principal,
                reaction_type=reaction_type,
                allowed=True,
            )

    return stream_action("reaction", react)
