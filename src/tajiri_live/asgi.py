"""ASGI entry for uvicorn's factory mode (used by `serve --workers N`)."""

from __future__ import annotations

from fastapi import FastAPI

from tajiri_live.app import create_app
from tajiri_live.core.settings import load_settings


def app_factory() -> FastAPI:
    return create_app(load_settings())
