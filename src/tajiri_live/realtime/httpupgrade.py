"""A connection's protocol, chosen by its first bytes: a whole WebSocket upgrade request goes
to the WebSocket protocol at once, anything else to uvicorn's httptools protocol.

uvicorn builds its HTTP protocol for every connection before a byte is read: an httptools
parser holding six bound callbacks, flow control, both addresses, two logger lookups. In a
join storm every connection is an upgrade, and all of that was built to be thrown away; the
parser and its callbacks form a reference cycle, so each handed-over connection also left
garbage for the collector. Reading the upgrade's head once, here, saves uvicorn's reading it
with a Python callback per header and writing it out again for the WebSocket protocol (see
docs/benchmarks.md, "Hot paths"). Anything else, and any later request on a connection, is
uvicorn's as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tajiri_live.realtime.server import WebSocketConnection, websocket_upgrade


class FirstBytesProtocol(asyncio.Protocol):
    """What uvicorn creates per accepted connection (`uvicorn.run(http=...)`); it hands the
    transport on at the first `data_received`."""

    __slots__ = ("_app_state", "_config", "_loop", "_server_state", "transport")

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
        self._loop = _loop
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        # uvicorn's shutdown closes what it tracks: a connection that has sent nothing yet too
        self._server_state.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self._server_state.connections.discard(self)  # the next protocol tracks it
        if not (data.startswith(b"GET ") and self._hand_to_websocket(data)):
            http = HttpToolsProtocol(self._config, self._server_state, self._app_state, self._loop)
            http.connection_made(self.transport)
            self.transport.set_protocol(http)
            http.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server_state.connections.discard(self)

    def eof_received(self) -> bool | None:
        return None  # closed before a request: close our side too

    def shutdown(self) -> None:
        self.transport.close()

    def _hand_to_websocket(self, data: bytes) -> bool:
        socket_class = self._config.ws_protocol_class
        if socket_class is None or not issubclass(socket_class, WebSocketConnection):
            return False
        upgrade = websocket_upgrade(data)
        if upgrade is None:
            return False  # not an upgrade, or its head is not whole yet: uvicorn reads it
        request, early = upgrade
        protocol = socket_class(
            config=self._config, server_state=self._server_state, app_state=self._app_state
        )
        protocol.connection_made(self.transport)
        self.transport.set_protocol(protocol)
        protocol.begin_handshake(request, early)
        return True
