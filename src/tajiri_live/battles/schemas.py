"""Battle request bodies (REST and the socket messages' `data`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from tajiri_live.core.payload import DbId


class BattleInvite(BaseModel):
    """`invite_battle` and POST /streams/{id}/battles/invite: the stream to battle."""

    model_config = ConfigDict(extra="ignore")

    opponent_stream_id: DbId


class BattleRef(BaseModel):
    """`accept_battle`, `decline_battle`, `forfeit_battle`: the battle's id."""

    model_config = ConfigDict(extra="ignore")

    battle_id: DbId
