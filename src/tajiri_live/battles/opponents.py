"""Loading the two streams of an invitation for the router and the socket actions (the
streams service calls battles when a stream ends, so the battles service cannot call it)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from tajiri_live.core.auth import Principal
from tajiri_live.core.errors import ApiError, ValidationFailed
from tajiri_live.streams import service as streams_service
from tajiri_live.streams.models import LiveStream


async def opponent_stream(
    session: AsyncSession, *, stream_id: int, principal: Principal
) -> LiveStream:
    """The stream invited to battle, if the inviter may see it; a 422 naming the field if not."""
    try:
        return await streams_service.get_visible_stream(
            session, stream_id=stream_id, viewer=principal, people=False
        )
    except ApiError as error:
        if error.status_code != 404:
            raise
        raise ValidationFailed(
            {"opponent_stream_id": ["The selected opponent stream does not exist."]}
        ) from None
