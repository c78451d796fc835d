"""nginx-rtmp's callbacks as stream use cases: who may publish, and what publishing does.

A publish is accepted for a key that is valid and bound to a stream that may go on air, when
no other encoder holds it. The accepted publisher is recorded on the stream (nginx's client
id), so repeated, late or foreign callbacks are recognised and only move the state forward.
The stream goes `live` when its playlist exists, not when the encoder connects: a viewer who
hears `status_changed` can play at once.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from xml.etree import ElementTree

import aiohttp
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tajiri_live.core import medialinks as links
from tajiri_live.core.db import reload
from tajiri_live.core.errors import ApiError
from tajiri_live.core.payload import MAX_ID
from tajiri_live.core.runtime import Runtime
from tajiri_live.health import service as health_service
from tajiri_live.ingest.nginx import LIVE_APP, PLAYLIST_PROBE, parse_renditions
from tajiri_live.streams import presenters
from tajiri_live.streams import service as streams
from tajiri_live.streams.lifecycle import FINAL_STATUSES, StreamStatus
from tajiri_live.streams.models import LiveStream

log = logging.getLogger(__name__)

MIN_KEY_LENGTH = 32
MAX_URL_LENGTH = 500
PLAYLIST_POLL_SECONDS = 0.2
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=3)
BANDWIDTH_WINDOW_MS = 10_000 + 2_000  # nginx-rtmp's bandwidth interval, and a tick of slack


MAX_ID_DIGITS = len(str(MAX_ID))


class Refused(Exception):
    """The publish (or the publisher) is refused; nginx drops it on a 403."""


@dataclass(frozen=True)
class Publisher:
    """What nginx tells about an RTMP publisher (form fields of its callbacks)."""

    name: str  # the publishing name: a stream key, or a stream id with a `key` argument
    key: str | None  # the `key` query argument, if any
    client: str  # nginx's client id and the encoder's address: one publishing session
    control_url: str | None = None  # the calling nginx's /control and /stat, as we reach it
    media_url: str | None = None  # the calling nginx's media base, as viewers reach it

    @classmethod
    def from_form(
        cls, form: dict[str, str], *, control: str | None = None, media: str | None = None
    ) -> Publisher:
        return cls(
            name=form.get("name", ""),
            key=form.get("key") or None,
            client=f"{form.get('clientid', '')}@{form.get('addr', '')}"[:64],
            control_url=_http_url(control),
            media_url=_http_url(media),
        )


def _http_url(value: str | None) -> str | None:
    if value and value.startswith(("http://", "https://")) and len(value) <= MAX_URL_LENGTH:
        return value.rstrip("/")
    return None


def publish_name(stream_id: int, number: int) -> str:
    """The name the stream is relayed under: HLS and recordings by id, fresh per publish."""
    return f"{stream_id}_{number}"


def playlist_rest(settings: Any, number: int) -> str:
    """The playlist whose existence means viewers can play (with a ladder: its first rung)."""
    if settings.ingest_abr_enabled:
        first = parse_renditions(settings.ingest_abr_renditions)[0]
        return f"_{number}/{first.name}/index.m3u8"
    return f"_{number}/index.m3u8"


def check_secret(runtime: Runtime, secret: str | None) -> None:
    expected = links.callback_secret(runtime.settings)
    if not secret or not hmac.compare_digest(secret.encode(), expected.encode()):
        raise ApiError(403, "The ingest callback secret is missing or wrong.")


async def _by_key(session: AsyncSession, runtime: Runtime, who: Publisher) -> LiveStream:
    """The stream a publisher names. Keys are compared in constant time; none is logged."""
    settings = runtime.settings
    if who.name.isdigit():  # a stream id (the legacy SDK's name), or nothing known
        stream_id = stream_id_named(who.name)
        stream = None if stream_id is None else await session.get(LiveStream, stream_id)
        if stream is None:
            raise Refused("unknown stream")
        if who.key is not None:
            if not hmac.compare_digest(who.key.encode(), stream.stream_key.encode()):
                raise Refused(f"stream {stream.id}: wrong key")
        elif not settings.ingest_legacy_stream_id_names:
            raise Refused(f"stream {stream.id}: a key is required")
        else:
            log.warning("stream %s: keyless publish accepted (legacy setting)", stream.id)
        return stream
    if len(who.name) < MIN_KEY_LENGTH:
        raise Refused("unknown key")
    found = await session.scalar(select(LiveStream).where(LiveStream.stream_key == who.name))
    if found is None:
        raise Refused("unknown key")
    return found


def stream_id_named(name: str) -> int | None:
    """The id an all-digit publishing name spells, if it can be one: ASCII digits (`isdigit`
    also takes '²' or Arabic-Indic digits) of a number a stream id column can hold (the
    encoder's name 99999999999999999999999 reached the database and answered 500)."""
    if not name.isascii() or len(name) > MAX_ID_DIGITS:
        return None
    value = int(name)
    return value if 1 <= value <= MAX_ID else None


def _may_publish(stream: LiveStream, runtime: Runtime, now: datetime) -> None:
    settings = runtime.settings
    status = stream.status_enum
    revoked = stream.stream_key_expires_at is not None and stream.stream_key_expires_at <= now
    if revoked or status in FINAL_STATUSES:
        raise Refused(f"stream {stream.id}: the key is revoked ({status.value})")
    on_air = status in (StreamStatus.LIVE, StreamStatus.ENDING)
    if not on_air and presenters.key_expires_at(stream, settings) <= now:
        raise Refused(f"stream {stream.id}: the key has expired")
    lead = timedelta(seconds=settings.pre_live_lead_seconds)
    if status is StreamStatus.SCHEDULED and (stream.scheduled_at or now) > now + lead:
        raise Refused(f"stream {stream.id}: scheduled for later")
    if status is StreamStatus.ENDING and (
        stream.ending_deadline is None or stream.ending_deadline <= now
    ):
        raise Refused(f"stream {stream.id}: the reconnect window is over")


async def accept_publish(runtime: Runtime, who: Publisher) -> tuple[int, int]:
    """Accept `who` as the stream's one publisher; returns (stream id, publish number)."""
    settings = runtime.settings
    now = runtime.clock.now()
    async with runtime.sessions() as session:
        stream = await _by_key(session, runtime, who)
        _may_publish(stream, runtime, now)
        stale = now - timedelta(seconds=settings.ingest_publisher_stale_seconds)
        values: dict[str, Any] = {
            "publisher_client": who.client,
            "publisher_seen_at": now,
            "publish_count": LiveStream.publish_count + 1,
            "playback_ready_at": None,
            "ingest_health": None,
            "ingest_control_url": who.control_url,
            "ingest_media_url": who.media_url,
        }
        if stream.status_enum is StreamStatus.ENDING and stream.ending_deadline is not None:
            # The window must not close while the new playlist is being made.
            wait = timedelta(seconds=settings.ingest_playlist_wait_seconds)
            values["ending_deadline"] = max(stream.ending_deadline, now + wait)
        claimed = await session.execute(
            update(LiveStream)
            .where(
                LiveStream.id == stream.id,
                LiveStream.status == stream.status,
                or_(
                    LiveStream.publisher_client.is_(None),
                    LiveStream.publisher_seen_at < stale,
                    LiveStream.publisher_client == who.client,
                ),
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            stream_id = stream.id
            await session.rollback()
            raise Refused(f"stream {stream_id}: already being published")
        await session.commit()
        streams.forget_facts(runtime, stream.id)  # a new publish: not playable until ready
        await reload(session, stream)
        if stream.status_enum is StreamStatus.SCHEDULED:
            await streams.move(
                session, runtime=runtime, stream=stream, target=StreamStatus.PRE_LIVE
            )
        log.info("stream %s: publish %s accepted", stream.id, stream.publish_count)
        return stream.id, stream.publish_count


async def _current(session: AsyncSession, who: Publisher) -> LiveStream | None:
    return await session.scalar(
        select(LiveStream).where(LiveStream.publisher_client == who.client).limit(1)
    )


async def publish_done(runtime: Runtime, who: Publisher) -> None:
    """The encoder left. A live stream waits `ingest_reconnect_seconds` for it in `ending`."""
    now = runtime.clock.now()
    async with runtime.sessions() as session:
        stream = await _current(session, who)
        if stream is None:
            return  # a refused publisher, or a callback that arrives after the fact
        released = await session.execute(
            update(LiveStream)
            .where(LiveStream.id == stream.id, LiveStream.publisher_client == who.client)
            .values(publisher_client=None, playback_ready_at=None, publisher_seen_at=now)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        if getattr(released, "rowcount", 0) != 1:
            return
        streams.forget_facts(runtime, stream.id)
        await reload(session, stream)
        log.info("stream %s: publisher left", stream.id)
        if stream.status_enum is StreamStatus.LIVE:
            await streams.move(
                session,
                runtime=runtime,
                stream=stream,
                target=StreamStatus.ENDING,
                hold_seconds=runtime.settings.ingest_reconnect_seconds,
                already_there=FINAL_STATUSES,
            )


class Ingest:
    """This process's side of ingest: nginx's HTTP endpoints (playlists, stats, control) and
    the tasks that wait for a new publish's playlist."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._http: aiohttp.ClientSession | None = None
        self._waiting: set[asyncio.Task[None]] = set()

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=HTTP_TIMEOUT)
        return self._http

    async def close(self) -> None:
        for task in list(self._waiting):
            task.cancel()
        if self._waiting:
            await asyncio.gather(*self._waiting, return_exceptions=True)
        if self._http is not None:
            await self._http.close()

    def _control(self, url: str | None) -> str:
        """The nginx to ask: the one a publish came through, else the configured one."""
        return url or self.runtime.settings.resolved_ingest_control_url

    # --- callbacks ------------------------------------------------------------------------

    async def on_publish(self, who: Publisher) -> str:
        """Accept the publish; returns the name nginx relays it under."""
        stream_id, number = await accept_publish(self.runtime, who)
        task = asyncio.create_task(self._wait_for_playlist(stream_id, number, who.control_url))
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)
        return publish_name(stream_id, number)

    async def on_update(self, who: Publisher) -> None:
        """nginx's periodic update: the publisher is alive (or is dropped by a Refused)."""
        runtime = self.runtime
        now = runtime.clock.now()
        async with runtime.sessions() as session:
            stream = await _current(session, who)
            if stream is None:
                raise Refused("not the stream's publisher")
            revoked = (
                stream.stream_key_expires_at is not None and stream.stream_key_expires_at <= now
            )
            if revoked or stream.status_enum in FINAL_STATUSES:
                stream_id = stream.id
                await session.execute(
                    update(LiveStream)
                    .where(LiveStream.id == stream.id, LiveStream.publisher_client == who.client)
                    .values(publisher_client=None, playback_ready_at=None)
                )
                await session.commit()
                streams.forget_facts(runtime, stream_id)
                raise Refused(f"stream {stream_id}: no longer accepts its publisher")
            stream_id, number = stream.id, stream.publish_count
            control, ready = stream.ingest_control_url, stream.playback_ready_at is not None
        # nginx is asked with no database connection held.
        health = await self.stream_health(publish_name(stream_id, number), control)
        seen: dict[str, Any] = {"publisher_seen_at": now}
        if health is not None:
            seen["ingest_health"] = health
        async with runtime.sessions() as session:
            await session.execute(
                update(LiveStream)
                .where(LiveStream.id == stream_id, LiveStream.publisher_client == who.client)
                .values(**seen)
            )
            await session.commit()
        if health is not None:  # the encoder's real throughput, whether it reports or not
            await health_service.record_ingest(runtime, stream_id=stream_id, stats=health)
        if not ready and await self.playlist_exists(stream_id, number, control):
            await self.mark_ready(stream_id, number)

    # --- playback readiness ---------------------------------------------------------------

    async def playlist_exists(self, stream_id: int, number: int, control: str | None) -> bool:
        """Asked of nginx's `/playlists/` (API nodes only): its 404 for a playlist not written
        yet is expected, and that location keeps it out of nginx's error log."""
        rest = playlist_rest(self.runtime.settings, number)
        url = f"{self._control(control)}{PLAYLIST_PROBE}{stream_id}{rest}"
        try:
            async with self.http.get(url) as response:
                return response.status == 200 and b"#EXTINF" in await response.read()
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def _wait_for_playlist(self, stream_id: int, number: int, control: str | None) -> None:
        deadline = time.monotonic() + self.runtime.settings.ingest_playlist_wait_seconds
        try:
            while time.monotonic() < deadline:
                if await self.playlist_exists(stream_id, number, control):
                    await self.mark_ready(stream_id, number)
                    return
                await asyncio.sleep(PLAYLIST_POLL_SECONDS)
            log.warning("stream %s: no playlist %ss after publish", stream_id, number)
        except Exception:  # a failed wait is retried by the next update callback
            log.exception("stream %s: waiting for the playlist failed", stream_id)

    async def mark_ready(self, stream_id: int, number: int) -> None:
        """The playlist of publish `number` exists: the stream is (again) on air."""
        runtime = self.runtime
        now = runtime.clock.now()
        async with runtime.sessions() as session:
            marked = await session.execute(
                update(LiveStream)
                .where(
                    LiveStream.id == stream_id,
                    LiveStream.publish_count == number,
                    LiveStream.publisher_client.is_not(None),
                    LiveStream.playback_ready_at.is_(None),
                )
                # On air from now: a stream started before its encoder counts from here.
                .values(playback_ready_at=now, started_at=func.coalesce(LiveStream.started_at, now))
                .execution_options(synchronize_session=False)
            )
            await session.commit()
            if getattr(marked, "rowcount", 0) != 1:
                return
            stream = await session.get(LiveStream, stream_id)  # read after the update
            if stream is None:
                return
            if stream.status_enum is StreamStatus.LIVE:
                await streams.announce_playback(runtime, stream)
            elif stream.status_enum in (StreamStatus.PRE_LIVE, StreamStatus.ENDING):
                try:
                    await streams.move(
                        session, runtime=runtime, stream=stream, target=StreamStatus.LIVE
                    )
                except ApiError:
                    log.info("stream %s: moved elsewhere before going live", stream_id)

    # --- nginx's stats and control --------------------------------------------------------

    async def stream_health(self, name: str, control: str | None) -> dict[str, Any] | None:
        """Bitrates, resolution and frame rate of the published stream, from nginx's /stat."""
        try:
            async with self.http.get(f"{self._control(control)}/stat") as response:
                if response.status != 200:
                    return None
                xml = await response.read()
        except (aiohttp.ClientError, TimeoutError):
            return None
        return parse_stat(xml, name)

    async def drop_publisher(self, stream: LiveStream) -> None:
        """Disconnect the stream's encoder now (an explicit end, a rotated key). The update
        callback refuses it within `ingest_update_seconds` anyway, should this fail."""
        if stream.publisher_client is None or not self.runtime.settings.ingest_enabled:
            return
        name = publish_name(stream.id, stream.publish_count)
        control = self._control(stream.ingest_control_url)
        url = f"{control}/control/drop/publisher?app={LIVE_APP}&name={name}"
        try:
            async with self.http.get(url) as response:
                if response.status != 200:
                    log.warning("stream %s: dropping the publisher: %s", stream.id, response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("stream %s: dropping the publisher failed: %s", stream.id, exc)


def _number(node: ElementTree.Element | None, tag: str) -> float | None:
    text = node.findtext(tag) if node is not None else None
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def parse_stat(xml: bytes, name: str) -> dict[str, Any] | None:
    """One stream's entry of nginx-rtmp's statistics XML, as the owner reads it."""
    try:
        root = ElementTree.fromstring(xml)  # nginx's own XML, over loopback
    except ElementTree.ParseError:
        return None
    for stream in root.iter("stream"):
        if stream.findtext("name") != name:
            continue
        video = stream.find("meta/video")
        audio = stream.find("meta/audio")
        bw_in = _number(stream, "bw_in")
        # nginx-rtmp measures bandwidth over 10 s windows and says 0 until the first one
        # closes: that is "not measured yet", not "nothing arriving" (which would read poor).
        uptime_ms = _number(stream, "time") or 0
        measured = bool(bw_in) or uptime_ms >= BANDWIDTH_WINDOW_MS
        return {
            "bitrate_kbps": round(bw_in / 1000) if bw_in is not None and measured else None,
            "video_bitrate_kbps": _kbps(_number(stream, "bw_video")) if measured else None,
            "audio_bitrate_kbps": _kbps(_number(stream, "bw_audio")) if measured else None,
            "width": _int(_number(video, "width")),
            "height": _int(_number(video, "height")),
            "fps": _number(video, "frame_rate"),
            # the bitrate the encoder says it sends (its metadata), to judge the measured one by
            "declared_video_kbps": _int(_number(video, "data_rate")),
            "video_codec": video.findtext("codec") if video is not None else None,
            "audio_codec": audio.findtext("codec") if audio is not None else None,
            "uptime_seconds": _int(uptime_ms / 1000),
        }
    return None


def _kbps(bits: float | None) -> int | None:
    return round(bits / 1000) if bits is not None else None


def _int(value: float | None) -> int | None:
    return int(value) if value is not None else None


async def rotate_key(session: AsyncSession, *, runtime: Runtime, stream: LiveStream) -> LiveStream:
    """A new key for the stream; the old one stops working now, its encoder is dropped."""
    if stream.status_enum in FINAL_STATUSES:
        raise ApiError(409, f"A stream that is {stream.status} has no key to rotate.")
    now = runtime.clock.now()
    stream.stream_key = streams.new_stream_key()
    stream.stream_key_expires_at = now + timedelta(hours=runtime.settings.ingest_key_ttl_hours)
    stream.updated_at = now
    await session.commit()
    return stream
