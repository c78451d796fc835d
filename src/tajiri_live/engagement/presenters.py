"""Comments as the client contract spells them."""

from __future__ import annotations

from typing import Any

from tajiri_live.core.clock import iso
from tajiri_live.core.settings import Settings
from tajiri_live.engagement.models import StreamComment
from tajiri_live.streams.presenters import storage_base_url
from tajiri_live.users.presenters import user_dict


def comment_dict(comment: StreamComment, settings: Settings) -> dict[str, Any]:
    return {
        "id": comment.id,
        "stream_id": comment.stream_id,
        "user_id": comment.user_id,
        "content": comment.content,
        "message": comment.content,  # what older clients read
        "is_pinned": comment.is_pinned,
        "is_highlighted": comment.is_highlighted,
        "created_at": iso(comment.created_at),
        "user": user_dict(comment.user, storage_base_url=storage_base_url(settings)),
    }
