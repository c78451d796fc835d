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


def user_dict(user: User | None, *, storage_base_url: str) -> dict[str, Any] | None:
    if user is None:
        return None
    names = " ".join(n for n in (user.first_name, user.last_name) if n)
    return {
        "id": user.id,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "username": user.username,
        "profile_photo_path": user.profile_photo_path,
        "display_name": names or user.username or f"user{user.id}",
        "avatar_url": avatar_url(user.profile_photo_path, storage_base_url),
    }
