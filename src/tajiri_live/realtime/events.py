"""The internal event: one shape for every protocol; encoders turn it into frames."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Event names as the mobile client knows them (plain protocol and Pusher's mobile path).
CONNECTED = "connected"  # sent to one socket after it joins
VIEWER_COUNT_UPDATED = "viewer_count_updated"  # cluster-wide current and peak viewers
STATUS_CHANGED = "status_changed"  # every lifecycle transition
NEW_COMMENT = "new_comment"  # a comment was posted
GIFT_SENT = "gift_sent"  # a paid gift was sent
REACTION = "reaction"  # a viewer tapped a reaction
PONG = "pong"  # answer to a client ping
ERROR = "error"  # a client frame was refused
COHOST_JOINED = "cohost_joined"  # an invited co-host accepted
USER_BANNED = "user_banned"  # a user was banned: their sockets on the stream are closed
POLL_CREATED = "poll_created"  # the broadcaster opened a poll
POLL_VOTE = "poll_vote"  # an option's new total (coalesced: at most one per option per tick)
POLL_CLOSED = "poll_closed"  # a poll closed (by the broadcaster or the stream's end): final totals
QUESTION_SUBMITTED = "question_submitted"  # a viewer asked a question (Q&A)
QUESTION_UPVOTED = "question_upvoted"  # a question's new upvote total (coalesced per tick)
QUESTION_ANSWERED = "question_answered"  # the broadcaster marked a question answered
QUESTION_DISMISSED = "question_dismissed"  # the broadcaster removed a question from the list
STREAM_HEALTH_WARNING = "stream_health_warning"  # to the hosts only: health turned poor
SUPER_CHAT_SENT = "super_chat_sent"  # a viewer paid for a highlighted message
BATTLE_INVITE = "battle_invite"  # to the invited stream's owner only: a battle is offered
BATTLE_DECLINED = "battle_declined"  # to the inviting stream's owner only: the offer was refused
BATTLE_ACCEPTED = "battle_accepted"  # to both streams, each told about the other side
BATTLE_SCORE_UPDATE = "battle_score_update"  # per side's channel (coalesced per tick)
BATTLE_ENDED = "battle_ended"  # per side's channel: the winner and the final scores


def stream_channel(stream_id: int) -> str:
    return f"stream.{stream_id}"


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened on a channel; `data` is the plain-protocol payload."""

    channel: str
    name: str
    data: dict[str, Any]
    # Also deliver to these channels (e.g. the global feed), encoded once.
    also: tuple[str, ...] = field(default=())
    # The user who caused it: if a big room samples this event away, they still get it.
    actor_id: int | None = None
    # Already-encoded `data` (a JSON string) for events that arrive encoded: the Pusher HTTP
    # API and client events. Protocols that only speak domain events skip these.
    wire: str | None = None
    # Deliver to every subscriber but this socket (Pusher's `socket_id` exclusion).
    except_socket: str | None = None
    # Deliver only to these users' sockets among the channel's subscribers (e.g. a stream's
    # hosts): decided when published, so a co-host who joined a minute ago is included.
    to_users: tuple[int, ...] | None = None
    # A counter: subscribers need only its newest value. A newer frame with the same key
    # replaces an older one not yet written, and one whose `version` is lower than the last
    # seen for the key (it took a slower path from another node) is dropped.
    latest_key: str | None = None
    version: int | None = None

    @property
    def channels(self) -> tuple[str, ...]:
        return (self.channel, *self.also)
