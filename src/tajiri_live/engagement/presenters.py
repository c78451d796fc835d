"""Comments as the client contract spells them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tajiri_live.core.clock import iso
from tajiri_live.core.settings import Settings
from tajiri_live.engagement.models import StreamComment
from tajiri_live.streams.presenters import storage_base_url
from tajiri_live.users.presenters import Profile, user_dict


def comment_dict(
    comment: StreamComment, settings: Settings, *, now: datetime | None = None
) -> dict[str, Any]:
    """With `now`, a comment pinned until a later time (a super chat on screen) is pinned."""
    pinned_for_now = (
        now is not None and comment.pinned_until is not None and comment.pinned_until > now
    )
    return _shown(
        comment.id,
        comment.stream_id,
        comment.user_id,
        comment.content,
        created_at=comment.created_at,
        author=comment.user,
        settings=settings,
        pinned=comment.is_pinned or pinned_for_now,
        highlighted=comment.is_highlighted,
    )


def new_comment_dict(
    comment_id: int,
    stream_id: int,
    user_id: int,
    content: str,
    *,
    created_at: datetime,
    author: Profile | None,
    settings: Settings,
) -> dict[str, Any]:
    """A comment just written (neither pinned nor highlighted), without its ORM row."""
    return _shown(
        comment_id,
        stream_id,
        user_id,
        content,
        created_at=created_at,
        author=author,
        settings=settings,
        pinned=False,
        highlighted=False,
    )


def _shown(
    comment_id: int,
    stream_id: int,
    user_id: int,
    content: str,
    *,
    created_at: datetime,
    author: Profile | None,
    settings: Settings,
    pinned: bool,
    highlighted: bool,
) -> dict[str, Any]:
    return {
        "id": comment_id,
        "stream_id": stream_id,
        "user_id": user_id,
        "content": content,
        "message": content,  # what older clients read
        "is_pinned": pinned,
        "is_highlighted": highlighted,
        "created_at": iso(created_at),
        "user": user_dict(author, storage_base_url=storage_base_url(settings)),
    }
