"""Garbage-collector pauses, measured: a full collection stops the event loop (and the fan-out)."""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class GcPauses:
    collections: int = 0
    seconds: float = 0.0
    max_seconds: float = 0.0
    full_collections: int = 0
    _started: float = 0.0

    def install(self) -> None:
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def uninstall(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        self.collections += 1
        self.seconds += pause
        self.max_seconds = max(self.max_seconds, pause)
        if info.get("generation") == 2:
            self.full_collections += 1


PAUSES = GcPauses()
