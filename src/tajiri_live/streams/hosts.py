"""A stream's hosts (its owner and accepted co-hosts): who broadcasts, and events for them alone.

Polls, Q&A answers and health reports are the broadcaster's; so are events like a health
warning (and later battle invitations) that only the hosts' sockets should get. The hosts
are read when such an event is published, so a co-host who accepted a minute ago is
included and one who left is not, whatever sockets they opened before.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tajiri_live.core.auth import Principal
from tajiri_live.core.errors import forbidden
from tajiri_live.core.runtime import Runtime
from tajiri_live.realtime.events import Event, stream_channel
from tajiri_live.streams.models import LiveStream, StreamCoHost


async def host_ids(session: AsyncSession, *, stream_id: int, owner_id: int) -> tuple[int, ...]:
    """The owner first, then the accepted co-hosts."""
    cohosts = await session.scalars(
        select(StreamCoHost.user_id)
        .where(StreamCoHost.stream_id == stream_id, StreamCoHost.status == "accepted")
        .order_by(StreamCoHost.user_id)
    )
    return (owner_id, *(int(c) for c in cohosts if c != owner_id))


async def is_host(session: AsyncSession, stream: LiveStream, principal: Principal) -> bool:
    if principal.user_id == stream.user_id:
        return True
    return bool(
        await session.scalar(
            select(StreamCoHost.id).where(
                StreamCoHost.stream_id == stream.id,
                StreamCoHost.user_id == principal.user_id,
                StreamCoHost.status == "accepted",
            )
        )
    )


async def ensure_host(
    session: AsyncSession, stream: LiveStream, principal: Principal, what: str
) -> None:
    """403 unless the caller broadcasts this stream (its owner or an accepted co-host)."""
    if not await is_host(session, stream, principal):
        raise forbidden(f"Only the stream's owner and co-hosts can {what}.")


async def publish_to_hosts(
    session: AsyncSession, *, runtime: Runtime, stream: LiveStream, name: str, data: dict[str, Any]
) -> None:
    """An event on the stream's channel that only its hosts' sockets receive, on every node
    and on both protocols (a Pusher connection once it subscribed to a channel signed for its
    user: `presence-stream.{id}` or `private-user.{id}`)."""
    hosts = await host_ids(session, stream_id=stream.id, owner_id=stream.user_id)
    await runtime.broker.publish(
        Event(channel=stream_channel(stream.id), name=name, data=data, to_users=hosts)
    )
