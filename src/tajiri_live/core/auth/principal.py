"""The authenticated caller, whichever authenticator recognised them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Where a principal came from: decides what it may do (money needs a verified token) and how
# long a socket token minted from it may live.
JWT = "jwt"
SANCTUM = "sanctum"
INTROSPECTION = "introspection"
VIEWER = "viewer"  # a socket token minted by join
LEGACY = "legacy"  # an id the unmodified mobile client sent, trusted because a setting says so

VERIFIED_SOURCES = frozenset({JWT, SANCTUM, INTROSPECTION})
MAX_PROFILE_TEXT = 500


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller, as their credential describes them."""

    user_id: int
    is_admin: bool = False
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    picture: str | None = None
    region: str | None = None  # the profile's region claim (analytics: viewers by region)
    source: str = JWT
    # When the credential stops being valid (epoch seconds); None: not known or never.
    expires_at: float | None = None
    # What to re-check before trusting a token minted from this one (e.g. "sanctum:42").
    credential: str | None = None

    def profile(self) -> tuple[str | None, ...]:
        return (self.first_name, self.last_name, self.username, self.picture)

    @property
    def verified(self) -> bool:
        """Signed in with a credential this service checked (not a claimed id)."""
        return self.source in VERIFIED_SOURCES


def profile_text(value: Any) -> str | None:
    """A profile field from a claim or a row: text, bounded, blanks as unknown."""
    if value is None or isinstance(value, bool | dict | list):
        return None
    text = str(value).replace("\x00", "").strip()
    return text[:MAX_PROFILE_TEXT] or None
