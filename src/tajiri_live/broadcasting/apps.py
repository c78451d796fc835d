"""The Pusher apps this service hosts, from settings."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from tajiri_live.core.settings import Settings
from tajiri_live.realtime.pusher import PusherApp, hmac_hex


def derived_secret(settings: Settings) -> str:
    """The default app secret: derived from the JWT secret, so it is as strong and as shared
    between nodes as that, with nothing more to configure."""
    if settings.pusher_app_secret:
        return settings.pusher_app_secret
    seed = settings.jwt_secret or settings.jwt_private_key
    if not seed:
        # Only outside production (the settings refuse this there): one process, one secret.
        return secrets.token_hex(20)
    return hmac_hex(seed, "tajiri-live pusher app secret")[:40]


@dataclass
class PusherApps:
    apps: list[PusherApp]
    by_key: dict[str, PusherApp] = field(init=False)
    by_id: dict[str, PusherApp] = field(init=False)

    def __post_init__(self) -> None:
        self.by_key = {app.key: app for app in self.apps}
        self.by_id = {app.id: app for app in self.apps}
        if len(self.by_key) != len(self.apps) or len(self.by_id) != len(self.apps):
            raise ValueError("Pusher app ids and keys must be unique")

    @property
    def default(self) -> PusherApp:
        return self.apps[0]

    @classmethod
    def from_settings(cls, settings: Settings) -> PusherApps:
        first = PusherApp(
            id=settings.pusher_app_id,
            key=settings.pusher_app_key,
            secret=derived_secret(settings),
            event_names=settings.pusher_event_names,
        )
        extra = [
            PusherApp(id=a.id, key=a.key, secret=a.secret, event_names=a.event_names)
            for a in settings.pusher_extra_apps
        ]
        return cls([first, *extra])
