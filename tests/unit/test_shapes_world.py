"""The shapes world: determinism, captions agree with scenes, held-out combinations, the shipped prompt set."""
import dataclasses
from collections import Counter

import numpy as np
import pytest

from sprint_bench.data.shapes.prompts import (PROMPTS_FILE, all_prompts, geneval_shapes_prompts,
                                              held_out_color_pairs, held_out_positions, load_prompts,
                                              training_caption_pool)
from sprint_bench.data.shapes.render import render
from sprint_bench.data.shapes.sampler import sample_world
from sprint_bench.data.shapes.scene import ShapeObject, Scene, realize
from sprint_bench.data.shapes.vocab import FAMILIES, GENEVAL_TASK_MIX
from sprint_bench.eval.geneval.layout import validate_metadata
from sprint_bench.eval.geneval.scoring import relative_position


def test_same_seed_gives_identical_bytes_and_captions(world):
    a, b = sample_world(world, 200, seed=7), sample_world(world, 200, seed=7)
    assert a.images.tobytes() == b.images.tobytes()
    assert a.captions == b.captions and np.array_equal(a.caption_ids, b.caption_ids)
    c = sample_world(world, 200, seed=8)
    assert a.images.tobytes() != c.images.tobytes()


def _check_scene_matches(scene: Scene, meta: dict) -> None:
    by_shape = Counter(o.shape for o in scene.objects)
    groups = []
    for clause in meta["include"]:
        objs = [o for o in scene.objects if o.shape == clause["class"]]
        assert len(objs) >= clause["count"], meta["prompt"]
        if "color" in clause:
            assert all(o.color == clause["color"] for o in objs), meta["prompt"]
        if "position" in clause:
            rel, target = clause["position"]
            for o in objs:
                for t in groups[target]:
                    assert rel in relative_position(o.box, t.box, 0.1), (meta["prompt"], o, t)
        groups.append(objs)
    for clause in meta.get("exclude", []):
        assert by_shape[clause["class"]] < clause["count"], meta["prompt"]
    if meta["tag"] in ("single_object", "colors"):
        assert len(scene.objects) == 1
    if meta["tag"] in ("two_object", "position", "color_attr"):
        assert len(scene.objects) == 2


def test_captions_agree_with_scenes_for_every_family(world):
    s = sample_world(world, 1500, seed=0)
    tags = Counter()
    for i, scene in enumerate(s.scenes):
        meta = s.metadata[s.caption_ids[i]]
        assert meta["prompt"] == s.captions[s.caption_ids[i]]
        _check_scene_matches(scene, meta)
        tags[meta["tag"]] += 1
    assert set(tags) == set(FAMILIES)
    # family frequencies follow world.family_weights
    total = sum(world.family_weights.values())
    for f in FAMILIES:
        assert abs(tags[f] / 1500 - world.family_weights[f] / total) < 0.05


def test_objects_never_touch(world):
    s = sample_world(world, 500, seed=1)
    for scene in s.scenes:
        for a in scene.objects:
            for b in scene.objects:
                if a is not b:
                    ax1, ay1, ax2, ay2 = a.box
                    bx1, by1, bx2, by2 = b.box
                    assert ax2 + 1.5 <= bx1 or bx2 + 1.5 <= ax1 or ay2 + 1.5 <= by1 or by2 + 1.5 <= ay1


def test_held_out_colour_attribution_never_in_training(world):
    held = held_out_color_pairs(world)
    assert len(held) >= 5
    train = {e["prompt"] for e in training_caption_pool(world)["color_attr"]}
    evals = all_prompts(world, "color_attr", "eval")
    assert evals and not train & {e["prompt"] for e in evals}
    for e in evals:
        a, b = e["include"]
        assert frozenset([(a["color"], a["class"]), (b["color"], b["class"])]) in held
    # every (colour, shape) of the held-out prompts is still seen in training colour-attribution captions
    seen = {(c["color"], c["class"]) for e in training_caption_pool(world)["color_attr"] for c in e["include"]}
    assert all((c["color"], c["class"]) in seen for e in evals for c in e["include"])


def test_position_holdout_keeps_the_mirror_in_training(world):
    w = dataclasses.replace(world, holdout_position_fraction=0.25)
    held = held_out_positions(w)
    assert held
    train = {e["prompt"] for e in all_prompts(w, "position", "train")}
    for a, rel, b in held:
        assert f"a photo of a {a} {rel} a {b}" not in train
    assert {e["prompt"] for e in all_prompts(w, "position", "eval")} == {
        f"a photo of a {a} {rel} a {b}" for a, rel, b in held}


def test_geneval_shapes_set_has_the_official_mix_and_ships_as_generated(world):
    prompts = geneval_shapes_prompts(world)
    assert len(prompts) == 553
    assert Counter(p["tag"] for p in prompts) == Counter(GENEVAL_TASK_MIX)
    for p in prompts:
        validate_metadata(p)
    assert load_prompts(PROMPTS_FILE) == prompts  # `make prompts` output is what the package ships
    counts = Counter(p["include"][0]["count"] for p in prompts if p["tag"] == "counting")
    assert set(counts) == {2, 3}


def test_ground_truth_scene_realised_for_every_prompt(world):
    for i, p in enumerate(geneval_shapes_prompts(world)):
        _check_scene_matches(realize(p, world, np.random.default_rng(i)), p)


def test_renderer_is_antialiased_and_area_correct(world):
    obj = ShapeObject("circle", "red", 16.0, 16.0, 10.0)
    img = render(Scene((obj,), 32, (0, 0, 0))).astype(np.float64)
    coverage = img[..., 0] / 220.0
    assert abs(coverage.sum() - np.pi * 25) < 1.0
    assert ((coverage > 0.05) & (coverage < 0.95)).sum() > 10  # soft edges


def test_64_pixel_preset(world):
    w = dataclasses.replace(world, resolution=64)
    s = sample_world(w, 20, seed=0)
    assert s.images.shape == (20, 64, 64, 3)
    for i, scene in enumerate(s.scenes):
        _check_scene_matches(scene, s.metadata[s.caption_ids[i]])


def test_unknown_family_is_rejected(world):
    with pytest.raises(ValueError, match="unknown task family"):
        all_prompts(world, "colour", "train")
