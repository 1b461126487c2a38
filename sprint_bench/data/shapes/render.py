"""Anti-aliased renderer: signed distance at pixel centres, coverage = clip(0.5 - d, 0, 1), painter's order."""
from __future__ import annotations

import numpy as np

from sprint_bench.data.shapes.scene import SQUARE_SIDE, TRIANGLE_HEIGHT, TRIANGLE_SCALE, Scene, ShapeObject
from sprint_bench.data.shapes.vocab import GENEVAL_COLORS


def signed_distance(obj: ShapeObject, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Signed distance in pixels (negative inside) of ``obj`` at points (xs, ys); exact for circles, edge-exact
    for squares and triangles (max of half-plane distances)."""
    x, y = xs - obj.cx, ys - obj.cy
    if obj.shape == "circle":
        return np.sqrt(x * x + y * y) - obj.size / 2
    if obj.shape == "square":
        half = SQUARE_SIDE * obj.size / 2
        return np.maximum(np.abs(x), np.abs(y)) - half
    if obj.shape == "triangle":
        b, h = TRIANGLE_SCALE * obj.size / 2, TRIANGLE_SCALE * TRIANGLE_HEIGHT * obj.size
        # edges: base (y = h/2), and two slanted edges through the apex (0, -h/2) and (+-b, h/2)
        base = y - h / 2
        norm = np.hypot(h, b)
        right = (h * x - b * (y + h / 2)) / norm
        left = (-h * x - b * (y + h / 2)) / norm
        return np.maximum(base, np.maximum(left, right))
    raise ValueError(f"unknown shape {obj.shape!r}")


def render(scene: Scene) -> np.ndarray:
    """Render one scene to an (H, W, 3) uint8 array."""
    res = scene.resolution
    centres = np.arange(res, dtype=np.float64) + 0.5
    ys, xs = np.meshgrid(centres, centres, indexing="ij")
    img = np.empty((res, res, 3), dtype=np.float64)
    img[:] = np.asarray(scene.background, dtype=np.float64)
    for obj in scene.objects:
        cov = np.clip(0.5 - signed_distance(obj, xs, ys), 0.0, 1.0)[..., None]
        img = img * (1.0 - cov) + np.asarray(GENEVAL_COLORS[obj.color], dtype=np.float64) * cov
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def render_batch(scenes: list[Scene]) -> np.ndarray:
    """Render scenes to a (B, H, W, 3) uint8 array."""
    return np.stack([render(s) for s in scenes]) if scenes else np.zeros((0, 0, 0, 3), np.uint8)
