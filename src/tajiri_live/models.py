"""Every ORM model, imported in one place so the metadata is complete (Alembic, tests)."""

from tajiri_live.analytics.models import StreamAnalytics, StreamReport
from tajiri_live.battles.models import StreamBattle, StreamBattleSlot
from tajiri_live.core.db import Base
from tajiri_live.core.idempotency import IdempotencyKey
from tajiri_live.engagement.models import StreamComment, StreamLike, StreamReactionCount
from tajiri_live.gifts.models import StreamGift, VirtualGift
from tajiri_live.health.models import StreamHealthSample
from tajiri_live.moderation.models import ModerationAction, StreamRestriction
from tajiri_live.notifications.models import (
    Device,
    NotificationPreference,
    NotificationTrigger,
    PushOutbox,
    StreamNotification,
)
from tajiri_live.polls.models import StreamPoll, StreamPollOption, StreamPollVote
from tajiri_live.questions.models import StreamQuestion, StreamQuestionUpvote
from tajiri_live.streams.models import LiveStream, StreamCoHost, StreamViewer
from tajiri_live.superchats.models import StreamSuperChat
from tajiri_live.users.models import Follow, User
from tajiri_live.wallet.models import LedgerEntry, LedgerTransaction, Wallet, WalletDeposit

__all__ = [
    "Base",
    "Device",
    "Follow",
    "IdempotencyKey",
    "LedgerEntry",
    "LedgerTransaction",
    "LiveStream",
    "ModerationAction",
    "NotificationPreference",
    "NotificationTrigger",
    "PushOutbox",
    "StreamAnalytics",
    "StreamBattle",
    "StreamBattleSlot",
    "StreamCoHost",
    "StreamComment",
    "StreamGift",
    "StreamHealthSample",
    "StreamLike",
    "StreamNotification",
    "StreamPoll",
    "StreamPollOption",
    "StreamPollVote",
    "StreamQuestion",
    "StreamQuestionUpvote",
    "StreamReactionCount",
    "StreamReport",
    "StreamRestriction",
    "StreamSuperChat",
    "StreamViewer",
    "User",
    "VirtualGift",
    "Wallet",
    "WalletDeposit",
]
