"""The process metrics: the fan-out wheel's turns and the garbage collector's pauses."""

from __future__ import annotations

import gc

import httpx

from tajiri_live.core.gcpauses import GcPauses
from tajiri_live.realtime import slots


def test_gc_pauses_count_full_collections_and_their_time() -> None:
    pauses = GcPauses()
    pauses.install()
    pauses.install()  # twice is once
    try:
        gc.collect()
    finally:
        pauses.uninstall()
    assert pauses.full_collections == 1 and pauses.collections == 1
    assert 0 < pauses.max_seconds <= pauses.seconds
    gc.collect()
    assert pauses.collections == 1  # uninstalled: no longer counted


async def test_metrics_name_the_wheel_and_the_collector(client: httpx.AsyncClient) -> None:
    gc.collect()
    body = (await client.get("/metrics")).text
    values = dict(line.split() for line in body.splitlines() if not line.startswith("#"))
    for name in (
        "tajiri_ws_turns_total",
        "tajiri_ws_turn_seconds_max",
        "tajiri_ws_frames_out_total",
        "tajiri_gc_pause_seconds_max",
    ):
        assert name in values
    assert int(values["tajiri_gc_full_collections_total"]) >= 1
    assert values["tajiri_ws_compiled_writes"] == str(int(slots.compiled))
