"""The console page's Content-Security-Policy lets it play and show this deployment's media."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

import tajiri_live.console
from tajiri_live.console.router import content_security_policy, media_origins
from tajiri_live.core.settings import Settings


def directive(policy: str, name: str) -> list[str]:
    for part in policy.split(";"):
        words = part.split()
        if words and words[0] == name:
            return words[1:]
    raise AssertionError(f"no {name} in {policy}")


async def test_the_page_names_the_plain_http_media_origin(client: httpx.AsyncClient) -> None:
    page = await client.get("/console/")
    policy = page.headers["content-security-policy"]
    # Development: nginx serves HLS over plain http on its own port.
    for name in ("connect-src", "media-src", "img-src"):
        assert "http://127.0.0.1:8088" in directive(policy, name), name
    assert directive(policy, "script-src") == ["'self'"]


@pytest.mark.parametrize(
    ("media", "expected"),
    [
        ("https://media.example", []),  # https is allowed anyway
        ("http://10.0.0.7:8088/cdn/", ["http://10.0.0.7:8088"]),
    ],
)
def test_only_plain_http_media_origins_are_added(media: str, expected: list[str]) -> None:
    settings = Settings(media_base_url=media, hls_base_url="https://hls.example/hls")
    assert media_origins(settings) == expected
    policy = content_security_policy(media_origins(settings))
    assert all(origin in directive(policy, "media-src") for origin in expected)


async def test_me_names_the_token_and_whether_it_is_an_admin(
    client: httpx.AsyncClient, auth: Any
) -> None:
    creator = await client.get("/api/me", headers=auth(5, first_name="Asha"))
    assert creator.status_code == 200, creator.text
    assert creator.json()["data"] == {
        "id": 5,
        "display_name": "Asha",
        "is_admin": False,
        "verified": True,
    }
    admin = await client.get("/api/me", headers=auth(9, admin=True))
    assert admin.json()["data"]["is_admin"] is True
    assert (await client.get("/api/me")).status_code == 401


def test_every_console_string_is_in_english_and_swahili() -> None:
    static = Path(tajiri_live.console.__file__).parent / "static"
    dictionaries = (static / "i18n.js").read_text()
    english, swahili = dictionaries.split("\n  sw: {")
    key = re.compile(r"(?:^\s+|\", )(\w+): \"", re.MULTILINE)  # at a line's start or after a string
    en_keys, sw_keys = set(key.findall(english)), set(key.findall(swahili))
    assert len(en_keys) > 100
    assert en_keys == sw_keys, en_keys ^ sw_keys
    script = (static / "console.js").read_text()
    used = set(re.findall(r"\bt\(\"(\w+)\"", script))
    assert used <= en_keys, used - en_keys
