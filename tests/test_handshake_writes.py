"""What an admitted socket is written first: the 101 and the session's first frame in one
write (realtime/server.py), and whatever the session writes as it opens behind the 101."""

from __future__ import annotations

import asyncio
from typing import Any

from tajiri_live.realtime.encoders import PlainEncoder, plain_frame
from tajiri_live.realtime.frames import OP_CLOSE, close_frame
from tajiri_live.realtime.gateway import CloseCodes, Gateway, Handshake
from tajiri_live.realtime.hub import Hub
from tajiri_live.realtime.server import WebSocketConnection

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
HEADERS = {"upgrade": "websocket", "sec-websocket-version": "13", "sec-websocket-key": KEY}
SWITCHING = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"  # RFC 6455's example
)
WELCOME = plain_frame("connected", {"n": 1})


class Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.reading = True

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def get_write_buffer_size(self) -> int:
        return 0

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

    def __init__(self, refuse: bool) -> None:
        self.refuse = refuse

    def opened(self, connection: WebSocketConnection) -> None:
        if self.refuse:  # as the Pusher app does for an unknown app key
            connection.write(b"refused")
            connection.close(4001, "no such app")
            return
        connection._gateway.hub.subscribe(connection, "room", self.encoder)
        connection.send(WELCOME)

    def received(self, connection: WebSocketConnection, text: str) -> None:
        pass

    def closed(self, connection: WebSocketConnection) -> None:
        pass


async def admitted(refuse: bool = False) -> tuple[WebSocketConnection, Transport, Hub]:
    hub = Hub(encoders={"plain": PlainEncoder()})  # type: ignore[dict-item]
    gateway = Gateway(hub)

    async def app(handshake: Handshake) -> Session:
        return Session(refuse)

    gateway.route("/room", app)
    connection = WebSocketConnection(app_state={"realtime_gateway": gateway})
    transport = Transport()
    connection.connection_made(transport)
    connection.begin_handshake(("GET", "/room", HEADERS))
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
