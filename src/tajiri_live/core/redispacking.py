"""Commands packed for Redis by hiredis's C packer instead of redis-py's Python loop.

redis-py's asyncio connection builds each command in Python, an argument at a time (encode
it, then join it onto the buffer so far). The presence scripts carry a handshake's worth of
arguments per waiting socket, batched: about 1.3 µs per argument that way, against 0.16 µs
for `hiredis.pack_command` on the same arguments (a batch of 94: 126 against 15 µs), and
the sync client already packs with hiredis when it is installed.

The bytes are the same: hiredis writes str as UTF-8 and numbers as redis-py's encoder does
(`repr`). What it does not take (a bool, None, a str that is not valid Unicode), and any
client that is not on UTF-8 with strict errors, goes to redis-py's own packer, which
refuses it in its own words or packs it its own way.
"""

from __future__ import annotations

from typing import Any, cast

import hiredis
from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection


class CompiledPacking(AbstractConnection):
    """Mixed in before a connection class: its `pack_command` through hiredis."""

    def pack_command(self, *args: Any) -> list[bytes]:
        encoder = self.encoder
        if encoder.encoding != "utf-8" or encoder.encoding_errors != "strict" or not args:
            return super().pack_command(*args)
        first = args[0]
        # A command named in several words ("SCRIPT LOAD") goes as separate arguments, split
        # as redis-py splits it.
        if isinstance(first, str):
            args = (*first.encode().split(), *args[1:])
        elif isinstance(first, bytes) and b" " in first:
            args = (*first.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except (TypeError, UnicodeError):
            return super().pack_command(*args)


def pack_with_hiredis(pool: ConnectionPool) -> None:
    """Make the pool's new connections pack their commands with hiredis (whatever their
    class: TCP, TLS or a Unix socket)."""
    base = pool.connection_class
    if issubclass(base, CompiledPacking):
        return
    packed = type(f"Packed{base.__name__}", (CompiledPacking, base), {})
    pool.connection_class = cast(type[AbstractConnection], packed)
