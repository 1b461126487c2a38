"""Exact object detector for the built-in shapes world (GenEval protocol, non-official detector).

GenEval (Ghosh et al. 2023) detects objects with Mask2Former and names their colours with CLIP. Neither knows
circles, squares and triangles drawn on a plain background, so for the shapes world both are replaced by this
analytic detector, and runs scored with it are labelled "GenEval protocol, non-official detector". The scoring
rules (thresholds, counting, colours, positions) stay as they are; only the detector is different.

Per image (vectorised numpy + ``scipy.ndimage``):

1. Foreground = pixels whose RGB distance from the world background exceeds a quarter of the smallest
   palette-colour-to-background distance; 4-connected components; components of fewer than 4 pixels (scaled by
   (resolution/32)^2) are noise, so isolated speckles are never objects.
2. Per component: its colour is the world palette colour that most of its most background-distant pixels are
   nearest to; a pixel's sub-pixel coverage is its projection onto the (colour - background) axis. Sizeable
   patches that this colour cannot explain (an object of another colour touching this one) are split off and
   segmented on their own. Cores (coverage >= 0.5) of objects at least the world's minimum gap apart never touch,
   so separate sizeable cores become separate objects even when their anti-aliased fringes touch.
3. Per object: the coverage inside a one-pixel ring around its core gives the area, the box (sub-pixel edges from
   the peak coverage of each row and column), the fill ratio (area / box area), the offset of the coverage
   centroid from the box centre (a triangle's centroid sits h/6 below its box centre; circles and squares are
   centred) and the elongation |log(width / height)|. The shape is the nearest prototype in (fill ratio, offset,
   elongation): circle ~ (pi/4, 0, 0), square ~ (1, 0, 0), triangle ~ (1/2, 1/6, 0.14). The prototypes and the
   small systematic box error of each shape are calibrated when the detector is built, by rendering each shape
   across the world's size range at the world's resolution.
4. Score in [0, 1] = shape confidence x colour confidence x size plausibility: ~1 for a clean render, ~0.5 on the
   decision boundary between two shapes or two colours, towards 0 for a blob far from every shape prototype (two
   fused objects, a stretched shape) or far too small / large for the world's size range. An ambiguous blob
   therefore fails GenEval's 0.9 counting threshold, while the ordinary 0.3 threshold still keeps it.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from scipy import ndimage

from sprint_bench.data.shapes.scene import SQUARE_SIDE, TRIANGLE_HEIGHT, TRIANGLE_SCALE, Scene, ShapeObject
from sprint_bench.data.shapes.vocab import GENEVAL_COLORS

from .detector import Detection

__all__ = ["ShapesDetector", "ObjectFeatures", "AREA_FACTOR", "ANALYTIC_PROTOTYPES"]

_FOUR = ndimage.generate_binary_structure(2, 1)
_EIGHT = np.ones((3, 3), dtype=bool)

# Painted area / nominal size^2 of each shape (see sprint_bench.data.shapes.scene).
AREA_FACTOR = {
    "circle": math.pi / 4,
    "square": SQUARE_SIDE ** 2,
    "triangle": 0.5 * TRIANGLE_SCALE ** 2 * TRIANGLE_HEIGHT,
}
# Ideal (fill ratio, centroid offset / box side, |log(width / height)|) of each shape; the detector replaces these
# with values measured on renders of the world (pixelation moves them by a few hundredths).
ANALYTIC_PROTOTYPES = {
    "circle": (math.pi / 4, 0.0, 0.0),
    "square": (1.0, 0.0, 0.0),
    "triangle": (0.5, 1.0 / 6.0, -math.log(TRIANGLE_HEIGHT)),
}

# Weights of (fill ratio, offset, elongation) in the distance to the prototypes (the offset separates triangles
# best), the spread of the equal-variance Gaussian class model (posterior 0.5 on a decision boundary, ~1 on clean
# renders), and the distance from the nearest prototype beyond which an object becomes an outlier to every shape
# (the score then decays as a Gaussian of the excess, with the given scale).
_FEATURE_WEIGHT = np.array([1.0, 3.0, 1.0])
_CLASS_SIGMA = 0.05
_OUTLIER_RADIUS = 0.15
_OUTLIER_SCALE = 0.2
# Size plausibility: no penalty for sizes within [0.8 lo, 1.25 hi] of the world's size range, Gaussian decay in
# log-size (scale 0.3) outside it.
_SIZE_SLACK = (0.8, 1.25)
_SIZE_SCALE = 0.3


class ObjectFeatures:
    """Measurements of one segmented object, in pixel coordinates of the full image."""

    __slots__ = ("box", "centroid", "area", "fill", "offset", "elongation", "color", "color_conf", "mask")

    def __init__(self, box, centroid, area, fill, offset, elongation, color, color_conf, mask):
        self.box = box  # measured (x1, y1, x2, y2), before the per-shape correction
        self.centroid = centroid  # coverage-weighted (x, y)
        self.area = area  # total coverage, pixels
        self.fill = fill  # area / box area
        self.offset = offset  # |centroid - box centre| in units of the box sides
        self.elongation = elongation  # |log(box width / box height)|
        self.color = color
        self.color_conf = color_conf
        self.mask = mask  # (H, W) bool: the object's pixels

    @property
    def features(self) -> tuple[float, float, float]:
        """(fill ratio, centroid offset, elongation): what the shape is classified on."""
        return (self.fill, self.offset, self.elongation)


class ShapesDetector:
    """Detector for the shapes world: ``detect(image) -> {shape: [Detection(box, score, mask, color)]}``.

    Replaces Mask2Former + CLIP colour classification for this world: runs scored with it are labelled
    "GenEval protocol, non-official detector". ``world`` is a ``WorldConfig`` (resolution, shapes, colors,
    size_range, background); colours come from ``world.colors`` and shapes from ``world.shapes`` only. Images are
    expected at the world's resolution (object sizes are judged against it). Boxes are float pixel edges
    (x1, y1, x2, y2), y down; masks are (H, W) bool arrays.
    """

    def __init__(self, world, fg_fraction: float = 0.25, min_area: float | None = None, calibrate: bool = True):
        self.resolution = int(world.resolution)
        self.shapes = tuple(world.shapes)
        self.colors = tuple(world.colors)
        self.size_range = (float(world.size_range[0]), float(world.size_range[1]))
        self.background = np.asarray(world.background, dtype=np.float64)
        if not self.shapes or not self.colors:
            raise ValueError("the world needs at least one shape and one colour")
        unknown = sorted(set(self.shapes) - set(AREA_FACTOR))
        if unknown:
            raise ValueError(f"ShapesDetector knows {sorted(AREA_FACTOR)}, not {unknown}")
        self.palette = np.array([GENEVAL_COLORS[c] for c in self.colors], dtype=np.float64)
        self.axes = self.palette - self.background  # (K, 3): colour - background
        self.axis_norm2 = np.maximum((self.axes ** 2).sum(1), 1e-6)
        self.fg_threshold = fg_fraction * float(np.sqrt(self.axis_norm2.min()))
        scale2 = (self.resolution / 32.0) ** 2
        self.min_area = float(min_area) if min_area is not None else 4.0 * scale2
        # A core piece this large may be an object of its own (a quarter of the smallest plausible object).
        smallest = min(AREA_FACTOR[s] for s in self.shapes) * (self.size_range[0] * self.resolution) ** 2
        self.split_area = max(self.min_area, 0.25 * smallest)
        # Half the distance from each colour to its nearest rival (another palette colour or the background):
        # a colour estimate this far off is as ambiguous as it gets.
        rivals = np.vstack([self.palette, self.background[None]])
        pair = np.sqrt(((self.palette[:, None] - rivals[None]) ** 2).sum(-1))
        pair[np.arange(len(self.colors)), np.arange(len(self.colors))] = np.inf
        self._half_spacing = 0.5 * pair.min(1)
        self.prototypes = {s: ANALYTIC_PROTOTYPES[s] for s in self.shapes}
        self.box_bias = {s: (0.0, 0.0, 0.0, 0.0) for s in self.shapes}
        if calibrate:
            protos, bias = _calibration(self.resolution, self.shapes, self.colors, self.size_range,
                                        tuple(float(v) for v in self.background), float(fg_fraction),
                                        self.min_area)
            self.prototypes, self.box_bias = dict(protos), dict(bias)
        self._proto = np.array([self.prototypes[s] for s in self.shapes], dtype=np.float64) * _FEATURE_WEIGHT

    # ------------------------------------------------------------------ public API
    def detect(self, image: np.ndarray) -> dict[str, list[Detection]]:
        """HxWx3 uint8 image -> {shape: [Detection]} (unthresholded; scores in [0, 1])."""
        out: dict[str, list[Detection]] = {}
        for feat in self.segment(image):
            shape, score = self.classify(feat)
            out.setdefault(shape, []).append(Detection(self.box_of(feat, shape), score, feat.mask, feat.color))
        return out

    def segment(self, image: np.ndarray) -> list[ObjectFeatures]:
        """Segment an HxWx3 uint8 image at the world's resolution into objects and measure them (its thresholds are
        in 0..255 colour units and its sizes relative to that resolution, so anything else is refused)."""
        img = np.asarray(image)
        r = self.resolution
        if img.ndim != 3 or img.shape[:2] != (r, r) or img.shape[2] < 3:
            raise ValueError(f"expected a {r}x{r}x3 image (the world's resolution), got shape {img.shape}")
        if img.dtype != np.uint8:
            raise ValueError(f"expected a uint8 image (0..255), got dtype {img.dtype}")
        diff = img[..., :3].astype(np.float64) - self.background
        dist2 = np.einsum("hwc,hwc->hw", diff, diff)
        fg = dist2 > self.fg_threshold ** 2
        labels, n = ndimage.label(fg, structure=_FOUR)
        feats: list[ObjectFeatures] = []
        if n == 0:
            return feats
        areas = np.bincount(labels.ravel(), minlength=n + 1)
        H, W = fg.shape
        for i, sl in enumerate(ndimage.find_objects(labels), start=1):
            if sl is None or areas[i] < self.min_area:
                continue
            # one pixel of margin so the ring around the object's core fits in the window
            y0, y1 = max(sl[0].start - 1, 0), min(sl[0].stop + 1, H)
            x0, x1 = max(sl[1].start - 1, 0), min(sl[1].stop + 1, W)
            win = (slice(y0, y1), slice(x0, x1))
            ctx = _Window(diff[win], dist2[win], ~fg[win], win, (H, W))
            self._segment(labels[win] == i, ctx, feats, depth=0)
        return feats

    def classify(self, feat: ObjectFeatures) -> tuple[str, float]:
        """Shape name and confidence score of a measured object."""
        z = np.array(feat.features) * _FEATURE_WEIGHT
        d2 = ((self._proto - z) ** 2).sum(1)
        s = int(np.argmin(d2))
        # posterior of the nearest shape under equal-spread Gaussians around the prototypes
        shape_conf = 1.0 / float(np.exp(-(d2 - d2[s]) / (2.0 * _CLASS_SIGMA ** 2)).sum())
        excess = max(0.0, math.sqrt(float(d2[s])) - _OUTLIER_RADIUS) / _OUTLIER_SCALE
        shape_conf *= math.exp(-excess * excess)
        shape = self.shapes[s]
        score = shape_conf * feat.color_conf * self.size_confidence(shape, feat.area)
        return shape, float(min(max(score, 0.0), 1.0))

    def size_confidence(self, shape: str, area: float) -> float:
        """1 for an area that fits the world's size range (with slack), decaying outside it."""
        if area <= 0:
            return 0.0
        size = math.sqrt(area / AREA_FACTOR[shape]) / self.resolution
        lo, hi = self.size_range[0] * _SIZE_SLACK[0], self.size_range[1] * _SIZE_SLACK[1]
        e = max(0.0, math.log(lo / size), math.log(size / hi))
        return math.exp(-(e / _SIZE_SCALE) ** 2)

    def box_of(self, feat: ObjectFeatures, shape: str) -> tuple[float, float, float, float]:
        """Reported box of an object classified as ``shape``: measured box, refined and bias-corrected."""
        box = _triangle_box(feat) if shape == "triangle" else feat.box
        return tuple(float(b - c) for b, c in zip(box, self.box_bias.get(shape, (0.0,) * 4)))

    # ------------------------------------------------------------------ segmentation
    def _color_of(self, pixels: np.ndarray, ctx: "_Window") -> tuple[int, float]:
        """Palette colour of the pixels ``pixels`` (bool mask): the majority vote of their most
        background-distant pixels (nearest palette colour each), and a confidence that is ~1 on a palette colour
        and 0.5 half-way to its nearest rival, judged on the median of the majority and of all voters (so an
        in-between colour splitting the vote is not trusted either)."""
        d = ctx.dist2[pixels]
        px = ctx.diff[pixels]
        if d.size > 4:
            k = int(0.9 * (d.size - 1))
            q = np.partition(d, k)[k]
            px = px[d >= 0.64 * q]  # pixels within 80% of the 90th-percentile distance from the background
        if len(self.colors) == 1:
            k0 = 0
            est_k = est_all = np.median(px, axis=0)
        else:
            votes = np.argmin(((px[:, None, :] - self.axes[None]) ** 2).sum(-1), axis=1)
            k0 = int(np.argmax(np.bincount(votes, minlength=len(self.colors))))
            est_all = np.median(px, axis=0)
            est_k = np.median(px[votes == k0], axis=0)
        return k0, min(self._color_confidence(k0, est_k), self._color_confidence(k0, est_all))

    def _color_confidence(self, k0: int, est: np.ndarray) -> float:
        dd = np.sqrt(((self.axes - est) ** 2).sum(1))
        d1 = float(dd[k0])
        t = 0.5 * d1 / self._half_spacing[k0]  # 1 at the full spacing to the nearest rival (incl. background)
        if len(dd) > 1:
            d2 = float(np.min(np.delete(dd, k0)))
            t = max(t, 2.0 * d1 / max(d1 + d2, 1e-9))  # 1 half-way to the nearest other colour
        return float(min(max(1.0 - 0.5 * min(t, 2.0) ** 4, 0.0), 1.0))

    def _segment(self, comp: np.ndarray, ctx: "_Window", feats: list, depth: int) -> None:
        k, color_conf = self._color_of(comp, ctx)
        axis = self.axes[k]
        cov = np.clip((ctx.diff @ axis) / self.axis_norm2[k], 0.0, 1.0)
        resid = ctx.diff - cov[..., None] * axis
        unexplained = comp & (np.einsum("hwc,hwc->hw", resid, resid) > self.fg_threshold ** 2)
        explained = comp.copy()
        if unexplained.sum() >= self.min_area:
            # a sizeable patch of another palette colour is an object of its own; anything else (noise, shading)
            # stays with this one
            ulab, un = ndimage.label(unexplained, structure=_FOUR)
            for j in range(1, un + 1):
                piece = ulab == j
                if depth >= 2 or piece.sum() < self.min_area:
                    continue
                kj, _ = self._color_of(piece, ctx)
                if kj != k:
                    explained &= ~piece
                    self._segment(piece, ctx, feats, depth + 1)
            if not explained.any():
                return
            if not np.array_equal(explained, comp):  # judge the colour again on what is left
                k2, color_conf = self._color_of(explained, ctx)
                if k2 != k:
                    if depth < 2:
                        self._segment(explained, ctx, feats, depth + 1)
                    return
        # Cores (pixel centres inside a shape) of objects more than 1 px apart never touch, not even diagonally;
        # noise can break one core up, so only pieces of a plausible object's size count as objects of their own.
        core = explained & (cov >= 0.5)
        clab, cn = ndimage.label(core, structure=_EIGHT)
        if cn == 0:
            return
        careas = np.bincount(clab.ravel(), minlength=cn + 1)
        careas[0] = 0
        keep = np.flatnonzero(careas >= self.split_area)
        if keep.size <= 1:
            if careas.max() >= self.min_area:
                self._emit(explained, core, k, color_conf, ctx, feats)
            return
        # several cores: every explained pixel goes to its nearest kept core
        seeds = np.isin(clab, keep)  # small pieces join the object they are nearest to
        _, (iy, ix) = ndimage.distance_transform_edt(~seeds, return_indices=True)
        owner = clab[iy, ix]
        for j in keep:
            sub = explained & (owner == j)
            kj, cj = self._color_of(sub, ctx)
            if kj != k:  # a different colour after all: its own coverage and core
                cov_j = np.clip((ctx.diff @ self.axes[kj]) / self.axis_norm2[kj], 0.0, 1.0)
                core_j = sub & (cov_j >= 0.5)
                if core_j.sum() >= self.min_area:
                    self._emit(sub, core_j, kj, cj, ctx, feats)
            else:
                self._emit(sub, clab == j, k, cj, ctx, feats)

    def _emit(self, mask: np.ndarray, core: np.ndarray, k: int, color_conf: float, ctx: "_Window",
              feats: list) -> None:
        # The anti-aliased fringe lies within one pixel of the core. Inside that ring, the object's own pixels and
        # background-like pixels (faint fringe, or noise that averages out) are measured; stray pixels farther out
        # are dropped.
        ring = ndimage.binary_dilation(core, structure=_EIGHT)
        support = ring & (mask | ctx.background_like)
        proj = (ctx.diff @ self.axes[k]) / self.axis_norm2[k]
        v = np.where(support, np.clip(proj, -0.5, 1.5), 0.0)  # loosely clipped: noise averages out
        area = float(v.sum())
        if area < self.min_area:
            return
        # Edges from the coverage profiles (max over the other axis), which is exact for straight edges and keeps
        # curved edges curved. Noise lifts maxima: estimate its level on the core's interior, ignore fringe
        # rows/columns that noise alone could explain and remove the typical lift.
        inner = ndimage.binary_erosion(core, structure=_FOUR)
        vals = proj[inner] if inner.sum() >= 8 else proj[core]
        sigma = 1.4826 * float(np.median(np.abs(vals - np.median(vals))))
        cov = np.where(mask & ring, np.clip(proj, 0.0, 1.0), 0.0)
        x1, x2 = _edges(cov.max(0), core.any(0), sigma)
        y1, y2 = _edges(cov.max(1), core.any(1), sigma)
        cols, rows = v.sum(0), v.sum(1)
        w, h = max(x2 - x1, 1e-3), max(y2 - y1, 1e-3)
        fill = area / (w * h)
        mx = float(cols @ (np.arange(cols.size) + 0.5)) / area
        my = float(rows @ (np.arange(rows.size) + 0.5)) / area
        off = math.hypot((mx - 0.5 * (x1 + x2)) / w, (my - 0.5 * (y1 + y2)) / h)
        oy, ox = ctx.window[0].start, ctx.window[1].start
        full = np.zeros(ctx.full_shape, dtype=bool)
        full[ctx.window] = mask & ring
        box = (float(x1 + ox), float(y1 + oy), float(x2 + ox), float(y2 + oy))
        feats.append(ObjectFeatures(box, (mx + ox, my + oy), area, fill, off, abs(math.log(w / h)), self.colors[k],
                                    color_conf, full))


class _Window:
    """A component's window of the image: colour offsets from the background, their squared norms, which pixels
    look like background, and where the window sits in the full image."""

    __slots__ = ("diff", "dist2", "background_like", "window", "full_shape")

    def __init__(self, diff, dist2, background_like, window, full_shape):
        self.diff = diff
        self.dist2 = dist2
        self.background_like = background_like
        self.window = window
        self.full_shape = full_shape


def _edges(peak: np.ndarray, is_core: np.ndarray, sigma: float) -> tuple[float, float]:
    """Sub-pixel edges along one axis from the peak coverage of each column (or row) and which ones hold core
    pixels: where the coverage ramp across the outermost core column and the one outside it crosses 0.5. The
    renderer's ramp rises by 1 per pixel (coverage = 0.5 - distance), so one unclipped value fixes the edge; a
    blurred (generated) edge has a gentler ramp, measured from the two values when both are on it. Peaks are
    lowered by the noise level, and an outside value that noise alone could explain counts as zero."""
    idx = np.flatnonzero(is_core)
    first, last = int(idx[0]), int(idx[-1])
    thr = max(0.2, 3.0 * sigma) - sigma
    p = np.clip(peak - sigma, 0.0, 1.0)
    out_lo = float(p[first - 1]) if first > 0 else 0.0
    out_hi = float(p[last + 1]) if last + 1 < p.size else 0.0
    return (first + 0.5 - _ramp_reach(out_lo, float(p[first]), thr),
            last + 0.5 + _ramp_reach(out_hi, float(p[last]), thr))


def _ramp_reach(outer: float, inner: float, thr: float) -> float:
    """How far beyond the centre of the outermost core pixel the coverage ramp crosses 0.5, given the coverage
    there (``inner``) and one pixel further out (``outer``)."""
    if outer < thr:  # nothing outside: unit ramp through the inner value
        return max(inner - 0.5, -0.5)
    if inner < 0.95:  # both on the ramp: measure its slope (1 when rendered, less when blurred)
        return (inner - 0.5) / min(max(inner - outer, 0.25), 1.0)
    return outer + 0.5  # inner saturated: unit ramp through the outer value


def _triangle_box(feat: ObjectFeatures) -> tuple[float, float, float, float]:
    """Box of an upward triangle from its area, centroid and base (its apex and base corners carry little
    coverage, so the profiles alone under-reach them). Each edge moves at most 1.25 px from the measured one."""
    x1, y1, x2, y2 = feat.box
    mx, my = feat.centroid
    if my <= 0.5 * (y1 + y2) or feat.area <= 0:
        return feat.box  # not pointing up: keep the measured box
    h = math.sqrt(2.0 * TRIANGLE_HEIGHT * feat.area)
    w = h / TRIANGLE_HEIGHT
    model = (mx - 0.5 * w, y2 - h, mx + 0.5 * w, y2)
    return tuple(float(min(max(m, e - 1.25), e + 1.25)) for m, e in zip(model, feat.box))


@functools.lru_cache(maxsize=32)
def _calibration(resolution: int, shapes: tuple, colors: tuple, size_range: tuple, background: tuple,
                 fg_fraction: float, min_area: float, per_shape: int = 48):
    """Measure each shape on clean renders across the world's size range: median (fill, offset, elongation)
    prototypes and the mean error of each box edge. Deterministic; cached per world."""
    from sprint_bench.data.shapes.render import render  # local: the renderer is only needed to calibrate

    class _World:  # the fields the detector reads
        pass

    w = _World()
    w.resolution, w.shapes, w.colors, w.size_range, w.background = resolution, shapes, colors, size_range, background
    raw = ShapesDetector(w, fg_fraction=fg_fraction, min_area=min_area, calibrate=False)
    rng = np.random.default_rng(12345)
    lo, hi = size_range
    protos, bias = {}, {}
    for si, shape in enumerate(shapes):
        feats, errs = [], []
        for i in range(per_shape):
            size = (lo + (hi - lo) * (i + 0.5) / per_shape) * resolution
            color = colors[(i + si) % len(colors)]
            cx, cy = rng.uniform(0.4 * resolution, 0.6 * resolution, 2)
            obj = ShapeObject(shape, color, float(cx), float(cy), float(size))
            found = raw.segment(render(Scene((obj,), resolution, tuple(int(round(v)) for v in background))))
            if len(found) != 1:
                continue
            f = found[0]
            feats.append(f.features)
            errs.append(np.subtract(raw.box_of(f, shape), obj.box))
        if len(feats) < per_shape // 2:  # this world cannot render the shape visibly: keep the ideal values
            protos[shape], bias[shape] = ANALYTIC_PROTOTYPES[shape], (0.0, 0.0, 0.0, 0.0)
            continue
        protos[shape] = tuple(float(v) for v in np.median(np.array(feats), axis=0))
        bias[shape] = tuple(float(v) for v in np.mean(np.array(errs), axis=0))
    return tuple(protos.items()), tuple(bias.items())
