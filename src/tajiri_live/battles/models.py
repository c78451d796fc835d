"""A battle between two streams, and the slot that keeps a stream to one battle at a time."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tajiri_live.core.columns import coins, created_at, stream_fk, user_fk
from tajiri_live.core.db import Base, BigIntId, UTCDateTime


class BattleStatus(StrEnum):
    PENDING = "pending"  # invited; the invited owner may accept until `expires_at`
    ACTIVE = "active"  # accepted: scores count until `ends_at`
    DECLINED = "declined"  # final: the invited owner said no
    EXPIRED = "expired"  # final: nobody accepted in time
    CANCELLED = "cancelled"  # final: a stream ended before the invitation was answered
    ENDED = "ended"  # final: the time ran out, an owner ended it or one side forfeited


class EndReason(StrEnum):
    TIME = "time"  # the battle's duration ran out
    ENDED = "ended"  # an owner (or an admin) ended it early: the scores decide
    FORFEIT = "forfeit"  # one side gave up: the other side wins
    STREAM_ENDED = "stream_ended"  # one side's stream ended: a forfeit of that side


STATUS_VALUES = ", ".join(f"'{s.value}'" for s in BattleStatus)
REASON_VALUES = ", ".join(f"'{r.value}'" for r in EndReason)


class StreamBattle(Base):
    """Side 1 is the inviting stream, side 2 the invited one. Scores are raised in SQL by
    the gift transaction (never read-modify-write) while the battle is active."""

    __tablename__ = "stream_battles"
    __table_args__ = (
        CheckConstraint(f"status IN ({STATUS_VALUES})", name="status"),
        CheckConstraint(f"end_reason IN ({REASON_VALUES})", name="end_reason"),
        Index("ix_stream_battles_status_ends_at", "status", "ends_at"),
        Index("ix_stream_battles_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    stream_id_1: Mapped[int] = stream_fk(index=True)
    stream_id_2: Mapped[int] = stream_fk(index=True)
    invited_by: Mapped[int] = user_fk()
    status: Mapped[str] = mapped_column(String(20), default=BattleStatus.PENDING.value)
    score_1: Mapped[int] = coins()
    score_2: Mapped[int] = coins()
    created_at: Mapped[datetime] = created_at()
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(20))
    winner_stream_id: Mapped[int | None] = mapped_column(BigInteger)  # null: a draw

    @property
    def status_enum(self) -> BattleStatus:
        return BattleStatus(self.status)


class StreamBattleSlot(Base):
    """A stream's open battle (pending or active): the primary key is what keeps a stream to
    one battle at a time, on every database and under any concurrency."""

    __tablename__ = "stream_battle_slots"

    stream_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("live_streams.id", ondelete="CASCADE"), primary_key=True
    )
    battle_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("stream_battles.id", ondelete="CASCADE"), index=True
    )
