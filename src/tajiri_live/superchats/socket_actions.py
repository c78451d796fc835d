"""`send_super_chat` over the plain WebSocket: the REST rules (without an idempotency key:
the client sends none), and a refusal as an `error` event to the sender alone."""

from __future__ import annotations

from typing import Any

from tajiri_live.core.auth import Principal
from tajiri_live.core.payload import validated
from tajiri_live.core.runtime import Runtime
from tajiri_live.streams import service as streams_service
from tajiri_live.superchats import service
from tajiri_live.superchats.router import request_of
from tajiri_live.superchats.schemas import SuperChatCreate
from tajiri_live.viewers.socket import ActionHandler, SocketContext, stream_action


def super_chat_actions(runtime: Runtime) -> dict[str, ActionHandler]:
    async def send(
        context: SocketContext, principal: Principal, stream_id: int, data: dict[str, Any]
    ) -> None:
        body = validated(SuperChatCreate, data)
        async with runtime.sessions() as session:
            stream = await streams_service.get_visible_stream(
                session, stream_id=stream_id, viewer=principal, people=False
            )
            await service.send(
                session,
                runtime=runtime,
                stream=stream,
                principal=principal,
                request=request_of(body),
            )

    return {"send_super_chat": stream_action("send_super_chat", send)}
