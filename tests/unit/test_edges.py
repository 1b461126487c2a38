"""Edge maps of the shapes world: closed thin contours on the object boundary, nothing elsewhere."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from sprint_bench.data.shapes.edges import edge_condition, edge_map
from sprint_bench.data.shapes.render import render, signed_distance
from sprint_bench.data.shapes.scene import Scene, ShapeObject

BG = (102, 102, 102)


def _scene(*objs):
    return render(Scene(tuple(objs), 32, BG))


def _distance(obj):
    c = np.arange(32) + 0.5
    ys, xs = np.meshgrid(c, c, indexing="ij")
    return signed_distance(obj, xs, ys)


@pytest.mark.parametrize("obj", [ShapeObject("circle", "red", 15.3, 16.8, 10.0),
                                 ShapeObject("circle", "brown", 11.0, 20.2, 9.2),  # weakest contrast on grey
                                 ShapeObject("triangle", "white", 16.4, 15.1, 10.4)])
def test_single_object_gives_closed_ring_on_its_boundary(obj):
    e = edge_map(_scene(obj))
    assert e.dtype == np.uint8 and e.shape == (32, 32) and set(np.unique(e)) <= {0, 1}
    d = _distance(obj)
    assert np.abs(d[e == 1]).max() <= 1.5  # every edge pixel is on the boundary: none far from the object
    # closed: the non-edge pixels reachable from the image border (4-connected) never reach the inside
    labels, _ = ndimage.label(e == 0)
    outside = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))) - {0}
    inside = np.unique(labels[(d < -1.0) & (e == 0)])
    assert len(inside) > 0 and not outside & set(inside)
    # thin: roughly one pixel per unit of perimeter (circle: pi * size)
    if obj.shape == "circle":
        assert 0.8 * np.pi * obj.size <= e.sum() <= 1.3 * np.pi * obj.size


def test_background_only_has_no_edges():
    assert edge_map(np.full((32, 32, 3), 102, np.uint8)).sum() == 0
    assert edge_map(np.zeros((32, 32, 3), np.uint8), thickness=3).sum() == 0


def test_thickness_grows_the_edge_set_monotonically():
    img = _scene(ShapeObject("square", "blue", 12.0, 14.0, 10.0), ShapeObject("circle", "green", 24.0, 22.0, 9.0))
    maps = [edge_map(img, thickness=t).astype(bool) for t in (1, 2, 3, 4)]
    for thin, thick in zip(maps, maps[1:]):
        assert (thick >= thin).all() and thick.sum() > thin.sum()
    # thickness 3 is the 1-px map dilated by one pixel in every direction (3x3 square)
    assert (maps[2] == ndimage.binary_dilation(maps[0], structure=np.ones((3, 3)))).all()


def test_batch_equals_per_image_and_condition_range():
    imgs = np.stack([_scene(ShapeObject("circle", "red", 16.0, 16.0, 10.0)),
                     _scene(ShapeObject("triangle", "purple", 10.0, 12.0, 9.5),
                            ShapeObject("square", "yellow", 23.0, 22.0, 9.0)),
                     np.full((32, 32, 3), 102, np.uint8)])
    batch = edge_map(imgs, thickness=2)
    assert batch.shape == (3, 32, 32)
    for i in range(3):
        assert np.array_equal(batch[i], edge_map(imgs[i], thickness=2))
    cond = edge_condition(imgs, thickness=2)
    assert cond.shape == (3, 3, 32, 32) and cond.dtype == torch.float32
    assert torch.equal(cond[:, 0], torch.from_numpy(batch).float() * 2 - 1)
    assert torch.equal(cond[:, 0], cond[:, 2]) and set(cond.unique().tolist()) <= {-1.0, 1.0}
