"""nginx with the RTMP module and ffmpeg, which the ingest tests run for real."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")


def missing_media_tools() -> list[str]:
    missing = [tool for tool in ("nginx", "ffmpeg", "ffprobe") if shutil.which(tool) is None]
    if not RTMP_MODULE.exists():
        missing.append("libnginx-mod-rtmp")
    return missing


def require_media_tools() -> None:
    """Skip without them on a developer's machine; in CI their absence is a failure."""
    missing = missing_media_tools()
    if not missing:
        return
    message = f"apt-get install nginx libnginx-mod-rtmp ffmpeg (missing: {', '.join(missing)})"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
