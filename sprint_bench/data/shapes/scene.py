"""Scenes of the shapes world, realised from GenEval-format metadata so captions and images agree by construction."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sprint_bench.data.shapes.vocab import GENEVAL_COLORS


@dataclass(frozen=True)
class ShapeObject:
    shape: str
    color: str
    cx: float  # centre, pixels (x right, y down)
    cy: float
    size: float  # side of the object's bounding box, pixels

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Axis-aligned bounding box (x1, y1, x2, y2) of the painted shape."""
        w, h = self.extent
        return (self.cx - w / 2, self.cy - h / 2, self.cx + w / 2, self.cy + h / 2)

    @property
    def extent(self) -> tuple[float, float]:
        if self.shape == "square":
            return (SQUARE_SIDE * self.size, SQUARE_SIDE * self.size)
        if self.shape == "triangle":
            return (TRIANGLE_SCALE * self.size, TRIANGLE_SCALE * TRIANGLE_HEIGHT * self.size)
        return (self.size, self.size)


SQUARE_SIDE = 0.86  # squares are drawn smaller than their box so areas of the three shapes are closer
TRIANGLE_HEIGHT = 0.866  # equilateral, pointing up
TRIANGLE_SCALE = 1.1  # triangles are drawn larger than their nominal size (they fill half their box)


@dataclass(frozen=True)
class Scene:
    objects: tuple[ShapeObject, ...]
    resolution: int
    background: tuple[int, int, int]


class LayoutError(RuntimeError):
    """No layout satisfying the metadata was found within the attempt budget."""


def _relation_holds(a: ShapeObject, b: ShapeObject, rel: str) -> bool:
    """A stricter version of GenEval's relative-position rule: the relation axis dominates by 2x, clear gap."""
    dx, dy = a.cx - b.cx, a.cy - b.cy
    (wa, ha), (wb, hb) = a.extent, b.extent
    if rel in ("left of", "right of"):
        sep = (-dx if rel == "left of" else dx) - (wa + wb) / 2
        return sep > 0 and abs(dx) >= 2 * abs(dy)
    sep = (-dy if rel == "above" else dy) - (ha + hb) / 2
    return sep > 0 and abs(dy) >= 2 * abs(dx)


def _separated(a: ShapeObject, b: ShapeObject, gap: float) -> bool:
    ax1, ay1, ax2, ay2 = a.box
    bx1, by1, bx2, by2 = b.box
    return ax2 + gap <= bx1 or bx2 + gap <= ax1 or ay2 + gap <= by1 or by2 + gap <= ay1


def realize(metadata: dict, world, rng: np.random.Generator, max_tries: int = 200) -> Scene:
    """Sample a scene that satisfies a GenEval metadata entry (include counts, colours, positions) exactly.

    ``world`` is a ``WorldConfig``: resolution, colors, size_range (fractions of resolution), background, min_gap
    (pixels at 32, scaled with the resolution). Unspecified colours are drawn uniformly from ``world.colors``.
    """
    res = world.resolution
    scale = res / 32.0
    gap = world.min_gap * scale
    lo, hi = world.size_range
    # One entry per object to place: (shape, colour, group index, relation to group or None).
    wanted: list[tuple[str, str, int, tuple[str, int] | None]] = []
    for gi, clause in enumerate(metadata["include"]):
        for _ in range(clause["count"]):
            color = clause.get("color") or world.colors[rng.integers(len(world.colors))]
            pos = clause.get("position")
            wanted.append((clause["class"], color, gi, (pos[0], pos[1]) if pos else None))
    for _ in range(max_tries):
        placed: list[tuple[ShapeObject, int]] = []
        ok = True
        for shape, color, gi, pos in wanted:
            for _ in range(max_tries):
                size = float(rng.uniform(lo, hi) * res)
                probe = ShapeObject(shape, color, 0.0, 0.0, size)
                w, h = probe.extent
                margin = 1.0 * scale
                cx = float(rng.uniform(w / 2 + margin, res - w / 2 - margin))
                cy = float(rng.uniform(h / 2 + margin, res - h / 2 - margin))
                obj = ShapeObject(shape, color, cx, cy, size)
                if not all(_separated(obj, o, gap) for o, _ in placed):
                    continue
                if pos is not None:
                    targets = [o for o, g in placed if g == pos[1]]
                    if not all(_relation_holds(obj, t, pos[0]) for t in targets):
                        continue
                placed.append((obj, gi))
                break
            else:
                ok = False
                break
        if ok:
            order = rng.permutation(len(placed))
            objs = tuple(placed[i][0] for i in order)
            return Scene(objs, res, tuple(int(v) for v in world.background))
    raise LayoutError(f"could not lay out {metadata.get('prompt', metadata)!r} at resolution {res}")


def palette(names) -> np.ndarray:
    return np.array([GENEVAL_COLORS[n] for n in names], dtype=np.float64)
