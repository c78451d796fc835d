"""Socket and visit ids from the OS's random source read in blocks (core/randomids.py)."""

from __future__ import annotations

import os

from tajiri_live.core import randomids


def test_random_ids_cover_their_range_and_look_like_secrets_ones() -> None:
    assert len(randomids.token_hex(8)) == 16 and int(randomids.token_hex(8), 16) >= 0
    assert len({randomids.token_hex(8) for _ in range(5000)}) == 5000
    seen = {randomids.below(7) for _ in range(2000)}
    assert seen == set(range(7))
    assert all(0 <= randomids.below(10**9) < 10**9 for _ in range(2000))
    assert len(randomids.token_hex(5000)) == 10000  # past a block: read whole


def test_a_forked_child_never_repeats_its_parents_ids() -> None:
    randomids.token_hex(8)  # the parent holds a block partly used
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        os.write(writer, randomids.token_hex(8).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(reader, 64).decode()
    os.close(reader)
    os.close(writer)
    assert child != randomids.token_hex(8)
