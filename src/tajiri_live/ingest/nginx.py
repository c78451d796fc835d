"""nginx's configuration for ingest, rendered from settings (pure: no I/O).

RTMP comes in on the `live` application. The publish callback renames the stream to
`{stream_id}_{publish number}`, so everything nginx writes (HLS, recordings) and every URL is
named by the stream's id, never by its key, and every publish starts a fresh playlist.
"""

from __future__ import annotations

import grp
import pwd
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from tajiri_live.core import medialinks as links
from tajiri_live.core.settings import Settings

LIVE_APP = "live"
HLS_APP = "hls"  # local relay target, named by stream id
PLAYLIST_PROBE = "/playlists/"  # where the API nodes ask whether a publish's playlist exists
# /{kind}/{token}/{expires}/{viewer}/{stream id}{rest}: see core/medialinks.py
MEDIA_LOCATION = (
    r"^/(?<sl_kind>hls|recordings|thumbnails)/(?<sl_token>[A-Za-z0-9_-]{22})"
    r"/(?<sl_expires>[0-9]{1,12})/(?<sl_viewer>[0-9]{1,20})/(?<sl_stream>[0-9]{1,20})"
    r"(?<sl_rest>[_.][A-Za-z0-9_./-]*)$"
)
RENDITION_SPEC = re.compile(r"^(\w{1,16}):(\d{2,4})x(\d{2,4}):(\d{2,6}k):(\d{2,4}k)$")


@dataclass(frozen=True)
class Rendition:
    name: str
    width: int
    height: int
    video_bitrate: str
    audio_bitrate: str


def parse_renditions(specs: list[str]) -> list[Rendition]:
    renditions = []
    for spec in specs:
        match = RENDITION_SPEC.match(spec.strip())
        if match is None:
            raise ValueError(f"rendition {spec!r} is not name:WIDTHxHEIGHT:VIDEOk:AUDIOk")
        name, width, height, video, audio = match.groups()
        renditions.append(Rendition(name, int(width), int(height), video, audio))
    if not renditions:
        raise ValueError("the ABR ladder needs at least one rendition")
    return renditions


@dataclass(frozen=True)
class MediaDirs:
    root: Path

    @property
    def hls(self) -> Path:
        return self.root / links.HLS

    @property
    def recordings(self) -> Path:
        return self.root / links.RECORDINGS

    @property
    def parts(self) -> Path:
        """nginx's raw FLV recordings, one per publish, before they are joined into an MP4."""
        return self.root / "parts"

    @property
    def thumbnails(self) -> Path:
        return self.root / links.THUMBNAILS

    def all(self) -> tuple[Path, ...]:
        return (self.hls, self.recordings, self.parts, self.thumbnails)


def media_dirs(settings: Settings) -> MediaDirs:
    return MediaDirs(settings.resolved_ingest_media_dir)


def closed_to(user: str, path: Path) -> Path | None:
    """The first folder on the way to `path` that `user` may not enter, if any (nginx's
    workers must reach the media and temporary folders; a home such as /root is often 0700)."""
    entry = pwd.getpwnam(user)
    groups = {g.gr_gid for g in grp.getgrall() if user in g.gr_mem} | {entry.pw_gid}
    for folder in reversed((path.resolve() / "x").parents):  # from / down to `path`
        if not folder.exists():
            break  # made later, by root, with the default mode
        info = folder.stat()
        if info.st_uid == entry.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return folder
    return None


def callback_url(settings: Settings, action: str) -> str:
    """The secret rides in the query (nginx-rtmp cannot send headers; access logs redact it),
    with this nginx's own addresses: the API keeps them on the stream, so several ingest
    hosts can serve one deployment."""
    base = (settings.ingest_callback_base_url or settings.public_base_url).rstrip("/")
    query = urlencode(
        {
            "secret": links.callback_secret(settings),
            "control": settings.resolved_ingest_control_url,
            "media": settings.resolved_media_base_url,
        }
    )
    return f"{base}/api/rtmp/{action}?{query}"


def abr_command(settings: Settings, dirs: MediaDirs) -> str:
    """ffmpeg turning the published stream into an HLS ladder with a master playlist."""
    renditions = parse_renditions(settings.ingest_abr_renditions)
    source = f"rtmp://127.0.0.1:{settings.ingest_rtmp_port}/{LIVE_APP}/$name"
    parts = [
        settings.ingest_ffmpeg_binary,
        "-hide_banner -loglevel error -nostdin",
        f"-i {source}",
    ]
    parts += ["-map 0:v:0 -map 0:a:0"] * len(renditions)
    fragment = settings.hls_fragment_seconds
    parts.append(
        "-c:v libx264 -preset veryfast -tune zerolatency -sc_threshold 0 -c:a aac "
        f'-force_key_frames "expr:gte(t,n_forced*{fragment:g})"'
    )
    for i, r in enumerate(renditions):
        parts.append(
            f"-filter:v:{i} scale={r.width}:{r.height} -b:v:{i} {r.video_bitrate} "
            f"-maxrate:v:{i} {r.video_bitrate} -bufsize:v:{i} {r.video_bitrate} "
            f"-b:a:{i} {r.audio_bitrate}"
        )
    stream_map = " ".join(f"v:{i},a:{i},name:{r.name}" for i, r in enumerate(renditions))
    size = max(2, round(settings.hls_playlist_seconds / fragment))
    out = dirs.hls / "$name"
    parts.append(
        f"-f hls -hls_time {fragment:g} -hls_list_size {size} "
        "-hls_flags delete_segments+independent_segments+temp_file "
        f'-master_pl_name index.m3u8 -var_stream_map "{stream_map}" '
        f"-hls_segment_filename {out}/%v/%d.ts {out}/%v/index.m3u8"
    )
    return " ".join(parts)


def render(settings: Settings, *, run_dir: Path, as_root: bool) -> str:
    dirs = media_dirs(settings)
    host = settings.ingest_listen_host
    fragment = settings.hls_fragment_seconds
    if settings.ingest_abr_enabled:
        # Stopped with SIGTERM, ffmpeg exits with a code; killed (the default), nginx logs the
        # child's signal as an alert at the end of every publish.
        to_hls = f"exec_push {abr_command(settings, dirs)};\n            exec_kill_signal term;"
    else:
        # Relayed: the relay carries the new name (nginx's own HLS would keep the key).
        to_hls = f"push rtmp://127.0.0.1:{settings.ingest_rtmp_port}/{HLS_APP};"
    user = f"user {settings.ingest_nginx_user};\n" if as_root else ""
    secure = links.secure_link_expression(links.link_secret(settings))
    allow = "\n".join(f"            allow {source};" for source in settings.ingest_control_allow)
    temp = "\n".join(
        f"    {name}_temp_path {run_dir / 'tmp' / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""# Rendered by `tajiri-live ingest` from TAJIRI_* settings. It holds secrets.
daemon off;
worker_processes 1;  # nginx-rtmp keeps a stream's state in one worker
{user}pid {run_dir / "nginx.pid"};
# warn, not info: info lines name the publishing stream, that is, its key.
error_log {run_dir / "error.log"} warn;
load_module {settings.ingest_rtmp_module};

events {{
    worker_connections 8192;
}}

rtmp {{
    server {{
        listen {host}:{settings.ingest_rtmp_port};
        chunk_size 4096;
        access_log off;  # its lines carry the publishing name, which is the stream key
        notify_method post;
        notify_update_timeout {settings.ingest_update_seconds}s;
        drop_idle_publisher 10s;

        application {LIVE_APP} {{
            live on;
            idle_streams off;
            # Viewers watch HLS; only local tools (the ABR ladder, thumbnails) play RTMP.
            allow play 127.0.0.1;
            deny play all;
            on_publish {callback_url(settings, "publish")};
            on_publish_done {callback_url(settings, "publish-done")};
            on_update {callback_url(settings, "update")};
            record all;
            record_path {dirs.parts};
            record_unique on;
            {to_hls}
        }}

        application {HLS_APP} {{
            live on;
            allow publish 127.0.0.1;
            deny publish all;
            allow play 127.0.0.1;
            deny play all;
            hls on;
            hls_path {dirs.hls};
            hls_nested on;
            hls_fragment {fragment:g}s;
            hls_playlist_length {settings.hls_playlist_seconds:g}s;
            hls_cleanup on;
        }}
    }}
}}

http {{
    access_log {run_dir / "access.log"};
    sendfile on;
    tcp_nopush on;
{temp}
    types {{
        application/vnd.apple.mpegurl m3u8;
        video/mp2t ts;
        video/mp4 mp4;
        image/jpeg jpg;
    }}
    default_type application/octet-stream;

    map $sl_rest $sl_cache {{
        ~\\.m3u8$ "no-cache";
        default "max-age=3600";
    }}

    server {{
        listen {host}:{settings.ingest_http_port};

        location ~ "{MEDIA_LOCATION}" {{
            secure_link $sl_token,$sl_expires;
            secure_link_md5 "{secure}";
            if ($secure_link = "") {{ return 403; }}
            if ($secure_link = "0") {{ return 410; }}
            add_header Access-Control-Allow-Origin * always;
            add_header Cache-Control $sl_cache always;
            alias {dirs.root}/$sl_kind/$sl_stream$sl_rest;
        }}

        # Until a publish's first playlist is written the API nodes' question is answered 404:
        # expected, so neither an error nor an access log line.
        location ^~ {PLAYLIST_PROBE} {{
{allow}
            deny all;
            access_log off;
            log_not_found off;
            add_header Cache-Control no-cache always;
            alias {dirs.hls}/;
        }}

        location = /stat {{
{allow}
            deny all;
            rtmp_stat all;
        }}

        location /control {{
{allow}
            deny all;
            rtmp_control all;
        }}

        location / {{
            return 404;
        }}
    }}
}}
"""
