"""`submit_question`, `upvote_question`, `answer_question` (and `dismiss_question`) over the
plain WebSocket: the REST rules, and a refusal as an `error` event to the sender alone."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from tajiri_live.core.auth import Principal
from tajiri_live.core.runtime import Runtime
from tajiri_live.questions import service
from tajiri_live.questions.schemas import QuestionCreate, QuestionRef, SocketDismissal
from tajiri_live.realtime.coalesce import Coalescer
from tajiri_live.streams.models import LiveStream
from tajiri_live.viewers.socket import ActionHandler, visible_stream_action


def question_actions(runtime: Runtime, coalescer: Coalescer) -> dict[str, ActionHandler]:
    async def submit(
        session: AsyncSession, stream: LiveStream, principal: Principal, body: QuestionCreate
    ) -> None:
        await service.submit(
            session, runtime=runtime, stream=stream, principal=principal, text=body.question
        )

    async def upvote(
        session: AsyncSession, stream: LiveStream, principal: Principal, body: QuestionRef
    ) -> None:
        await service.upvote(
            session,
            runtime=runtime,
            coalescer=coalescer,
            stream=stream,
            principal=principal,
            question_id=body.question_id,
        )

    async def answer(
        session: AsyncSession, stream: LiveStream, principal: Principal, body: QuestionRef
    ) -> None:
        await service.answer(
            session,
            runtime=runtime,
            stream=stream,
            principal=principal,
            question_id=body.question_id,
        )

    async def dismiss(
        session: AsyncSession, stream: LiveStream, principal: Principal, body: SocketDismissal
    ) -> None:
        await service.dismiss(
            session,
            runtime=runtime,
            stream=stream,
            principal=principal,
            question_id=body.question_id,
            reason=body.reason,
        )

    return {
        "submit_question": visible_stream_action(
            runtime, "submit_question", QuestionCreate, submit
        ),
        "upvote_question": visible_stream_action(runtime, "upvote_question", QuestionRef, upvote),
        "answer_question": visible_stream_action(
            runtime, "answer_question", QuestionRef, answer, verified=True
        ),
        "dismiss_question": visible_stream_action(
            runtime, "dismiss_question", SocketDismissal, dismiss, verified=True
        ),
    }
