"""How good a stream's connection is, from what is known of it (no I/O).

The encoder's own report names its network quality (`Excellent`, `Good`, `Poor`,
`Disconnected` from the app's SDK); when it does not, and for ingest's samples, the quality
is the worst of what each known measure says:

- bitrate, against the encoder's own target when nginx knows it (the stream's metadata):
  at least 80 % of it is excellent, at least 50 % good, less poor; without a target, against
  `HEALTH_EXCELLENT_KBPS` (1,500) and `HEALTH_POOR_KBPS` (300); nothing arriving is poor;
- frame rate: 24 fps or more is excellent, 15 or more good, less poor;
- latency (the encoder's report): up to 2 s excellent, up to 5 s good, more poor.
Nothing known at all: good (the column's default).
"""

from __future__ import annotations

from dataclasses import dataclass

EXCELLENT, GOOD, POOR = "excellent", "good", "poor"
RANK = {POOR: 0, GOOD: 1, EXCELLENT: 2}
LABELS = {"excellent": EXCELLENT, "good": GOOD, "poor": POOR, "disconnected": POOR}
TARGET_EXCELLENT, TARGET_GOOD = 0.8, 0.5
FPS_EXCELLENT, FPS_GOOD = 24.0, 15.0
LATENCY_EXCELLENT, LATENCY_GOOD = 2.0, 5.0


@dataclass(frozen=True)
class Verdict:
    quality: str
    reasons: tuple[str, ...]  # why it is not excellent, readable


def from_label(label: str | None) -> str | None:
    """The app's label as one of ours (`Disconnected` is poor); None when it says nothing."""
    if label is None:
        return None
    return LABELS.get(label.strip().lower())


def _level(value: float, excellent: float, good: float) -> str:
    """Higher is better; for latency, pass negated values."""
    return EXCELLENT if value >= excellent else GOOD if value >= good else POOR


def judge(
    *,
    bitrate: int | None,
    fps: float | None,
    latency: float | None,
    target_kbps: int | None = None,
    excellent_kbps: int,
    poor_kbps: int,
) -> Verdict:
    verdicts: list[tuple[str, str]] = []
    if bitrate is not None:
        if target_kbps:
            share = bitrate / target_kbps
            level = _level(share, TARGET_EXCELLENT, TARGET_GOOD)
            why = f"bitrate {bitrate} kbps is {share:.0%} of the encoder's {target_kbps} kbps"
        else:
            level = _level(bitrate, excellent_kbps, max(poor_kbps, 1))
            why = f"bitrate {bitrate} kbps"
        verdicts.append((level, why))
    if fps:  # 0 or unknown: the encoder did not say
        verdicts.append((_level(fps, FPS_EXCELLENT, FPS_GOOD), f"{fps:g} fps"))
    if latency is not None:
        level = _level(-latency, -LATENCY_EXCELLENT, -LATENCY_GOOD)
        verdicts.append((level, f"latency {latency:g} s"))
    if not verdicts:
        return Verdict(GOOD, ())
    worst = min((level for level, _ in verdicts), key=RANK.__getitem__)
    if worst == EXCELLENT:
        return Verdict(EXCELLENT, ())
    return Verdict(worst, tuple(why for level, why in verdicts if level == worst))
