"""Gift routes. `/streams/gifts` is registered before `/streams/{id}` so it wins."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tajiri_live.core.dependencies import SessionDep
from tajiri_live.gifts import service
from tajiri_live.gifts.presenters import gift_dict

router = APIRouter(prefix="/streams", tags=["gifts"])


@router.get("/gifts", summary="The active gift catalog")
async def catalog(session: SessionDep) -> dict[str, Any]:
    return {"success": True, "data": [gift_dict(g) for g in await service.active_catalog(session)]}
