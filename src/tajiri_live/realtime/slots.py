"""A socket's way out (its wire), its place in a group (a slot), and the loop that writes a
slice of a group's sockets.

The loop is the fan-out's innermost: at 10,000 sockets a turn, the Python loop and the
transport's own `write` bookkeeping were about a fifth of the fan-out's CPU, the system call
the rest. `_wheel.c` has the same three in C: a wire on a plain uvloop TCP transport sends
straight on its descriptor while the transport holds nothing, and asks the transport whether
it still holds anything only after it gave it bytes; anything else (TLS, another event loop, a
test's transport) goes through the transport's `write`. Without the compiled module (a build
without a C compiler) the Python classes below serve, every write through the transport.

Every write of a socket goes through its one wire, so that its bytes keep their order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast

Since = Callable[[int], tuple[bytes, int]]


class Wire(Protocol):
    """One socket's way out."""

    @property
    def fd(self) -> int: ...  # the descriptor sent on directly, or -1
    def send(self, data: bytes) -> None:
        """Write bytes to the socket, after all written before."""
        ...

    def forget(self) -> None:
        """Never send on the descriptor again (the connection is lost: it may be reused)."""
        ...


class Slot(Protocol):
    """One socket's place in one group: where it is in the group's log."""

    seq: int  # the first frame of the log this socket has not been written
    # False once it left (the hub's drop): turns already planned skip it
    alive: bool

    @property
    def wire(self) -> Wire: ...


class PythonWire:
    __slots__ = ("fd", "write")

    def __init__(
        self, write: Callable[[bytes], object], buffered: Callable[[], int], fd: int = -1
    ) -> None:
        self.write = write
        self.fd = -1  # the Python loop always writes through the transport

    def send(self, data: bytes) -> None:
        if data:
            self.write(data)

    def forget(self) -> None:
        self.fd = -1


class PythonSlot:
    __slots__ = ("alive", "seq", "wire")

    def __init__(self, wire: Wire, seq: int) -> None:
        self.wire = wire
        self.seq = seq
        self.alive = True


WireFactory = Callable[[Callable[[bytes], object], Callable[[], int], int], Wire]
SlotFactory = Callable[[Wire, int], Slot]
WriteSlice = Callable[[list[Any], int, Since], tuple[int, int, int]]


def direct_fd(transport: Any) -> int:
    """The descriptor a compiled wire may send on for this transport, or -1.

    Only uvloop's plain TCP transport: it writes its own queue straight to the same
    descriptor and counts all it has queued (`get_write_buffer_size`), so bytes sent beside
    it while that is 0 keep their order; a TLS transport's bytes must go through its
    encryption, and other transports are not known to keep those promises."""
    kind = type(transport)
    if kind.__module__ != "uvloop.loop" or kind.__name__ != "TCPTransport":
        return -1
    sock = transport.get_extra_info("socket")
    return int(sock.fileno()) if sock is not None else -1


def write_slice_py(slots: list[Any], head: int, since: Since) -> tuple[int, int, int]:
    """Write each live slot behind `head` what it is owed and move it to `head`: the frames and
    writes made, and the oldest sequence number written (`head` if none)."""
    joined: dict[int, tuple[bytes, int]] = {}  # start -> (bytes, frames): shared in a slice
    frames = writes = 0
    oldest = head
    for slot in slots:
        seq = slot.seq
        if seq >= head or not slot.alive:
            continue
        owed = joined.get(seq)
        if owed is None:
            owed = joined[seq] = since(seq)
        slot.seq = head
        if owed[1]:
            slot.wire.send(owed[0])
            frames += owed[1]
            writes += 1
            oldest = min(oldest, seq)
    return frames, writes, oldest


def _implementation() -> tuple[WireFactory, SlotFactory, WriteSlice, bool]:
    try:
        from tajiri_live.realtime import _wheel
    except ImportError:  # built without a C compiler: the Python classes above
        return PythonWire, PythonSlot, write_slice_py, False
    # A compiled slot takes only a compiled wire: `make_wire` makes only those.
    return _wheel.Wire, cast(SlotFactory, _wheel.Slot), _wheel.write_slice, True


make_wire, make_slot, write_slice, compiled = _implementation()


def wire_for(transport: Any) -> Wire:
    """The wire of a connection's transport: every write of the socket goes through it."""
    return make_wire(transport.write, transport.get_write_buffer_size, direct_fd(transport))
