"""ShapesDetector: the exact GenEval detector of the shapes world (GenEval protocol, non-official detector)."""
from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pytest

from sprint_bench.data.shapes.render import render, signed_distance
from sprint_bench.data.shapes.sampler import sample_world
from sprint_bench.data.shapes.scene import Scene, ShapeObject, realize
from sprint_bench.data.shapes.vocab import GENEVAL_COLORS
from sprint_bench.eval.geneval.detector import Detection, DetectionColorClassifier, Detector
from sprint_bench.eval.geneval.shapes_detector import ShapesDetector

try:
    from sprint_bench.config.schema import WorldConfig
except ImportError:  # stand-in with the fields the shapes world reads
    @dataclass
    class WorldConfig:  # type: ignore[no-redef]
        resolution: int = 32
        shapes: list = field(default_factory=lambda: ["circle", "square", "triangle"])
        colors: list = field(default_factory=lambda: ["red", "yellow", "green", "blue", "purple", "white"])
        max_count: int = 3
        size_range: tuple = (0.28, 0.36)
        background: list = field(default_factory=lambda: [102, 102, 102])
        min_gap: float = 1.5
        holdout_color_attr_fraction: float = 0.25
        holdout_position_fraction: float = 0.0
        family_weights: dict = field(default_factory=lambda: {
            "single_object": 1.0, "two_object": 1.5, "counting": 1.5, "colors": 1.0, "position": 2.0,
            "color_attr": 2.0})


def make_world(resolution: int = 32):
    return WorldConfig(
        resolution=resolution, shapes=["circle", "square", "triangle"],
        colors=["red", "yellow", "green", "blue", "purple", "white"], max_count=3, size_range=(0.28, 0.36),
        background=[102, 102, 102], min_gap=1.5, holdout_color_attr_fraction=0.25, holdout_position_fraction=0.0,
        family_weights={"single_object": 1.0, "two_object": 1.5, "counting": 1.5, "colors": 1.0, "position": 2.0,
                        "color_attr": 2.0})


@pytest.fixture(scope="module", params=[32, 64], ids=["res32", "res64"])
def world_data(request):
    world = make_world(request.param)
    return world, ShapesDetector(world), sample_world(world, 300, seed=0)


def _flat(dets: dict[str, list[Detection]]) -> list[tuple[str, Detection]]:
    return [(shape, d) for shape, ds in dets.items() for d in ds]


def _centre(box) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def _match(dets: dict[str, list[Detection]], scene: Scene, tol: float) -> tuple[int, list]:
    """Per ground-truth object: is there a detection of its shape and colour whose box centre is within tol px?
    Each detection is used once. Returns (number matched, list of (object, detection or None))."""
    flat = _flat(dets)
    used: set[int] = set()
    pairs = []
    for obj in scene.objects:
        gt = np.array([obj.cx, obj.cy])
        best = None
        for i, (shape, d) in enumerate(flat):
            if i in used or shape != obj.shape or d.color != obj.color:
                continue
            dist = float(np.linalg.norm(_centre(d.box) - gt))
            if dist <= tol and (best is None or dist < best[1]):
                best = (i, dist)
        if best is not None:
            used.add(best[0])
        pairs.append((obj, flat[best[0]][1] if best else None))
    return sum(p[1] is not None for p in pairs), pairs


def _paint(sdf, color, res: int = 32, background=(102, 102, 102), base: np.ndarray | None = None) -> np.ndarray:
    """Anti-alias a signed-distance function the way the renderer does (for shapes outside the world)."""
    centres = np.arange(res) + 0.5
    ys, xs = np.meshgrid(centres, centres, indexing="ij")
    img = np.empty((res, res, 3)) if base is None else base.astype(np.float64)
    if base is None:
        img[:] = background
    rgb = np.asarray(GENEVAL_COLORS[color] if isinstance(color, str) else color, dtype=np.float64)
    cov = np.clip(0.5 - sdf(xs, ys), 0.0, 1.0)[..., None]
    return np.clip(np.rint(img * (1 - cov) + rgb * cov), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------- contract


def test_implements_detector_protocol_and_detection_contract():
    world = make_world()
    det = ShapesDetector(world)
    assert isinstance(det, Detector)
    scene = Scene((ShapeObject("circle", "red", 10.0, 10.0, 10.0), ShapeObject("triangle", "white", 22.0, 21.0, 10.0)),
                  32, (102, 102, 102))
    out = det.detect(render(scene))
    assert set(out) == {"circle", "triangle"}
    for shape, d in _flat(out):
        assert isinstance(d, Detection)
        assert len(d.box) == 4 and all(isinstance(v, float) for v in d.box)
        assert d.box[0] < d.box[2] and d.box[1] < d.box[3]
        assert isinstance(d.score, float) and 0.0 <= d.score <= 1.0
        assert d.color in world.colors
        assert d.mask is not None and d.mask.shape == (32, 32) and d.mask.dtype == bool and d.mask.any()
    # the mask lies on the object
    (c,) = out["circle"]
    ys, xs = np.nonzero(c.mask)
    assert abs(xs.mean() + 0.5 - 10.0) < 0.5 and abs(ys.mean() + 0.5 - 10.0) < 0.5


def test_blank_image_has_no_detections():
    for res in (32, 64):
        world = make_world(res)
        img = np.empty((res, res, 3), np.uint8)
        img[:] = world.background
        assert ShapesDetector(world).detect(img) == {}


# ---------------------------------------------------------------------------- clean renders


def test_clean_renders_are_detected_exactly(world_data):
    world, det, ws = world_data
    for i, (img, scene) in enumerate(zip(ws.images, ws.scenes)):
        dets = det.detect(img)
        flat = _flat(dets)
        assert len(flat) == len(scene.objects), (i, scene, dets)
        assert Counter((s, d.color) for s, d in flat) == Counter((o.shape, o.color) for o in scene.objects), i
        n, pairs = _match(dets, scene, tol=1.0)
        assert n == len(scene.objects), (i, pairs)
        assert min(d.score for _, d in flat) >= 0.9, (i, [(s, d.score) for s, d in flat])


def test_clean_boxes_are_tight(world_data):
    world, det, ws = world_data
    errs = []
    for img, scene in zip(ws.images[:100], ws.scenes[:100]):
        _, pairs = _match(det.detect(img), scene, tol=1.0)
        errs += [np.abs(np.subtract(d.box, obj.box)).max() for obj, d in pairs]
    assert max(errs) < 0.5  # every edge within half a pixel of the painted shape's box


# ---------------------------------------------------------------------------- noise robustness


def test_mild_gaussian_noise_keeps_accuracy(world_data):
    world, det, ws = world_data
    rng = np.random.default_rng(1)
    noisy = np.clip(ws.images + rng.normal(0.0, 4.0, ws.images.shape), 0, 255).round().astype(np.uint8)
    matched = total = 0
    for img, scene in zip(noisy, ws.scenes):
        n, _ = _match(det.detect(img), scene, tol=1.5)
        matched += n
        total += len(scene.objects)
    assert matched / total >= 0.98


def test_slight_blur_keeps_accuracy(world_data):
    """Generated samples tend to have softer edges than the renderer's one-pixel ramp."""
    from scipy import ndimage

    world, det, ws = world_data
    sigma = 0.5 * world.resolution / 32
    matched = total = 0
    for img, scene in zip(ws.images[:150], ws.scenes[:150]):
        soft = ndimage.gaussian_filter(img.astype(np.float64), (sigma, sigma, 0)).round().astype(np.uint8)
        n, _ = _match(det.detect(soft), scene, tol=1.5)
        matched += n
        total += len(scene.objects)
    assert matched / total >= 0.98


def test_isolated_speckles_are_not_objects(world_data):
    world, det, ws = world_data
    rng = np.random.default_rng(2)
    palette = [GENEVAL_COLORS[c] for c in world.colors]
    res = world.resolution
    for img, scene in zip(ws.images[:60], ws.scenes[:60]):
        img = img.copy()
        taken = np.abs(img.astype(int) - np.asarray(world.background)).sum(-1) > 0
        added = 0
        for _ in range(200):
            y, x = rng.integers(1, res - 1, 2)
            if taken[y - 1:y + 2, x - 1:x + 2].any():
                continue  # keep speckles isolated: not touching objects or each other
            img[y, x] = palette[rng.integers(len(palette))]
            taken[y, x] = True
            added += 1
            if added == 5:
                break
        assert added == 5
        dets = det.detect(img)
        assert len(_flat(dets)) == len(scene.objects)
        assert _match(dets, scene, tol=1.0)[0] == len(scene.objects)
    blank = np.empty((res, res, 3), np.uint8)
    blank[:] = world.background
    blank[3, 3] = palette[0]
    blank[res - 4, 7] = palette[-1]
    assert det.detect(blank) == {}


# ---------------------------------------------------------------------------- judging imperfect objects


def test_objects_of_different_colours_that_touch_are_separated():
    det = ShapesDetector(make_world())
    scene = Scene((ShapeObject("square", "red", 12.0, 16.0, 10.0), ShapeObject("circle", "blue", 20.5, 16.0, 10.0)),
                  32, (102, 102, 102))
    dets = det.detect(render(scene))
    assert _match(dets, scene, tol=1.0)[0] == 2
    assert len(_flat(dets)) == 2


def test_ambiguous_or_implausible_blobs_fail_the_counting_threshold():
    world = make_world()
    det = ShapesDetector(world)

    def rounded_square(rel_radius: float, side: float = 9.0):
        r, h = rel_radius * side, side / 2

        def sdf(x, y):
            qx, qy = np.abs(x - 16) - h + r, np.abs(y - 16) - h + r
            return np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0) - r
        return sdf

    def only(img):
        flat = _flat(det.detect(img))
        assert len(flat) == 1, flat
        return flat[0]

    # the two ends are confident, the shape half-way between a square and a circle is not
    assert only(_paint(rounded_square(0.05), "green"))[0] == "square"
    assert only(_paint(rounded_square(0.05), "green"))[1].score >= 0.95
    assert only(_paint(rounded_square(0.5), "green"))[0] == "circle"
    assert only(_paint(rounded_square(0.5), "green"))[1].score >= 0.95
    assert only(_paint(rounded_square(0.33), "green"))[1].score < 0.9
    # two same-coloured objects fused into one blob
    fused = render(Scene((ShapeObject("square", "red", 12.0, 16.0, 10.0),
                          ShapeObject("circle", "red", 20.5, 16.0, 10.0)), 32, (102, 102, 102)))
    assert only(fused)[1].score < 0.9
    # a colour half-way between two palette colours (red and purple), and one off the palette (orange)
    circle = lambda x, y: np.hypot(x - 16, y - 16) - 5.0  # noqa: E731
    mid = tuple((np.add(GENEVAL_COLORS["red"], GENEVAL_COLORS["purple"]) / 2).round())
    assert only(_paint(circle, mid))[1].score < 0.9
    assert only(_paint(circle, "orange"))[1].score < 0.9
    assert only(_paint(circle, "orange"))[1].color in world.colors
    # far too small or too large for the world's size range
    assert only(_paint(lambda x, y: np.hypot(x - 16, y - 16) - 2.2, "red"))[1].score < 0.3
    assert only(_paint(lambda x, y: np.maximum(np.abs(x - 16), np.abs(y - 16)) - 10, "red"))[1].score < 0.3


def test_a_downward_triangle_is_still_a_triangle():
    det = ShapesDetector(make_world())
    tri = ShapeObject("triangle", "blue", 16.0, 16.0, 10.0)
    img = _paint(lambda x, y: signed_distance(tri, x, 32 - y), "blue")
    (shape, d), = _flat(det.detect(img))
    assert shape == "triangle" and d.score >= 0.9


# ---------------------------------------------------------------------------- speed


def test_detector_is_fast():
    world = make_world()
    det = ShapesDetector(world)
    ws = sample_world(world, 300, seed=5)
    t0 = time.perf_counter()
    for img in ws.images:
        det.detect(img)
    rate = len(ws.images) / (time.perf_counter() - t0)
    assert rate > 100, f"{rate:.0f} images/s"  # ~2,000/s on one core; generous bound for shared CI machines


# ---------------------------------------------------------------------------- GenEval scoring


def test_geneval_shapes_set_scores_perfectly_on_ground_truth_renders():
    scoring = pytest.importorskip("sprint_bench.eval.geneval.scoring")
    from sprint_bench.data.shapes.prompts import geneval_shapes_prompts

    for res in (32, 64):
        world = make_world(res)
        det = ShapesDetector(world)
        clf = DetectionColorClassifier()
        rows, failures = [], []
        for i, entry in enumerate(geneval_shapes_prompts(world)):
            img = render(realize(entry, world, np.random.default_rng(i)))
            result = scoring.score_image(img, entry, det, clf, colors=world.colors)
            rows.append({"tag": entry["tag"], "index": i, "correct": result.correct})
            if not result.correct:
                failures.append((entry["prompt"], result.reasons))
        summary = scoring.summarize(rows)
        assert summary["n_images"] == len(rows) == 553
        assert summary["overall"] >= 0.99, failures[:10]
        assert all(t["score"] >= 0.98 for t in summary["tasks"].values()), (summary["tasks"], failures[:10])


def test_stand_in_world_fields_are_enough():
    """The detector reads only resolution, shapes, colors, size_range and background."""
    @dataclass
    class Tiny:
        resolution: int = 32
        shapes: tuple = ("circle", "square")
        colors: tuple = ("red", "blue")
        size_range: tuple = (0.28, 0.36)
        background: tuple = (102, 102, 102)

    det = ShapesDetector(Tiny())
    scene = Scene((ShapeObject("square", "blue", 9.0, 9.0, 10.0), ShapeObject("circle", "red", 22.0, 22.0, 10.0)),
                  32, (102, 102, 102))
    dets = det.detect(render(scene))
    assert _match(dets, scene, tol=1.0)[0] == 2
    world64 = dataclasses.replace(make_world(), resolution=64)
    assert ShapesDetector(world64).resolution == 64
