"""Node slots: how a restarted process knows, at once, which node it replaces.

Each serving process locks one slot file under `{var_dir}/nodes` for as long as it lives and
writes its node id and last heartbeat there. The kernel releases the lock when the process
dies, however it dies; so a process that takes a slot with something written in it knows that
node is dead, and when it last beat, without waiting for a timeout.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from tajiri_live.realtime.presence import Predecessor

MAX_SLOTS = 1024


class NodeSlot:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fd: int | None = None
        self.path: Path | None = None

    def acquire(self, node_id: str, at: float) -> Predecessor | None:
        """Lock the first free slot; the node that held it before, if it did not leave cleanly."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for number in range(MAX_SLOTS):
            path = self.directory / f"slot-{number}"
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            before = _parse(os.pread(fd, 200, 0))
            self._fd, self.path = fd, path
            self.beat(node_id, at)
            return before
        raise RuntimeError(f"every node slot under {self.directory} is taken")

    def beat(self, node_id: str, at: float) -> None:
        """Write who holds the slot and when it last beat (one small write)."""
        if self._fd is None:
            return
        line = f"{node_id} {at!r}\n".encode()
        os.pwrite(self._fd, line.ljust(64), 0)

    def release(self) -> None:
        """A clean exit: nothing left to reap, so the successor finds the slot empty."""
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing drops the lock
        self._fd = None


def _parse(raw: bytes) -> Predecessor | None:
    parts = raw.decode(errors="replace").split()
    if len(parts) != 2:
        return None
    try:
        return Predecessor(parts[0], float(parts[1]))
    except ValueError:
        return None
