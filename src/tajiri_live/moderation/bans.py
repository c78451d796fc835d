"""A stream's bans as a set per node, for admitting viewers without a query each.

The set (banned user -> when the ban ends, None: never) is read in one statement outside any
transaction and kept in runtime.stream_bans. Every node drops it on `user_banned` (the
broker carries it to all); the node that lifts a ban drops it at once, the others within
`admission_cache_seconds` (until then the lifted user is still kept out, never let in).
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, select

from tajiri_live.core.runtime import Runtime
from tajiri_live.moderation.models import StreamRestriction
from tajiri_live.realtime.events import USER_BANNED, Event

RESTRICTIONS = cast(Table, StreamRestriction.__table__)
_BANS = select(RESTRICTIONS.c.user_id, RESTRICTIONS.c.expires_at).where(
    RESTRICTIONS.c.stream_id == bindparam("stream_id"), RESTRICTIONS.c.kind == "ban"
)

Bans = dict[int, datetime | None]


async def _read(runtime: Runtime, stream_id: int) -> Bans:
    rows = await runtime.reader.rows(_BANS, {"stream_id": stream_id})
    return {int(row.user_id): row.expires_at for row in rows}


async def is_banned(runtime: Runtime, *, stream_id: int, user_id: int) -> bool:
    bans: Bans = await runtime.stream_bans.get_or_load(stream_id, lambda: _read(runtime, stream_id))
    if user_id not in bans:
        return False
    until = bans[user_id]
    return until is None or until > runtime.clock.now()


def forget(runtime: Runtime, stream_id: int) -> None:
    runtime.stream_bans.drop(stream_id)


def heard(runtime: Runtime, event: Event) -> None:
    """A ban on any node drops the stream's set here."""
    if event.name == USER_BANNED:
        stream_id = event.data.get("stream_id")
        if isinstance(stream_id, int):
            forget(runtime, stream_id)
