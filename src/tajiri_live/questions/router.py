"""Q&A of the fuller spec: ask, upvote, answer, list (and dismiss). Each answer puts the
object in `data` and under the spec's key (`question`, `questions`)."""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from tajiri_live.core.dependencies import RuntimeDep, SessionDep
from tajiri_live.core.payload import read_payload, validated
from tajiri_live.questions import service
from tajiri_live.questions.presenters import question_dict
from tajiri_live.questions.schemas import Dismissal, QuestionCreate
from tajiri_live.realtime.coalesce import Coalescer
from tajiri_live.streams.dependencies import StreamRowDep
from tajiri_live.streams.presenters import storage_base_url
from tajiri_live.users.dependencies import CurrentPrincipal, OptionalPrincipal, ensure_same_user

router = APIRouter(prefix="/streams", tags=["questions"])

QuestionId = Annotated[int, Path(ge=1, le=2**62)]


def coalescer(request: Request) -> Coalescer:
    return cast(Coalescer, request.app.state.coalescer)


@router.get("/{stream_id}/questions", summary="Questions: unanswered and most upvoted first")
async def list_questions(
    stream: StreamRowDep,
    session: SessionDep,
    runtime: RuntimeDep,
    viewer: OptionalPrincipal,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 100,
) -> dict[str, Any]:
    found = await service.list_questions(
        session, stream_id=stream.id, viewer_id=viewer.user_id if viewer else None, limit=limit
    )
    base = storage_base_url(runtime.settings)
    data = [question_dict(q, storage_base_url=base, has_upvoted=mine) for q, mine in found]
    return {"success": True, "data": data, "questions": data}


@router.post("/{stream_id}/questions", status_code=201, summary="Ask a question")
async def submit(
    request: Request,
    stream: StreamRowDep,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> JSONResponse:
    payload = await read_payload(request)
    ensure_same_user(payload.pop("user_id", None), principal)
    data = validated(QuestionCreate, payload)
    question = await service.submit(
        session, runtime=runtime, stream=stream, principal=principal, text=data.question
    )
    body = question_dict(question, storage_base_url=storage_base_url(runtime.settings))
    return JSONResponse(
        {"success": True, "message": "Question submitted.", "data": body, "question": body},
        status_code=201,
    )


@router.post("/{stream_id}/questions/{question_id}/upvote", summary="Upvote (once)")
async def upvote(
    request: Request,
    stream: StreamRowDep,
    question_id: QuestionId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    total = await service.upvote(
        session,
        runtime=runtime,
        coalescer=coalescer(request),
        stream=stream,
        principal=principal,
        question_id=question_id,
    )
    return {
        "success": True,
        "upvotes": total,
        "data": {"question_id": question_id, "upvotes": total, "has_upvoted": True},
    }


@router.post("/{stream_id}/questions/{question_id}/answer", summary="Mark answered (hosts)")
async def answer(
    stream: StreamRowDep,
    question_id: QuestionId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    question = await service.answer(
        session, runtime=runtime, stream=stream, principal=principal, question_id=question_id
    )
    body = question_dict(question, storage_base_url=storage_base_url(runtime.settings))
    return {
        "success": True,
        "message": "Question marked as answered.",
        "data": body,
        "question": body,
    }


async def _dismiss(
    request: Request,
    stream: Any,
    question_id: int,
    session: Any,
    runtime: Any,
    principal: Any,
) -> dict[str, Any]:
    data = validated(Dismissal, await read_payload(request))
    await service.dismiss(
        session,
        runtime=runtime,
        stream=stream,
        principal=principal,
        question_id=question_id,
        reason=data.reason,
    )
    return {"success": True, "message": "Question dismissed."}


@router.post("/{stream_id}/questions/{question_id}/dismiss", summary="Dismiss (moderators)")
async def dismiss(
    request: Request,
    stream: StreamRowDep,
    question_id: QuestionId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    return await _dismiss(request, stream, question_id, session, runtime, principal)


@router.delete("/{stream_id}/questions/{question_id}", summary="Dismiss (moderators)")
async def delete(
    request: Request,
    stream: StreamRowDep,
    question_id: QuestionId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    return await _dismiss(request, stream, question_id, session, runtime, principal)
