"""Polls of the fuller spec: open, vote, close, list. Each answer puts the poll in `data` and
under `poll`, so both kinds of reader find it."""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from tajiri_live.core.dependencies import RuntimeDep, SessionDep
from tajiri_live.core.payload import read_payload, validated
from tajiri_live.polls import service
from tajiri_live.polls.presenters import poll_dict
from tajiri_live.polls.schemas import PollCreate, VoteCreate
from tajiri_live.polls.votes import VoteCounter
from tajiri_live.streams.dependencies import StreamRowDep
from tajiri_live.users.dependencies import CurrentPrincipal, OptionalPrincipal, ensure_same_user

router = APIRouter(prefix="/streams", tags=["polls"])

PollId = Annotated[int, Path(ge=1, le=2**62)]


def counter(request: Request) -> VoteCounter:
    return cast(VoteCounter, request.app.state.poll_votes)


@router.get("/{stream_id}/polls", summary="The stream's polls, open first")
async def list_polls(
    stream: StreamRowDep, session: SessionDep, viewer: OptionalPrincipal
) -> dict[str, Any]:
    polls = await service.list_polls(
        session, stream_id=stream.id, viewer_id=viewer.user_id if viewer else None
    )
    data = [poll_dict(poll, voted_option_id=voted) for poll, voted in polls]
    return {"success": True, "data": data, "polls": data}


@router.post("/{stream_id}/polls", status_code=201, summary="Open a poll (owner, co-hosts)")
async def create_poll(
    request: Request,
    stream: StreamRowDep,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> JSONResponse:
    payload = await read_payload(request)
    ensure_same_user(payload.pop("user_id", None), principal)
    data = validated(PollCreate, payload)
    poll = await service.create_poll(
        session,
        runtime=runtime,
        stream=stream,
        principal=principal,
        question=data.question,
        options=data.options,
    )
    body = poll_dict(poll)
    return JSONResponse(
        {"success": True, "message": "Poll created.", "data": body, "poll": body},
        status_code=201,
    )


@router.get("/{stream_id}/polls/{poll_id}", summary="One poll with its totals")
async def show_poll(
    stream: StreamRowDep, poll_id: PollId, session: SessionDep, viewer: OptionalPrincipal
) -> dict[str, Any]:
    poll = await service.load_poll(session, stream_id=stream.id, poll_id=poll_id)
    voted = (
        await service.voted_option(session, poll_id=poll.id, user_id=viewer.user_id)
        if viewer
        else None
    )
    body = poll_dict(poll, voted_option_id=voted)
    return {"success": True, "data": body, "poll": body}


@router.post("/{stream_id}/polls/{poll_id}/vote", summary="Vote (once per poll)")
async def vote(
    request: Request,
    stream: StreamRowDep,
    poll_id: PollId,
    session: SessionDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    payload = await read_payload(request)
    ensure_same_user(payload.pop("user_id", None), principal)
    data = validated(VoteCreate, payload)
    stream_id = stream.id
    await session.close()  # no connection held while the vote waits for its batch
    await counter(request).vote(
        stream_id=stream_id, poll_id=poll_id, option_id=data.option_id, user_id=principal.user_id
    )
    poll = await service.load_poll(session, stream_id=stream_id, poll_id=poll_id)
    body = poll_dict(poll, voted_option_id=data.option_id)
    return {"success": True, "message": "Vote counted.", "data": body, "poll": body}


@router.post("/{stream_id}/polls/{poll_id}/close", summary="Close a poll (owner, co-hosts)")
async def close_poll(
    request: Request,
    stream: StreamRowDep,
    poll_id: PollId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    poll = await service.close_poll(
        session, runtime=runtime, stream=stream, principal=principal, poll_id=poll_id
    )
    counter(request).closed(poll.id)
    body = poll_dict(poll)
    return {"success": True, "message": "Poll closed.", "data": body, "poll": body}
