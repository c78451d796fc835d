"""The WebSocket connection: uvicorn hands it the raw transport after the upgrade request.

Serving sockets on the same port as the REST API (the mobile client derives one from the
other) while owning the bytes: `uvicorn.run(..., ws=WebSocketConnection)`. The handshake,
framing and close are done here; what a connection means is up to the socket app.
"""

from __future__ import annotations

import asyncio
import http
import logging
import re
import time
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from tajiri_live.core import randomids
from tajiri_live.core.availability import dependency_of, unavailable_message
from tajiri_live.realtime import frames
from tajiri_live.realtime.gateway import CloseCodes, Gateway, Refusal, SocketSession
from tajiri_live.realtime.slots import Wire, wire_for

log = logging.getLogger(__name__)

MAX_HANDSHAKE_BYTES = 16 * 1024
SLOW_ABORT_SECONDS = 5.0
HEAD_END = b"\r\n\r\n"  # the blank line that ends a request's head
HANDSHAKE, ADMITTING, OPEN, CLOSED = range(4)
PLAIN_CLOSE_CODES = CloseCodes()
RequestHead = tuple[str, str, dict[str, str]]  # method, target, headers
TOKEN_CHAR = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]"  # what a method or a header name is made of
_TOKEN = re.compile(f"{TOKEN_CHAR}+")
# Header lines, all checked in one match: a token name, a colon, a value to the line's end
_HEADER_LINE = TOKEN_CHAR + r"+:[^\r\n]*"
_HEADERS = re.compile(f"{_HEADER_LINE}(?:\r\n{_HEADER_LINE})*")
_KEY = re.compile(r"[A-Za-z0-9+/]{22}==")  # 16 bytes: 22 characters, then the padding
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # but tab (CRLF ends lines)


class WebSocketConnection(asyncio.Protocol):
    __slots__ = (
        "_buffer",
        "_gateway",
        "_held",
        "_parser",
        "_server_state",
        "last_seen",
        "own",
        "session",
        "socket_id",
        "state",
        "transport",
        "user_id",
        "wire",
    )
    wire: Wire  # from connection_made on: every write of the socket goes through it

    def __init__(
        self,
        config: Any = None,
        server_state: Any = None,
        app_state: dict[str, Any] | None = None,
        _loop: Any = None,
    ) -> None:
        gateway = (app_state or {}).get("realtime_gateway")
        if gateway is None:
            raise RuntimeError("the application's lifespan did not provide a realtime gateway")
        self._gateway: Gateway = gateway
        self._server_state = server_state
        self._buffer = bytearray()
        self._parser = frames.FrameParser(gateway.max_message_bytes, gateway.max_fragments)
        self.state = HANDSHAKE
        self.session: SocketSession | None = None
        self.transport: Any = None
        self.own: list[bytes] = []
        self.user_id: int | None = None
        # `digits.digits`, as Pusher clients expect; random so nodes never collide
        self.socket_id = f"{randomids.below(10**9)}.{randomids.below(10**9)}"
        self.last_seen = time.monotonic()
        self._held: bytes | None = None  # the 101, between admission and the first write

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.wire = wire_for(transport)
        if self._server_state is not None:
            self._server_state.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.last_seen = time.monotonic()
        if self.state == OPEN:
            self._receive_frames(data)
            return
        if self.state == CLOSED:
            return
        self._buffer += data
        if self.state != HANDSHAKE:
            return  # what came with the request's head, before our 101: kept until it opens
        end = self._buffer.find(HEAD_END)
        if end < 0:
            if len(self._buffer) > MAX_HANDSHAKE_BYTES:
                self._refuse(431, "Request headers too large.")
            return
        head = bytes(self._buffer[:end])
        del self._buffer[: end + 4]
        try:
            request = parse_head(head)
        except ValueError:
            self._refuse(400, "Malformed request.")
            return
        self.begin_handshake(request)

    def begin_handshake(self, request: RequestHead, early: bytes = b"") -> None:
        """Admit a request whose head was read (here, or by the HTTP protocol that handed the
        connection over with what came after the head: `early`)."""
        self._buffer += early
        self.state = ADMITTING
        # A client waits for our 101 before it sends frames (RFC 6455, 4.1): read nothing
        # more until then, so what arrives meanwhile costs no memory here.
        self.transport.pause_reading()
        self._gateway.spawn(self._handshake_or_refuse(request), name="ws-handshake")

    def connection_lost(self, exc: Exception | None) -> None:
        # First: the transport closes the socket after this call, and its number may be reused.
        self.wire.forget()
        was_open = self.state == OPEN
        self.state = CLOSED
        if self._server_state is not None:
            self._server_state.connections.discard(self)
        self._gateway.connections.discard(self)
        self._gateway.hub.drop(self)
        if was_open and self.session is not None:
            try:
                self.session.closed(self)
            except Exception:
                log.exception("socket session close failed")

    # uvicorn calls this on shutdown for every connection it tracks
    def shutdown(self) -> None:
        self.close(*self.close_codes.going_away)

    @property
    def close_codes(self) -> CloseCodes:
        return self.session.close_codes if self.session is not None else PLAIN_CLOSE_CODES

    # --- handshake -------------------------------------------------------------------------

    async def _handshake_or_refuse(self, request: RequestHead) -> None:
        """A handshake that fails unforeseen still ends: reading is paused until the 101, so a
        connection left admitting would never even see its client leave."""
        try:
            await self._handshake(*request)
        except Exception:
            log.exception("websocket handshake failed")
            if self.state == ADMITTING:
                self._refuse(500, "Server error.")
            elif self.state == OPEN:  # the session opened: it is closed as any socket is
                self.close(frames.CLOSE_INTERNAL_ERROR, "server error")

    async def _handshake(self, method: str, target: str, headers: dict[str, str]) -> None:
        if method != "GET" or headers.get("upgrade", "").lower() != "websocket":
            self._refuse(426, "This endpoint speaks WebSocket: send an Upgrade request.")
            return
        key = headers.get("sec-websocket-key", "")
        if headers.get("sec-websocket-version") != "13" or not key:
            self._refuse(426, "WebSocket version 13 with a Sec-WebSocket-Key is required.")
            return
        if not _KEY.fullmatch(key):  # base64 of 16 bytes (RFC 6455, 4.1)
            self._refuse(400, "The Sec-WebSocket-Key is not a base64-encoded 16-byte value.")
            return
        try:
            path, query_string = split_target(target)
        except ValueError:  # `//[x/...`: an absolute form urlsplit cannot read
            self._refuse(400, "Malformed request target.")
            return
        query = dict(parse_qsl(query_string))
        try:
            session = await self._gateway.admit(unquote(path), query, headers, self._peer())
        except Refusal as refusal:
            self._refuse(refusal.status, refusal.message)
            return
        except Exception as exc:
            dependency = dependency_of(exc)
            if dependency is not None:  # an outage, not a bug: the client may come back
                log.warning("websocket admission: %s unavailable (%r)", dependency, exc)
                self._refuse(503, unavailable_message(dependency))
                return
            log.exception("websocket admission failed")
            self._refuse(500, "Server error.")
            return
        if self.state == CLOSED:
            return
        self.session = session
        self.user_id = session.user_id
        self.state = OPEN
        self._gateway.connections.add(self)
        # The 101 goes out with the frames the session queues as it opens (its first one):
        # one write, and one wake-up of the client, instead of two. Whatever the session
        # writes itself meanwhile (a refusal and a close) goes out behind it (`write`).
        self._held = (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
            + frames.accept_key(key).encode()
            + b"\r\n\r\n"
        )
        session.opened(self)
        if self.state != OPEN:
            return  # closed as it opened: `close` wrote the 101 and the close frame
        self.write(self._gateway.hub.take_own(self))
        self.transport.resume_reading()
        if self._buffer:
            pending = bytes(self._buffer)
            self._buffer.clear()
            self._receive_frames(pending)

    def _peer(self) -> str | None:
        peername = self.transport.get_extra_info("peername") if self.transport else None
        return str(peername[0]) if isinstance(peername, tuple) and peername else None

    def _refuse(self, status: int, message: str) -> None:
        self.wire.send(refusal(status, message))
        self.state = CLOSED
        self.transport.close()

    # --- frames ----------------------------------------------------------------------------

    def _receive_frames(self, data: bytes) -> None:
        try:
            messages = self._parser.feed(data)
        except frames.ProtocolError as error:
            self.close(error.code, error.reason)
            return
        session = self.session
        ping: bytes | None = None
        for message in messages:
            if self.state != OPEN:  # closed by an earlier message (a flood, a ban)
                return
            if message.opcode == frames.OP_TEXT and session is not None:
                try:
                    text = message.payload.decode("utf-8")
                except UnicodeDecodeError:
                    self.close(frames.CLOSE_INVALID_DATA, "text must be UTF-8")
                    return
                session.received(self, text)
            elif message.opcode == frames.OP_BINARY and session is not None:
                session.received(self, "")  # answered as a malformed frame by the app
            elif message.opcode == frames.OP_PING:
                ping = message.payload
            elif message.opcode == frames.OP_CLOSE:
                self.close(frames.CLOSE_NORMAL, "")
                return
        if ping is not None and self.state == OPEN:
            # One pong for the latest ping of what was read (RFC 6455, 5.5.3): a ping flood
            # costs one pong per read, not one per ping. Through the hub, as any frame for
            # this socket alone: a client that pings and never reads meets the same limits
            # on unread bytes as one that does not read its room's frames.
            self.send(frames.frame(ping, frames.OP_PONG))

    def write(self, data: bytes) -> None:
        """Write to the socket now, behind the 101 if that has not gone out yet."""
        held = self._held
        if held is not None:
            self._held = None
            data = held + data
        self.wire.send(data)

    def send(self, data: bytes) -> None:
        """Queue a frame for this socket alone (delivered on the next tick)."""
        if self.state == OPEN:
            self._gateway.hub.send_own(self, data)

    def close(self, code: int, reason: str) -> None:
        if self.state == CLOSED or self.transport is None:
            return
        was_open = self.state == OPEN
        if was_open:
            # Replies queued for this socket alone (an error saying why) go out before the
            # close; the hub would otherwise drop them with the socket.
            pending, self.own = self.own, []
            self.write(b"".join(pending) + frames.close_frame(code, reason))
        self.state = CLOSED
        self._gateway.hub.drop(self)
        self.transport.close()
        if was_open and self.session is not None:
            self.session.closed(self)
            self.session = None

    def close_slow(self) -> None:
        """The peer does not read: send the close code, and abort if it cannot even take that."""
        transport = self.transport
        self.close(*self.close_codes.slow)
        asyncio.get_running_loop().call_later(SLOW_ABORT_SECONDS, transport.abort)


def refusal(status: int, message: str) -> bytes:
    """A whole HTTP answer that refuses a request and closes the connection."""
    body = orjson.dumps({"success": False, "message": message})
    phrase = http.HTTPStatus(status).phrase
    extra = {
        401: b"WWW-Authenticate: Bearer\r\n",
        503: b"Retry-After: 5\r\n",  # a dependency is down: the client may come back
    }.get(status, b"")
    return (
        f"HTTP/1.1 {status} {phrase}\r\n".encode()
        + b"Content-Type: application/json\r\nConnection: close\r\n"
        + extra
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def parse_head(head: bytes) -> RequestHead:
    """Method, target and headers (names lower-cased; a repeated header's last value, as
    uvicorn's upgrade check reads them) of a request head without its final blank line.
    As strict as uvicorn's parser where it matters: token names, no control characters, no
    line folding, HTTP/1.0 or 1.1 (ValueError otherwise)."""
    text = head.decode("latin-1")
    if _CONTROL.search(text.replace("\r\n", "")):
        raise ValueError("control characters")
    request_line, more, fields = text.partition("\r\n")
    method, target, version = request_line.split(" ")  # ValueError unless three parts
    if version not in ("HTTP/1.1", "HTTP/1.0") or not _TOKEN.fullmatch(method) or not target:
        raise ValueError("not an HTTP/1.x request line")
    headers: dict[str, str] = {}
    if not more:
        return method, target, headers
    # One match for all lines (a regex per line cost a Dart client's head 19 µs of 40)
    if not _HEADERS.fullmatch(fields):
        raise ValueError("bad header line")
    for line in fields.split("\r\n"):
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip(" \t")
    return method, target, headers


def split_target(target: str) -> tuple[str, str]:
    """A request target's path and query string. The origin form (`/path?query`, what
    clients send) is split by hand: `urlsplit` costs a join storm a few percent of its CPU."""
    if target.startswith("/") and not target.startswith("//") and "\t" not in target:
        before_fragment = target.partition("#")[0]
        path, _, query = before_fragment.partition("?")
        return path, query
    url = urlsplit(target)  # the absolute form (`http://host/path?query`)
    return url.path, url.query


def websocket_upgrade(data: bytes) -> tuple[RequestHead, bytes] | None:
    """The head of a WebSocket upgrade request, complete in `data`, and what came after it;
    None for anything else (uvicorn's HTTP protocol reads that). Upgrade as uvicorn decides
    it: `Upgrade: websocket` and `upgrade` among the Connection header's tokens."""
    end = data.find(HEAD_END)
    if end < 0 or end > MAX_HANDSHAKE_BYTES:
        return None
    try:
        request = parse_head(data[:end])
    except ValueError:
        return None
    _, target, headers = request
    if headers.get("upgrade", "").lower() != "websocket":
        return None
    connection = headers.get("connection", "").lower().split(",")
    if "upgrade" not in (token.strip() for token in connection):
        return None
    # What uvicorn's parser refuses with a 400 and this one would let through is left to it:
    # a target it does not take, and a body on the upgrade (the Dart client sends a
    # `content-length: 0`, nothing more)
    if not target.isascii() or "\t" in target or "transfer-encoding" in headers:
        return None
    if "content-length" in headers and (
        headers["content-length"] != "0" or data[:end].lower().count(b"\ncontent-length:") > 1
    ):
        return None
    return request, data[end + 4 :]
