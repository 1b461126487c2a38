"""Evaluation conditions of a ControlNet on the shapes world: a pure function of (GenEval metadata entry, image seed).

The condition image of image seed ``s`` for entry ``e`` is ``render(realize(e, world, default_rng([CONTROL_SEED_SALT,
s])))``: a fresh ground-truth scene that satisfies the prompt. The salt keeps this scene independent of the
generator's noise (drawn from ``s`` itself by torch) and of the FD reference renders (``default_rng([seed, i, k])``).
Its edge map is the model input (:func:`condition_tensor`, dilated to the trained thickness) and, at thickness 1,
the reference of the edge-F1 metric (:func:`condition_edges`), so generation and metric read one definition.
"""
from __future__ import annotations

import numpy as np
import torch

from sprint_bench.data.shapes.edges import edge_condition, edge_map
from sprint_bench.data.shapes.render import render
from sprint_bench.data.shapes.scene import Scene, realize

CONTROL_SEED_SALT = 61_803  # fixed: part of the benchmark protocol (changing it changes every condition)
CONDITION_RULE = (f"condition of image seed s = render(realize(prompt metadata, world, "
                  f"numpy.random.default_rng([{CONTROL_SEED_SALT}, s])))")


def condition_scene(entry: dict, seed: int, world) -> Scene:
    """The ground-truth scene behind the condition of one (metadata entry, image seed)."""
    return realize(entry, world, np.random.default_rng([CONTROL_SEED_SALT, int(seed)]))


def condition_images(entries: list[dict], seeds: list[int], world) -> np.ndarray:
    """uint8 (B, H, W, 3) condition renders, image b from (entries[b], seeds[b]) alone."""
    if len(entries) != len(seeds):
        raise ValueError(f"{len(entries)} entries but {len(seeds)} seeds")
    res = world.resolution
    out = np.empty((len(seeds), res, res, 3), np.uint8)
    for b, (entry, seed) in enumerate(zip(entries, seeds)):
        out[b] = render(condition_scene(entry, seed, world))
    return out


def condition_edges(entries: list[dict], seeds: list[int], world) -> np.ndarray:
    """uint8 {0, 1} (B, H, W) thickness-1 edge maps of the conditions: what edge F1 compares against."""
    return edge_map(condition_images(entries, seeds, world), 1).reshape(len(seeds), world.resolution,
                                                                       world.resolution)


def condition_tensor(entries: list[dict], seeds: list[int], world, thickness: int) -> torch.Tensor:
    """float32 (B, 3, H, W) in {-1, 1}: the ControlNet input (:func:`edge_condition` at ``thickness``)."""
    return edge_condition(condition_images(entries, seeds, world), thickness)


def prompt_entries(entries: list[dict]) -> dict[str, dict]:
    """prompt string -> its metadata entry; raises if one prompt string carries two different entries (a condition
    is looked up by prompt, so it must be unambiguous)."""
    out: dict[str, dict] = {}
    for e in entries:
        prev = out.setdefault(e["prompt"], e)
        if prev != e:
            raise ValueError(f"prompt {e['prompt']!r} has two different metadata entries: {prev} vs {e}")
    return out


def entries_for(prompts: list[str], table: dict[str, dict]) -> list[dict]:
    """The metadata entries of ``prompts``; a prompt outside the table (conditions exist only for GenEval-Shapes
    prompts) raises a KeyError naming it."""
    missing = [p for p in prompts if p not in table]
    if missing:
        raise KeyError(f"no GenEval-Shapes metadata for prompt(s) {missing[:3]}: ControlNet conditions are defined "
                       f"only for GenEval-Shapes prompts")
    return [table[p] for p in prompts]


def latency_condition(world, thickness: int) -> torch.Tensor:
    """The one condition a latency pipeline uses, (1, 3, H, W): the first GenEval-Shapes prompt at image seed 0."""
    from sprint_bench.data.shapes.prompts import geneval_shapes_prompts

    return condition_tensor(geneval_shapes_prompts(world)[:1], [0], world, thickness)
