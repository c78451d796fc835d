"""RFC 6455 framing: server frames are built once and written as bytes; client frames parsed.

Written here rather than taken from a library because the hot path needs frames as plain
bytes that can be joined and written to thousands of transports without per-socket work.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED = 1003
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013  # used for slow consumers: reconnect after a pause


def accept_key(client_key: str) -> str:
    digest = hashlib.sha1(client_key.encode("ascii") + GUID).digest()
    return base64.b64encode(digest).decode("ascii")


def frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One unmasked, final server frame."""
    length = len(payload)
    first = 0x80 | opcode
    if length < 126:
        return bytes((first, length)) + payload
    if length < 65536:
        return struct.pack("!BBH", first, 126, length) + payload
    return struct.pack("!BBQ", first, 127, length) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    return frame(struct.pack("!H", code) + reason.encode("utf-8")[:120], OP_CLOSE)


class ProtocolError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Message:
    opcode: int  # OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING or OP_PONG
    payload: bytes


def _unmask(payload: bytes, mask: bytes) -> bytes:
    # XOR in one big-integer operation: far faster than a Python loop per byte.
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    value = int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")
    return value.to_bytes(len(payload), "little")


DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
DEFAULT_MAX_FRAGMENTS = 64


class FrameParser:
    """Incremental parser of client frames (masked, possibly fragmented).

    Linear in what it is fed: frames are read from an offset into the buffer (one compaction
    per `feed`), and a fragmented message keeps a running total of its size, so a flood of
    tiny continuation frames costs the same per frame as any other frame. A message may be
    split into at most `max_fragments` frames (real clients send one); more closes with 1009
    like an oversized message."""

    def __init__(
        self,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_fragments: int = DEFAULT_MAX_FRAGMENTS,
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_fragments = max_fragments
        self._buffer = bytearray()
        self._pos = 0
        self._fragments: list[bytes] = []
        self._fragments_bytes = 0
        self._fragment_opcode = 0

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        messages: list[Message] = []
        try:
            while True:
                parsed = self._next_frame()
                if parsed is None:
                    return messages
                fin, opcode, payload = parsed
                message = self._assemble(fin, opcode, payload)
                if message is not None:
                    messages.append(message)
        finally:
            if self._pos:
                del self._buffer[: self._pos]
                self._pos = 0

    def _next_frame(self) -> tuple[bool, int, bytes] | None:
        buf, pos = self._buffer, self._pos
        available = len(buf) - pos
        if available < 2:
            return None
        first, second = buf[pos], buf[pos + 1]
        if first & 0x70:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "reserved bits set")
        if not second & 0x80:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
        length = second & 0x7F
        offset = 2
        if length == 126:
            if available < 4:
                return None
            length = struct.unpack_from("!H", buf, pos + 2)[0]
            offset = 4
        elif length == 127:
            if available < 10:
                return None
            length = struct.unpack_from("!Q", buf, pos + 2)[0]
            offset = 10
        if length > self.max_message_bytes:
            raise ProtocolError(CLOSE_TOO_BIG, "message too big")
        if available < offset + 4 + length:
            return None
        start = pos + offset + 4
        mask = bytes(buf[pos + offset : start])
        payload = _unmask(bytes(buf[start : start + length]), mask) if length else b""
        self._pos = start + length
        return bool(first & 0x80), first & 0x0F, payload

    def _assemble(self, fin: bool, opcode: int, payload: bytes) -> Message | None:
        if opcode >= OP_CLOSE:  # control frames: never fragmented, at most 125 bytes
            if not fin or len(payload) > 125:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "bad control frame")
            if opcode not in (OP_CLOSE, OP_PING, OP_PONG):
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "unknown opcode")
            return Message(opcode, payload)
        if opcode == OP_CONTINUATION:
            if not self._fragments:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "continuation without a start")
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._fragments:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
            if fin:  # the usual case: one frame, one message
                return Message(opcode, payload)
            self._fragment_opcode = opcode
        else:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "unknown opcode")
        self._fragments.append(payload)
        self._fragments_bytes += len(payload)
        if self._fragments_bytes > self.max_message_bytes:
            raise ProtocolError(CLOSE_TOO_BIG, "message too big")
        if len(self._fragments) > self.max_fragments:
            raise ProtocolError(CLOSE_TOO_BIG, "message split into too many frames")
        if not fin:
            return None
        whole = b"".join(self._fragments)
        self._fragments, self._fragments_bytes = [], 0
        return Message(self._fragment_opcode, whole)
