"""The wheel's write loop: the compiled one does what the Python one does, and its direct sends
on uvloop's descriptors keep every byte in order with the transport's own queue."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import weakref

import pytest
import uvloop

from tajiri_live.realtime import slots
from tajiri_live.realtime.encoders import PlainEncoder
from tajiri_live.realtime.hub import Group
from tajiri_live.realtime.slots import direct_fd, wire_for, write_slice_py
from test_hub import RecordingTransport

WriteSlice = slots.WriteSlice

Implementation = tuple[WriteSlice, slots.WireFactory, slots.SlotFactory]
IMPLEMENTATIONS = [
    pytest.param((write_slice_py, slots.PythonWire, slots.PythonSlot), id="python"),
]
if slots.compiled:
    IMPLEMENTATIONS.append(
        pytest.param((slots.write_slice, slots.make_wire, slots.make_slot), id="compiled")
    )


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


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_each_live_slot_behind_the_head_gets_what_it_is_owed_once(
    implementation: Implementation,
) -> None:
    write_slice, make_wire, make_slot = implementation
    log = Log([b"a", b"", b"cc", b"d", b""])  # blanks: frames replaced by a later one
    head = len(log.frames)
    transports = [RecordingTransport() for _ in range(6)]
    made = [
        make_slot(make_wire(t.write, t.get_write_buffer_size, -1), seq)
        for t, seq in zip(transports, [0, 0, 2, head, 0, 4], strict=True)
    ]
    *behind, current, gone, nothing_left = made  # the last: only a blank after it
    gone.alive = False
    frames, writes, oldest = write_slice(made, head, log.since)
    assert [t.writes for t in transports[:3]] == [[b"accd"], [b"accd"], [b"ccd"]]
    assert (frames, writes, oldest) == (3 + 3 + 2, 3, 0)
    assert sorted(log.calls) == [0, 2, 4]  # one call per position, shared by the slice
    assert [s.seq for s in made] == [head] * 4 + [0, head]
    assert [t.writes for t in transports[3:]] == [[], [], []]
    assert len(behind) == 3 and current.seq == head and nothing_left.seq == head


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_a_slice_with_nothing_owed_writes_nothing(implementation: Implementation) -> None:
    write_slice, make_wire, make_slot = implementation
    log = Log([b"a"])
    transport = RecordingTransport()
    slot = make_slot(make_wire(transport.write, transport.get_write_buffer_size, -1), 1)
    assert write_slice([slot], 1, log.since) == (0, 0, 1)
    assert write_slice([], 1, log.since) == (0, 0, 1)
    assert log.calls == [] and transport.writes == []


@pytest.mark.skipif(not slots.compiled, reason="built without a C compiler")
def test_the_compiled_loop_takes_only_its_own_slots() -> None:
    wire = slots.PythonWire(RecordingTransport().write, lambda: 0)
    with pytest.raises(TypeError):
        slots.write_slice([slots.PythonSlot(wire, 0)], 1, lambda seq: (b"x", 1))
    with pytest.raises(TypeError):
        slots.make_slot(wire, 0)  # a compiled slot needs a compiled wire


def test_only_uvloops_plain_tcp_transport_is_written_directly() -> None:
    assert direct_fd(RecordingTransport()) == -1
    assert wire_for(RecordingTransport()).fd == -1


@pytest.mark.skipif(not slots.compiled, reason="built without a C compiler")
def test_a_wire_in_a_reference_cycle_is_collected() -> None:
    """transport -> protocol -> wire -> transport's write: the cycle every connection makes."""

    class Connection:
        def write(self, data: bytes) -> None:
            pass

        def get_write_buffer_size(self) -> int:
            return 0

    connection = Connection()
    connection.wire = wire_for(connection)  # type: ignore[attr-defined]
    connection.slot = slots.make_slot(connection.wire, 0)  # type: ignore[attr-defined]
    alive = weakref.ref(connection)
    del connection
    gc.collect()
    assert alive() is None


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


class Counted:
    """A uvloop transport's wire whose calls into the transport are counted."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.writes: list[int] = []  # the size of each write through the transport
        self.asked = 0  # how often the transport was asked what it holds
        self.wire = slots.make_wire(self._write, self._buffered, direct_fd(transport))

    def _write(self, data: bytes) -> None:
        self.writes.append(len(data))
        self.transport.write(data)

    def _buffered(self) -> int:
        self.asked += 1
        return self.transport.get_write_buffer_size()


@pytest.mark.skipif(not slots.compiled, reason="built without a C compiler")
def test_direct_sends_keep_order_with_the_transports_queue() -> None:
    """A socket whose transport holds nothing is sent to directly; what `send()` does not take
    goes through its transport, and so does everything after it, the socket's own frames too,
    until that queue is empty. The transport is asked what it holds only after it was given
    something."""

    async def scenario() -> None:
        server, transports, clients = await _serve_and_connect(2)
        try:
            counted = [Counted(t) for t in transports]
            assert all(c.wire.fd >= 0 for c in counted)
            slots_ = [slots.make_slot(c.wire, 0) for c in counted]
            big = os.urandom(16 * 1024 * 1024)  # more than loopback's buffers take at once
            frames = [b"first", big, b"third", b"fourth", b"fifth"]

            def turn(head: int) -> None:
                slots.write_slice(
                    slots_, head, lambda seq: (b"".join(frames[seq:head]), head - seq)
                )

            turn(1)  # sent directly, nothing asked
            assert [(c.writes, c.asked) for c in counted] == [([], 0), ([], 0)]
            turn(2)  # a part sent directly, the rest queued by the transport
            assert all(len(c.writes) == 1 and 0 < c.writes[0] < len(big) for c in counted)
            assert all(c.wire.queued and c.transport.get_write_buffer_size() for c in counted)
            counted[0].wire.send(b"own")  # a socket's own frame: behind the queue as well
            turn(3)  # behind the queued bytes: through the transport too
            assert counted[0].writes[1:] == [len(b"own"), len(b"third")]
            assert counted[1].writes[1:] == [len(b"third")]
            expected = [b"".join([b"first", big, b"own", b"third"]), b"".join(frames[:3])]
            for client, data in zip(clients, expected, strict=True):
                assert await _read_exactly(client, len(data)) == data
            for c in counted:  # the transport has written its queue out
                assert c.transport.get_write_buffer_size() == 0
            turn(4)  # asked once more, found empty: sent directly again
            asked = [c.asked for c in counted]
            assert all(len(c.writes) == (3 if i == 0 else 2) for i, c in enumerate(counted))
            assert not any(c.wire.queued for c in counted)
            turn(5)  # and without asking now
            assert [c.asked for c in counted] == asked
            for client in clients:
                assert await _read_exactly(client, len(b"fourthfifth")) == b"fourthfifth"
        finally:
            for client in clients:
                client.close()
            server.close()
            await server.wait_closed()

    uvloop.run(scenario())


@pytest.mark.skipif(not slots.compiled, reason="built without a C compiler")
def test_a_slot_that_left_or_a_forgotten_wire_is_never_sent_on() -> None:
    async def scenario() -> None:
        server, transports, clients = await _serve_and_connect(1)
        try:
            counted = Counted(transports[0])
            slot = slots.make_slot(counted.wire, 0)
            slot.alive = False
            assert slots.write_slice([slot], 1, lambda seq: (b"x", 1)) == (0, 0, 1)
            slot.alive = True
            assert slots.write_slice([slot], 1, lambda seq: (b"y", 1)) == (1, 1, 0)
            assert counted.writes == []  # sent directly
            counted.wire.forget()  # the connection was lost: its number may be reused
            assert counted.wire.fd == -1
            assert slots.write_slice([slot], 2, lambda seq: (b"z", 1)) == (1, 1, 1)
            assert counted.writes == [1]  # through the transport, which knows it is closed
            assert await _read_exactly(clients[0], 2) == b"yz"
        finally:
            clients[0].close()
            server.close()
            await server.wait_closed()

    uvloop.run(scenario())
