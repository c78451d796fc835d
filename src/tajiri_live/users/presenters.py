"""The embedded User object of the client contract."""

from __future__ import annotations

from typing import Any

from tajiri_live.users.models import User


def avatar_url(path: str | None, storage_base_url: str) -> str | None:
    if not path:
        return None
    if path.startswith(("http://", "https://")):
        return path
    return f"{storage_base_url}/{path.lstrip('/')}"


def display_name(
    user_id: int, first_name: str | None, last_name: str | None, username: str | None
) -> str:
    """Full name, else username, else `user{id}`: how every screen names a person."""
    names = " ".join(n for n in (first_name, last_name) if n)
    return names or username or f"user{user_id}"


def user_dict(user: User | None, *, storage_base_url: str) -> dict[str, Any] | None:
    if user is None:
        return None
    return {
        "id": user.id,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "username": user.username,
        "profile_photo_path": user.profile_photo_path,
        "display_name": display_name(user.id, user.first_name, user.last_name, user.username),
        "avatar_url": avatar_url(user.profile_photo_path, storage_base_url),
    }
