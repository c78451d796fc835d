"""The mobile client's `websocket_service.dart` message handling, cast for cast.

Dart's `x as int` throws unless x is an int (a bool or a double is not; a missing key is
null, which throws too); `x as int? ?? 0` accepts null; a throw inside `_handleMessage` drops
the whole event (it prints "Error parsing WebSocket message"). `parse` raises CastFailed
where the client would throw, and returns what the client would emit otherwise.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any


class CastFailed(AssertionError):
    """The client would have thrown and dropped this event."""


def as_int(value: Any, what: str) -> int:
    if type(value) is not int:  # Dart: bool and double are not int
        raise CastFailed(f"{what}: {value!r} as int")
    return value


def as_int_or(value: Any, what: str, default: int) -> int:
    return default if value is None else as_int(value, what)


def as_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise CastFailed(f"{what}: {value!r} as String")
    return value


def as_str_or_none(value: Any, what: str) -> str | None:
    return None if value is None else as_str(value, what)


def as_bool_or(value: Any, what: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise CastFailed(f"{what}: {value!r} as bool")
    return value


def as_num(value: Any, what: str) -> float:
    if type(value) not in (int, float):
        raise CastFailed(f"{what}: {value!r} as num")
    return float(value)


def as_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise CastFailed(f"{what}: {value!r} as List")
    return value


def field(payload: Any, key: str) -> Any:
    if not isinstance(payload, dict):
        raise CastFailed(f"payload {payload!r} is not a map")
    return payload.get(key)  # Dart's map[key]: null when absent


@dataclass(frozen=True)
class Parsed:
    event: str
    value: dict[str, Any]


def _options(payload: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": as_int(field(o, "id"), "option.id"),
            "text": as_str(field(o, "text"), "option.text"),
            "votes": as_int_or(field(o, "votes"), "option.votes", 0),
        }
        for o in as_list(field(payload, "options"), "options")
    ]


def _tier(tier: str) -> str:
    """`_parseSuperChatTier`: an unknown tier falls back to `low`."""
    return tier.lower() if tier.lower() in ("low", "medium", "high") else "low"


def parse(message: str) -> Parsed:
    """`_handleMessage` for the events this service sends (the rest fall to `default:`)."""
    data = json.loads(message)
    event = as_str(data["event"], "event")
    p = data.get("data")
    value: dict[str, Any]
    if event == "viewer_count_updated":
        value = {
            "current_viewers": as_int(field(p, "current_viewers"), "current_viewers"),
            "peak_viewers": as_int(field(p, "peak_viewers"), "peak_viewers"),
        }
    elif event == "reaction":
        value = {
            "user_id": as_int(field(p, "user_id"), "user_id"),
            "reaction_type": as_str(field(p, "reaction_type"), "reaction_type"),
        }
    elif event == "status_changed":
        value = {
            "old_status": as_str_or_none(field(p, "old_status"), "old_status"),
            "status": as_str_or_none(field(p, "status"), "status"),
            "playback_url": as_str_or_none(field(p, "playback_url"), "playback_url"),
        }
    elif event in ("poll_created", "poll_closed"):
        value = {
            "poll_id": as_int(field(p, "poll_id"), "poll_id"),
            "question": as_str(field(p, "question"), "question"),
            "options": _options(p),
            "created_by": as_int(field(p, "created_by"), "created_by"),
            "is_closed": event == "poll_closed",
        }
    elif event == "poll_vote":
        value = {
            "poll_id": as_int(field(p, "poll_id"), "poll_id"),
            "option_id": as_int(field(p, "option_id"), "option_id"),
            "user_id": as_int(field(p, "user_id"), "user_id"),
            "votes": as_int(field(p, "votes"), "votes"),
        }
    elif event in ("question_submitted", "question_answered"):
        value = {
            "question_id": as_int(field(p, "question_id"), "question_id"),
            "user_id": as_int(field(p, "user_id"), "user_id"),
            "username": as_str(field(p, "username"), "username"),
            "question": as_str(field(p, "question"), "question"),
            "upvotes": as_int_or(field(p, "upvotes"), "upvotes", 0),
            "is_answered": (
                True
                if event == "question_answered"
                else as_bool_or(field(p, "is_answered"), "is_answered", False)
            ),
        }
    elif event == "question_upvoted":
        value = {
            "question_id": as_int(field(p, "question_id"), "question_id"),
            "upvotes": as_int(field(p, "upvotes"), "upvotes"),
        }
    elif event == "super_chat_sent":
        value = {
            "user_id": as_int(field(p, "user_id"), "user_id"),
            "username": as_str(field(p, "username"), "username"),
            "message": as_str(field(p, "message"), "message"),
            "amount": as_num(field(p, "amount"), "amount"),
            "tier": _tier(as_str(field(p, "tier"), "tier")),
            "duration": as_int_or(field(p, "duration"), "duration", 5),
        }
    elif event in ("battle_invite", "battle_accepted"):
        value = {
            "battle_id": as_int(field(p, "battle_id"), "battle_id"),
            "opponent_id": as_int(field(p, "opponent_id"), "opponent_id"),
            "opponent_name": as_str(field(p, "opponent_name"), "opponent_name"),
        }
    elif event == "battle_score_update":
        value = {
            "battle_id": as_int(field(p, "battle_id"), "battle_id"),
            "my_score": as_int(field(p, "my_score"), "my_score"),
            "opponent_score": as_int(field(p, "opponent_score"), "opponent_score"),
        }
    elif event == "battle_ended":
        value = {
            "battle_id": as_int(field(p, "battle_id"), "battle_id"),
            "winner_id": None
            if field(p, "winner_id") is None
            else as_int(p["winner_id"], "winner_id"),
            "my_score": as_int(field(p, "my_score"), "my_score"),
            "opponent_score": as_int(field(p, "opponent_score"), "opponent_score"),
        }
    else:  # new_comment, gift_sent and the rest: parsed by models this replay leaves out
        value = p if isinstance(p, dict) else {}
    return Parsed(event, value)


def parse_pusher(message: str) -> Parsed | None:
    """`_handlePusherMessage`: pusher internals ignored, a JSON-string `data` decoded."""
    decoded = json.loads(message)
    event = decoded.get("event") or ""
    if event == "pusher:connection_established" or event.startswith("pusher_internal:"):
        return None
    data = decoded.get("data")
    if isinstance(data, str):
        with contextlib.suppress(ValueError):
            data = json.loads(data)
    return parse(json.dumps({"event": event, "data": data}))
