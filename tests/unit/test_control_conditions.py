"""ControlNet evaluation conditions: a pure function of (prompt metadata, image seed) that satisfies the prompt."""
import numpy as np
import pytest
import torch

from sprint_bench.data.shapes.control import (CONTROL_SEED_SALT, condition_edges, condition_images,
                                              condition_tensor, entries_for, latency_condition, prompt_entries)
from sprint_bench.data.shapes.edges import edge_condition, edge_map
from sprint_bench.data.shapes.prompts import geneval_shapes_prompts
from sprint_bench.data.shapes.render import render
from sprint_bench.data.shapes.scene import realize


@pytest.fixture
def prompts(world):
    return geneval_shapes_prompts(world)


def test_shapes_dtypes_and_agreement(world, prompts):
    entries, seeds = prompts[:3], [5, 6, 7]
    imgs = condition_images(entries, seeds, world)
    edges = condition_edges(entries, seeds, world)
    cond = condition_tensor(entries, seeds, world, thickness=3)
    r = world.resolution
    assert imgs.dtype == np.uint8 and imgs.shape == (3, r, r, 3)
    assert edges.dtype == np.uint8 and edges.shape == (3, r, r) and set(np.unique(edges)) <= {0, 1}
    assert edges.sum(axis=(1, 2)).min() > 0  # every condition has objects, hence edges
    assert cond.dtype == torch.float32 and cond.shape == (3, 3, r, r)
    np.testing.assert_array_equal(edges, edge_map(imgs, 1))
    assert torch.equal(cond, edge_condition(imgs, 3))
    # thickness 3 covers the thickness-1 edges and adds pixels
    thick = (cond[:, 0] > 0).numpy()
    assert (thick[edges == 1]).all() and thick.sum() > edges.sum()


def test_the_rule_is_the_documented_one(world, prompts):
    e, s = prompts[10], 1234
    expect = render(realize(e, world, np.random.default_rng([CONTROL_SEED_SALT, s])))
    np.testing.assert_array_equal(condition_images([e], [s], world)[0], expect)


def test_deterministic_per_seed_and_independent_of_batch_order(world, prompts):
    entries, seeds = [prompts[0], prompts[100], prompts[300], prompts[500]], [0, 1, 2, 3]
    a = condition_images(entries, seeds, world)
    b = condition_images(entries[::-1], seeds[::-1], world)[::-1]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[2:3], condition_images(entries[2:3], seeds[2:3], world))
    # another seed gives another scene for the same prompt
    assert not np.array_equal(condition_images([prompts[0]], [0], world), condition_images([prompts[0]], [1], world))


def test_conditions_satisfy_their_prompts(world, prompts):
    from sprint_bench.eval.geneval.scoring import score_image
    from sprint_bench.eval.geneval.shapes_detector import ShapesDetector

    det = ShapesDetector(world)
    picks = [prompts[i] for i in (0, 85, 180, 260, 360, 460)]  # one per task family
    assert len({e["tag"] for e in picks}) == 6
    imgs = condition_images(picks, list(range(len(picks))), world)
    for e, img in zip(picks, imgs):
        res = score_image(img, e, det, colors=list(world.colors))
        assert res.correct, (e["prompt"], res.reason)


def test_prompt_lookup(world, prompts):
    table = prompt_entries(prompts)
    assert len(table) < len(prompts)  # prompts repeat in GenEval-Shapes, each with one entry
    assert entries_for([prompts[3]["prompt"]], table) == [prompts[3]]
    with pytest.raises(KeyError, match="GenEval-Shapes"):
        entries_for(["a photo of a dragon"], table)
    clash = dict(prompts[0], tag="colors")
    with pytest.raises(ValueError, match="two different metadata"):
        prompt_entries([prompts[0], clash])


def test_latency_condition_is_first_prompt_seed_zero(world, prompts):
    c = latency_condition(world, 2)
    assert c.shape == (1, 3, world.resolution, world.resolution)
    assert torch.equal(c, condition_tensor(prompts[:1], [0], world, 2))
