"""`create_poll`, `vote_poll` and `close_poll` over the plain WebSocket: the REST rules, and a
refusal as an `error` event to the sender alone."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tajiri_live.core.auth import Principal
from tajiri_live.core.payload import validated
from tajiri_live.core.runtime import Runtime
from tajiri_live.polls import service
from tajiri_live.polls.schemas import PollCreate, PollRef, SocketVote
from tajiri_live.polls.votes import VoteCounter
from tajiri_live.streams.models import LiveStream
from tajiri_live.viewers.socket import (
    ActionHandler,
    SocketContext,
    stream_action,
    visible_stream_action,
)


def poll_actions(runtime: Runtime, votes: VoteCounter) -> dict[str, ActionHandler]:
    async def create(
        session: AsyncSession, stream: LiveStream, principal: Principal, body: PollCreate
    ) -> None:
        await service.create_poll(
            session,
            runtime=runtime,
            stream=stream,
            principal=principal,
            question=body.question,
            options=body.options,
        )

    async def vote(
        context: SocketContext, principal: Principal, stream_id: int, data: dict[str, Any]
    ) -> None:
        # The socket was admitted to this stream (it was visible to this user); the writer
        # checks that the poll is still open and that the voter is not banned or muted.
        body = validated(SocketVote, data)
        await votes.vote(
            stream_id=stream_id,
            poll_id=body.poll_id,
            option_id=body.option_id,
            user_id=principal.user_id,
        )

    async def close(
        session: AsyncSession, stream: LiveStream, principal: Principal, body: PollRef
    ) -> None:
        await service.close_poll(
            session, runtime=runtime, stream=stream, principal=principal, poll_id=body.poll_id
        )
        votes.closed(body.poll_id)

    return {
        "create_poll": visible_stream_action(
            runtime, "create_poll", PollCreate, create, verified=True
        ),
        "vote_poll": stream_action("vote_poll", vote),
        "close_poll": visible_stream_action(runtime, "close_poll", PollRef, close, verified=True),
    }
