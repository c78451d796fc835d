"""Who is calling: the bearer token (or, when allowed, the id the legacy client names), with the
user row kept in sync."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from tajiri_live.core.auth import Principal, bearer_token
from tajiri_live.core.dependencies import RuntimeDep
from tajiri_live.core.errors import ApiError, ValidationFailed, forbidden
from tajiri_live.core.payload import MAX_ID, read_payload
from tajiri_live.core.runtime import Runtime
from tajiri_live.engagement import cohosts as cohosts_service
from tajiri_live.streams import service as streams_service
from tajiri_live.users.legacy import OWN_PATH_USER, REFUSALS, RULES, Implied, route_template
from tajiri_live.users.writer import ProfileWriter

WWW_AUTHENTICATE = {"WWW-Authenticate": "Bearer"}


async def optional_principal(
    request: Request,
    runtime: RuntimeDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal | None:
    token = bearer_token(authorization)
    if token is not None:
        address = request.client.host if request.client else None
        principal = await runtime.identity.authenticate(token, address=address)
    elif authorization is not None:
        # A header with nothing in it is a client that meant to send a token: never anonymous,
        # never a claimed id.
        raise ApiError(401, "The Authorization header is empty.", headers=WWW_AUTHENTICATE)
    elif runtime.settings.legacy_client_identity:
        async with runtime.sessions() as session:  # only here: a token needs no session
            legacy = await _legacy_principal(request, runtime, session)
        if legacy is None:
            return None
        principal = legacy
        runtime.identity.stats.legacy_requests += 1
    else:
        return None
    # In the batch concurrent requests' users are written in (one commit for them all).
    await cast(ProfileWriter, request.app.state.profile_writer).write(principal)
    return principal


async def require_principal(
    request: Request,
    runtime: RuntimeDep,
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    if principal is None:
        message = "Unauthenticated."
        if runtime.settings.legacy_client_identity:
            # The route is outside what the unmodified client may do without a token.
            message = REFUSALS.get(
                (request.method, route_template(request)),
                "This action needs a signed-in token (Authorization: Bearer <token>): "
                "a user id in the request is not enough for it.",
            )
        raise ApiError(401, message, headers=WWW_AUTHENTICATE)
    return principal


async def require_verified(
    principal: Annotated[Principal, Depends(require_principal)],
) -> Principal:
    """A caller whose credential this service checked: what moving coins needs, whatever
    route tables say (a claimed id never pays)."""
    if not principal.verified:
        raise ApiError(
            401,
            "Paying needs a signed-in token (Authorization: Bearer <token>).",
            headers=WWW_AUTHENTICATE,
        )
    return principal


def ensure_verified_for(principal: Principal, what: str) -> None:
    """Changes that decide who gets paid are not made on a claimed id."""
    if not principal.verified:
        raise ApiError(
            403,
            f"{what} needs a signed-in token (Authorization: Bearer <token>): it decides who "
            "is paid.",
        )


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]
CurrentPrincipal = Annotated[Principal, Depends(require_principal)]
VerifiedPrincipal = Annotated[Principal, Depends(require_verified)]


async def _legacy_principal(
    request: Request, runtime: Runtime, session: AsyncSession
) -> Principal | None:
    """The caller the unmodified client names for this route (users/legacy.py), if any."""
    key = (request.method, route_template(request))
    if key in OWN_PATH_USER:
        return await runtime.identity.claimed(_user_id(request.path_params.get("user_id")))
    rule = RULES.get(key)
    if rule is None:
        return None
    claimed: object = None
    if rule.query:
        claimed = request.query_params.get(rule.query)
    if claimed in (None, "") and rule.body:
        claimed = (await read_payload(request)).get(rule.body)
    if claimed not in (None, ""):
        return await runtime.identity.claimed(_user_id(claimed, rule.query or rule.body))
    stream_id = _path_id(request, "stream_id")
    implied: int | None = None
    if rule.implied is Implied.OWNER and stream_id is not None:
        implied = await streams_service.owner_of(session, stream_id)
    elif rule.implied is Implied.INVITEE and stream_id is not None:
        cohost_id = _path_id(request, "cohost_id")
        if cohost_id is not None:
            implied = await cohosts_service.invitee_of(
                session, stream_id=stream_id, cohost_id=cohost_id
            )
    return await runtime.identity.claimed(implied) if implied is not None else None


def _path_id(request: Request, name: str) -> int | None:
    value = str(request.path_params.get(name, ""))
    return int(value) if value.isascii() and value.isdigit() and int(value) <= MAX_ID else None


def _user_id(value: object, field: str | None = "user_id") -> int:
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= MAX_ID:
        name = field or "user_id"
        message = f"The {name.replace('_', ' ')} must be a positive integer."
        raise ValidationFailed({name: [message]})
    return int(text)


def ensure_same_user(claimed: object, principal: Principal | None, field: str = "user_id") -> None:
    """A user id in a body or query must be the caller's own; it is never trusted."""
    if claimed in (None, ""):
        return
    if principal is None:
        return  # anonymous readers: the claimed id is ignored, not trusted
    try:
        claimed_id = int(str(claimed))
    except ValueError as exc:
        raise ApiError(
            422,
            f"The {field} must be an integer.",
            errors={field: [f"The {field} must be an integer."]},
        ) from exc
    if claimed_id != principal.user_id:
        raise forbidden(f"The {field} does not match the authenticated user.")
