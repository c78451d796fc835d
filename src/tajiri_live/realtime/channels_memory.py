"""In-process channel occupancy: the embedded default (one node)."""

from __future__ import annotations

from typing import Any

from tajiri_live.realtime.channels import LocalSockets


class MemoryChannelRegistry:
    def __init__(self) -> None:
        self._local = LocalSockets()
        self._info: dict[tuple[str, str], dict[str, Any]] = {}

    async def subscribe(self, app_id: str, channel: str, socket_id: str) -> None:
        self._local.add(app_id, channel, socket_id)

    async def unsubscribe(self, app_id: str, channel: str, socket_id: str) -> None:
        self._local.discard(app_id, channel, socket_id)

    def _users(self, app_id: str, channel: str) -> set[str]:
        return set(self._local.members.get((app_id, channel), {}).values())

    async def add_member(
        self, app_id: str, channel: str, socket_id: str, user_id: str, user_info: Any
    ) -> bool:
        first = user_id not in self._users(app_id, channel)
        self._local.add_member(app_id, channel, socket_id, user_id)
        self._info.setdefault((app_id, channel), {})[user_id] = user_info
        return first

    async def remove_member(self, app_id: str, channel: str, socket_id: str, user_id: str) -> bool:
        if socket_id not in self._local.members.get((app_id, channel), {}):
            return False
        self._local.discard_member(app_id, channel, socket_id)
        if user_id in self._users(app_id, channel):
            return False
        info = self._info.get((app_id, channel), {})
        info.pop(user_id, None)
        if not info:
            self._info.pop((app_id, channel), None)
        return True

    async def members(self, app_id: str, channel: str) -> dict[str, Any]:
        info = self._info.get((app_id, channel), {})
        return {user: info.get(user) for user in self._users(app_id, channel)}

    async def subscription_count(self, app_id: str, channel: str) -> int:
        return len(self._local.subscribed.get((app_id, channel), ()))

    async def occupied(self, app_id: str, prefix: str = "") -> dict[str, int]:
        found: dict[str, int] = {}
        for (app, channel), sockets in self._local.subscribed.items():
            if app == app_id and channel.startswith(prefix) and sockets:
                if channel.startswith("presence-"):
                    found[channel] = len(self._users(app, channel))
                else:
                    found[channel] = len(sockets)
        return found

    async def renew(self) -> None:
        return None

    async def close(self) -> None:
        return None
