"""Uploaded images: checked to really be images, size-limited, stored under var/storage."""

from __future__ import annotations

import asyncio
import io
import secrets
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from tajiri_live.core.errors import ValidationFailed
from tajiri_live.core.payload import FilePart

ALLOWED_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}
MAX_PIXELS = 40_000_000  # refuse decompression bombs before decoding


def _image_extension(data: bytes) -> str | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                return None
            fmt = image.format
            image.verify()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    return ALLOWED_FORMATS.get(fmt or "")


async def store_image(
    upload: FilePart, *, field: str, storage_dir: Path, folder: str, max_bytes: int
) -> str:
    """Validate and store an image; returns its path relative to the storage root."""
    data = upload.data
    if len(data) > max_bytes:
        raise ValidationFailed(
            {field: [f"The {field} may not be greater than {max_bytes // 1024} kilobytes."]}
        )
    extension = await asyncio.to_thread(_image_extension, data)
    if extension is None:
        raise ValidationFailed({field: [f"The {field} must be an image (jpeg, png, webp or gif)."]})
    relative = f"{folder}/{secrets.token_hex(16)}.{extension}"
    target = storage_dir / relative
    await asyncio.to_thread(_write, target, data)
    return relative


def _write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
