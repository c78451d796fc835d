"""A connection's protocol, chosen by its first request's head: a WebSocket upgrade goes to the
WebSocket protocol at once, anything else to uvicorn's httptools protocol.

uvicorn builds its HTTP protocol for every connection before a byte is read: an httptools
parser holding six bound callbacks, flow control, both addresses, two logger lookups. In a
join storm every connection is an upgrade, and all of that was built to be thrown away; the
parser and its callbacks form a reference cycle, so each handed-over connection also left
garbage for the collector. Reading the upgrade's head once, here, saves uvicorn's reading it
with a Python callback per header and writing it out again for the WebSocket protocol (see
docs/benchmarks.md, "Hot paths"). Anything else, and any later request on a connection, is
uvicorn's as before.

The first head is also bounded here, which uvicorn does not do: a connection gets
`HEAD_TIMEOUT_SECONDS` to send it whole and `MAX_HANDSHAKE_BYTES` to fit it in, so a client
that connects and sends nothing, or a head a byte at a time, no longer holds a connection
for as long as it likes.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tajiri_live.realtime.server import (
    MAX_HANDSHAKE_BYTES,
    WebSocketConnection,
    refusal,
    websocket_upgrade,
)

# nginx waits 60 s for a request head by default; a phone's head comes in one segment, and
# a proxy in front of `serve` sends the head it has read whole.
HEAD_TIMEOUT_SECONDS = 10.0
HEAD_END = b"\r\n\r\n"
# How a request line starts (a method, then a space), or the start of one
_REQUEST_START = re.compile(rb"[A-Z]{1,20}(?: |\Z)")


class FirstBytesProtocol(asyncio.Protocol):
    """What uvicorn creates per accepted connection (`uvicorn.run(http=...)`); it hands the
    transport on once the first request's head is whole."""

    __slots__ = ("_app_state", "_config", "_deadline", "_head", "_server_state", "transport")

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._config = config
        self._server_state = server_state
        self._app_state = app_state
        self._head = b""  # what came so far, when the head came in more than one read
        self._deadline: asyncio.TimerHandle | None = None
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        # uvicorn's shutdown closes what it tracks: a connection that has sent nothing yet too
        self._server_state.connections.add(self)
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(HEAD_TIMEOUT_SECONDS, self._too_slow)

    def data_received(self, data: bytes) -> None:
        if self._head:
            data = self._head + data
        end = data.find(HEAD_END, max(0, len(self._head) - 3))
        if end > MAX_HANDSHAKE_BYTES or (end < 0 and len(data) > MAX_HANDSHAKE_BYTES):
            self._refuse(431, "Request headers too large.")
        elif end < 0 and _REQUEST_START.match(data):
            self._head = data  # the rest of the head is still to come
        elif end < 0:
            self._hand_on(data)  # not HTTP: uvicorn's parser answers it at once
        else:
            self._head = b""
            self._hand_on(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._settled()

    def eof_received(self) -> bool | None:
        return None  # closed before a whole request: close our side too

    def shutdown(self) -> None:
        self._settled()
        self.transport.close()

    def _settled(self) -> None:
        self._server_state.connections.discard(self)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        self._refuse(408, "The request's head did not come in time.")

    def _refuse(self, status: int, message: str) -> None:
        self._settled()
        self.transport.write(refusal(status, message))
        self.transport.close()

    def _hand_on(self, data: bytes) -> None:
        self._settled()  # the next protocol tracks it
        if not (data.startswith(b"GET ") and self._hand_to_websocket(data)):
            http = HttpToolsProtocol(self._config, self._server_state, self._app_state)
            http.connection_made(self.transport)
            self.transport.set_protocol(http)
            http.data_received(data)

    def _hand_to_websocket(self, data: bytes) -> bool:
        socket_class = self._config.ws_protocol_class
        if socket_class is None or not issubclass(socket_class, WebSocketConnection):
            return False
        upgrade = websocket_upgrade(data)
        if upgrade is None:
            return False  # not an upgrade, or not one our parser takes: uvicorn reads it
        request, early = upgrade
        protocol = socket_class(
            config=self._config, server_state=self._server_state, app_state=self._app_state
        )
        protocol.connection_made(self.transport)
        self.transport.set_protocol(protocol)
        protocol.begin_handshake(request, early)
        return True
