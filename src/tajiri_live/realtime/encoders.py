"""Wire encoders over the internal Event. Each event is encoded once per encoder (and per
channel only when the wire format names the channel), never once per socket."""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from tajiri_live.realtime.events import Event
from tajiri_live.realtime.frames import frame


class Encoder(Protocol):
    name: str
    per_channel: bool  # True when the frame depends on the channel it is delivered on

    def encode(self, event: Event, channel: str) -> bytes | None:
        """The complete WebSocket frame, or None when this protocol does not carry it."""
        ...


class PlainEncoder:
    """`{"event": name, "data": {...}}`, one JSON object per frame (the mobile protocol)."""

    name = "plain"
    per_channel = False

    def encode(self, event: Event, channel: str) -> bytes | None:
        if event.wire is not None:
            return None  # a Pusher-only event (HTTP API, client event)
        return frame(orjson.dumps({"event": event.name, "data": event.data}))


def plain_frame(name: str, data: dict[str, object]) -> bytes:
    return frame(orjson.dumps({"event": name, "data": data}))


def client_message(text: str) -> dict[str, Any] | None:
    """A client frame as `{"event": str, ...}`, or None when it is not one (both protocols)."""
    try:
        message = orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(message, dict) or not isinstance(message.get("event"), str):
        return None
    return message
