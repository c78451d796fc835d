"""nginx-rtmp's callbacks (`/api/rtmp/...`) and the owner's ingest routes.

nginx-rtmp posts a form and reads only the status: 2xx allows, 3xx renames the stream (the
`Location` is the new name), anything else refuses the publish or drops the publisher.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response

from tajiri_live.core.clock import iso
from tajiri_live.core.dependencies import RuntimeDep, SessionDep
from tajiri_live.core.errors import ValidationFailed
from tajiri_live.core.text import Text, control_message, find_control
from tajiri_live.ingest import service
from tajiri_live.ingest.dependencies import IngestDep
from tajiri_live.ingest.service import Publisher, Refused
from tajiri_live.streams import presenters
from tajiri_live.streams.dependencies import OwnedStreamDep

log = logging.getLogger(__name__)

callbacks = APIRouter(prefix="/rtmp", tags=["ingest"], include_in_schema=True)
owner = APIRouter(prefix="/streams", tags=["ingest"])

SecretQuery = Annotated[Text | None, Query(description="The shared ingest secret")]
NodeQuery = Annotated[Text | None, Query(description="The calling nginx's address")]


async def _publisher(
    request: Request, control: str | None = None, media: str | None = None
) -> Publisher:
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    field = find_control({**fields, "control": control, "media": media})
    if field is not None:  # nginx reads only the status: any 4xx refuses
        raise ValidationFailed({field: [control_message(field)]})
    return Publisher.from_form(fields, control=control, media=media)


def _refused(reason: Refused) -> Response:
    log.info("ingest refused: %s", reason)
    return PlainTextResponse(f"Refused: {reason}", status_code=403)


@callbacks.post("/publish", summary="nginx-rtmp on_publish: may this encoder go on air?")
async def on_publish(
    request: Request,
    runtime: RuntimeDep,
    ingest: IngestDep,
    secret: SecretQuery = None,
    control: NodeQuery = None,
    media: NodeQuery = None,
) -> Response:
    service.check_secret(runtime, secret)
    try:
        name = await ingest.on_publish(await _publisher(request, control, media))
    except Refused as reason:
        return _refused(reason)
    # A name without rtmp:// renames the stream in place: HLS and recordings follow the id.
    return Response(status_code=302, headers={"Location": name})


@callbacks.post("/publish-done", summary="nginx-rtmp on_publish_done: the encoder left")
async def on_publish_done(
    request: Request, runtime: RuntimeDep, secret: SecretQuery = None
) -> Response:
    service.check_secret(runtime, secret)
    await service.publish_done(runtime, await _publisher(request))
    return PlainTextResponse("ok")


@callbacks.post("/update", summary="nginx-rtmp on_update: the encoder is still there")
async def on_update(
    request: Request, runtime: RuntimeDep, ingest: IngestDep, secret: SecretQuery = None
) -> Response:
    service.check_secret(runtime, secret)
    form = await request.form()
    if form.get("call") != "update_publish":
        return PlainTextResponse("ok")  # players (the local relay, the ladder): nothing to do
    try:
        await ingest.on_update(await _publisher(request))
    except Refused as reason:
        return _refused(reason)
    return PlainTextResponse("ok")


@owner.post("/{stream_id}/rotate-key", summary="A new stream key; the old one stops working")
async def rotate_key(
    stream: OwnedStreamDep, session: SessionDep, runtime: RuntimeDep, ingest: IngestDep
) -> dict[str, Any]:
    stream = await service.rotate_key(session, runtime=runtime, stream=stream)
    await ingest.drop_publisher(stream)  # the old key's encoder, if one is connected
    settings = runtime.settings
    return {
        "success": True,
        "message": "Stream key rotated.",
        "stream_key": stream.stream_key,
        "stream_url": presenters.ingest_url(stream, settings),
        "key_expires_at": iso(presenters.key_expires_at(stream, settings)),
    }


@owner.get("/{stream_id}/ingest", summary="The encoder's connection and health (owner)")
async def ingest_status(stream: OwnedStreamDep, runtime: RuntimeDep) -> dict[str, Any]:
    return {"success": True, "data": presenters.ingest_dict(stream, runtime.settings)}
