"""This process's ingest side (nginx's HTTP endpoints, playlist waits) for the routes."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from tajiri_live.ingest.service import Ingest


def get_ingest(request: Request) -> Ingest:
    return cast(Ingest, request.app.state.ingest)


IngestDep = Annotated[Ingest, Depends(get_ingest)]
