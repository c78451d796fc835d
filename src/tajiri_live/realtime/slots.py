"""A socket's place in a group, and the loop that writes a slice of them.

The loop is the fan-out's innermost: at 10,000 sockets a turn, the Python loop and the
transport's own `write` bookkeeping were about a fifth of the fan-out's CPU, the system call
the rest. `_wheel.c` runs the same loop in C and sends to a plain uvloop TCP transport with
nothing queued straight on its descriptor; anything else (TLS, another event loop, a test's
transport, bytes already queued) goes through the transport's `write`. Without the compiled
module (a build without a C compiler) the same loop runs in Python, every write through the
transport.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Since = Callable[[int], tuple[bytes, int]]
WriteSlice = Callable[[list["Slot"], int, Since], tuple[int, int, int]]


class Slot:
    """One socket's place in one group: where it is in the group's log."""

    __slots__ = ("alive", "buffered", "fd", "seq", "write")

    def __init__(self, transport: Any, seq: int) -> None:
        self.write: Callable[[bytes], object] = transport.write
        self.seq = seq  # the first frame of the log this socket has not been written
        # False once it left (the hub's drop, from the protocol's connection_lost, which a
        # transport calls before it closes its socket): turns already planned skip it, and
        # the compiled loop never sends on a descriptor that may have been reused.
        self.alive = True
        self.fd = direct_fd(transport)  # -1: always through `write`
        self.buffered: Callable[[], int] = transport.get_write_buffer_size


def direct_fd(transport: Any) -> int:
    """The descriptor the compiled loop may send on for this transport, or -1.

    Only uvloop's plain TCP transport: it writes its own queue straight to the same
    descriptor and counts all it has queued (`get_write_buffer_size`), so bytes sent beside
    it while that is 0 keep their order; a TLS transport's bytes must go through its
    encryption, and other transports are not known to keep those promises."""
    kind = type(transport)
    if kind.__module__ != "uvloop.loop" or kind.__name__ != "TCPTransport":
        return -1
    sock = transport.get_extra_info("socket")
    return int(sock.fileno()) if sock is not None else -1


def write_slice_py(slots: list[Slot], head: int, since: Since) -> tuple[int, int, int]:
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
            slot.write(owed[0])
            frames += owed[1]
            writes += 1
            oldest = min(oldest, seq)
    return frames, writes, oldest


def _compiled() -> WriteSlice | None:
    try:
        from tajiri_live.realtime._wheel import write_slice as compiled_write_slice
    except ImportError:  # built without a C compiler: the Python loop above
        return None
    return compiled_write_slice


write_slice: WriteSlice = _compiled() or write_slice_py
compiled = write_slice is not write_slice_py
