"""Which Pusher channels mean what here, and who may subscribe to them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tajiri_live.core.auth import Principal
from tajiri_live.core.errors import ApiError, ValidationFailed, forbidden
from tajiri_live.core.runtime import Runtime
from tajiri_live.moderation import bans
from tajiri_live.realtime.events import stream_channel
from tajiri_live.streams import admission
from tajiri_live.streams import presenters as stream_presenters
from tajiri_live.streams import service as streams_service
from tajiri_live.streams.lifecycle import FINAL_STATUSES
from tajiri_live.users import presenters as user_presenters
from tajiri_live.users.models import User

_STREAM = re.compile(r"^(?P<kind>private-|presence-)?stream\.(?P<id>\d{1,18})$")
# Laravel's default user channel, and a shorter one of our own.
_USER = re.compile(r"^private-(?:App\.Models\.User|user)\.(?P<id>\d{1,18})$")


@dataclass(frozen=True)
class ChannelMeaning:
    """What a Pusher channel name refers to in this service."""

    source: str | None  # the internal channel whose events it carries, if any
    stream_id: int | None = None
    user_id: int | None = None


def meaning(channel: str, *, global_channel: str) -> ChannelMeaning:
    found = _STREAM.match(channel)
    if found:
        stream_id = int(found["id"])
        return ChannelMeaning(stream_channel(stream_id), stream_id=stream_id)
    if channel == global_channel:
        return ChannelMeaning(global_channel)
    user = _USER.match(channel)
    if user:
        return ChannelMeaning(None, user_id=int(user["id"]))
    return ChannelMeaning(None)


async def public_stream_counted(
    runtime: Runtime, *, stream_id: int, user_id: int | None = None
) -> tuple[bool, bool]:
    """(may an anonymous socket subscribe to `stream.{id}`, does it count as a viewer: not
    once the stream is over, never for its owner or an accepted co-host)."""
    facts = await admission.facts(runtime, stream_id)
    if facts is None or not facts.public:
        return False, False
    return True, facts.status_enum not in FINAL_STATUSES and not facts.broadcasts(user_id)


async def stream_counted(runtime: Runtime, *, stream_id: int, user_id: int | None) -> bool:
    """Does a subscriber of a signed channel count as a viewer (see above)?"""
    facts = await admission.facts(runtime, stream_id)
    return (
        facts is not None
        and facts.status_enum not in FINAL_STATUSES
        and not facts.broadcasts(user_id)
    )


async def authorize(
    session: AsyncSession, *, runtime: Runtime, principal: Principal, channel: str
) -> dict[str, Any] | None:
    """Allow `principal` on a private or presence channel (ApiError 403 if not); for a
    presence channel, the `channel_data` member (`user_id`, `user_info`)."""
    if not channel.startswith(("private-", "presence-")):
        raise ValidationFailed(
            {"channel_name": ["Only private- and presence- channels need authorising."]}
        )
    if channel.startswith("private-encrypted-"):
        raise forbidden("Encrypted channels are not offered.")
    what = meaning(channel, global_channel=runtime.settings.global_channel)
    if what.stream_id is not None:
        try:
            await streams_service.get_visible_stream(
                session, stream_id=what.stream_id, viewer=principal, people=False
            )
        except ApiError:
            raise forbidden("You may not follow this stream.") from None
        if await bans.is_banned(runtime, stream_id=what.stream_id, user_id=principal.user_id):
            raise forbidden("You are banned from this stream.")
    elif what.user_id is not None:
        if what.user_id != principal.user_id:
            raise forbidden("This is another user's channel.")
    else:
        raise forbidden("Unknown channel: nothing here authorises it.")
    if not channel.startswith("presence-"):
        return None
    user = await session.get(User, principal.user_id)
    info = user_presenters.user_dict(
        user, storage_base_url=stream_presenters.storage_base_url(runtime.settings)
    )
    return {"user_id": str(principal.user_id), "user_info": info}
