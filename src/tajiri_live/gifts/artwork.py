"""The starter catalog's own artwork: each gift drawn from shapes, as an icon and an animation.

The seeded catalog names `gifts/{slug}.png` and `gifts/{slug}.json`; the client loads
`{storage}/{icon_path}`. The drawings are code, so the package ships no binary art: the files
are rendered when the service first starts (Pillow for the PNG, Lottie JSON for the
animation) into the storage folder that `/storage` serves. A file already there is kept, so
an operator may replace any of them with their own.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

SIZE = 256  # the drawings' coordinate space and the icons' size in pixels
SUPERSAMPLE = 4  # drawn this much larger, then scaled down: smooth edges
FOLDER = "gifts"
FRAME_RATE = 30
FRAMES = 60  # a two-second animation: pop in, settle, float up and fade

Point = tuple[float, float]


@dataclass(frozen=True)
class Ellipse:
    """An axis-aligned ellipse, filled, or a ring `stroke` wide when stroke > 0."""

    cx: float
    cy: float
    rx: float
    ry: float
    color: str
    stroke: float = 0


@dataclass(frozen=True)
class Polygon:
    points: tuple[Point, ...]
    color: str


Shape = Ellipse | Polygon


def circle(cx: float, cy: float, r: float, color: str) -> Ellipse:
    return Ellipse(cx, cy, r, r, color)


def oval(cx: float, cy: float, rx: float, ry: float, degrees: float, color: str) -> Polygon:
    """A rotated ellipse (a leaf, a petal) as a polygon."""
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    points = []
    for i in range(48):
        t = 2 * math.pi * i / 48
        x, y = rx * math.cos(t), ry * math.sin(t)
        points.append((cx + x * cos - y * sin, cy + x * sin + y * cos))
    return Polygon(tuple(points), color)


def star(cx: float, cy: float, outer: float, inner: float, tips: int, color: str) -> Polygon:
    points = []
    for i in range(tips * 2):
        radius = outer if i % 2 == 0 else inner
        t = math.pi * i / tips - math.pi / 2
        points.append((cx + radius * math.cos(t), cy + radius * math.sin(t)))
    return Polygon(tuple(points), color)


def heart(cx: float, cy: float, scale: float, color: str) -> Polygon:
    """The classic parametric heart, `scale` units per step of its 32-wide curve."""
    points = []
    for i in range(120):
        t = 2 * math.pi * i / 120
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        points.append((cx + x * scale, cy - y * scale))
    return Polygon(tuple(points), color)


def below(cx: float, cy: float, r: float, y: float, color: str) -> Polygon:
    """The part of a circle below the line `y` (the ground of a round picture)."""
    half = math.acos((y - cy) / r)  # the angle from straight down to where the line cuts
    points = []
    for i in range(41):
        t = math.pi / 2 - half + 2 * half * i / 40
        points.append((cx + r * math.cos(t), cy + r * math.sin(t)))
    return Polygon(tuple(points), color)


# Each drawing is its shapes from the back to the front, in a 256-unit square.
DRAWINGS: dict[str, tuple[Shape, ...]] = {
    "rose": (
        Polygon(((123, 140), (133, 140), (136, 244), (126, 244)), "#2e7d32"),
        oval(98, 196, 30, 13, -35, "#43a047"),
        oval(160, 178, 30, 13, 35, "#43a047"),
        circle(128, 96, 60, "#b0173a"),
        *(
            oval(128 + 30 * math.cos(a), 96 + 30 * math.sin(a), 34, 24, math.degrees(a), "#d81b4a")
            for a in (math.radians(d) for d in range(0, 360, 72))
        ),
        circle(128, 96, 34, "#e53966"),
        oval(120, 92, 20, 14, -20, "#c2185b"),
        oval(134, 100, 14, 10, 30, "#f06292"),
        circle(128, 96, 7, "#ad1457"),
    ),
    "heart": (
        heart(128, 120, 7.2, "#c2185b"),
        heart(128, 116, 6.6, "#e91e63"),
        oval(86, 78, 18, 11, -40, "#f48fb1"),
        circle(70, 100, 6, "#fce4ec"),
    ),
    "coffee": (
        Ellipse(128, 206, 100, 20, "#bcaaa4"),
        Ellipse(128, 202, 84, 14, "#d7ccc8"),
        Ellipse(196, 140, 28, 30, "#00796b", stroke=14),
        Polygon(((58, 96), (198, 96), (186, 178), (172, 196), (84, 196), (70, 178)), "#00897b"),
        Polygon(((128, 96), (198, 96), (186, 178), (172, 196), (128, 196)), "#00796b"),
        Polygon(((64, 138), (192, 138), (190, 150), (66, 150)), "#ffb300"),
        Ellipse(128, 97, 70, 14, "#4db6ac"),
        Ellipse(128, 99, 60, 10, "#5d4037"),
        Ellipse(120, 98, 20, 4, "#8d6e63"),
        oval(100, 54, 7, 17, 10, "#b0bec5"),
        oval(128, 44, 7, 20, -8, "#b0bec5"),
        oval(156, 54, 7, 17, 10, "#b0bec5"),
    ),
    "lion": (
        star(128, 128, 118, 94, 18, "#a0520f"),
        circle(128, 128, 96, "#d9801c"),
        circle(84, 78, 20, "#f2b13c"),
        circle(172, 78, 20, "#f2b13c"),
        circle(84, 78, 10, "#d9801c"),
        circle(172, 78, 10, "#d9801c"),
        circle(128, 134, 66, "#f2b13c"),
        Ellipse(112, 166, 24, 19, "#fde3a7"),
        Ellipse(144, 166, 24, 19, "#fde3a7"),
        Polygon(((112, 144), (144, 144), (128, 162)), "#5d3317"),
        circle(104, 120, 9, "#3e2414"),
        circle(152, 120, 9, "#3e2414"),
        circle(107, 117, 3, "#ffffff"),
        circle(155, 117, 3, "#ffffff"),
    ),
    "kilimanjaro": (
        circle(128, 128, 120, "#81d4fa"),
        circle(186, 74, 26, "#ffd54f"),
        Polygon(((36, 204), (104, 104), (120, 92), (148, 92), (164, 104), (220, 204)), "#6d4c41"),
        Polygon(((150, 104), (164, 104), (220, 204), (176, 204)), "#5d4037"),
        Polygon(
            (
                (104, 104),
                (120, 92),
                (148, 92),
                (164, 104),
                (154, 116),
                (142, 108),
                (130, 120),
                (118, 108),
                (110, 116),
            ),
            "#ffffff",
        ),
        below(128, 128, 120, 200, "#7cb342"),
        Ellipse(70, 214, 26, 8, "#558b2f"),
        Ellipse(180, 222, 30, 8, "#558b2f"),
    ),
    "crown": (
        Polygon(
            ((56, 178), (46, 92), (92, 132), (128, 70), (164, 132), (210, 92), (200, 178)),
            "#ffc107",
        ),
        Polygon(((128, 70), (164, 132), (210, 92), (200, 178), (128, 178)), "#ffb300"),
        circle(46, 90, 11, "#ffca28"),
        circle(128, 66, 12, "#ffca28"),
        circle(210, 90, 11, "#ffca28"),
        Polygon(((52, 170), (204, 170), (204, 204), (52, 204)), "#ff8f00"),
        circle(92, 187, 9, "#e91e63"),
        circle(128, 187, 10, "#1e88e5"),
        circle(164, 187, 9, "#43a047"),
    ),
}


def _rgb(color: str) -> tuple[int, int, int]:
    value = int(color.lstrip("#"), 16)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


@functools.cache
def png(slug: str) -> bytes:
    """The gift's icon: a SIZE x SIZE PNG on a transparent background."""
    scale = SUPERSAMPLE
    image = Image.new("RGBA", (SIZE * scale, SIZE * scale), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for shape in DRAWINGS[slug]:
        fill = (*_rgb(shape.color), 255)
        if isinstance(shape, Polygon):
            draw.polygon([(x * scale, y * scale) for x, y in shape.points], fill=fill)
            continue
        box = [
            (shape.cx - shape.rx) * scale,
            (shape.cy - shape.ry) * scale,
            (shape.cx + shape.rx) * scale,
            (shape.cy + shape.ry) * scale,
        ]
        if shape.stroke:
            draw.ellipse(box, outline=fill, width=round(shape.stroke * scale))
        else:
            draw.ellipse(box, fill=fill)
    out = BytesIO()
    image.resize((SIZE, SIZE), Image.Resampling.LANCZOS).save(out, format="PNG", optimize=True)
    return out.getvalue()


def _static(value: Any) -> dict[str, Any]:
    return {"a": 0, "k": value}


def _animated(*keys: tuple[int, list[float]]) -> dict[str, Any]:
    """Keyframes (frame, value), eased in and out between each pair."""
    frames: list[dict[str, Any]] = [
        {"t": t, "s": value, "i": {"x": [0.4], "y": [1]}, "o": {"x": [0.6], "y": [0]}}
        for t, value in keys[:-1]
    ]
    frames.append({"t": keys[-1][0], "s": keys[-1][1]})
    return {"a": 1, "k": frames}


def _lottie_shape(shape: Shape) -> dict[str, Any]:
    color = [round(c / 255, 4) for c in _rgb(shape.color)] + [1]
    if isinstance(shape, Polygon):
        zeros = [[0, 0]] * len(shape.points)
        path = {
            "c": True,
            "v": [[round(x, 2), round(y, 2)] for x, y in shape.points],
            "i": zeros,
            "o": zeros,
        }
        outline: dict[str, Any] = {"ty": "sh", "d": 1, "ks": _static(path)}
    else:
        size = [round(shape.rx * 2, 2), round(shape.ry * 2, 2)]
        outline = {"ty": "el", "d": 1, "p": _static([shape.cx, shape.cy]), "s": _static(size)}
    if isinstance(shape, Ellipse) and shape.stroke:
        paint = {
            "ty": "st",
            "c": _static(color),
            "o": _static(100),
            "w": _static(shape.stroke),
            "lc": 2,
            "lj": 2,
        }
    else:
        paint = {"ty": "fl", "c": _static(color), "o": _static(100), "r": 1}
    transform = {
        "ty": "tr",
        "p": _static([0, 0]),
        "a": _static([0, 0]),
        "s": _static([100, 100]),
        "r": _static(0),
        "o": _static(100),
    }
    return {"ty": "gr", "it": [outline, paint, transform]}


@functools.cache
def lottie(slug: str) -> bytes:
    """The gift's animation (Lottie JSON): it pops in, settles, then floats up and fades."""
    centre = SIZE / 2
    layer = {
        "ddd": 0,
        "ind": 1,
        "ty": 4,
        "nm": slug,
        "sr": 1,
        "ks": {
            "o": _animated((0, [0]), (6, [100]), (44, [100]), (FRAMES, [0])),
            "r": _animated((0, [-12]), (12, [6]), (20, [0]), (FRAMES, [0])),
            "p": _animated(
                (0, [centre, centre, 0]), (36, [centre, centre, 0]), (FRAMES, [centre, 104, 0])
            ),
            "a": _static([centre, centre, 0]),
            "s": _animated(
                (0, [20, 20, 100]),
                (10, [108, 108, 100]),
                (18, [100, 100, 100]),
                (36, [100, 100, 100]),
                (FRAMES, [80, 80, 100]),
            ),
        },
        "ao": 0,
        # Lottie paints its first shape on top: the front comes first.
        "shapes": [_lottie_shape(shape) for shape in reversed(DRAWINGS[slug])],
        "ip": 0,
        "op": FRAMES,
        "st": 0,
        "bm": 0,
    }
    animation = {
        "v": "5.7.4",
        "fr": FRAME_RATE,
        "ip": 0,
        "op": FRAMES,
        "w": SIZE,
        "h": SIZE,
        "nm": slug,
        "ddd": 0,
        "assets": [],
        "layers": [layer],
    }
    return json.dumps(animation, separators=(",", ":")).encode()


def files(slugs: Iterable[str] = DRAWINGS) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """Each gift's icon and animation: its path under the storage folder and its renderer."""
    for slug in slugs:
        yield f"{FOLDER}/{slug}.png", functools.partial(png, slug)
        yield f"{FOLDER}/{slug}.json", functools.partial(lottie, slug)


def install(storage_dir: Path) -> list[str]:
    """Write the artwork that is missing under `storage_dir`; returns what was written."""
    (storage_dir / FOLDER).mkdir(parents=True, exist_ok=True)
    written = []
    for name, render in files():
        path = storage_dir / name
        if path.exists():
            continue
        # Several processes may start at once: each writes its own file and renames it.
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_bytes(render())
        os.replace(partial, path)
        written.append(name)
    return written
