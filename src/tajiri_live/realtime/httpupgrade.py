"""uvicorn's httptools HTTP protocol, except that a connection whose first bytes are a whole
WebSocket upgrade request goes to the WebSocket protocol at once.

uvicorn reads every request with httptools (a Python callback per header), and on an upgrade
rebuilds the request's bytes for the WebSocket protocol to read again. In a join storm every
connection is such a request; reading its head once, here, saves that work on each (see
docs/benchmarks.md, "Hot paths"). Anything else, and any later request on a connection, is
uvicorn's as before.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tajiri_live.realtime.server import WebSocketConnection, websocket_upgrade


class UpgradingHttpToolsProtocol(HttpToolsProtocol):
    def data_received(self, data: bytes) -> None:
        # No request begun on this connection yet (uvicorn sets `scope` when one begins).
        if self.scope is None and data.startswith(b"GET ") and self._hand_over(data):
            return
        super().data_received(data)

    def _hand_over(self, data: bytes) -> bool:
        socket_class = self.ws_protocol_class
        if socket_class is None or not issubclass(socket_class, WebSocketConnection):
            return False
        upgrade = websocket_upgrade(data)
        if upgrade is None:
            return False
        request, early = upgrade
        # What uvicorn's own upgrade does, without writing the request out again
        self.connections.discard(self)
        protocol = socket_class(
            config=self.config, server_state=self.server_state, app_state=self.app_state
        )
        if self.client is not None:  # read by uvicorn as the connection was made
            protocol.known_peer = str(self.client[0])
        protocol.connection_made(self.transport)
        self.transport.set_protocol(protocol)
        protocol.begin_handshake(request, early)
        return True
