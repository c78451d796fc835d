"""Who is calling: the bearer token, verified, with the user row kept in sync."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from tajiri_live.core.auth import Principal, bearer_token
from tajiri_live.core.dependencies import RuntimeDep, SessionDep
from tajiri_live.core.errors import ApiError, forbidden
from tajiri_live.users import service


async def optional_principal(
    runtime: RuntimeDep,
    session: SessionDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal | None:
    token = bearer_token(authorization)
    if token is None:
        return None
    principal = runtime.tokens.decode(token)
    await service.sync_user(session, principal=principal, cache=runtime.synced_profiles)
    return principal


async def require_principal(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    if principal is None:
        raise ApiError(401, "Unauthenticated.", headers={"WWW-Authenticate": "Bearer"})
    return principal


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]
CurrentPrincipal = Annotated[Principal, Depends(require_principal)]


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
