"""The stream lifecycle: statuses and the transitions allowed between them. Pure, no I/O."""

from __future__ import annotations

from enum import StrEnum


class StreamStatus(StrEnum):
    SCHEDULED = "scheduled"  # created; waiting for its time or for `start`
    PRE_LIVE = "pre_live"  # standby: the start is near, the encoder may connect
    LIVE = "live"  # on air
    ENDING = "ending"  # outro, or an encoder dropped and may reconnect
    ENDED = "ended"  # final: it went live and finished
    CANCELLED = "cancelled"  # final: called off (or a no-show)


FINAL_STATUSES = frozenset({StreamStatus.ENDED, StreamStatus.CANCELLED})

# Statuses the first schema knew; the upgrade migration added the rest.
ORIGINAL_STATUSES = (StreamStatus.SCHEDULED, StreamStatus.LIVE, StreamStatus.ENDED)

TRANSITIONS: dict[StreamStatus, frozenset[StreamStatus]] = {
    StreamStatus.SCHEDULED: frozenset({StreamStatus.PRE_LIVE, StreamStatus.CANCELLED}),
    StreamStatus.PRE_LIVE: frozenset({StreamStatus.LIVE, StreamStatus.CANCELLED}),
    StreamStatus.LIVE: frozenset({StreamStatus.ENDING, StreamStatus.CANCELLED}),
    # ENDING -> LIVE: an encoder that reconnects inside its window resumes the stream.
    StreamStatus.ENDING: frozenset({StreamStatus.ENDED, StreamStatus.LIVE, StreamStatus.CANCELLED}),
    StreamStatus.ENDED: frozenset(),
    StreamStatus.CANCELLED: frozenset(),
}

# Statuses in which the stream is on air or about to be: viewers may join, it may not be deleted.
ACTIVE_STATUSES = frozenset({StreamStatus.LIVE})
UNDELETABLE_STATUSES = frozenset({StreamStatus.LIVE, StreamStatus.ENDING})


class StatusFilter(StrEnum):
    """What `GET /streams?status=` accepts: a status, or `upcoming` (scheduled or pre-live)."""

    SCHEDULED = "scheduled"
    PRE_LIVE = "pre_live"
    LIVE = "live"
    ENDING = "ending"
    ENDED = "ended"
    CANCELLED = "cancelled"
    UPCOMING = "upcoming"


UPCOMING_STATUSES = frozenset({StreamStatus.SCHEDULED, StreamStatus.PRE_LIVE})


def statuses_of(wanted: StatusFilter) -> frozenset[StreamStatus]:
    """The statuses a filter lists. `scheduled` includes `pre_live`: the grid asks for live and
    scheduled streams, and one about to start (pre-live) must not vanish from both."""
    if wanted in (StatusFilter.SCHEDULED, StatusFilter.UPCOMING):
        return UPCOMING_STATUSES
    return frozenset({StreamStatus(wanted.value)})


def can_transition(current: StreamStatus, target: StreamStatus) -> bool:
    return target in TRANSITIONS[current]


def path_to(current: StreamStatus, target: StreamStatus) -> list[StreamStatus] | None:
    """The transitions an API request for `target` walks through, or None if it cannot.

    `start` on a scheduled stream passes through pre_live; everything else is one step.
    """
    if can_transition(current, target):
        return [target]
    if current is StreamStatus.SCHEDULED and target is StreamStatus.LIVE:
        return [StreamStatus.PRE_LIVE, StreamStatus.LIVE]
    return None


def is_final(status: StreamStatus) -> bool:
    return status in FINAL_STATUSES
