"""Channel occupancy for the Pusher protocol: subscriptions and presence members, cluster-wide."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol


class ChannelRegistry(Protocol):
    """Guarantees: counts and member lists are cluster-wide; a socket counts once per channel;
    a presence member counts once however many sockets it has, and `add_member` /
    `remove_member` say True only for its first and last socket (cluster-wide), which is when
    `member_added` / `member_removed` go out; a dead node's sockets vanish within `ttl` seconds
    (renewed by `renew()` while they live), without a `member_removed`."""

    async def subscribe(self, app_id: str, channel: str, socket_id: str) -> None: ...

    async def unsubscribe(self, app_id: str, channel: str, socket_id: str) -> None: ...

    async def add_member(
        self, app_id: str, channel: str, socket_id: str, user_id: str, user_info: Any
    ) -> bool:
        """Record a presence member's socket; True when the user was not present before."""
        ...

    async def remove_member(self, app_id: str, channel: str, socket_id: str, user_id: str) -> bool:
        """Forget a presence member's socket; True when it was the user's last one."""
        ...

    async def members(self, app_id: str, channel: str) -> dict[str, Any]:
        """user_id -> user_info of a presence channel."""
        ...

    async def subscription_count(self, app_id: str, channel: str) -> int: ...

    async def occupied(self, app_id: str, prefix: str = "") -> dict[str, int]:
        """Occupied channels whose names start with `prefix` -> their user count (presence
        channels) or subscription count."""
        ...

    async def renew(self) -> None:
        """Extend this node's sockets' entries (the node heartbeat)."""
        ...

    async def close(self) -> None: ...


@dataclass
class LocalSockets:
    """This node's sockets per (app, channel), and their presence user ids: what `renew` keeps."""

    subscribed: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    members: dict[tuple[str, str], dict[str, str]] = field(
        default_factory=lambda: defaultdict(dict)
    )

    def add(self, app_id: str, channel: str, socket_id: str) -> None:
        self.subscribed[(app_id, channel)].add(socket_id)

    def discard(self, app_id: str, channel: str, socket_id: str) -> None:
        key = (app_id, channel)
        sockets = self.subscribed.get(key)
        if sockets is not None:
            sockets.discard(socket_id)
            if not sockets:
                del self.subscribed[key]

    def add_member(self, app_id: str, channel: str, socket_id: str, user_id: str) -> None:
        self.members[(app_id, channel)][socket_id] = user_id

    def discard_member(self, app_id: str, channel: str, socket_id: str) -> None:
        key = (app_id, channel)
        sockets = self.members.get(key)
        if sockets is not None:
            sockets.pop(socket_id, None)
            if not sockets:
                del self.members[key]
