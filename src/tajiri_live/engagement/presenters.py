"""Comments as the client contract spells them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tajiri_live.core.clock import iso
from tajiri_live.core.settings import Settings
from tajiri_live.engagement.models import StreamComment
from tajiri_live.streams.presenters import storage_base_url
from tajiri_live.users.presenters import user_dict


def comment_dict(
    comment: StreamComment, settings: Settings, *, now: datetime | None = None
) -> dict[str, Any]:
    """With `now`, a comment pinned until a later time (a super chat on screen) is pinned."""
    pinned_for_now = (
        now is not None and comment.pinned_until is not None and comment.pinned_until > now
    )
    return {
        "id": comment.id,
        "stream_id": comment.stream_id,
        "user_id": comment.user_id,
        "content": comment.content,
        "message": comment.content,  # what older clients read
        "is_pinned": comment.is_pinned or pinned_for_now,
        "is_highlighted": comment.is_highlighted,
        "created_at": iso(comment.created_at),
        "user": user_dict(comment.user, storage_base_url=storage_base_url(settings)),
    }
