"""WebSocket framing: what the server writes and how client frames are parsed."""

from __future__ import annotations

import os
import struct

import pytest

from tajiri_live.realtime import frames


def client_frame(payload: bytes, opcode: int = frames.OP_TEXT, fin: bool = True) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    first = (0x80 if fin else 0) | opcode
    length = len(payload)
    if length < 126:
        header = bytes((first, 0x80 | length))
    elif length < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    return header + mask + masked


def test_accept_key_matches_rfc_example() -> None:
    assert frames.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536])
def test_server_frame_lengths(size: int) -> None:
    data = frames.frame(b"x" * size)
    assert data[0] == 0x81
    if size < 126:
        assert data[1] == size and len(data) == 2 + size
    elif size < 65536:
        assert data[1] == 126 and struct.unpack("!H", data[2:4])[0] == size
    else:
        assert data[1] == 127 and struct.unpack("!Q", data[2:10])[0] == size


def test_parser_handles_split_and_joined_frames() -> None:
    parser = frames.FrameParser()
    stream = client_frame(b"hello") + client_frame("ü".encode() * 100)
    first = parser.feed(stream[:3])
    rest = parser.feed(stream[3:])
    assert first == []
    assert [m.payload for m in rest] == [b"hello", "ü".encode() * 100]


def test_parser_reassembles_fragments_with_control_frames_between() -> None:
    parser = frames.FrameParser()
    data = (
        client_frame(b"he", fin=False)
        + client_frame(b"!", frames.OP_PING)
        + client_frame(b"llo", frames.OP_CONTINUATION)
    )
    messages = parser.feed(data)
    assert [(m.opcode, m.payload) for m in messages] == [
        (frames.OP_PING, b"!"),
        (frames.OP_TEXT, b"hello"),
    ]


def test_unmasked_client_frame_is_a_protocol_error() -> None:
    with pytest.raises(frames.ProtocolError) as error:
        frames.FrameParser().feed(frames.frame(b"x"))
    assert error.value.code == frames.CLOSE_PROTOCOL_ERROR


def test_oversized_message_is_refused_before_it_is_buffered() -> None:
    parser = frames.FrameParser(max_message_bytes=100)
    with pytest.raises(frames.ProtocolError) as error:
        parser.feed(client_frame(b"x" * 101)[:10])
    assert error.value.code == frames.CLOSE_TOO_BIG


def test_close_frame_carries_code_and_reason() -> None:
    data = frames.close_frame(1013, "slow consumer")
    assert data[0] == 0x88
    assert struct.unpack("!H", data[2:4])[0] == 1013 and data[4:] == b"slow consumer"


def test_a_message_split_into_too_many_frames_is_refused() -> None:
    parser = frames.FrameParser(max_fragments=8)
    data = client_frame(b"{", fin=False) + client_frame(b"", frames.OP_CONTINUATION, fin=False) * 7
    assert parser.feed(data) == []
    with pytest.raises(frames.ProtocolError) as error:
        parser.feed(client_frame(b"", frames.OP_CONTINUATION, fin=False))
    assert error.value.code == frames.CLOSE_TOO_BIG


def test_fragments_count_towards_the_message_size() -> None:
    parser = frames.FrameParser(max_message_bytes=100, max_fragments=1000)
    data = client_frame(b"x" * 60, fin=False) + client_frame(b"x" * 60, frames.OP_CONTINUATION)
    with pytest.raises(frames.ProtocolError) as error:
        parser.feed(data)
    assert error.value.code == frames.CLOSE_TOO_BIG


def test_assembly_is_linear_in_the_number_of_fragments() -> None:
    """Each continuation frame costs the same whatever came before it: the parser keeps a
    running total instead of summing its stored fragments again (the old quadratic walk)."""
    parser = frames.FrameParser(max_message_bytes=1 << 20, max_fragments=50_000)
    calls = 0
    real_len = len

    class Counted(bytes):
        def __len__(self) -> int:
            nonlocal calls
            calls += 1
            return real_len(bytes(self))

    parser.feed(client_frame(b"{", fin=False))
    parser._fragments = [Counted(f) for f in parser._fragments]  # type: ignore[misc]
    for _ in range(2000):
        parser.feed(client_frame(b"", frames.OP_CONTINUATION, fin=False))
    assert calls == 0  # stored fragments are never measured again


def test_many_frames_in_one_read_are_all_parsed() -> None:
    parser = frames.FrameParser()
    messages = parser.feed(client_frame(b"a") * 10_000)
    assert len(messages) == 10_000 and parser._buffer == bytearray()
