"""What a super chat must satisfy: its tier, and a stream that takes paid messages. Shared by
the service (before a super chat queues) and the payment batches (under their locks)."""

from __future__ import annotations

from dataclasses import dataclass

from tajiri_live.core.errors import ApiError, ValidationFailed, forbidden
from tajiri_live.streams.lifecycle import StreamStatus


@dataclass(frozen=True)
class Tier:
    name: str
    floor: int  # TZS, inclusive
    seconds: int  # how long the client shows it


# The fuller spec's tiers, highest first; below the lowest floor is refused.
TIERS = (Tier("high", 10_000, 15), Tier("medium", 3_000, 10), Tier("low", 1_000, 5))


def tier_of(amount: int) -> Tier:
    """The tier of an amount in TZS (the schema already refused less than the lowest)."""
    for tier in TIERS:
        if amount >= tier.floor:
            return tier
    raise ValidationFailed({"amount": [f"The amount must be at least {TIERS[-1].floor} TZS."]})


def refusal(status: str, *, allow_gifts: bool, allow_comments: bool) -> ApiError | None:
    """Why a stream takes no super chat now; None when it takes them."""
    if status != StreamStatus.LIVE:
        return forbidden("Super chats can be sent only while the stream is live.")
    if not allow_gifts:
        return forbidden("Paid messages are turned off for this stream.")
    if not allow_comments:
        return forbidden("Comments are turned off for this stream.")
    return None


OWN_STREAM = "You cannot send a super chat to your own stream."
