"""Battles as the REST answers and the client's events spell them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tajiri_live.battles.models import BattleStatus, StreamBattle
from tajiri_live.core.clock import iso


@dataclass(frozen=True)
class Side:
    """One battling stream and its owner, as the events name them."""

    stream_id: int
    title: str
    owner_id: int
    owner_name: str


def scores_of(battle: StreamBattle) -> tuple[int, int]:
    return int(battle.score_1), int(battle.score_2)


def winner_owner(battle: StreamBattle, sides: tuple[Side, Side]) -> int | None:
    """The winning stream's owner (the client's `winner_id`), or None for a draw."""
    for side in sides:
        if side.stream_id == battle.winner_stream_id:
            return side.owner_id
    return None


def battle_dict(battle: StreamBattle, sides: tuple[Side, Side]) -> dict[str, Any]:
    """The fuller spec's shapes in one: `{id, stream_id_1, stream_id_2, status, created_at}`
    (invite), `stream_1 {id, name, score}`/`stream_2`, `started_at` (show), and
    `winner_stream_id`, `final_scores {stream_1, stream_2}`, `ended_at` (end)."""
    scores = scores_of(battle)
    ended = battle.status == BattleStatus.ENDED.value
    return {
        "id": battle.id,
        "stream_id_1": battle.stream_id_1,
        "stream_id_2": battle.stream_id_2,
        "status": battle.status,
        "invited_by": battle.invited_by,
        "stream_1": _side_dict(sides[0], scores[0]),
        "stream_2": _side_dict(sides[1], scores[1]),
        "created_at": iso(battle.created_at),
        "expires_at": iso(battle.expires_at),
        "started_at": iso(battle.started_at),
        "ends_at": iso(battle.ends_at),
        "ended_at": iso(battle.ended_at),
        "end_reason": battle.end_reason,
        "winner_stream_id": battle.winner_stream_id,
        "winner_id": winner_owner(battle, sides),
        "final_scores": {"stream_1": scores[0], "stream_2": scores[1]} if ended else None,
    }


def _side_dict(side: Side, score: int) -> dict[str, Any]:
    return {
        "id": side.stream_id,
        "name": side.title,
        "user_id": side.owner_id,
        "user_name": side.owner_name,
        "score": score,
    }


def opponent_event(battle: StreamBattle, me: Side, opponent: Side, now: datetime) -> dict[str, Any]:
    """`battle_invite` and `battle_accepted` for `me`'s channel: `battle_id` int,
    `opponent_id` int (the other owner's user id), `opponent_name` str."""
    return {
        "battle_id": battle.id,
        "stream_id": me.stream_id,
        "opponent_id": opponent.owner_id,
        "opponent_name": opponent.owner_name,
        "opponent_stream_id": opponent.stream_id,
        "status": battle.status,
        "expires_at": iso(battle.expires_at),
        "started_at": iso(battle.started_at),
        "ends_at": iso(battle.ends_at),
        "timestamp": iso(now),
    }


def score_event(
    battle_id: int, stream_id: int, my_score: int, opponent_score: int, now: datetime
) -> dict[str, Any]:
    """`battle_score_update` for one side's channel: `my_score` is that stream's own."""
    return {
        "battle_id": battle_id,
        "stream_id": stream_id,
        "my_score": my_score,
        "opponent_score": opponent_score,
        "timestamp": iso(now),
    }


def ended_event(
    battle: StreamBattle, sides: tuple[Side, Side], index: int, now: datetime
) -> dict[str, Any]:
    """`battle_ended` for side `index`'s channel: `winner_id` (int, null for a draw) and the
    final scores from that side's point of view."""
    scores = scores_of(battle)
    return {
        "battle_id": battle.id,
        "stream_id": sides[index].stream_id,
        "winner_id": winner_owner(battle, sides),
        "winner_stream_id": battle.winner_stream_id,
        "my_score": scores[index],
        "opponent_score": scores[1 - index],
        "reason": battle.end_reason,
        "ended_at": iso(battle.ended_at),
        "timestamp": iso(now),
    }
