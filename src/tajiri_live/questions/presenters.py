"""Questions as the client and the fuller spec spell them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tajiri_live.core.clock import iso
from tajiri_live.questions.models import StreamQuestion
from tajiri_live.users.presenters import Profile, display_name, user_dict


def username_of(user: Profile | None, user_id: int) -> str:
    """Never null (the client casts `as String`): the username, else the full name, else
    `user{id}`."""
    if user is None:
        return f"user{user_id}"
    return user.username or display_name(user.id, user.first_name, user.last_name, None)


def question_dict(
    question: StreamQuestion, *, storage_base_url: str, has_upvoted: bool = False
) -> dict[str, Any]:
    """`{id, stream_id, user_id, question, upvotes, is_answered, created_at}` of the fuller
    spec, plus `username` and `user`, `answered_at`, and whether the caller upvoted it."""
    return {
        "id": question.id,
        "stream_id": question.stream_id,
        "user_id": question.user_id,
        "username": username_of(question.user, question.user_id),
        "question": question.question,
        "upvotes": question.upvotes,
        "is_answered": question.is_answered,
        "answered_at": iso(question.answered_at),
        "created_at": iso(question.created_at),
        "has_upvoted": has_upvoted,
        "user": user_dict(question.user, storage_base_url=storage_base_url),
    }


def question_event(
    question: StreamQuestion, *, storage_base_url: str, now: datetime
) -> dict[str, Any]:
    """`question_submitted` / `question_answered`: `question_id` int, `user_id` int,
    `username` str, `question` str, `upvotes` int, `is_answered` bool (what the client
    casts), with the author's `user` object."""
    return {
        "question_id": question.id,
        "stream_id": question.stream_id,
        "user_id": question.user_id,
        "username": username_of(question.user, question.user_id),
        "question": question.question,
        "upvotes": question.upvotes,
        "is_answered": question.is_answered,
        "user": user_dict(question.user, storage_base_url=storage_base_url),
        "timestamp": iso(now),
    }
