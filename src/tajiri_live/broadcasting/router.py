"""Laravel Echo's channel auth endpoint and the Pusher HTTP API (`/apps/{app_id}/...`)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field, ValidationError

from tajiri_live.broadcasting import service
from tajiri_live.broadcasting.apps import PusherApps
from tajiri_live.core.dependencies import RuntimeDep, SessionDep
from tajiri_live.core.errors import ApiError, laravel_errors, summary
from tajiri_live.core.payload import body_doc, read_payload, validated
from tajiri_live.core.runtime import Runtime
from tajiri_live.core.text import Text
from tajiri_live.realtime.events import Event
from tajiri_live.realtime.pusher import (
    CHANNEL_NAME,
    MAX_EVENT_NAME,
    PusherApp,
    SignatureError,
    channel_auth,
    hub_channel,
    verify_request,
)
from tajiri_live.users.dependencies import CurrentPrincipal

router = APIRouter(tags=["broadcasting"])

SOCKET_ID = r"^\d{1,20}\.\d{1,20}$"
MAX_CHANNELS_PER_EVENT = 100
MAX_BATCH = 10


def pusher_apps(request: Request) -> PusherApps:
    apps: PusherApps = request.app.state.pusher_apps
    return apps


AppsDep = Annotated[PusherApps, Depends(pusher_apps)]


# --- channel auth (Laravel Echo's authEndpoint) ----------------------------------------------


class AuthRequest(BaseModel):
    socket_id: Text = Field(pattern=SOCKET_ID)
    channel_name: Text = Field(pattern=CHANNEL_NAME.pattern)
    app_key: Text | None = Field(default=None, max_length=100)  # default: the first app


@router.post(
    "/broadcasting/auth",
    summary="Authorise a private or presence channel",
    openapi_extra=body_doc(AuthRequest),
)
@router.post("/api/broadcasting/auth", include_in_schema=False)
async def authorise_channel(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    apps: AppsDep,
) -> dict[str, Any]:
    body = validated(AuthRequest, await read_payload(request))
    key = body.app_key or request.headers.get("x-pusher-key")
    app = apps.by_key.get(key) if key else apps.default
    if app is None:
        raise ApiError(404, "Unknown Pusher app key.")
    member = await service.authorize(
        session, runtime=runtime, principal=principal, channel=body.channel_name
    )
    if member is None:
        return {"auth": channel_auth(app, body.socket_id, body.channel_name, None)}
    channel_data = orjson.dumps(member).decode()
    return {
        "auth": channel_auth(app, body.socket_id, body.channel_name, channel_data),
        "channel_data": channel_data,
    }


# --- the HTTP API ------------------------------------------------------------------------------


async def signed_app(
    request: Request, app_id: Annotated[Text, Path(max_length=20)], apps: AppsDep
) -> PusherApp:
    """The app whose secret signed this request (401 with the reason otherwise)."""
    app = apps.by_id.get(app_id)
    if app is None:
        raise ApiError(404, f"Unknown app id {app_id[:20]}.")
    try:
        verify_request(
            app,
            request.method,
            request.url.path,
            dict(request.query_params),
            await request.body(),
            time.time(),
        )
    except SignatureError as error:
        raise ApiError(401, str(error)) from None
    return app


SignedApp = Annotated[PusherApp, Depends(signed_app)]


class TriggerRequest(BaseModel):
    name: Text = Field(min_length=1, max_length=MAX_EVENT_NAME)
    data: Any = None  # a JSON string, as the SDKs send it (anything else is encoded)
    channels: list[Annotated[Text, Field(pattern=CHANNEL_NAME.pattern)]] | None = Field(
        default=None, min_length=1, max_length=MAX_CHANNELS_PER_EVENT
    )
    channel: Text | None = Field(default=None, pattern=CHANNEL_NAME.pattern)
    socket_id: Text | None = Field(default=None, pattern=SOCKET_ID)
    info: Text | None = Field(default=None, max_length=200)

    def targets(self) -> list[str]:
        return self.channels or ([self.channel] if self.channel else [])


class BatchRequest(BaseModel):
    batch: list[TriggerRequest] = Field(min_length=1, max_length=MAX_BATCH)


def _bad_request(model: type[BaseModel], body: object) -> Any:
    # Pusher answers 400 to a bad request; the body still names every problem.
    try:
        return model.model_validate(body)
    except ValidationError as error:
        errors = laravel_errors(error.errors())
        raise ApiError(400, summary(errors), errors=errors) from None


async def _json_body(request: Request) -> Any:
    try:
        return orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        raise ApiError(400, "The body is not valid JSON.") from None


def _info_fields(info: str | None) -> set[str]:
    return {part.strip() for part in (info or "").split(",") if part.strip()}


async def _channel_info(
    runtime: Runtime, app: PusherApp, channel: str, fields: set[str]
) -> dict[str, Any]:
    info: dict[str, Any] = {}
    if "subscription_count" in fields:
        info["subscription_count"] = await runtime.channels.subscription_count(app.id, channel)
    if "user_count" in fields and channel.startswith("presence-"):
        info["user_count"] = len(await runtime.channels.members(app.id, channel))
    return info


async def _trigger(runtime: Runtime, app: PusherApp, trigger: TriggerRequest) -> dict[str, Any]:
    targets = trigger.targets()
    if not targets:
        raise ApiError(400, "Name at least one channel.", errors={"channels": ["Required."]})
    wire = trigger.data if isinstance(trigger.data, str) else orjson.dumps(trigger.data).decode()
    if len(wire.encode()) > runtime.settings.pusher_max_payload_bytes:
        raise ApiError(
            413, f"The data may not exceed {runtime.settings.pusher_max_payload_bytes} bytes."
        )
    hub_names = [hub_channel(app.id, channel) for channel in targets]
    await runtime.broker.publish(
        Event(
            channel=hub_names[0],
            also=tuple(hub_names[1:]),
            name=trigger.name,
            data={},
            wire=wire,
            except_socket=trigger.socket_id,
        )
    )
    fields = _info_fields(trigger.info)
    if not fields:
        return {}
    return {"channels": {c: await _channel_info(runtime, app, c, fields) for c in targets}}


@router.post(
    "/apps/{app_id}/events",
    summary="Pusher HTTP API: trigger an event",
    openapi_extra=body_doc(TriggerRequest, forms=False),
)
async def trigger_event(request: Request, runtime: RuntimeDep, app: SignedApp) -> dict[str, Any]:
    trigger = _bad_request(TriggerRequest, await _json_body(request))
    return await _trigger(runtime, app, trigger)


@router.post(
    "/apps/{app_id}/batch_events",
    summary="Pusher HTTP API: trigger up to 10 events",
    openapi_extra=body_doc(BatchRequest, forms=False),
)
async def trigger_batch(request: Request, runtime: RuntimeDep, app: SignedApp) -> dict[str, Any]:
    batch = _bad_request(BatchRequest, await _json_body(request))
    answers = [await _trigger(runtime, app, trigger) for trigger in batch.batch]
    if not any(answers):
        return {}
    return {"batch": [answer.get("channels", {}) for answer in answers]}


@router.get("/apps/{app_id}/channels", summary="Pusher HTTP API: occupied channels")
async def list_channels(
    runtime: RuntimeDep,
    app: SignedApp,
    filter_by_prefix: Annotated[Text, Query(max_length=164)] = "",
    info: Annotated[Text | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    fields = _info_fields(info)
    if "user_count" in fields and not filter_by_prefix.startswith("presence-"):
        raise ApiError(400, "info=user_count needs filter_by_prefix=presence-.")
    occupied = await runtime.channels.occupied(app.id, filter_by_prefix)
    return {
        "channels": {
            name: ({"user_count": count} if "user_count" in fields else {})
            for name, count in occupied.items()
        }
    }


@router.get("/apps/{app_id}/channels/{channel_name}", summary="Pusher HTTP API: one channel")
async def channel_state(
    runtime: RuntimeDep,
    app: SignedApp,
    channel_name: Annotated[Text, Path(max_length=200)],
    info: Annotated[Text | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    if not CHANNEL_NAME.match(channel_name):
        raise ApiError(400, "Invalid channel name.")
    fields = _info_fields(info)
    if "user_count" in fields and not channel_name.startswith("presence-"):
        raise ApiError(400, "user_count is only for presence channels.")
    count = await runtime.channels.subscription_count(app.id, channel_name)
    return {
        "occupied": count > 0,
        **await _channel_info(runtime, app, channel_name, fields),
    }


@router.get(
    "/apps/{app_id}/channels/{channel_name}/users",
    summary="Pusher HTTP API: a presence channel's members",
)
async def channel_users(
    runtime: RuntimeDep, app: SignedApp, channel_name: Annotated[Text, Path(max_length=200)]
) -> dict[str, Any]:
    if not channel_name.startswith("presence-") or not CHANNEL_NAME.match(channel_name):
        raise ApiError(400, "Users can only be listed for presence channels.")
    members = await runtime.channels.members(app.id, channel_name)
    return {"users": [{"id": user_id} for user_id in members]}
