"""Polls as the client and the fuller spec spell them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tajiri_live.core.clock import iso
from tajiri_live.polls.models import StreamPoll, StreamPollOption


def option_dicts(options: list[StreamPollOption]) -> list[dict[str, Any]]:
    return [{"id": o.id, "text": o.text, "votes": o.votes} for o in options]


def poll_dict(poll: StreamPoll, *, voted_option_id: int | None = None) -> dict[str, Any]:
    """The REST shape: `{id, stream_id, question, options[{id, text, votes}], is_closed,
    created_by, created_at}` plus `closed_at`, `total_votes` and the caller's own vote."""
    options = option_dicts(poll.options)
    return {
        "id": poll.id,
        "stream_id": poll.stream_id,
        "question": poll.question,
        "options": options,
        "total_votes": sum(o["votes"] for o in options),
        "is_closed": poll.is_closed,
        "created_by": poll.created_by,
        "created_at": iso(poll.created_at),
        "closed_at": iso(poll.closed_at),
        "voted_option_id": voted_option_id,
    }


def poll_event(poll: StreamPoll, now: datetime) -> dict[str, Any]:
    """`poll_created` and `poll_closed`: what the client casts (`poll_id` int, `question`
    str, `options` [{id int, text str, votes int}], `created_by` int); `poll_closed` also
    names the options `final_results`, as the fuller spec does."""
    options = option_dicts(poll.options)
    data: dict[str, Any] = {
        "poll_id": poll.id,
        "stream_id": poll.stream_id,
        "question": poll.question,
        "options": options,
        "created_by": poll.created_by,
        "is_closed": poll.is_closed,
        "total_votes": sum(o["votes"] for o in options),
        "timestamp": iso(now),
    }
    if poll.is_closed:
        data["final_results"] = options
    return data
