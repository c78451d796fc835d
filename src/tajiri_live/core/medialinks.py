"""Signed media links, checked by nginx's `secure_link` module (path-style tokens).

A link is `/{kind}/{token}/{expires}/{viewer}/{stream_id}{rest}`. The token signs the kind, the
stream, the viewer and the expiry, not the file: the playlist's relative segment URLs inherit
the token from the playlist's own path, so every segment is covered by the same signature.
`secure_link_md5` is the hash nginx offers; the secret is the hash input's suffix (no length
extension) and links are short-lived.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from tajiri_live.core.settings import Settings

HLS = "hls"
RECORDINGS = "recordings"
THUMBNAILS = "thumbnails"
MEDIA_KINDS = (HLS, RECORDINGS, THUMBNAILS)


_DERIVED: dict[tuple[str | None, str], str] = {}


def derive(settings: Settings, purpose: str) -> str:
    """A secret for `purpose` derived from the JWT secret: as strong and as shared between the
    nodes (and the `ingest` command) as that, with nothing more to configure. Remembered: a
    page of streams signs several links each."""
    seed = settings.jwt_secret or settings.jwt_private_key
    derived = _DERIVED.get((seed, purpose))
    if derived is None:
        if seed:
            mac = hmac.new(seed.encode(), f"tajiri-live {purpose}".encode(), hashlib.sha256)
            derived = mac.hexdigest()
        else:  # outside production only (the settings refuse it there): one per process
            derived = secrets.token_urlsafe(32)
        _DERIVED[(seed, purpose)] = derived
    return derived


def callback_secret(settings: Settings) -> str:
    return settings.ingest_secret or derive(settings, "ingest callbacks")


def link_secret(settings: Settings) -> str:
    return settings.hls_signing_secret or derive(settings, "media links")


def secure_link_expression(secret: str) -> str:
    """The `secure_link_md5` expression nginx evaluates; `token` below computes the same."""
    return f"$sl_expires:$sl_kind:$sl_stream:$sl_viewer:{secret}"


def token(secret: str, *, kind: str, stream_id: int, viewer: int, expires: int) -> str:
    digest = hashlib.md5(  # the hash nginx's secure_link checks
        f"{expires}:{kind}:{stream_id}:{viewer}:{secret}".encode()
    ).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed_path(
    secret: str, *, kind: str, stream_id: int, rest: str, viewer: int, expires: int
) -> str:
    """`rest` follows the stream id: `_3/index.m3u8` (HLS of publish 3) or `.mp4`."""
    sig = token(secret, kind=kind, stream_id=stream_id, viewer=viewer, expires=expires)
    return f"/{kind}/{sig}/{expires}/{viewer}/{stream_id}{rest}"


def media_url(
    settings: Settings,
    *,
    kind: str,
    stream_id: int,
    rest: str,
    viewer: int = 0,
    base: str | None = None,
) -> str:
    """A signed link on `base` (the nginx that has the media; default: the configured one)
    that lives `hls_url_ttl_seconds`, rounded up to the minute: a viewer's link is the same
    for a minute."""
    expires = (int(time.time()) + settings.hls_url_ttl_seconds) // 60 * 60 + 60
    path = signed_path(
        link_secret(settings),
        kind=kind,
        stream_id=stream_id,
        rest=rest,
        viewer=viewer,
        expires=expires,
    )
    return (base or settings.resolved_media_base_url).rstrip("/") + path
