"""The embedded User object of the client contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class Profile(Protocol):
    """What the embedded User shows: a `users` row, or the columns read of it."""

    @property
    def id(self) -> int: ...
    @property
    def first_name(self) -> str | None: ...
    @property
    def last_name(self) -> str | None: ...
    @property
    def username(self) -> str | None: ...
    @property
    def profile_photo_path(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class UserProfile:
    """A user's profile columns, read without the ORM."""

    id: int
    first_name: str | None
    last_name: str | None
    username: str | None
    profile_photo_path: str | None


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


def user_dict(user: Profile | None, *, storage_base_url: str) -> dict[str, Any] | None:
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
