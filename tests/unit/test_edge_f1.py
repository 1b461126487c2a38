"""Edge F1 with a pixel tolerance, on tiny hand-made maps whose counts are worked out by hand."""
import numpy as np
import pytest

from sprint_bench.data.shapes.edges import edge_map
from sprint_bench.data.shapes.render import render
from sprint_bench.data.shapes.scene import Scene, ShapeObject
from sprint_bench.eval.metrics.edge_f1 import edge_f1_metric, edge_prf


def _map(*pixels, size=8):
    m = np.zeros((size, size), np.uint8)
    for r, c in pixels:
        m[r, c] = 1
    return m


REF = _map(*[(2, c) for c in range(1, 7)])  # a horizontal line, 6 px


def _prf(ref, gen, tol):
    return tuple(float(v[0]) for v in edge_prf(ref, gen, tol))


def test_identical_maps_score_one():
    assert _prf(REF, REF, 0) == (1.0, 1.0, 1.0)
    assert _prf(REF, REF, 1) == (1.0, 1.0, 1.0)


def test_one_pixel_shift_is_perfect_at_tolerance_one_and_partial_at_zero():
    # generated: the left half on the line, the right half one row lower (and one diagonal step at the joint)
    gen = _map(*[(2, c) for c in (1, 2, 3)], *[(3, c) for c in (4, 5, 6)])
    # tolerance 0: 3 of 6 generated pixels lie on the line (p = 1/2), 3 of 6 line pixels are drawn (r = 1/2)
    assert _prf(REF, gen, 0) == pytest.approx((0.5, 0.5, 0.5))
    # tolerance 1: every pixel is within one (Chebyshev) pixel of the other map
    assert _prf(REF, gen, 1) == (1.0, 1.0, 1.0)
    # a whole-line shift by one pixel: nothing coincides at tolerance 0
    assert _prf(REF, np.roll(REF, 1, axis=0), 0) == (0.0, 0.0, 0.0)
    # a diagonal step is Chebyshev distance 1
    assert _prf(_map((4, 4)), _map((5, 5)), 1) == (1.0, 1.0, 1.0)


def test_spurious_and_missing_edges_count_separately():
    # 6 line pixels drawn plus 2 far spurious pixels: p = 6/8, r = 6/6, F1 = 2 * 0.75 / 1.75 = 6/7
    gen = REF | _map((6, 0), (7, 7))
    assert _prf(REF, gen, 1) == pytest.approx((0.75, 1.0, 6 / 7))
    # only the left 2 line pixels drawn: tolerance 1 reaches one more line pixel (col 3): p = 2/2, r = 3/6, F1 = 2/3
    assert _prf(REF, _map((2, 1), (2, 2)), 1) == pytest.approx((1.0, 0.5, 2 / 3))


def test_disjoint_far_maps_and_empty_maps():
    far = _map((7, 0), (7, 1))
    assert _prf(REF, far, 1) == (0.0, 0.0, 0.0)
    empty = np.zeros((8, 8), np.uint8)
    assert _prf(empty, empty, 1) == (1.0, 1.0, 1.0)  # nothing to draw, nothing drawn
    assert _prf(REF, empty, 1) == (1.0, 0.0, 0.0)  # nothing drawn: no false positive, every input edge missed
    assert _prf(empty, REF, 1) == (0.0, 1.0, 0.0)  # edges where the input has none


def test_batch_is_per_image():
    p, r, f = edge_prf(np.stack([REF, REF]), np.stack([REF, np.roll(REF, 1, axis=0)]), 0)
    assert f.tolist() == [1.0, 0.0] and p.shape == r.shape == (2,)


def test_metric_on_rendered_images_names_its_protocol():
    img = render(Scene((ShapeObject("circle", "red", 15.5, 16.2, 10.0),), 32, (102, 102, 102)))
    imgs = np.stack([img, np.roll(img, 1, axis=1), np.full_like(img, 102)])
    cond = edge_map(np.stack([img, img, img]))
    res = edge_f1_metric(cond, imgs, tolerance=1)
    per = edge_prf(cond, edge_map(imgs), 1)[2]
    assert per[0] == 1.0 and per[1] == 1.0 and per[2] == 0.0  # same / shifted by 1 px / blank image
    assert res.key == "edge_f1_tol1" and res.values["edge_f1_tol1"] == pytest.approx(2 / 3)
    assert res.values["edge_recall_tol1"] == pytest.approx(2 / 3) and res.values["edge_precision_tol1"] == 1.0
    assert res.protocol.metric == "edge F1 (tolerance 1 px)"
    assert res.protocol.num_images == 3 and res.protocol.resolution == 32 and "Sobel" in res.protocol.extractor
    assert edge_f1_metric(cond, imgs, tolerance=0).values["edge_f1_tol0"] < res.values["edge_f1_tol1"]
