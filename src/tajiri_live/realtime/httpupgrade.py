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
    HEAD_END,
    MAX_HANDSHAKE_BYTES,
    TOKEN_CHAR,
    WebSocketConnection,
    refusal,
    websocket_upgrade,
)

# nginx waits 60 s for a request head by default; a phone's head comes in one segment, and
# a proxy in front of `serve` sends the head it has read whole.
HEAD_TIMEOUT_SECONDS = 10.0
HEAD_TIMED_OUT = "The request's head did not come in time."
HEAD_TOO_LARGE = "Request headers too large."
# How a request line starts (a method, then a space), or the start of one
_REQUEST_START = re.compile(rb"\r?\Z|" + TOKEN_CHAR.encode() + rb"{1,20}(?: |\Z)")
_EMPTY_LINES = re.compile(rb"(?:\r\n)*")  # always matches: one pass, one copy
_BARE_LF_END = re.compile(rb"\n\r?\n")  # CRLF CRLF is found first; this is a malformed end


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
        if self.transport.is_closing():
            return  # refused: what was already read when it closed is not a request
        seen = len(self._head)
        if seen:
            data = self._head + data
        if data.startswith(b"\r\n"):  # empty lines before a request line are ignored
            data = data[_EMPTY_LINES.match(data).end() :]  # type: ignore[union-attr]
            seen = 0
        end = data.find(HEAD_END, max(0, seen - 3))
        # The same answer however the head was split: past the limit once its end can no
        # longer come within it
        if end > MAX_HANDSHAKE_BYTES or (end < 0 and len(data) - 3 > MAX_HANDSHAKE_BYTES):
            self._refuse(431, HEAD_TOO_LARGE)
        elif end >= 0 or not _REQUEST_START.match(data) or _BARE_LF_END.search(data):
            # A whole head; or bytes that cannot start a request, or a head ended with bare
            # line feeds: uvicorn's parser answers those at once (400), as it did
            self._head = b""
            self._hand_on(data)
        else:
            self._head = data  # the rest of the head is still to come

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
        self._refuse(408, HEAD_TIMED_OUT)

    def _refuse(self, status: int, message: str) -> None:
        self._settled()
        _refuse(self.transport, status, message)

    def _hand_on(self, data: bytes) -> None:
        self._settled()  # the next protocol tracks it
        if not (data.startswith(b"GET ") and self._hand_to_websocket(data)):
            http = BoundedHttpProtocol(self._config, self._server_state, self._app_state)
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


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the same bounds on every later request's head on a
    kept-alive connection: httptools takes a head of any size (a header's value is gathered
    whole before uvicorn sees it) and uvicorn waits for one as long as it takes."""

    _head_bytes = -1  # bytes read since a request began, until its head is whole; else -1
    _head_deadline: asyncio.TimerHandle | None = None
    _requests = 0  # requests begun on the connection

    def on_message_begin(self) -> None:
        self._head_bytes = 0
        self._requests += 1
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._head_bytes = -1  # the head is whole: the body is the app's to bound
        self._stop_deadline()
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        # Only a read that comes while a head is under way is all head, up to its end: the
        # read a head begins in may carry whole requests before it, the read that ends it a
        # body after it. So a later head may pass 16 KiB by up to two reads (uvloop reads at
        # most 256 KiB), and pipelined requests are never counted as one head.
        under_way = self._requests if self._head_bytes >= 0 else -1
        super().data_received(data)
        if self._head_bytes < 0 or self.transport.is_closing():
            return  # no head under way (these bytes were a body, or whole requests)
        if under_way == self._requests:  # the same head before and after this read
            self._head_bytes += len(data)
        if self._head_bytes > MAX_HANDSHAKE_BYTES:
            self._refuse(431, HEAD_TOO_LARGE)
        elif self._head_deadline is None:
            self._head_deadline = asyncio.get_running_loop().call_later(
                HEAD_TIMEOUT_SECONDS, self._refuse, 408, HEAD_TIMED_OUT
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def _refuse(self, status: int, message: str) -> None:
        self._stop_deadline()
        if not self.transport.is_closing():
            _refuse(self.transport, status, message)

    def _stop_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None


def _refuse(transport: Any, status: int, message: str) -> None:
    transport.write(refusal(status, message))
    transport.close()
