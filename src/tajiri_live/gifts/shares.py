"""Who gets what of a payment to a stream: the creators' percent, split with co-hosts."""

from __future__ import annotations

from collections.abc import Sequence


def split(total: int, creator_share_percent: int) -> tuple[int, int]:
    """(creator, platform): the creator's percent rounded down; the platform gets the rest."""
    creator = total * creator_share_percent // 100
    return creator, total - creator


def creator_shares(
    owner: int, cohosts: Sequence[int], creator_amount: int, *, sender_id: int
) -> dict[int, int]:
    """user id -> coins: the owner, or the owner and accepted co-hosts in equal parts (the
    remainder of the division goes to the owner). A co-host who sends the payment is not
    among the recipients: nobody is paid back part of their own gift."""
    others = [user_id for user_id in cohosts if user_id != sender_id]
    part = creator_amount // (len(others) + 1)
    shares = {owner: creator_amount - part * len(others)}
    for user_id in others:
        shares[user_id] = part
    return shares
