"""A connection that opens with a whole WebSocket upgrade request goes to the socket protocol
without uvicorn reading the request first, or building its HTTP protocol at all
(realtime/httpupgrade.py); anything else is uvicorn's, and answered as before."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from servers import ServerProcess
from tajiri_live.realtime import httpupgrade
from tajiri_live.realtime.encoders import PlainEncoder
from tajiri_live.realtime.gateway import Gateway
from tajiri_live.realtime.httpupgrade import BoundedHttpProtocol, FirstBytesProtocol
from tajiri_live.realtime.hub import Hub
from tajiri_live.realtime.server import (
    WebSocketConnection,
    parse_head,
    split_target,
    websocket_upgrade,
)
from wsraw import client_frame

UPGRADE = (
    b"GET /streams/all HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


def test_an_upgrade_head_is_read_with_what_came_after_it() -> None:
    found = websocket_upgrade(UPGRADE + b"early frame")
    assert found is not None
    (method, target, headers), early = found
    assert (method, target, early) == ("GET", "/streams/all", b"early frame")
    assert headers["upgrade"] == "websocket" and headers["sec-websocket-version"] == "13"


@pytest.mark.parametrize(
    "data",
    [
        UPGRADE[:-2],  # the head is not complete yet
        UPGRADE.replace(b"keep-alive, Upgrade", b"keep-alive"),  # no upgrade asked
        UPGRADE.replace(b"Upgrade: websocket", b"Upgrade: h2c"),
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        UPGRADE.replace(b"Host: x", b"Bad Name: x"),  # not a token: uvicorn's 400
        UPGRADE.replace(b"Host: x", b"Host: x\r\n folded"),
        UPGRADE.replace(b"Host: x", b"Host: x\x00y"),
        UPGRADE.replace(b"Host: x", b"Host: x\ny"),
        UPGRADE.replace(b"HTTP/1.1", b"HTTP/2.0"),
        UPGRADE.replace(b"GET /streams/all", b"GET /streams/all extra"),
    ],
)
def test_anything_else_is_left_to_uvicorn(data: bytes) -> None:
    assert websocket_upgrade(data) is None


@pytest.mark.parametrize(
    "target",
    [
        "/streams/12?token=a%20b&region=TZ",
        "/streams/all",
        "/streams/1?",
        "/streams/1?a=1?b=2",
        "/streams/1?a#frag",
        "/streams/1#frag?not-a-query",
        "/streams/1;v=2?x",
        "/p\tq?x\t",
        "//host/streams/1?x",
        "http://host/streams/1?x=1",
    ],
)
def test_a_target_splits_into_path_and_query_as_urlsplit_would(target: str) -> None:
    url = urlsplit(target)
    assert split_target(target) == (url.path, url.query)


def test_header_values_are_read_without_the_spaces_around_them() -> None:
    head = b"GET / HTTP/1.1\r\nUpgrade:websocket\r\nX-Empty:\r\nSec-WebSocket-Key: \t k= \t"
    assert parse_head(head)[2] == {"upgrade": "websocket", "x-empty": "", "sec-websocket-key": "k="}
    assert parse_head(b"GET / HTTP/1.0") == ("GET", "/", {})
    for bad in (b"GET / HTTP/1.1\r\n", b"GET / HTTP/1.1\r\nNo-Colon", b"GET / HTTP/1.1\r\n: x"):
        with pytest.raises(ValueError):
            parse_head(bad)


def test_a_repeated_header_counts_by_its_last_value_as_uvicorn_reads_it() -> None:
    _, _, headers = parse_head(b"GET / HTTP/1.1\r\nUpgrade: h2c\r\nUpgrade: websocket")
    assert headers["upgrade"] == "websocket"


class Transport:
    """What the first-bytes protocol does with its transport: reads and hands it on."""

    def __init__(self) -> None:
        self.protocol: Any = None
        self.writes: list[bytes] = []
        self.closed = False

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def pause_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


class CountedHttpProtocol:
    """Stands in for uvicorn's protocol to count how often it is built and what it is fed."""

    built: list[CountedHttpProtocol] = []

    def __init__(self, *args: Any) -> None:
        self.fed: list[bytes] = []
        self.transport: Any = None
        CountedHttpProtocol.built.append(self)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.fed.append(data)


def opened(monkeypatch: pytest.MonkeyPatch) -> tuple[FirstBytesProtocol, Transport, Any]:
    """A first-bytes protocol on a fake transport; the gateway is in `app_state`."""
    monkeypatch.setattr(httpupgrade, "BoundedHttpProtocol", CountedHttpProtocol)
    CountedHttpProtocol.built = []
    gateway = Gateway(Hub(encoders={"plain": PlainEncoder()}))  # type: ignore[dict-item]
    config = SimpleNamespace(ws_protocol_class=WebSocketConnection)
    state = SimpleNamespace(connections=set())
    protocol = FirstBytesProtocol(config, state, {"realtime_gateway": gateway})
    transport = Transport()
    protocol.connection_made(transport)
    assert state.connections == {protocol}  # closed by uvicorn's shutdown before a byte
    return protocol, transport, state


async def first_bytes(
    data: bytes, monkeypatch: pytest.MonkeyPatch, *more: bytes
) -> tuple[Transport, SimpleNamespace, list[CountedHttpProtocol]]:
    protocol, transport, state = opened(monkeypatch)
    for part in (data, *more):
        protocol.data_received(part)
    assert protocol not in state.connections
    await protocol._app_state["realtime_gateway"].drain()  # the socket's handshake
    return transport, state, CountedHttpProtocol.built


@pytest.mark.parametrize(
    "parts",
    [
        (UPGRADE + b"early",),
        (UPGRADE[:40], UPGRADE[40:] + b"early"),
        (UPGRADE[:-1], UPGRADE[-1:]),  # split inside the final CRLF CRLF
        (b"\r", b"\n\r\n" + UPGRADE),  # empty lines before the request line are ignored
        (UPGRADE.replace(b"Host: x", b"Host: x\r\ncontent-length: 0"),),  # as Dart sends it
    ],
)
async def test_a_whole_upgrade_is_handed_to_the_socket_protocol_with_no_http_protocol_built(
    parts: tuple[bytes, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    transport, state, built = await first_bytes(*parts[:1], monkeypatch, *parts[1:])
    assert built == []
    connection = transport.protocol
    assert isinstance(connection, WebSocketConnection) and connection.transport is transport
    assert state.connections == {connection}  # uvicorn's shutdown reaches it
    # The socket protocol read the head it was given: no socket app at this path, its 404
    assert b"".join(transport.writes).startswith(b"HTTP/1.1 404 ")
    assert transport.closed


@pytest.mark.parametrize(
    "parts",
    [
        (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",),
        (b"POST /api/streams HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",),
        (b"POST /api/streams HTTP/1.1\r\nHo", b"st: x\r\nContent-Length: 2\r\n\r\n{}"),
        (b"GE", b"T /health HTTP/1.1\r\n\r\n"),
        (b"\x16\x03\x01",),  # not HTTP at all (TLS): uvicorn's parser answers it at once
        (b" GET / HTTP/1.1",),
        (b"GET /health HTTP/1.1\nHost: x\n\n",),  # bare line feeds: uvicorn's 400 at once
        (UPGRADE.replace(b"Host: x", b"Host: x\r\nContent-Length: 5") + b"hello",),
        (UPGRADE.replace(b"Host: x", b"Host: x\r\nTransfer-Encoding: chunked"),),
        (UPGRADE.replace(b"Host: x", b"Content-Length: 0\r\nContent-length: 0"),),
        (UPGRADE.replace(b"/streams/all", "/streams/allé".encode("latin-1")),),
        (UPGRADE.replace(b"/streams/all", b"/streams/all\t"),),
    ],
)
async def test_anything_else_goes_to_uvicorns_protocol_with_the_same_bytes(
    parts: tuple[bytes, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    transport, _, built = await first_bytes(parts[0], monkeypatch, *parts[1:])
    assert len(built) == 1 and transport.protocol is built[0]
    assert built[0].transport is transport and built[0].fed == [b"".join(parts)]


async def test_a_target_urlsplit_cannot_read_is_refused_not_left_admitting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for target in (b"//[x/streams/all", b"http://[zz]/streams/all"):
        transport, _, _ = await first_bytes(UPGRADE.replace(b"/streams/all", target), monkeypatch)
        assert b"".join(transport.writes).startswith(b"HTTP/1.1 400 ") and transport.closed


@pytest.mark.parametrize("split", [None, -1, -2, -3])
async def test_the_size_limit_gives_the_same_answer_however_the_head_is_split(
    split: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    pad = b"\r\nX-Pad: " + b"a" * (16384 - len(UPGRADE) - 5)
    for extra, refused in ((b"", False), (b"b", True)):
        head = UPGRADE[:-4] + pad + extra + b"\r\n\r\n"
        assert head.index(b"\r\n\r\n") == 16384 + len(extra)  # the end just at, past the limit
        parts = (head,) if split is None else (head[:split], head[split:])
        transport, _, built = await first_bytes(parts[0], monkeypatch, *parts[1:])
        answer = b"".join(transport.writes)
        assert answer.startswith(b"HTTP/1.1 431 ") == refused, (split, extra)
        assert built == []


async def test_a_head_that_does_not_come_whole_in_time_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(httpupgrade, "HEAD_TIMEOUT_SECONDS", 0.05)
    for parts in [
        (),
        (b"GET /streams/all HTTP/1.1\r\nHost: x\r\n",),
        (b"\r\n\r\n", b"\r\n"),  # empty lines do not start a request
        (b"M-SEARCH * HTTP/1.1\r\n",),
    ]:
        protocol, transport, state = opened(monkeypatch)
        for part in parts:
            protocol.data_received(part)
        await asyncio.sleep(0.2)
        assert b"".join(transport.writes).startswith(b"HTTP/1.1 408 ") and transport.closed
        assert state.connections == set() and transport.protocol is None


async def test_a_head_too_large_is_refused_without_waiting_for_its_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    protocol, transport, state = opened(monkeypatch)
    protocol.data_received(b"GET /streams/all HTTP/1.1\r\n")
    for _ in range(20):
        if not transport.closed:
            protocol.data_received(b"X-Pad: " + b"a" * 1000 + b"\r\n")
    assert b"".join(transport.writes).startswith(b"HTTP/1.1 431 ") and transport.closed
    assert state.connections == set() and CountedHttpProtocol.built == []


async def test_a_connection_closed_before_its_head_leaves_no_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(httpupgrade, "HEAD_TIMEOUT_SECONDS", 0.05)
    protocol, transport, state = opened(monkeypatch)
    protocol.data_received(b"GET /str")
    protocol.connection_lost(None)
    await asyncio.sleep(0.2)
    assert transport.writes == [] and state.connections == set()


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path, database_url).start()
    yield process
    process.stop()


@contextlib.asynccontextmanager
async def connected(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A raw connection to the server, closed however the block ends."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()


async def exchange(port: int, request: bytes) -> bytes:
    """One answer, whole: its head and then its body (they may come in separate reads)."""
    async with connected(port) as (reader, writer):
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        body_size = int(length[1]) if length else 0
        return head + await asyncio.wait_for(reader.readexactly(body_size), 10)


async def test_a_frame_sent_with_the_upgrade_is_read_after_the_101(
    server: ServerProcess,
) -> None:
    """The client's first frame in the same segment as its request (what a hurried client
    may do): kept while the socket is admitted, then answered."""
    ping = orjson.dumps({"event": "ping", "data": {"timestamp": 7}})
    async with connected(server.port) as (reader, writer):
        writer.write(UPGRADE + client_frame(ping))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101 ")
        # the accept key of RFC 6455's example
        assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
        texts: list[bytes] = []
        while not any(b'"pong"' in text for text in texts):
            first = await asyncio.wait_for(reader.readexactly(2), 10)
            texts.append(await reader.readexactly(first[1] & 0x7F))
    assert any(b'"timestamp":7' in text for text in texts)


async def test_requests_that_are_not_upgrades_are_answered_as_before(
    server: ServerProcess,
) -> None:
    # A plain GET of a socket path: the app's 426 (through uvicorn and FastAPI)
    plain = await exchange(server.port, b"GET /streams/all HTTP/1.1\r\nHost: x\r\n\r\n")
    assert plain.startswith(b"HTTP/1.1 426 ")
    assert b"connect with a WebSocket client" in plain
    # A malformed upgrade: uvicorn's parser refuses it
    bad = await exchange(server.port, UPGRADE.replace(b"Host: x", b"Bad Name: x"))
    assert bad.startswith(b"HTTP/1.1 400 ")
    # An upgrade as the second request of a kept-alive connection: uvicorn's own upgrade
    key = base64.b64encode(os.urandom(16))
    second = UPGRADE.replace(b"dGhlIHNhbXBsZSBub25jZQ==", key)
    async with connected(server.port) as (reader, writer):
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" + second)
        answers = b""
        while b"101 Switching" not in answers:  # the two answers may come in two reads
            answers += await asyncio.wait_for(reader.read(65536), 10)
    assert answers.startswith(b"HTTP/1.1 200 ")


async def test_an_upgrade_whose_head_comes_in_two_segments_is_upgraded(
    server: ServerProcess,
) -> None:
    async with connected(server.port) as (reader, writer):
        writer.write(UPGRADE[:40])
        await writer.drain()
        await asyncio.sleep(0.2)  # two reads on the server's side
        writer.write(UPGRADE[40:])
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 101 ")


async def test_a_connection_that_sent_nothing_is_closed_when_the_server_stops(
    server: ServerProcess,
) -> None:
    async with connected(server.port) as (reader, _):
        await asyncio.sleep(0.2)  # accepted
        started = time.monotonic()
        await asyncio.to_thread(server.stop)
        assert await asyncio.wait_for(reader.read(1), 5) == b""
    assert server.process is not None and server.process.returncode is not None
    assert time.monotonic() - started < 10  # uvicorn did not wait on it


async def test_a_later_head_on_a_kept_alive_connection_is_bounded_too(
    server: ServerProcess,
) -> None:
    """httptools gathers a header's value whole whatever its size: past 16 KiB (counted from
    the reads that are all head) the server answers 431 and closes (what it had not read
    makes that close a reset, which may take the 431 with it); it used to wait for more."""
    answers = b""
    async with connected(server.port) as (reader, writer):
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        writer.write(b"GET /health HTTP/1.1\r\nX-Pad: ")
        with contextlib.suppress(ConnectionError):
            for _ in range(40):  # 40 KiB of one header's value, never ended, in 40 reads
                writer.write(b"a" * 1024)
                await writer.drain()
                await asyncio.sleep(0.005)
        with contextlib.suppress(ConnectionError):
            while chunk := await asyncio.wait_for(reader.read(65536), 10):
                answers += chunk
    assert first.startswith(b"HTTP/1.1 200 ")
    assert answers in (b"",) or b"HTTP/1.1 431 " in answers


async def test_a_later_head_that_does_not_come_in_time_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(httpupgrade, "HEAD_TIMEOUT_SECONDS", 0.05)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    config = Config(app=app, lifespan="off")
    config.load()
    protocol = BoundedHttpProtocol(config, ServerState(), {})
    transport = Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.01)  # answered
    assert b"".join(transport.writes).startswith(b"HTTP/1.1 200 ")
    transport.writes.clear()
    protocol.data_received(b"GET / HTTP/1.1\r\nHo")
    await asyncio.sleep(0.2)
    assert b"".join(transport.writes).startswith(b"HTTP/1.1 408 ") and transport.closed


async def test_pipelined_requests_are_each_answered_and_never_counted_as_one_head(
    server: ServerProcess,
) -> None:
    """Whole requests that came in one read before a head that is not whole yet."""
    health = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    body = b'{"title": "' + b"a" * 20000 + b'"}'
    post = b"POST /api/streams HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    post += b"Content-Length: %d\r\n\r\n" % len(body) + body
    answers = b""
    async with connected(server.port) as (reader, writer):
        writer.write(health * 400 + post + health[:20])
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.write(health[20:])
        while answers.count(b"HTTP/1.1 ") < 402:
            answers += await asyncio.wait_for(reader.read(65536), 10)
    statuses = re.findall(rb"HTTP/1.1 (\d+) ", answers)
    assert statuses[:400] == [b"200"] * 400
    assert statuses[400].startswith(b"4") and statuses[401] == b"200"


async def test_a_flood_of_empty_lines_before_a_request_is_skipped_in_one_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    _, _, built = await first_bytes(b"\r\n" * 200_000, monkeypatch, b"\r\n" + head)
    assert len(built) == 1 and built[0].fed == [head]
