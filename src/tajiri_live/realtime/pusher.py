"""The Pusher Channels protocol (version 7): frames, signatures and the encoder.

Everything here is protocol, nothing is TAJIRI: apps, HMAC signatures of channel auth and of
HTTP API requests, and the encoder that turns internal events into Pusher frames.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import orjson

from tajiri_live.realtime.events import (
    COHOST_JOINED,
    GIFT_SENT,
    NEW_COMMENT,
    POLL_CLOSED,
    POLL_CREATED,
    POLL_VOTE,
    QUESTION_ANSWERED,
    QUESTION_DISMISSED,
    QUESTION_SUBMITTED,
    QUESTION_UPVOTED,
    STATUS_CHANGED,
    STREAM_HEALTH_WARNING,
    SUPER_CHAT_SENT,
    VIEWER_COUNT_UPDATED,
    Event,
)
from tajiri_live.realtime.frames import frame

MIN_PROTOCOL_VERSION = 5  # older clients are refused with 4007
# The characters Pusher allows in a channel name, and its length limit.
CHANNEL_NAME = re.compile(r"^[A-Za-z0-9_\-=@,.;]{1,164}$")
MAX_EVENT_NAME = 200
SIGNATURE_MAX_AGE_SECONDS = 600
HUB_PREFIX = "pusher/"  # hub channels of Pusher subscriptions: pusher/{app_id}/{channel}

EventNames = Literal["mobile", "echo", "both"]

# Laravel Echo clients listen for the event classes of the original backend.
ECHO_CLASS_NAMES: dict[str, str] = {
    STATUS_CHANGED: "StreamStatusChanged",
    VIEWER_COUNT_UPDATED: "ViewerCountUpdated",
    NEW_COMMENT: "NewStreamComment",
    GIFT_SENT: "GiftReceived",
    COHOST_JOINED: "CoHostJoined",
    POLL_CREATED: "PollCreated",
    POLL_VOTE: "PollVoted",
    POLL_CLOSED: "PollClosed",
    QUESTION_SUBMITTED: "QuestionSubmitted",
    QUESTION_UPVOTED: "QuestionUpvoted",
    QUESTION_ANSWERED: "QuestionAnswered",
    QUESTION_DISMISSED: "QuestionDismissed",
    STREAM_HEALTH_WARNING: "StreamHealthWarning",
    SUPER_CHAT_SENT: "SuperChatSent",
}
STREAM_ENDED_CLASS = "StreamEnded"  # sent beside StreamStatusChanged when a stream ends


@dataclass(frozen=True)
class PusherApp:
    id: str  # numeric: the official server SDKs insist
    key: str
    secret: str
    event_names: EventNames = "both"


def hub_channel(app_id: str, channel: str) -> str:
    return f"{HUB_PREFIX}{app_id}/{channel}"


def wire_channel(hub_channel_name: str) -> str:
    """The Pusher channel name of a hub channel (Pusher names never contain '/')."""
    return hub_channel_name.rsplit("/", 1)[-1]


def hmac_hex(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def channel_auth(app: PusherApp, socket_id: str, channel: str, channel_data: str | None) -> str:
    """The `auth` value a client presents to subscribe to a private or presence channel."""
    message = f"{socket_id}:{channel}" + (f":{channel_data}" if channel_data is not None else "")
    return f"{app.key}:{hmac_hex(app.secret, message)}"


def channel_auth_valid(
    app: PusherApp, auth: str, socket_id: str, channel: str, channel_data: str | None
) -> bool:
    expected = channel_auth(app, socket_id, channel, channel_data)
    return hmac.compare_digest(expected.encode(), auth.encode())


class SignatureError(Exception):
    """An HTTP API request whose signature is missing, wrong or stale (answered 401)."""


def string_to_sign(method: str, path: str, query: Mapping[str, str]) -> str:
    """METHOD, path and the query sorted by lower-cased key, unescaped, without the signature."""
    params = sorted((k.lower(), v) for k, v in query.items() if k.lower() != "auth_signature")
    return f"{method.upper()}\n{path}\n" + "&".join(f"{k}={v}" for k, v in params)


def verify_request(
    app: PusherApp, method: str, path: str, query: Mapping[str, str], body: bytes, now: float
) -> None:
    """Check a signed HTTP API request; raise SignatureError saying what is wrong."""
    if query.get("auth_key") != app.key:
        raise SignatureError("Unknown auth_key.")
    if query.get("auth_version", "1.0") != "1.0":
        raise SignatureError("Unsupported auth_version.")
    try:
        timestamp = int(query.get("auth_timestamp", ""))
    except ValueError:
        raise SignatureError("auth_timestamp is missing.") from None
    if abs(now - timestamp) > SIGNATURE_MAX_AGE_SECONDS:
        raise SignatureError(
            f"Timestamp expired: auth_timestamp must be within {SIGNATURE_MAX_AGE_SECONDS} "
            "seconds of the server's time."
        )
    if body:
        digest = hashlib.md5(body, usedforsecurity=False).hexdigest()
        if not hmac.compare_digest(query.get("body_md5", ""), digest):
            raise SignatureError("body_md5 does not match the body.")
    expected = hmac_hex(app.secret, string_to_sign(method, path, query))
    if not hmac.compare_digest(expected, query.get("auth_signature", "")):
        raise SignatureError("Invalid signature: check the app secret and the signed string.")


def sign_request(
    app: PusherApp, method: str, path: str, query: Mapping[str, str], body: bytes, now: float
) -> dict[str, str]:
    """The query of a signed request (used by tests and tools; clients use their SDK)."""
    signed = {**query, "auth_key": app.key, "auth_timestamp": str(int(now))}
    signed["auth_version"] = "1.0"
    if body:
        signed["body_md5"] = hashlib.md5(body, usedforsecurity=False).hexdigest()
    signed["auth_signature"] = hmac_hex(app.secret, string_to_sign(method, path, signed))
    return signed


def pusher_frame(event: str, data: str, channel: str | None = None) -> bytes:
    """A server frame; `data` is already a JSON string, as the protocol requires."""
    body: dict[str, str] = {"event": event, "data": data}
    if channel is not None:
        body["channel"] = channel
    return frame(orjson.dumps(body))


def pusher_error(code: int | None, message: str) -> bytes:
    return pusher_frame("pusher:error", orjson.dumps({"code": code, "message": message}).decode())


class PusherEncoder:
    """Domain events under the mobile names, the Echo class names, or both (one set per app).

    Per channel, because Pusher frames name their channel; once per set and channel, never
    once per socket.
    """

    per_channel = True

    def __init__(self, event_names: EventNames, echo_namespace: str) -> None:
        self.name = f"pusher-{event_names}"
        self.event_names = event_names
        self._namespace = f"{echo_namespace.rstrip(chr(92))}\\" if echo_namespace else ""

    def names_for(self, event: Event) -> list[str]:
        names = [event.name] if self.event_names != "echo" else []
        if self.event_names != "mobile":
            class_name = ECHO_CLASS_NAMES.get(event.name)
            if class_name is not None:
                names.append(self._namespace + class_name)
                if event.name == STATUS_CHANGED and event.data.get("status") == "ended":
                    names.append(self._namespace + STREAM_ENDED_CLASS)
            elif self.event_names == "echo":
                names.append(event.name)  # no class for it: the plain name
        return names

    def encode(self, event: Event, channel: str) -> bytes | None:
        name = wire_channel(channel)
        if event.wire is not None:
            return pusher_frame(event.name, event.wire, name)
        data = orjson.dumps(event.data).decode()
        return b"".join(pusher_frame(n, data, name) for n in self.names_for(event))
