"""Follows, devices, notification lists and preferences, and the manual reminder."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tajiri_live.core.clock import iso
from tajiri_live.core.db import dialect_insert
from tajiri_live.core.dependencies import RuntimeDep, SessionDep
from tajiri_live.core.errors import ApiError, ValidationFailed, forbidden
from tajiri_live.core.pagination import page_links
from tajiri_live.core.payload import MAX_ID, body_doc, read_payload, validated
from tajiri_live.core.runtime import Runtime
from tajiri_live.core.text import Text, control_message, find_control
from tajiri_live.notifications import messages, service
from tajiri_live.notifications.models import (
    Device,
    NotificationPreference,
    NotificationTrigger,
    StreamNotification,
)
from tajiri_live.streams.dependencies import OwnedStreamDep
from tajiri_live.streams.lifecycle import FINAL_STATUSES
from tajiri_live.streams.presenters import storage_base_url
from tajiri_live.users import presenters as user_presenters
from tajiri_live.users import service as users_service
from tajiri_live.users.dependencies import CurrentPrincipal
from tajiri_live.users.models import Follow, User

router = APIRouter(tags=["notifications"])

UserId = Annotated[int, Path(ge=1, le=MAX_ID)]
PageNumber = Annotated[int, Query(ge=1, le=1_000_000)]
PerPage = Annotated[int | None, Query(ge=1, le=100)]
MAX_SYNC = 10_000


def _own(user_id: int, principal: Any) -> None:
    if user_id != principal.user_id and not principal.is_admin:
        raise forbidden("You can only see and change your own notifications.")


# --- follows -----------------------------------------------------------------------------------


async def _known(session: AsyncSession, runtime: Runtime, user_id: int) -> None:
    """A user seen here, or one the identity source knows (then mirrored here): a row per
    arbitrary id would let anyone fill the users table."""
    if await users_service.get_user(session, user_id) is not None:
        return
    known = await runtime.identity.known_user(user_id)
    if known is None:
        raise ApiError(404, f"There is no user {user_id}.")
    await users_service.sync_user(session, principal=known, cache=runtime.synced_profiles)


@router.post("/users/{user_id}/follow", summary="Follow a user")
async def follow(
    user_id: UserId, session: SessionDep, runtime: RuntimeDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    if user_id == principal.user_id:
        raise ApiError(422, "You cannot follow yourself.", errors={"user_id": ["Not yourself."]})
    now = runtime.clock.now()
    await _known(session, runtime, user_id)
    insert = dialect_insert(session)
    await session.execute(
        insert(Follow)
        .values(follower_id=principal.user_id, followed_id=user_id, created_at=now)
        .on_conflict_do_nothing(index_elements=["follower_id", "followed_id"])
    )
    await session.commit()
    count = await service.follower_count(session, user_id)
    return {"success": True, "is_following": True, "followers_count": count}


@router.delete("/users/{user_id}/follow", summary="Stop following a user")
async def unfollow(
    user_id: UserId, session: SessionDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    await session.execute(
        delete(Follow).where(Follow.follower_id == principal.user_id, Follow.followed_id == user_id)
    )
    await session.commit()
    count = await service.follower_count(session, user_id)
    return {"success": True, "is_following": False, "followers_count": count}


@router.get("/users/{user_id}/followers", summary="A user's followers, newest first")
async def followers(
    request: Request,
    user_id: UserId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    page: PageNumber = 1,
    per_page: PerPage = None,
) -> dict[str, Any]:
    size = per_page or runtime.settings.page_size
    total = await service.follower_count(session, user_id)
    rows = await session.scalars(
        select(User)
        .join(Follow, Follow.follower_id == User.id)
        .where(Follow.followed_id == user_id)
        .order_by(Follow.id.desc())
        .offset((page - 1) * size)
        .limit(size)
    )
    base = storage_base_url(runtime.settings)
    data = [user_presenters.user_dict(u, storage_base_url=base) for u in rows]
    meta, links = page_links(request, page=page, per_page=size, total=total, count=len(data))
    return {"success": True, "data": data, "meta": meta, "links": links}


class FollowPair(BaseModel):
    follower_id: int = Field(ge=1, le=MAX_ID)
    followed_id: int = Field(ge=1, le=MAX_ID)


class FollowSync(BaseModel):
    follows: list[FollowPair] = Field(default_factory=list, max_length=MAX_SYNC)
    unfollows: list[FollowPair] = Field(default_factory=list, max_length=MAX_SYNC)


@router.post(
    "/admin/follows/sync",
    summary="Bulk add and remove follows (the main app's)",
    openapi_extra=body_doc(FollowSync),
)
async def sync_follows(
    request: Request, session: SessionDep, runtime: RuntimeDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    if not principal.is_admin:
        raise forbidden("Only an admin or the main app's service token can sync follows.")
    body = validated(FollowSync, await read_payload(request))
    now = runtime.clock.now()
    pairs = [p for p in body.follows if p.follower_id != p.followed_id]
    insert = dialect_insert(session)
    people = {i for p in pairs for i in (p.follower_id, p.followed_id)}
    if people:
        await session.execute(
            insert(User)
            .values([{"id": i, "created_at": now, "updated_at": now} for i in sorted(people)])
            .on_conflict_do_nothing(index_elements=["id"])
        )
        await session.execute(
            insert(Follow)
            .values(
                [
                    {"follower_id": p.follower_id, "followed_id": p.followed_id, "created_at": now}
                    for p in pairs
                ]
            )
            .on_conflict_do_nothing(index_elements=["follower_id", "followed_id"])
        )
    removed = 0
    for pair in body.unfollows:
        result = await session.execute(
            delete(Follow).where(
                Follow.follower_id == pair.follower_id, Follow.followed_id == pair.followed_id
            )
        )
        removed += int(getattr(result, "rowcount", 0) or 0)
    await session.commit()
    return {"success": True, "followed": len(pairs), "unfollowed": removed}


# --- devices -----------------------------------------------------------------------------------


class DeviceIn(BaseModel):
    token: Text = Field(min_length=10, max_length=4096)
    platform: Literal["android", "ios", "web"] = "android"
    locale: Text = Field(default="sw", min_length=2, max_length=16)


@router.post(
    "/devices",
    status_code=201,
    summary="Register a device for push (FCM token)",
    openapi_extra=body_doc(DeviceIn),
)
async def register_device(
    request: Request, session: SessionDep, runtime: RuntimeDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    body = validated(DeviceIn, await read_payload(request))
    now = runtime.clock.now()
    insert = dialect_insert(session)
    statement = insert(Device).values(
        user_id=principal.user_id,
        token=body.token,
        platform=body.platform,
        locale=body.locale,
        created_at=now,
        updated_at=now,
    )
    # A token moves with the app's sign-in: it belongs to whoever registered it last.
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["token"],
            set_={
                "user_id": statement.excluded.user_id,
                "platform": statement.excluded.platform,
                "locale": statement.excluded.locale,
                "updated_at": statement.excluded.updated_at,
            },
        )
    )
    await session.commit()
    return {"success": True, "data": {"platform": body.platform, "locale": body.locale}}


@router.delete("/devices", summary="Unregister a device")
async def unregister_device(
    request: Request, session: SessionDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    token = (await read_payload(request)).get("token") or request.query_params.get("token")
    if not isinstance(token, str) or not token:
        raise ApiError(422, "The token field is required.", errors={"token": ["Required."]})
    if find_control(token) is not None:
        raise ValidationFailed({"token": [control_message("token")]})
    result = await session.execute(
        delete(Device).where(Device.token == token, Device.user_id == principal.user_id)
    )
    await session.commit()
    return {"success": True, "removed": int(getattr(result, "rowcount", 0) or 0)}


# --- reading -----------------------------------------------------------------------------------


def _notification(n: StreamNotification) -> dict[str, Any]:
    return {
        "id": n.id,
        "stream_id": n.stream_id,
        "user_id": n.user_id,
        "type": n.type,
        "title": n.title,
        "message": n.message,
        "data": n.data,
        "is_read": n.read_at is not None,
        "read_at": iso(n.read_at),
        "sent_at": iso(n.sent_at),
        "created_at": iso(n.created_at),
    }


@router.get("/users/{user_id}/stream-notifications", summary="My stream notifications")
async def list_notifications(
    request: Request,
    user_id: UserId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    page: PageNumber = 1,
    per_page: PerPage = None,
    unread: bool = False,
) -> dict[str, Any]:
    _own(user_id, principal)
    size = per_page or runtime.settings.page_size
    conditions = [StreamNotification.user_id == user_id]
    if unread:
        conditions.append(StreamNotification.read_at.is_(None))
    total = await session.scalar(select(func.count()).where(*conditions)) or 0
    rows = await session.scalars(
        select(StreamNotification)
        .where(*conditions)
        .order_by(StreamNotification.created_at.desc(), StreamNotification.id.desc())
        .offset((page - 1) * size)
        .limit(size)
    )
    data = [_notification(n) for n in rows]
    meta, links = page_links(request, page=page, per_page=size, total=total, count=len(data))
    meta["unread_count"] = await service.unread_count(session, user_id)
    return {"success": True, "data": data, "meta": meta, "links": links}


@router.post(
    "/users/{user_id}/stream-notifications/{notification_id}/read", summary="Mark one read"
)
async def read_one(
    user_id: UserId,
    notification_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    _own(user_id, principal)
    found = await session.get(StreamNotification, notification_id)
    if found is None or found.user_id != user_id:
        raise ApiError(404, "Notification not found.")
    await service.mark_read(
        session, user_id=user_id, now=runtime.clock.now(), notification_id=notification_id
    )
    return {"success": True, "unread_count": await service.unread_count(session, user_id)}


@router.post("/users/{user_id}/stream-notifications/read-all", summary="Mark all read")
async def read_all(
    user_id: UserId, session: SessionDep, runtime: RuntimeDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    _own(user_id, principal)
    marked = await service.mark_read(session, user_id=user_id, now=runtime.clock.now())
    return {"success": True, "marked": marked, "unread_count": 0}


# --- preferences -------------------------------------------------------------------------------


class PreferenceIn(BaseModel):
    type: Literal["scheduled", "starting_soon", "now_live", "ended", "reminder"] | None = None
    streamer_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    enabled: bool


@router.get("/users/{user_id}/notification-preferences", summary="My notification choices")
async def preferences(
    user_id: UserId, session: SessionDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    _own(user_id, principal)
    rows = await session.scalars(
        select(NotificationPreference).where(NotificationPreference.user_id == user_id)
    )
    return {
        "success": True,
        "data": {
            "defaults": messages.DEFAULT_ENABLED,
            "choices": [
                {"type": r.type, "streamer_id": r.streamer_id, "enabled": r.enabled} for r in rows
            ],
        },
    }


@router.put(
    "/users/{user_id}/notification-preferences",
    summary="Opt in or out",
    openapi_extra=body_doc(PreferenceIn),
)
async def set_preference(
    request: Request,
    user_id: UserId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    _own(user_id, principal)
    body = validated(PreferenceIn, await read_payload(request))
    # An admin's choice for a user not seen yet; a streamer only if the identity source
    # knows them (as for follows). Both before the lock: making a streamer's row commits.
    await users_service.ensure_user(session, user_id=user_id, now=runtime.clock.now())
    if body.streamer_id is not None:
        await _known(session, runtime, body.streamer_id)
    # NULLs never conflict in a unique index: replace the row explicitly, one request of the
    # user at a time (two at once each found nothing to delete and both inserted).
    await users_service.lock_user(session, user_id)
    await session.execute(
        delete(NotificationPreference).where(
            NotificationPreference.user_id == user_id,
            NotificationPreference.type.is_(None)
            if body.type is None
            else NotificationPreference.type == body.type,
            NotificationPreference.streamer_id.is_(None)
            if body.streamer_id is None
            else NotificationPreference.streamer_id == body.streamer_id,
        )
    )
    session.add(
        NotificationPreference(
            user_id=user_id, streamer_id=body.streamer_id, type=body.type, enabled=body.enabled
        )
    )
    await session.commit()
    return {"success": True, "data": body.model_dump()}


# --- the manual reminder -----------------------------------------------------------------------


@router.post("/streams/{stream_id}/notify-followers", summary="Remind followers (owner)")
async def notify_followers(
    stream: OwnedStreamDep, session: SessionDep, runtime: RuntimeDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    if stream.status_enum in FINAL_STATUSES:
        raise ApiError(409, "The stream is over: there is nothing to remind anyone of.")
    now = runtime.clock.now()
    cooldown = runtime.settings.notify_followers_cooldown_seconds
    last = await session.scalar(
        select(func.max(NotificationTrigger.created_at)).where(
            NotificationTrigger.stream_id == stream.id,
            NotificationTrigger.type == messages.REMINDER,
        )
    )
    if last is not None and now - last < timedelta(seconds=cooldown):
        wait = int(cooldown - (now - last).total_seconds()) + 1
        raise ApiError(
            429,
            f"Followers were reminded recently; try again in {wait} seconds.",
            headers={"Retry-After": str(wait)},
            retry_after=wait,
        )
    await service.enqueue(
        session,
        stream=stream,
        kind=messages.REMINDER,
        now=now,
        key=f"{stream.id}:{messages.REMINDER}:{now.timestamp():.6f}",
    )
    await session.commit()
    count = await service.follower_count(session, stream.user_id)
    return {"success": True, "message": f"{count} followers will be reminded.", "notified": count}
