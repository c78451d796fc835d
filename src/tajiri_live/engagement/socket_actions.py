"""Client actions over the plain WebSocket, through the same services (and limits) as REST."""

from __future__ import annotations

from typing import Any

from tajiri_live.core.errors import ApiError
from tajiri_live.core.runtime import Runtime
from tajiri_live.engagement import service
from tajiri_live.streams import service as streams_service
from tajiri_live.viewers.socket import ActionHandler, SocketContext

ERROR_CODES = {
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
}


def error_data(error: ApiError) -> dict[str, Any]:
    """An `error` event's data for a refused action, with `retry_after` when there is one."""
    data: dict[str, Any] = {
        "code": ERROR_CODES.get(error.status_code, "error"),
        "message": error.message,
    }
    if "retry_after" in error.extra:
        data["retry_after"] = error.extra["retry_after"]
    return data


def reaction_action(runtime: Runtime) -> ActionHandler:
    async def handle(context: SocketContext, data: dict[str, Any]) -> dict[str, Any] | None:
        if context.stream_id is None or context.principal is None:
            return {"code": "invalid", "message": "Reactions are sent on a stream's socket."}
        reaction_type = data.get("reaction_type")
        if not isinstance(reaction_type, str):
            return {"code": "invalid", "message": "The reaction type field is required."}
        try:
            await service.reaction_allowed(
                runtime,
                stream_id=context.stream_id,
                user_id=context.principal.user_id,
                reaction_type=reaction_type,
            )
            async with runtime.sessions() as session:
                stream = await streams_service.get_visible_stream(
                    session, stream_id=context.stream_id, viewer=context.principal, people=False
                )
                await service.react(
                    session,
                    runtime=runtime,
                    stream=stream,
                    principal=context.principal,
                    reaction_type=reaction_type,
                    allowed=True,
                )
        except ApiError as error:
            return error_data(error)
        return None

    return handle
