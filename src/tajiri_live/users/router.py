"""`GET /api/me`: who the token names, so a web page can show what that person may do."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tajiri_live.users.dependencies import CurrentPrincipal
from tajiri_live.users.presenters import display_name

router = APIRouter(tags=["users"])


@router.get("/me", summary="Who the token belongs to, and whether they are an admin")
async def who_am_i(principal: CurrentPrincipal) -> dict[str, Any]:
    return {
        "success": True,
        "data": {
            "id": principal.user_id,
            "display_name": display_name(
                principal.user_id, principal.first_name, principal.last_name, principal.username
            ),
            "is_admin": principal.is_admin,
            "verified": principal.verified,
        },
    }
