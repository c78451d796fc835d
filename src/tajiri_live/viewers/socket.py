"""The plain WebSocket protocol of the mobile client: `/streams/{id}` and `/streams/all`."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from tajiri_live.core import randomids
from tajiri_live.core.auth import Principal
from tajiri_live.core.availability import (
    RETRY_AFTER_SECONDS,
    dependency_of,
    unavailable_message,
)
from tajiri_live.core.clientaddr import client_address
from tajiri_live.core.clock import iso
from tajiri_live.core.errors import ApiError, not_found
from tajiri_live.core.payload import MAX_ID, validated
from tajiri_live.core.runtime import Runtime
from tajiri_live.core.text import control_message, find_control
from tajiri_live.moderation import bans
from tajiri_live.realtime.encoders import client_message, plain_frame
from tajiri_live.realtime.events import CONNECTED, ERROR, PONG, stream_channel
from tajiri_live.realtime.flood import Verdict
from tajiri_live.realtime.gateway import CloseCodes, Gateway, Handshake, Refusal
from tajiri_live.realtime.server import WebSocketConnection
from tajiri_live.streams import admission
from tajiri_live.streams import service as streams_service
from tajiri_live.streams.lifecycle import FINAL_STATUSES
from tajiri_live.streams.models import LiveStream
from tajiri_live.users.writer import ProfileWriter
from tajiri_live.viewers.service import Viewers, member_of
from tajiri_live.viewers.sessions import clean_region

# A client action (e.g. `reaction`): (connection's context, data) -> error frame data or None.
ActionHandler = Callable[["SocketContext", dict[str, Any]], Awaitable[dict[str, Any] | None]]
# An action on the socket's stream by its signed-in user: (context, user, stream id, data).
StreamAction = Callable[["SocketContext", Principal, int, dict[str, Any]], Awaitable[None]]

Body = TypeVar("Body", bound=BaseModel)
# An action on the stream as its REST twin sees it: (session, stream, user, validated body).
VisibleStreamAction = Callable[[AsyncSession, LiveStream, Principal, Body], Awaitable[None]]

# The `error` event's `code` for each status the REST twin of an action would answer.
ERROR_CODES = {
    400: "invalid",
    401: "unauthenticated",
    402: "payment_required",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    410: "gone",
    413: "invalid",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
}


def error_frame(code: str, message: str, **extra: Any) -> bytes:
    return plain_frame(ERROR, {"code": code, "message": message, **extra})


def action_error(error: ApiError, *, event: str | None = None) -> dict[str, Any]:
    """A refused action as the `error` event's data: the REST answer's message, a code, and
    what else it carries (`retry_after`, validation `errors`, `muted_until`...)."""
    problem: dict[str, Any] = {
        "code": ERROR_CODES.get(error.status_code, "error"),
        "message": error.message,
        **error.extra,
    }
    if event is not None:
        problem["event"] = event  # which message was refused
    return problem


def stream_action(name: str, act: StreamAction, *, verified: bool = False) -> ActionHandler:
    """A client action on a stream's socket, refused like its REST twin: an ApiError becomes
    an `error` event to that socket alone (naming the refused event), the socket stays open.
    `verified`: a host's action or money, which a claimed `?user_id=` may not make (its REST
    twin needs a token too)."""

    async def handle(context: SocketContext, data: dict[str, Any]) -> dict[str, Any] | None:
        if context.stream_id is None or context.principal is None:
            return {
                "code": "invalid",
                "message": f"Send {name} on a stream's socket (/streams/{{id}}).",
                "event": name,
            }
        if verified and not context.principal.verified:
            return {
                "code": "unauthenticated",
                "message": f"{name} needs a signed-in token (?token=): a user_id on the "
                "socket's address is not enough.",
                "event": name,
            }
        try:
            await act(context, context.principal, context.stream_id, data)
        except ApiError as error:
            return action_error(error, event=name)
        return None

    return handle


def visible_stream_action(
    runtime: Runtime,
    name: str,
    schema: type[Body],
    act: VisibleStreamAction[Body],
    *,
    verified: bool = False,
) -> ActionHandler:
    """`stream_action` for the actions that validate their data and then work on the stream as
    REST would: loaded in one session and refused (404) if this user may no longer see it."""

    async def run(
        context: SocketContext, principal: Principal, stream_id: int, data: dict[str, Any]
    ) -> None:
        body = validated(schema, data)
        async with runtime.sessions() as session:
            stream = await streams_service.get_visible_stream(
                session, stream_id=stream_id, viewer=principal, people=False
            )
            await act(session, stream, principal, body)

    return stream_action(name, run, verified=verified)


@dataclass
class SocketContext:
    """Who is on a connection and what they watch; handed to action handlers."""

    principal: Principal | None
    stream_id: int | None
    connection: WebSocketConnection | None = None
    region: str | None = None
    address: str | None = None  # an anonymous viewer's client address


@dataclass
class PlainSocketApp:
    runtime: Runtime
    gateway: Gateway
    viewers: Viewers
    profiles: ProfileWriter
    actions: dict[str, ActionHandler] = field(default_factory=dict)

    def install(self) -> None:
        self.gateway.route(r"/streams/all", self.admit_feed)
        self.gateway.route(r"/streams/(?P<stream_id>\d{1,18})", self.admit_stream)

    async def _identify(self, handshake: Handshake) -> Principal | None:
        """The token's user (a user token or the viewer token `join` gave); with legacy
        identity on and no token, the `?user_id=` the unmodified client sends."""
        token = handshake.query.get("token")
        authorization = handshake.headers.get("authorization", "")
        if not token and authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
        if not token and ("token" in handshake.query or "authorization" in handshake.headers):
            raise Refusal(401, "The token is empty.")  # meant to sign in: never a claimed id
        identity = self.runtime.identity
        claimed = handshake.query.get("user_id")
        principal: Principal | None = None
        try:
            if token:
                address = client_address(
                    handshake.peer,
                    handshake.headers.get("x-forwarded-for"),
                    self.runtime.settings.trusted_proxies,
                )
                principal = await identity.authenticate_socket(token, address=address)
            elif claimed and self.runtime.settings.legacy_client_identity:
                if not (claimed.isascii() and claimed.isdigit()) or not 0 < int(claimed) <= MAX_ID:
                    raise Refusal(400, "The user_id must be a positive integer.")
                principal = await identity.claimed(int(claimed))
                identity.stats.legacy_sockets += 1
        except ApiError as error:
            raise Refusal(error.status_code, error.message) from error
        if claimed and principal is not None and claimed != str(principal.user_id):
            raise Refusal(403, "The user_id does not match the token.")
        if principal is not None:
            # Written in the next batch, off the handshake: what needs the row waits for it.
            self.profiles.submit(principal)
        return principal

    async def admit_feed(self, handshake: Handshake) -> PlainSession:
        principal = await self._identify(handshake)
        return PlainSession(
            self, SocketContext(principal, None), self.runtime.settings.global_channel
        )

    async def admit_stream(self, handshake: Handshake) -> PlainSession:
        principal = await self._identify(handshake)
        # a malformed region is refused before the stream is read
        region = _region(handshake, principal)
        stream_id = int(handshake.params["stream_id"])
        user_id = principal.user_id if principal is not None else None
        # From the node's cache: no query for a public stream it has seen in the last seconds.
        facts = await admission.facts(self.runtime, stream_id)
        if facts is None:
            raise Refusal(404, not_found().message)
        if not facts.public and not facts.broadcasts(user_id):
            async with self.runtime.sessions() as session:
                try:  # friends-only and the like: who follows whom is read each time
                    await streams_service.get_visible_stream(
                        session, stream_id=stream_id, viewer=principal, people=False
                    )
                except ApiError as error:
                    raise Refusal(404, error.message) from error
        if user_id is not None and await bans.is_banned(
            self.runtime, stream_id=stream_id, user_id=user_id
        ):
            raise Refusal(403, "You are banned from this stream.")
        counted = facts.status_enum not in FINAL_STATUSES and not facts.broadcasts(user_id)
        address = None
        if principal is None:  # anonymous viewers are capped per address
            address = client_address(
                handshake.peer,
                handshake.headers.get("x-forwarded-for"),
                self.runtime.settings.trusted_proxies,
            )
        return PlainSession(
            self,
            SocketContext(principal, stream_id, region=region, address=address),
            stream_channel(stream_id),
            counted=counted,
        )


def _region(handshake: Handshake, principal: Principal | None) -> str | None:
    """The region the client names on the socket, else the one in the token's profile."""
    if find_control(handshake.query.get("region")) is not None:
        raise Refusal(422, control_message("region"))
    named = clean_region(handshake.query.get("region"))
    return named or clean_region(principal.region if principal else None)


class PlainSession:
    encoder = "plain"
    close_codes = CloseCodes()

    def __init__(
        self, app: PlainSocketApp, context: SocketContext, channel: str, *, counted: bool = False
    ) -> None:
        self.app = app
        self.context = context
        self.channel = channel
        self.counted = counted and context.stream_id is not None
        self.user_id = context.principal.user_id if context.principal else None
        self.member = member_of(self.user_id, randomids.token_hex(8))
        self._watching: asyncio.Task[bool] | None = None
        self.flood = app.gateway.flood_guard()

    def opened(self, connection: WebSocketConnection) -> None:
        app = self.app
        self.context.connection = connection
        app.gateway.hub.subscribe(connection, self.channel, self.encoder)
        now = app.runtime.clock.now()
        connection.send(
            plain_frame(
                CONNECTED,
                {
                    "stream_id": self.context.stream_id,
                    "user_id": self.user_id,
                    "timestamp": iso(now),
                },
            )
        )
        stream_id = self.context.stream_id
        if self.counted and stream_id is not None:
            self._watching = app.gateway.spawn(self._watch(stream_id), name="viewer-join")

    def closed(self, connection: WebSocketConnection) -> None:
        self.flood.clear()
        watching, self._watching = self._watching, None
        if watching is not None:
            self.app.gateway.spawn(self._unwatch(watching), name="viewer-leave")

    async def _watch(self, stream_id: int) -> bool:
        if self.user_id is not None:  # its viewing session row points at the user's
            await self.app.profiles.ready(self.user_id)
        context = self.context
        return await self.app.viewers.watch(
            stream_id, self.member, region=context.region, address=context.address
        )

    async def _unwatch(self, watching: asyncio.Task[bool]) -> None:
        # After the join, whatever the order the two tasks were started in.
        try:
            await watching
        except Exception:
            return  # never held (logged by the gateway)
        stream_id = self.context.stream_id
        if stream_id is not None:
            await self.app.viewers.unwatch(stream_id, self.member)

    def received(self, connection: WebSocketConnection, text: str) -> None:
        if not self._within_budget(connection, self.flood.message()):
            return
        message = client_message(text)
        if message is None:
            connection.send(
                error_frame(
                    "malformed", 'Send one JSON object per frame: {"event": "...", "data": {...}}.'
                )
            )
            return
        name: str = message["event"]
        field = find_control(message)
        if field is not None:
            connection.send(error_frame("invalid", control_message(field)))
            return
        data = message.get("data")
        data = data if isinstance(data, dict) else {}
        if name == "ping":
            connection.send(plain_frame(PONG, {"timestamp": data.get("timestamp")}))
            return
        handler = self.app.actions.get(name)
        if handler is None:
            connection.send(error_frame("unknown_event", f"Unknown event '{name[:40]}'."))
            return
        if self.context.principal is None:
            connection.send(
                error_frame(
                    "unauthenticated", "Sign in to do this: connect with a token.", event=name
                )
            )
            return
        work = functools.partial(self._act, connection, handler, data)
        self._within_budget(connection, self.flood.action(work, name))

    def _within_budget(self, connection: WebSocketConnection, verdict: Verdict) -> bool:
        """Answer a verdict of the socket's budget: told once, then quiet, then closed."""
        if verdict is Verdict.ACCEPTED:
            return True
        if verdict is Verdict.TOLD:
            connection.send(
                error_frame(
                    "rate_limited",
                    "Too many messages: slow down or this connection will be closed.",
                    retry_after=self.flood.retry_after,
                )
            )
        elif verdict is Verdict.CLOSE:
            connection.close(*self.close_codes.flood)
        return False

    async def _act(
        self, connection: WebSocketConnection, handler: ActionHandler, data: dict[str, Any]
    ) -> None:
        try:
            if self.user_id is not None:
                await self.app.profiles.ready(self.user_id)  # the actions store rows of theirs
            problem = await handler(self.context, data)
        except Exception as exc:
            dependency = dependency_of(exc)
            if dependency is None:
                raise
            problem = {
                "code": "unavailable",
                "message": unavailable_message(dependency),
                "retry_after": RETRY_AFTER_SECONDS,
            }
        if problem is not None:
            connection.send(plain_frame(ERROR, problem))
