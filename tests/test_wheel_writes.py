"""The wheel's write loop: the compiled one does what the Python one does, and its direct sends
on uvloop's descriptors keep every byte in order with the transport's own queue."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable

import pytest
import uvloop

from tajiri_live.realtime import slots
from tajiri_live.realtime.encoders import PlainEncoder
from tajiri_live.realtime.hub import Group
from tajiri_live.realtime.slots import Slot, direct_fd, write_slice_py
from test_hub import RecordingTransport

WriteSlice = slots.WriteSlice

IMPLEMENTATIONS = [pytest.param(write_slice_py, id="python")]
if slots.compiled:
    IMPLEMENTATIONS.append(pytest.param(slots.write_slice, id="compiled"))


class Log:
    """A group's log (the hub's own `Group`), its `since` counting its calls."""

    def __init__(self, frames: list[bytes]) -> None:
        self.group = Group(PlainEncoder())
        for frame in frames:
            self.group.append(frame, 0.0)
        self.frames = frames
        self.calls: list[int] = []

    def since(self, seq: int) -> tuple[bytes, int]:
        self.calls.append(seq)
        return self.group.since(seq)


def test_the_compiled_loop_is_built_where_ci_runs() -> None:
    if os.environ.get("CI") != "true" and not slots.compiled:
        pytest.skip("built without a C compiler: the Python loop serves")
    assert slots.compiled
    assert slots.write_slice is not write_slice_py


@pytest.mark.parametrize("write_slice", IMPLEMENTATIONS)
def test_each_live_slot_behind_the_head_gets_what_it_is_owed_once(write_slice: WriteSlice) -> None:
    log = Log([b"a", b"", b"cc", b"d", b""])  # blanks: frames replaced by a later one
    head = len(log.frames)
    behind = [
        Slot(RecordingTransport(), 0),
        Slot(RecordingTransport(), 0),
        Slot(RecordingTransport(), 2),
    ]
    current = Slot(RecordingTransport(), head)
    gone = Slot(RecordingTransport(), 0)
    gone.alive = False
    nothing_left = Slot(RecordingTransport(), 4)  # only a blank after it: moved on, not written
    frames, writes, oldest = write_slice([*behind, current, gone, nothing_left], head, log.since)
    assert [s.write.__self__.writes for s in behind] == [[b"accd"], [b"accd"], [b"ccd"]]  # type: ignore[attr-defined]
    assert (frames, writes, oldest) == (3 + 3 + 2, 3, 0)
    assert sorted(log.calls) == [0, 2, 4]  # one call per position, shared by the slice
    assert [s.seq for s in [*behind, current, gone, nothing_left]] == [head] * 4 + [0, head]
    assert current.write.__self__.writes == []  # type: ignore[attr-defined]
    assert gone.write.__self__.writes == nothing_left.write.__self__.writes == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("write_slice", IMPLEMENTATIONS)
def test_a_slice_with_nothing_owed_writes_nothing(write_slice: WriteSlice) -> None:
    log = Log([b"a"])
    assert write_slice([Slot(RecordingTransport(), 1)], 1, log.since) == (0, 0, 1)
    assert write_slice([], 1, log.since) == (0, 0, 1)
    assert log.calls == []


def test_only_uvloops_plain_tcp_transport_is_written_directly() -> None:
    assert direct_fd(RecordingTransport()) == -1
    assert Slot(RecordingTransport(), 0).fd == -1


async def _serve_and_connect(
    count: int,
) -> tuple[asyncio.Server, list[asyncio.Transport], list[socket.socket]]:
    accepted: asyncio.Queue[asyncio.Transport] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    class Quiet(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted.put_nowait(transport)  # type: ignore[arg-type]

    server = await loop.create_server(Quiet, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clients, transports = [], []
    for _ in range(count):
        client = socket.socket()
        client.setblocking(False)
        await loop.sock_connect(client, ("127.0.0.1", port))
        clients.append(client)
        transports.append(await asyncio.wait_for(accepted.get(), 5))  # one at a time: in order
    return server, transports, clients


async def _read_exactly(client: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    chunks = bytearray()
    while len(chunks) < size:
        chunk = await asyncio.wait_for(loop.sock_recv(client, size - len(chunks)), 10)
        assert chunk, "the connection closed early"
        chunks += chunk
    return bytes(chunks)


@pytest.mark.skipif(not slots.compiled, reason="built without a C compiler")
def test_direct_sends_keep_order_with_the_transports_queue() -> None:
    """A socket with nothing queued is sent to directly; what `send()` does not take goes
    through its transport, and so does everything after it until that queue is empty."""

    async def scenario() -> None:
        server, transports, clients = await _serve_and_connect(2)
        try:
            slots_ = [Slot(t, 0) for t in transports]
            assert all(s.fd >= 0 for s in slots_)
            through_transport: list[list[int]] = [[] for _ in slots_]
            for slot, calls in zip(slots_, through_transport, strict=True):
                slot.write = _counting(slot.write, calls)
            big = os.urandom(16 * 1024 * 1024)  # more than loopback's buffers take at once
            frames = [b"first", big, b"third", b"fourth"]

            def turn(head: int) -> None:
                slots.write_slice(
                    slots_, head, lambda seq: (b"".join(frames[seq:head]), head - seq)
                )

            turn(1)  # sent directly
            assert through_transport == [[], []]
            turn(2)  # a part sent directly, the rest queued by the transport
            assert all(len(c) == 1 and 0 < c[0] < len(big) for c in through_transport)
            assert all(t.get_write_buffer_size() > 0 for t in transports)
            turn(3)  # behind the queued bytes: through the transport too
            assert all(c[1:] == [len(b"third")] for c in through_transport)
            for client in clients:
                assert await _read_exactly(client, len(b"".join(frames[:3]))) == b"".join(
                    frames[:3]
                )
            for transport in transports:  # the transport has written its queue out
                assert transport.get_write_buffer_size() == 0
            turn(4)  # nothing queued: sent directly again
            assert all(len(c) == 2 for c in through_transport)
            for client in clients:
                assert await _read_exactly(client, len(b"fourth")) == b"fourth"
        finally:
            for client in clients:
                client.close()
            server.close()
            await server.wait_closed()

    uvloop.run(scenario())


def _counting(write: Callable[[bytes], object], calls: list[int]) -> Callable[[bytes], None]:
    def counted(data: bytes) -> None:
        calls.append(len(data))
        write(data)

    return counted


@pytest.mark.skipif(not slots.compiled, reason="built without a C compiler")
def test_a_slot_that_left_is_never_sent_to() -> None:
    async def scenario() -> None:
        server, transports, clients = await _serve_and_connect(1)
        try:
            slot = Slot(transports[0], 0)
            slot.alive = False
            assert slots.write_slice([slot], 1, lambda seq: (b"x", 1)) == (0, 0, 1)
            slot.alive = True
            assert slots.write_slice([slot], 1, lambda seq: (b"y", 1)) == (1, 1, 0)
            assert await _read_exactly(clients[0], 1) == b"y"
        finally:
            clients[0].close()
            server.close()
            await server.wait_closed()

    uvloop.run(scenario())
