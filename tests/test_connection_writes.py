"""What a socket is written (realtime/server.py): first the 101 and the session's first frame
in one write, whatever the session writes as it opens behind the 101; and its pongs, which
meet the same limits on unread bytes as any frame for the socket alone."""

from __future__ import annotations

import asyncio
from typing import Any

from tajiri_live.realtime.encoders import PlainEncoder, plain_frame
from tajiri_live.realtime.frames import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_TRY_AGAIN_LATER,
    OP_CLOSE,
    OP_PING,
    close_frame,
)
from tajiri_live.realtime.gateway import CloseCodes, Gateway, Handshake
from tajiri_live.realtime.hub import Hub
from tajiri_live.realtime.server import WebSocketConnection
from wsraw import client_frame

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
HEADERS = {"upgrade": "websocket", "sec-websocket-version": "13", "sec-websocket-key": KEY}
SWITCHING = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"  # RFC 6455's example
)
WELCOME = plain_frame("connected", {"n": 1})
OPENED: list[Session] = []  # every session opened, in order


class Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.reading = True
        self.unread = 0  # what the peer has not read, as the transport would count it

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def get_write_buffer_size(self) -> int:
        return self.unread

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def close(self) -> None:
        self.closed = True


class Session:
    encoder = "plain"
    user_id = None
    close_codes = CloseCodes()

    def __init__(self, refuse: bool, fail: bool = False) -> None:
        self.refuse = refuse
        self.fail = fail
        self.closed_count = 0

    def opened(self, connection: WebSocketConnection) -> None:
        OPENED.append(self)
        if self.fail:
            raise RuntimeError("a bug as the session opens")
        if self.refuse:  # as the Pusher app does for an unknown app key
            connection.write(b"refused")
            connection.close(4001, "no such app")
            return
        connection._gateway.hub.subscribe(connection, "room", self.encoder)
        connection.send(WELCOME)

    def received(self, connection: WebSocketConnection, text: str) -> None:
        pass

    def closed(self, connection: WebSocketConnection) -> None:
        self.closed_count += 1


async def admitted(
    refuse: bool = False, fail: bool = False, headers: dict[str, str] = HEADERS
) -> tuple[WebSocketConnection, Transport, Hub]:
    hub = Hub(encoders={"plain": PlainEncoder()})  # type: ignore[dict-item]
    gateway = Gateway(hub)

    async def app(handshake: Handshake) -> Session:
        return Session(refuse, fail)

    gateway.route("/room", app)
    connection = WebSocketConnection(app_state={"realtime_gateway": gateway})
    transport = Transport()
    connection.connection_made(transport)
    connection.begin_handshake(("GET", "/room", headers))
    for _ in range(5):  # the handshake task, then the hub's step
        await asyncio.sleep(0)
    return connection, transport, hub


async def test_the_101_and_the_first_frame_go_out_in_one_write() -> None:
    connection, transport, hub = await admitted()
    assert transport.writes == [SWITCHING + WELCOME]
    assert transport.reading
    assert (hub.stats.frames_out, hub.stats.writes) == (1, 1)
    # Later frames for the socket alone go through the hub as before, after the 101.
    connection.send(WELCOME)
    await asyncio.sleep(0.05)
    assert transport.writes == [SWITCHING + WELCOME, WELCOME]
    hub.close()


async def test_what_a_session_writes_as_it_opens_goes_out_behind_the_101() -> None:
    _, transport, hub = await admitted(refuse=True)
    written = b"".join(transport.writes)
    assert written == SWITCHING + b"refused" + close_frame(4001, "no such app")
    assert written[len(SWITCHING) + len(b"refused")] == 0x80 | OP_CLOSE
    assert transport.closed
    hub.close()


async def test_pings_from_a_client_that_does_not_read_are_answered_then_it_is_closed() -> None:
    """A pong is a frame for the socket alone: written on the hub's next step, and a client
    that pings and never reads meets the limit on unread bytes as one that does not read its
    room."""
    connection, transport, hub = await admitted()
    connection.data_received(client_frame(b"1", OP_PING) + client_frame(b"2", OP_PING))
    await asyncio.sleep(0.01)
    assert transport.writes[1:] == [b"\x8a\x012"]  # one pong, for the latest ping of the read
    transport.unread = hub.settings.max_buffer_bytes + 1
    connection.data_received(client_frame(b"3", OP_PING))
    await asyncio.sleep(0.01)
    assert transport.writes[2:] == [close_frame(CLOSE_TRY_AGAIN_LATER, "slow consumer")]
    assert transport.closed and hub.stats.slow_closed == 1
    hub.close()


async def test_a_session_that_fails_as_it_opens_is_closed_as_a_socket_is() -> None:
    """Not left open with its reading paused (it would never see its client go)."""
    _, transport, hub = await admitted(fail=True)
    written = b"".join(transport.writes)
    assert written == SWITCHING + close_frame(CLOSE_INTERNAL_ERROR, "server error")
    assert transport.closed
    assert OPENED[-1].closed_count == 1  # its viewer count and the like undone
    hub.close()


async def test_a_key_that_is_not_base64_of_16_bytes_is_refused() -> None:
    for key in ("\xe9abcdefghijklmnopqrstu==", "c2hvcnQ=", KEY + "A"):
        _, transport, hub = await admitted(headers={**HEADERS, "sec-websocket-key": key})
        assert b"".join(transport.writes).startswith(b"HTTP/1.1 400 ") and transport.closed
        hub.close()
