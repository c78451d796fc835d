"""The Pusher Channels protocol (version 7) at `/app/{app_key}`, on the same hub as the plain one.

Subscriptions of a connection are handled in order (subscribe, unsubscribe, close), one at a
time, by a short task started when there is work: no lock, no race between a subscribe that
is still checking the database and an unsubscribe that follows it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from tajiri_live.broadcasting import service
from tajiri_live.broadcasting.apps import PusherApps
from tajiri_live.core.availability import dependency_of, unavailable_message
from tajiri_live.core.clientaddr import client_address
from tajiri_live.core.runtime import Runtime
from tajiri_live.core.text import control_message, find_control
from tajiri_live.realtime.encoders import client_message
from tajiri_live.realtime.events import ERROR, PONG, Event
from tajiri_live.realtime.flood import Verdict
from tajiri_live.realtime.gateway import CloseCodes, Gateway, Handshake
from tajiri_live.realtime.pusher import (
    CHANNEL_NAME,
    MAX_EVENT_NAME,
    MIN_PROTOCOL_VERSION,
    PusherApp,
    channel_auth_valid,
    hub_channel,
    pusher_error,
    pusher_frame,
)
from tajiri_live.realtime.server import CLOSED, WebSocketConnection
from tajiri_live.viewers.service import Viewers, member_of

log = logging.getLogger(__name__)

# Pusher's close codes: 4000-4099 do not reconnect, 4100-4199 back off, 4200-4299 reconnect.
APP_NOT_FOUND = 4001
UNSUPPORTED_PROTOCOL = 4007
CLIENT_EVENT_RATE_LIMITED = 4301  # a pusher:error code only, never a close code
PUSHER_CLOSE_CODES = CloseCodes(
    going_away=(4200, "server shutting down: reconnect"),
    slow=(4100, "over capacity: the client reads too slowly"),
    idle=(4201, "pong reply not received"),
)
MEMBER_ADDED = "pusher_internal:member_added"
MEMBER_REMOVED = "pusher_internal:member_removed"
SUBSCRIPTION_SUCCEEDED = "pusher_internal:subscription_succeeded"
SUBSCRIPTION_ERROR = "pusher:subscription_error"


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


@dataclass
class PusherSocketApp:
    runtime: Runtime
    gateway: Gateway
    viewers: Viewers
    apps: PusherApps
    # The plain protocol's client actions (`vote_poll`...): named here only to answer them
    # with an `error` event rather than a `pusher:error`, which the mobile client treats as
    # a broken connection.
    plain_actions: Mapping[str, object] = field(default_factory=dict)

    def install(self) -> None:
        self.gateway.route(r"/app/(?P<app_key>[^/]{1,100})", self.admit)

    async def admit(self, handshake: Handshake) -> PusherSession:
        # Pusher refuses after the upgrade with a pusher:error and a close code the client
        # understands (4001: do not retry), not with an HTTP status.
        app = self.apps.by_key.get(handshake.params["app_key"])
        version = handshake.query.get("protocol", "7")
        problem: tuple[int, str] | None = None
        if app is None:
            problem = (APP_NOT_FOUND, "Application does not exist.")
        elif not version.isdigit() or int(version) < MIN_PROTOCOL_VERSION:
            problem = (UNSUPPORTED_PROTOCOL, "Unsupported protocol version.")
        address = client_address(
            handshake.peer,
            handshake.headers.get("x-forwarded-for"),
            self.runtime.settings.trusted_proxies,
        )
        return PusherSession(self, app, problem, address=address)


@dataclass
class Subscription:
    channel: str
    stream_id: int | None = None
    presence_user: str | None = None  # the member's user id on a presence channel
    watched: bool = False  # it counts this socket as one of the stream's viewers


@dataclass
class Watching:
    """One viewer (per socket and stream) however many of the stream's channels it follows."""

    member: str
    channels: int = 1


class PusherSession:
    close_codes = PUSHER_CLOSE_CODES

    def __init__(
        self,
        app: PusherSocketApp,
        pusher_app: PusherApp | None,
        problem: Any,
        *,
        address: str | None = None,
    ) -> None:
        self.app = app
        self.address = address  # the client's, for the anonymous viewers' cap
        self.pusher_app = pusher_app
        self.problem: tuple[int, str] | None = problem
        self.encoder = f"pusher-{pusher_app.event_names}" if pusher_app else "pusher-both"
        self.user_id: int | None = None  # Pusher connections are anonymous; channels are signed
        self.connection: WebSocketConnection | None = None
        self.subscriptions: dict[str, Subscription] = {}
        self.watching: dict[int, Watching] = {}
        self._operations: deque[tuple[str, dict[str, Any]]] = deque()
        self._working = False
        self._window_start = 0.0
        self._window_count = 0
        self.flood = app.gateway.flood_guard()
        # Echo subscribes to everything at connect: a budget of its own, deeper than the cap,
        # refilled at the message rate (each subscription costs a query and Redis).
        self.subscribing = app.gateway.flood_guard(
            burst=app.runtime.settings.pusher_max_subscriptions + app.gateway.flood_limits.burst
        )

    # --- connection ------------------------------------------------------------------------

    def opened(self, connection: WebSocketConnection) -> None:
        self.connection = connection
        if self.problem is not None or self.pusher_app is None:
            code, message = self.problem or (APP_NOT_FOUND, "Application does not exist.")
            connection.write(pusher_error(code, message))
            connection.close(code, message)
            return
        established = {
            "socket_id": connection.socket_id,
            "activity_timeout": self.app.runtime.settings.pusher_activity_timeout_seconds,
        }
        connection.send(pusher_frame("pusher:connection_established", _json(established)))

    def closed(self, connection: WebSocketConnection) -> None:
        self._operations.clear()  # subscribes not yet done are moot
        self._enqueue("close", {})

    def received(self, connection: WebSocketConnection, text: str) -> None:
        message = client_message(text)
        subscription = message is not None and message["event"] in (
            "pusher:subscribe",
            "pusher:unsubscribe",
        )
        budget = self.subscribing if subscription else self.flood
        if not self._within_budget(connection, budget.message()):
            return
        if message is None:
            connection.send(pusher_error(None, 'Send JSON objects: {"event": "...", "data": ...}.'))
            return
        name: str = message["event"]
        field = find_control(message)
        if field is not None:
            connection.send(pusher_error(None, control_message(field)))
            return
        data = message.get("data")
        if isinstance(data, str) and name.startswith("pusher:"):
            try:
                data = orjson.loads(data)
            except orjson.JSONDecodeError:
                data = None
        if name == "pusher:ping":
            connection.send(pusher_frame("pusher:pong", "{}"))
        elif name in ("pusher:subscribe", "pusher:unsubscribe"):
            if not isinstance(data, dict) or not isinstance(data.get("channel"), str):
                connection.send(pusher_error(None, f"{name} needs data with a channel."))
                return
            if len(self._operations) >= self.app.runtime.settings.pusher_max_subscriptions:
                self._within_budget(connection, self.flood.refuse())
                return
            self._enqueue(name.removeprefix("pusher:"), data)
        elif name.startswith("client-"):
            self._client_event(connection, name, message.get("channel"), data)
        elif name == "pusher:pong":
            return
        elif name.startswith(("pusher:", "pusher_internal:")):
            connection.send(pusher_error(None, f"Unsupported event '{name[:40]}'."))
        else:
            self._app_message(connection, name, data)

    def _app_message(self, connection: WebSocketConnection, name: str, data: object) -> None:
        """The mobile client sends its plain-protocol messages on whatever socket it has: its
        `ping` every 30 s is answered with `pong` as on the plain socket. It treats any
        `pusher:error` as a broken connection, so the rest get the plain `error` event."""
        if isinstance(data, str):  # a Pusher-style client may send data as a JSON string
            try:
                data = orjson.loads(data)
            except orjson.JSONDecodeError:
                data = None
        if name == "ping":
            stamp = data.get("timestamp") if isinstance(data, dict) else None
            connection.send(pusher_frame(PONG, _json({"timestamp": stamp})))
            return
        known = name in self.app.plain_actions
        problem = {
            "code": "unsupported" if known else "unknown_event",
            "event": name[:40],
            "message": f"'{name[:40]}' is not served on the Pusher socket: use the REST API "
            "or the plain socket (/streams/{id}).",
        }
        connection.send(pusher_frame(ERROR, _json(problem)))

    def _within_budget(self, connection: WebSocketConnection, verdict: Verdict) -> bool:
        if verdict is Verdict.ACCEPTED:
            return True
        if verdict is Verdict.TOLD:
            connection.send(
                pusher_error(
                    CLIENT_EVENT_RATE_LIMITED,
                    "Too many messages: slow down or this connection will be closed.",
                )
            )
        elif verdict is Verdict.CLOSE:
            connection.close(*self.close_codes.flood)
        return False

    # --- ordered subscription work ---------------------------------------------------------

    def _enqueue(self, operation: str, data: dict[str, Any]) -> None:
        self._operations.append((operation, data))
        if not self._working:
            self._working = True
            self.app.gateway.spawn(self._work(), name=f"pusher-{operation}")

    async def _work(self) -> None:
        try:
            while self._operations:
                operation, data = self._operations.popleft()
                try:
                    if operation == "subscribe":
                        await self._subscribe(data)
                    elif operation == "unsubscribe":
                        await self._unsubscribe(str(data["channel"]))
                    else:
                        for channel in list(self.subscriptions):
                            await self._forget(channel)
                except Exception as exc:
                    if operation == "subscribe":
                        await self._failed_subscribe(str(data["channel"]), exc)
                    else:
                        log.exception("pusher %s failed", operation)
        finally:
            self._working = False

    async def _failed_subscribe(self, channel: str, exc: Exception) -> None:
        """Undo what the subscribe did and tell the client (503 while Redis or the database
        is away: Echo's `.error()` hears it, and the client may subscribe again)."""
        dependency = dependency_of(exc)
        if dependency is None:
            log.exception("pusher subscribe failed", exc_info=exc)
        else:
            log.warning("pusher subscribe failed: %s unavailable", dependency)
        if channel in self.subscriptions:
            await self._forget(channel)
        elif self.connection is not None and self.pusher_app is not None:
            self.app.gateway.hub.unsubscribe(
                self.connection, hub_channel(self.pusher_app.id, channel)
            )
        if dependency is None:
            self._refuse(channel[:164], 500, "The subscription failed; try again.")
        else:
            self._refuse(channel[:164], 503, unavailable_message(dependency))

    async def _forget(self, channel: str) -> None:
        """Unsubscribe, as far as the backends allow: the local part always happens, and
        entries a failed backend keeps expire with their TTL."""
        try:
            await self._unsubscribe(channel)
        except Exception as exc:
            log.warning("pusher unsubscribe of %s incomplete: %s", channel, type(exc).__name__)

    def _refuse(self, channel: str, status: int, message: str) -> None:
        if self.connection is not None:
            error = {"type": "AuthError", "error": message, "status": status}
            self.connection.send(pusher_frame(SUBSCRIPTION_ERROR, _json(error), channel))

    async def _subscribe(self, data: dict[str, Any]) -> None:
        connection, pusher_app = self.connection, self.pusher_app
        if connection is None or pusher_app is None or connection.state == CLOSED:
            return
        channel = str(data["channel"])
        if channel in self.subscriptions:
            return  # Pusher ignores a repeated subscribe
        limit = self.app.runtime.settings.pusher_max_subscriptions
        if len(self.subscriptions) >= limit:
            self._refuse(
                channel[:164], 403, f"Too many subscriptions: at most {limit} per connection."
            )
            return
        if not CHANNEL_NAME.match(channel):
            self._refuse(channel[:164], 400, "Invalid channel name.")
            return
        member = self._signed_member(pusher_app, channel, data)
        if member is False:
            return
        runtime = self.app.runtime
        what = service.meaning(channel, global_channel=runtime.settings.global_channel)
        counted = False
        watcher = self._watcher(member)
        if what.stream_id is not None:
            if channel.startswith(("private-", "presence-")):
                counted = await service.stream_counted(
                    runtime, stream_id=what.stream_id, user_id=watcher
                )
            else:
                allowed, counted = await service.public_stream_counted(
                    runtime, stream_id=what.stream_id, user_id=watcher
                )
                if not allowed:
                    self._refuse(
                        channel, 403, f"Not a public stream: subscribe to private-{channel}."
                    )
                    return
        registry = runtime.channels
        if isinstance(member, dict):
            present = await registry.members(pusher_app.id, channel)
            limit = runtime.settings.pusher_max_presence_members
            if member["user_id"] not in present and len(present) >= limit:
                self._refuse(channel, 403, "This presence channel is full.")
                return
        if connection.state == CLOSED:  # closed while we looked
            return
        hub_name = hub_channel(pusher_app.id, channel)
        self.app.gateway.hub.subscribe(connection, hub_name, self.encoder, source=what.source)
        subscription = Subscription(channel, what.stream_id)
        self.subscriptions[channel] = subscription
        await registry.subscribe(pusher_app.id, channel, connection.socket_id)
        succeeded = "{}"
        if isinstance(member, dict):
            user_id = member["user_id"]
            subscription.presence_user = user_id
            first = await registry.add_member(
                pusher_app.id, channel, connection.socket_id, user_id, member.get("user_info")
            )
            # Read again, now that this socket hears member events: a member who joined
            # since the capacity check is in the list or announced, never neither.
            members = await registry.members(pusher_app.id, channel)
            succeeded = _json(
                {"presence": {"ids": list(members), "hash": members, "count": len(members)}}
            )
            if first:
                await runtime.broker.publish(
                    Event(
                        channel=hub_name,
                        name=MEMBER_ADDED,
                        data={},
                        wire=_json({"user_id": user_id, "user_info": member.get("user_info")}),
                        except_socket=connection.socket_id,
                    )
                )
        connection.send(pusher_frame(SUBSCRIPTION_SUCCEEDED, succeeded, channel))
        self._identify(connection, what.user_id, subscription.presence_user)
        if counted and what.stream_id is not None:
            subscription.watched = True
            await self._watch(what.stream_id, watcher)

    def _identify(
        self, connection: WebSocketConnection, own_channel: int | None, member: str | None
    ) -> None:
        """A channel signed for a user (their own private channel, or a presence member)
        tells who this anonymous connection is: events for that user (e.g. to a stream's
        hosts) reach it from now on."""
        user_id = own_channel
        if user_id is None and member is not None and member.isdigit():
            user_id = int(member)
        if user_id is not None and connection.user_id is None:
            self.app.gateway.hub.identify(connection, user_id)

    def _signed_member(
        self, pusher_app: PusherApp, channel: str, data: dict[str, Any]
    ) -> dict[str, Any] | bool:
        """True for a public channel, the member for a presence one, False once refused."""
        if not channel.startswith(("private-", "presence-")):
            return True
        auth = data.get("auth")
        channel_data = data.get("channel_data") if channel.startswith("presence-") else None
        if channel.startswith("presence-") and not isinstance(channel_data, str):
            self._refuse(channel, 400, "A presence subscription needs channel_data.")
            return False
        socket_id = self.connection.socket_id if self.connection else ""
        if not isinstance(auth, str) or not channel_auth_valid(
            pusher_app, auth, socket_id, channel, channel_data
        ):
            self._refuse(channel, 401, "Invalid signature: authorise this channel first.")
            return False
        if channel_data is None:
            return True
        try:
            member = orjson.loads(channel_data)
        except orjson.JSONDecodeError:
            member = None
        if not isinstance(member, dict) or member.get("user_id") in (None, ""):
            self._refuse(channel, 400, "channel_data must be a JSON object with a user_id.")
            return False
        member["user_id"] = str(member["user_id"])
        return member

    def _watcher(self, member: dict[str, Any] | bool) -> int | None:
        """The user behind this socket: a presence member's id, else the connection's own."""
        if isinstance(member, dict) and str(member["user_id"]).isdigit():
            return int(member["user_id"])
        return self.user_id

    async def _watch(self, stream_id: int, user_id: int | None) -> None:
        connection = self.connection
        socket_id = connection.socket_id if connection else ""
        member = member_of(user_id, socket_id)
        watching = self.watching.get(stream_id)
        viewers = self.app.viewers
        if watching is not None:
            watching.channels += 1
            if member == watching.member or user_id is None:
                return
            # A presence channel named the user of a socket counted as anonymous: the person
            # is held first and the anonymous socket let go after, so the count never dips.
            await viewers.watch(stream_id, member, region=None, address=None)
            await viewers.unwatch(stream_id, watching.member)
            watching.member = member
            return
        self.watching[stream_id] = Watching(member)
        address = self.address if user_id is None else None
        await viewers.watch(stream_id, member, region=None, address=address)

    async def _unsubscribe(self, channel: str) -> None:
        subscription = self.subscriptions.pop(channel, None)
        connection, pusher_app = self.connection, self.pusher_app
        if subscription is None or connection is None or pusher_app is None:
            return
        runtime = self.app.runtime
        hub_name = hub_channel(pusher_app.id, channel)
        self.app.gateway.hub.unsubscribe(connection, hub_name)
        await runtime.channels.unsubscribe(pusher_app.id, channel, connection.socket_id)
        user_id = subscription.presence_user
        if user_id is not None and await runtime.channels.remove_member(
            pusher_app.id, channel, connection.socket_id, user_id
        ):
            await runtime.broker.publish(
                Event(
                    channel=hub_name,
                    name=MEMBER_REMOVED,
                    data={},
                    wire=_json({"user_id": user_id}),
                    except_socket=connection.socket_id,
                )
            )
        stream_id = subscription.stream_id
        watched = subscription.watched and stream_id is not None
        watching = self.watching.get(stream_id) if watched and stream_id is not None else None
        if watching is not None and stream_id is not None:
            watching.channels -= 1
            if watching.channels == 0:
                del self.watching[stream_id]
                await self.app.viewers.unwatch(stream_id, watching.member)

    # --- client events ---------------------------------------------------------------------

    def _client_event(
        self, connection: WebSocketConnection, name: str, channel: object, data: object
    ) -> None:
        pusher_app = self.pusher_app
        settings = self.app.runtime.settings
        if (
            pusher_app is None
            or not isinstance(channel, str)
            or channel not in self.subscriptions
            or not channel.startswith(("private-", "presence-"))
        ):
            connection.send(
                pusher_error(
                    None, "Client events go to a private or presence channel you subscribed to."
                )
            )
            return
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        if self._window_count > settings.pusher_client_event_limit:
            connection.send(
                pusher_error(CLIENT_EVENT_RATE_LIMITED, "Client event rejected due to rate limit.")
            )
            return
        wire = data if isinstance(data, str) else _json(data)
        if len(name) > MAX_EVENT_NAME or len(wire) > settings.pusher_max_payload_bytes:
            connection.send(pusher_error(None, "Client event rejected: too large."))
            return
        event = Event(
            channel=hub_channel(pusher_app.id, channel),
            name=name,
            data={},
            wire=wire,
            except_socket=connection.socket_id,
        )
        self.app.gateway.spawn(self.app.runtime.broker.publish(event), name="pusher-client-event")
