"""`submit_question`, `upvote_question`, `answer_question` (and `dismiss_question`) over the
plain WebSocket: the REST rules, and a refusal as an `error` event to the sender alone."""

from __future__ import annotations

from typing import Any

from tajiri_live.core.auth import Principal
from tajiri_live.core.payload import validated
from tajiri_live.core.runtime import Runtime
from tajiri_live.questions import service
from tajiri_live.questions.schemas import QuestionCreate, QuestionRef, SocketDismissal
from tajiri_live.realtime.coalesce import Coalescer
from tajiri_live.streams import service as streams_service
from tajiri_live.viewers.socket import ActionHandler, SocketContext, stream_action


def question_actions(runtime: Runtime, coalescer: Coalescer) -> dict[str, ActionHandler]:
    async def submit(
        context: SocketContext, principal: Principal, stream_id: int, data: dict[str, Any]
    ) -> None:
        body = validated(QuestionCreate, data)
        async with runtime.sessions() as session:
            stream = await streams_service.get_visible_stream(
                session, stream_id=stream_id, viewer=principal, people=False
            )
            await service.submit(
                session, runtime=runtime, stream=stream, principal=principal, text=body.question
            )

    async def upvote(
        context: SocketContext, principal: Principal, stream_id: int, data: dict[str, Any]
    ) -> None:
        body = validated(QuestionRef, data)
        async with runtime.sessions() as session:
            stream = await streams_service.get_visible_stream(
                session, stream_id=stream_id, viewer=principal, people=False
            )
            await service.upvote(
                session,
                runtime=runtime,
                coalescer=coalescer,
                stream=stream,
                principal=principal,
                question_id=body.question_id,
            )

    async def answer(
        context: SocketContext, principal: Principal, stream_id: int, data: dict[str, Any]
    ) -> None:
        body = validated(QuestionRef, data)
        async with runtime.sessions() as session:
            stream = await streams_service.get_visible_stream(
                session, stream_id=stream_id, viewer=principal, people=False
            )
            await service.answer(
                session,
                runtime=runtime,
                stream=stream,
                principal=principal,
                question_id=body.question_id,
            )

    async def dismiss(
        context: SocketContext, principal: Principal, stream_id: int, data: dict[str, Any]
    ) -> None:
        body = validated(SocketDismissal, data)
        async with runtime.sessions() as session:
            stream = await streams_service.get_visible_stream(
                session, stream_id=stream_id, viewer=principal, people=False
            )
            await service.dismiss(
                session,
                runtime=runtime,
                stream=stream,
                principal=principal,
                question_id=body.question_id,
                reason=body.reason,
            )

    return {
        "submit_question": stream_action("submit_question", submit),
        "upvote_question": stream_action("upvote_question", upvote),
        "answer_question": stream_action("answer_question", answer),
        "dismiss_question": stream_action("dismiss_question", dismiss),
    }
