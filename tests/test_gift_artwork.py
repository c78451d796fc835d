"""The seeded gifts' icons and animations are served where the client looks for them."""

from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from PIL import Image

from tajiri_live.core.settings import Settings
from tajiri_live.gifts import artwork

SIZE = 256


def storage_path(path: str) -> str:
    """The client's `GiftModel.iconUrl`: `${ApiConfig.storageUrl}/$iconPath`."""
    return f"/storage/{path}"


async def test_every_catalog_icon_is_a_drawn_image(client: httpx.AsyncClient) -> None:
    catalog = (await client.get("/api/streams/gifts")).json()["data"]
    assert len(catalog) == 6
    seen = set()
    for gift in catalog:
        answer = await client.get(storage_path(gift["icon_path"]))
        assert answer.status_code == 200, gift["icon_path"]
        assert answer.headers["content-type"] == "image/png"
        image = Image.open(BytesIO(answer.content))
        assert image.format == "PNG" and image.size == (SIZE, SIZE)
        # Drawn: opaque ink in the middle, a transparent corner, more than a few colours.
        rgba = image.convert("RGBA")
        assert rgba.getpixel((128, 128))[3] == 255
        assert rgba.getpixel((0, 0))[3] == 0
        assert len(rgba.getcolors(maxcolors=SIZE * SIZE) or []) > 50
        seen.add(answer.content)
    assert len(seen) == len(catalog)  # six different pictures


async def test_every_catalog_animation_is_a_lottie_file(client: httpx.AsyncClient) -> None:
    catalog = (await client.get("/api/streams/gifts")).json()["data"]
    for gift in catalog:
        answer = await client.get(storage_path(gift["animation_path"]))
        assert answer.status_code == 200, gift["animation_path"]
        assert answer.headers["content-type"] == "application/json"
        animation: dict[str, Any] = json.loads(answer.content)
        assert (animation["w"], animation["h"]) == (256, 256)
        assert animation["op"] > animation["ip"] and animation["fr"] > 0
        (layer,) = animation["layers"]
        assert layer["ty"] == 4 and layer["op"] == animation["op"]
        assert len(layer["shapes"]) == len(artwork.DRAWINGS[gift["slug"]])
        assert all(group["ty"] == "gr" for group in layer["shapes"])


def test_files_already_there_are_kept_and_missing_ones_written(tmp_path: Path) -> None:
    own = tmp_path / "gifts" / "rose.png"
    own.parent.mkdir()
    own.write_bytes(b"the operator's own rose")
    written = artwork.install(tmp_path)
    assert "gifts/rose.png" not in written and "gifts/rose.json" in written
    assert own.read_bytes() == b"the operator's own rose"
    assert (tmp_path / "gifts" / "lion.png").read_bytes() == artwork.png("lion")
    assert artwork.install(tmp_path) == []  # nothing missing, nothing rendered
    assert not [p for p in (tmp_path / "gifts").iterdir() if p.name.startswith(".")]


def test_the_app_installs_them_in_its_storage_folder(app: FastAPI, settings: Settings) -> None:
    names = sorted(p.name for p in (settings.media_dir / "gifts").iterdir())
    assert names == sorted(f"{slug}.{ext}" for slug in artwork.DRAWINGS for ext in ("png", "json"))
