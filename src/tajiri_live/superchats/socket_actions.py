"""`send_super_chat` over the plain WebSocket: the REST rules (without an idempotency key:
the client sends none), and a refusal as an `error` event to the sender alone."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from tajiri_live.core.auth import Principal
from tajiri_live.core.runtime import Runtime
from tajiri_live.gifts.writer import PaymentWriter
from tajiri_live.streams.models import LiveStream
from tajiri_live.superchats import service
from tajiri_live.superchats.router import request_of
from tajiri_live.superchats.schemas import SuperChatCreate
from tajiri_live.viewers.socket import ActionHandler, visible_stream_action


def super_chat_actions(runtime: Runtime, writer: PaymentWriter) -> dict[str, ActionHandler]:
    async def send(
        session: AsyncSession, stream: LiveStream, principal: Principal, body: SuperChatCreate
    ) -> None:
        await service.send(
            session,
            runtime=runtime,
            writer=writer,
            stream=stream,
            principal=principal,
            request=request_of(body),
        )

    # Paid: a claimed ?user_id= is refused before anything is read (the service checks too).
    return {
        "send_super_chat": visible_stream_action(
            runtime, "send_super_chat", SuperChatCreate, send, verified=True
        )
    }
