"""The encoder's health report (`POST /streams/{id}/health`), as the app's SDK sends it."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tajiri_live.core.payload import INT32_MAX
from tajiri_live.core.text import Text
from tajiri_live.health.quality import LABELS


class HealthReport(BaseModel):
    """`network_quality` (`excellent`, `good`, `poor`, any case; the SDK's `Disconnected` is
    poor, `Unknown` says nothing), `bitrate` (kbps), `fps`, `dropped_frames` (the encoder's
    running count since it started), `latency` (seconds). `bandwidth` is accepted and unused."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    network_quality: Text | None = None
    bitrate: int | None = Field(default=None, ge=0, le=1_000_000)
    fps: float | None = Field(default=None, ge=0, le=1000)
    # A sample stores it in an INTEGER column (32-bit): a larger count cannot be held.
    dropped_frames: int | None = Field(default=None, ge=0, le=INT32_MAX)
    latency: float | None = Field(default=None, ge=0, le=3600)

    @field_validator("network_quality")
    @classmethod
    def _quality(cls, value: str | None) -> str | None:
        if value is None or value == "" or value.lower() == "unknown":
            return None
        if value.lower() not in LABELS:
            raise ValueError("The network quality must be excellent, good or poor.")
        return value

    @model_validator(mode="after")
    def _something(self) -> Self:
        measures = (self.bitrate, self.fps, self.dropped_frames, self.latency)
        if self.network_quality is None and all(v is None for v in measures):
            raise ValueError(
                "Send at least one of network_quality, bitrate, fps, dropped_frames, latency."
            )
        return self
