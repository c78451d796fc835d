"""Random identifiers for sockets and visits, from the OS's random source read in blocks.

`secrets.token_hex` asks the kernel for each identifier (a `getrandom` system call); a
socket's handshake makes three (its socket id, its presence member, its visit key), about
4 % of a join storm's CPU. These are the same bytes from the same source, read 4 KiB at a
time. A forked child starts with an empty block, so two processes never hand out the same
identifiers.
"""

from __future__ import annotations

import os

BLOCK_BYTES = 4096


class RandomBlock:
    def __init__(self) -> None:
        self._block = b""
        self._used = 0

    def take(self, size: int) -> bytes:
        if size > BLOCK_BYTES:
            return os.urandom(size)
        if self._used + size > len(self._block):
            self._block, self._used = os.urandom(BLOCK_BYTES), 0
        start = self._used
        self._used += size
        return self._block[start : self._used]

    def forget(self) -> None:
        self._block, self._used = b"", 0


_block = RandomBlock()
os.register_at_fork(after_in_child=_block.forget)


def token_hex(size: int) -> str:
    """`size` random bytes as hex, as `secrets.token_hex(size)`."""
    return _block.take(size).hex()


def below(limit: int) -> int:
    """A uniform random integer in [0, limit), as `secrets.randbelow(limit)`."""
    if limit <= 0:
        raise ValueError("limit must be positive")
    size = (limit.bit_length() + 7) // 8 + 1  # a spare byte keeps rejections rare
    span = 256**size
    usable = span - span % limit  # values past this would favour the low numbers
    while True:
        value = int.from_bytes(_block.take(size), "big")
        if value < usable:
            return value % limit
