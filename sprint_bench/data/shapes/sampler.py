"""Training examples of the shapes world: (image, caption) pairs, deterministic by seed."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sprint_bench.data.shapes.prompts import training_caption_pool
from sprint_bench.data.shapes.render import render
from sprint_bench.data.shapes.scene import Scene, realize


@dataclass
class WorldSample:
    images: np.ndarray  # (N, H, W, 3) uint8
    captions: list[str]  # distinct captions
    caption_ids: np.ndarray  # (N,) int64 index into captions
    metadata: list[dict]  # per distinct caption, its GenEval metadata
    scenes: list[Scene]


def sample_world(world, n: int, seed: int, progress: bool = False) -> WorldSample:
    """Draw ``n`` examples: family ~ world.family_weights, caption uniform within the family's training pool,
    scene realised from the caption's metadata. Same (world, n, seed) -> byte-identical output."""
    pool = training_caption_pool(world)
    families = sorted(pool)
    weights = np.array([world.family_weights[f] for f in families], dtype=np.float64)
    weights /= weights.sum()
    entries = [e for f in families for e in pool[f]]
    offsets = np.cumsum([0] + [len(pool[f]) for f in families])
    rng = np.random.default_rng(seed)
    fam_idx = rng.choice(len(families), size=n, p=weights)
    ids = np.array([offsets[f] + rng.integers(offsets[f + 1] - offsets[f]) for f in fam_idx], dtype=np.int64)
    scenes: list[Scene] = []
    it = range(n)
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, desc="rendering shapes world", unit="img", mininterval=2.0)
    images = np.empty((n, world.resolution, world.resolution, 3), dtype=np.uint8)
    for i in it:
        scene = realize(entries[ids[i]], world, rng)
        scenes.append(scene)
        images[i] = render(scene)
    return WorldSample(images, [e["prompt"] for e in entries], ids, entries, scenes)
