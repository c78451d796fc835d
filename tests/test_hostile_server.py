"""Hostile clients against a real `serve` process (PostgreSQL + Redis when configured):
frame floods, action floods, subscription floods, huge bodies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from conftest import TEST_SECRET
from redisutil import REDIS_URL, delete_prefix, new_prefix
from servers import ServerProcess
from tajiri_live.core.auth import TokenCodec
from tajiri_live.core.settings import Settings
from wsclient import Viewer, refused_status
from wsraw import (
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RawSocket,
    client_frame,
    close_code,
)

OWNER, FAN = 1, 2
MB = 1024 * 1024


@pytest.fixture(scope="module")
def tokens() -> TokenCodec:
    return TokenCodec(Settings(jwt_secret=TEST_SECRET))


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    env: dict[str, str] = {}
    prefix = new_prefix()
    if REDIS_URL:
        env = {"TAJIRI_REDIS_URL": REDIS_URL, "TAJIRI_REDIS_PREFIX": prefix}
    process = ServerProcess(tmp_path, database_url, **env).start()
    yield process
    process.stop()
    if REDIS_URL:
        asyncio.run(delete_prefix(REDIS_URL, prefix))


@pytest.fixture
async def api(server: ServerProcess, tokens: TokenCodec) -> AsyncIterator[Any]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

        def as_user(user_id: int) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens.encode(user_id)}"}

        client.as_user = as_user  # type: ignore[attr-defined]
        yield client


async def live_stream(api: Any) -> int:
    created = await api.post("/api/streams", json={"title": "x"}, headers=api.as_user(OWNER))
    stream_id = int(created.json()["data"]["id"])
    assert (
        await api.post(f"/api/streams/{stream_id}/start", headers=api.as_user(OWNER))
    ).is_success
    return stream_id


async def metric(api: Any, name: str) -> float:
    text = (await api.get("/metrics")).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, name
    return float(found.group(1))


# --- 1. WebSocket messages are limited in size and fragment count --------------------------


@pytest.mark.parametrize("path", ["/streams/all", "/app/tajiri-live?protocol=7"])
async def test_a_flood_of_empty_continuation_frames_is_closed(
    server: ServerProcess, api: Any, path: str
) -> None:
    raw = await RawSocket.connect(server.port, path)
    flood = (
        client_frame(b"{", OP_TEXT, fin=False)
        + client_frame(b"", OP_CONTINUATION, fin=False) * 40_000
    )
    reading = asyncio.create_task(raw.frames())
    with contextlib.suppress(ConnectionError):  # the server hangs up mid-flood
        await raw.send(flood)
    frames = await asyncio.wait_for(reading, 30)
    raw.close()
    assert close_code(frames) == 1009  # refused at the fragment cap, not assembled
    assert (await api.get("/health")).status_code == 200


# --- 4. per-socket work is bounded before it reaches the database --------------------------


async def test_a_reaction_flood_is_told_then_closed_and_reaches_the_database_little(
    server: ServerProcess, api: Any, tokens: TokenCodec
) -> None:
    stream_id = await live_stream(api)
    raw = await RawSocket.connect(server.port, f"/streams/{stream_id}?token={tokens.encode(FAN)}")
    reaction = json.dumps({"event": "reaction", "data": {"reaction_type": "fire"}}).encode()
    reading = asyncio.create_task(raw.frames())
    with contextlib.suppress(ConnectionError):
        await raw.send(client_frame(reaction) * 5000)
    frames = await asyncio.wait_for(reading, 30)
    raw.close()
    events = [json.loads(payload) for opcode, payload in frames if opcode == OP_TEXT]
    limited = [e for e in events if e["event"] == "error" and e["data"]["code"] == "rate_limited"]
    assert limited and limited[0]["data"]["retry_after"] >= 1
    assert close_code(frames) == 1008
    assert await metric(api, "tajiri_ws_flood_closed_total") == 1
    assert await metric(api, "tajiri_ws_dropped_messages_total") > 90  # the tolerance
    stream = (await api.get(f"/api/streams/{stream_id}")).json()["data"]
    # at most the socket's queue ran, and the reaction limit held within it
    assert sum(stream["reaction_counts"].values()) <= 10
    assert (await api.get("/health")).status_code == 200


async def test_pusher_subscriptions_per_socket_are_capped(server: ServerProcess) -> None:
    viewer = await Viewer.connect(f"{server.ws}/app/tajiri-live?protocol=7")
    await viewer.wait_for(lambda e: e["event"] == "pusher:connection_established")
    for start in range(0, 120, 40):
        for n in range(start, start + 40):
            await viewer.send("pusher:subscribe", {"channel": f"room-{n}"})
        await viewer.wait_for(
            lambda e, last=f"room-{start + 39}": e.get("channel") == last, within=10
        )
    succeeded = [e for e in viewer.events if e["event"].endswith("subscription_succeeded")]
    refused = [e for e in viewer.events if e["event"] == "pusher:subscription_error"]
    assert len(succeeded) == 100 and len(refused) == 20
    assert json.loads(refused[0]["data"])["status"] == 403
    await viewer.close()


async def test_a_subscription_flood_closes_the_socket(server: ServerProcess) -> None:
    raw = await RawSocket.connect(server.port, "/app/tajiri-live?protocol=7")
    subscribes = b"".join(
        client_frame(
            json.dumps({"event": "pusher:subscribe", "data": {"channel": f"c-{n}"}}).encode()
        )
        for n in range(3000)
    )
    reading = asyncio.create_task(raw.frames())
    with contextlib.suppress(ConnectionError):
        await raw.send(subscribes)
    frames = await asyncio.wait_for(reading, 30)
    raw.close()
    events = [json.loads(payload) for opcode, payload in frames if opcode == OP_TEXT]
    assert sum(e["event"].endswith("subscription_succeeded") for e in events) <= 100
    assert any(e["event"] == "pusher:error" for e in events)
    assert close_code(frames) == 1008


async def test_subscribe_and_unsubscribe_churn_spends_a_budget(server: ServerProcess) -> None:
    """Each subscribe costs a query and Redis: going round in and out of one channel is
    bounded like any other message, though never by the cap on subscriptions."""
    raw = await RawSocket.connect(server.port, "/app/tajiri-live?protocol=7")
    churn = b"".join(
        client_frame(json.dumps({"event": f"pusher:{verb}", "data": {"channel": "c-1"}}).encode())
        for _ in range(500)
        for verb in ("subscribe", "unsubscribe")
    )
    reading = asyncio.create_task(raw.frames())
    with contextlib.suppress(ConnectionError):
        await raw.send(churn)
    frames = await asyncio.wait_for(reading, 30)
    raw.close()
    events = [json.loads(payload) for opcode, payload in frames if opcode == OP_TEXT]
    assert sum(e["event"].endswith("subscription_succeeded") for e in events) <= 100
    errors = [json.loads(e["data"]) for e in events if e["event"] == "pusher:error"]
    assert errors and errors[0]["code"] == 4301
    assert close_code(frames) == 1008


async def test_a_ping_flood_gets_a_pong_per_read_not_per_ping(server: ServerProcess) -> None:
    raw = await RawSocket.connect(server.port, "/streams/all")
    reading = asyncio.create_task(raw.frames())
    with contextlib.suppress(ConnectionError):
        await raw.send(client_frame(b"x", OP_PING) * 20_000)
    await asyncio.sleep(1)
    raw.close()
    frames = await asyncio.wait_for(reading, 30)
    pongs = sum(opcode == OP_PONG for opcode, _ in frames)
    assert 1 <= pongs < 2_000, pongs


# --- 2. a socket's region and messages follow the text rule ---------------------------------


async def test_a_socket_region_with_control_characters_is_refused(
    server: ServerProcess, api: Any, tokens: TokenCodec
) -> None:
    stream_id = await live_stream(api)
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"{server.ws}/streams/{stream_id}?region=%00")
    assert refused_status(refused.value) == 422
    viewer = await Viewer.connect(f"{server.ws}/streams/{stream_id}?token={tokens.encode(FAN)}")
    await viewer.send("reaction", {"reaction_type": "fire\u0000"})
    error = await viewer.wait_for(lambda e: e["event"] == "error")
    assert error["data"]["code"] == "invalid" and "control characters" in error["data"]["message"]
    await viewer.close()


# --- 1. bodies: four concurrent 250 MB bodies cost the server little memory -----------------


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(field)


async def send_huge(port: int, path: str, headers: dict[str, str], *, chunked: bool) -> int | None:
    """POST a 250 MB body, stopping when the server answers; the status, or None if the
    server hung up before its answer could be read."""
    total = 250 * MB
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}"
        f"{framing}\r\n\r\n".encode()
    )
    answer = asyncio.create_task(reader.read(4096))
    if not chunked:
        # A declared length is answered before a byte of the body: wait for it first, since a
        # server that closes with body bytes unread may reset the connection under the answer.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(answer), 5)
    chunk = b" " * (256 * 1024)
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk
    sent = 0
    try:
        while sent < total and not answer.done():
            writer.write(framed)
            await writer.drain()
            sent += len(chunk)
    except ConnectionError:
        pass
    try:
        raw = await asyncio.wait_for(answer, 30)
    except ConnectionError:
        raw = b""
    writer.close()
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else None


async def test_four_250_megabyte_bodies_are_refused_without_reading_them(
    server: ServerProcess, api: Any, tokens: TokenCodec
) -> None:
    assert server.process is not None
    stream_id = await live_stream(api)
    for _ in range(20):  # warm up: the routes and the database pool
        await api.get(f"/api/streams/{stream_id}")
    before = rss_kb(server.process.pid)
    token = {"Authorization": f"Bearer {tokens.encode(FAN)}"}
    statuses = await asyncio.gather(
        send_huge(server.port, "/apps/1/events", {}, chunked=True),
        send_huge(server.port, "/apps/1/events", {}, chunked=False),
        send_huge(server.port, f"/api/streams/{stream_id}/comments", token, chunked=True),
        send_huge(server.port, f"/api/streams/{stream_id}/comments", token, chunked=False),
    )
    peak = rss_kb(server.process.pid, "VmHWM")
    print(f"RSS before {before} kB, peak {peak} kB, statuses {statuses}")
    assert all(status in (413, None) for status in statuses), statuses
    assert statuses[1] == 413 and statuses[3] == 413  # a declared length: answered unread
    assert peak - before < 64 * 1024, (before, peak)  # kB: less than 64 MB growth
    assert (await api.get("/health")).status_code == 200


# --- 1. bodies: slow senders hold no database connection ------------------------------------

SLOW_SENDERS = 60  # more than the database pool (20 + 20 overflow)


async def open_slow_body(
    port: int, path: str, headers: dict[str, str]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Starts a POST whose 1,000-byte body never comes: the headers and one byte."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}"
        "Content-Length: 1000\r\n\r\n{".encode()
    )
    await writer.drain()
    return reader, writer


async def test_slow_bodies_hold_no_database_connection_and_time_out(
    tmp_path: Path, database_url: str, tokens: TokenCodec
) -> None:
    """A route opens its session before it reads its body: bodies trickling in one byte at a
    time, more of them than the pool has connections, must not keep anyone else waiting; each
    is answered 408 when its time is up."""
    process = ServerProcess(tmp_path, database_url, TAJIRI_BODY_TIMEOUT_SECONDS="4").start()
    senders: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        async with httpx.AsyncClient(base_url=process.url, timeout=10) as api:
            api.as_user = lambda user_id: {  # type: ignore[attr-defined]
                "Authorization": f"Bearer {tokens.encode(user_id)}"
            }
            stream_id = await live_stream(api)
            token = {"Authorization": f"Bearer {tokens.encode(FAN)}"}
            senders = await asyncio.gather(
                *(
                    open_slow_body(process.port, f"/api/streams/{stream_id}/comments", token)
                    for _ in range(SLOW_SENDERS)
                )
            )
            await asyncio.sleep(0.5)
            for _ in range(5):  # with the pool held, these would wait out its 30 s timeout
                read = await api.get(f"/api/streams/{stream_id}")
                assert read.status_code == 200, read.text
            assert (await api.get("/ready")).status_code == 200
            # The whole answer: its head and body may come in two segments, then the close.
            answers = await asyncio.wait_for(
                asyncio.gather(*(reader.read() for reader, _ in senders)), 30
            )
            assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers), answers[:2]
            assert all(b"arrived too slowly" in answer for answer in answers), answers[:2]
    finally:
        for _, writer in senders:
            writer.close()
        process.stop()
