"""Generate GenEval images in the official folder layout (4 per prompt by default); resumable: existing PNGs are
kept, so an interrupted generation continues where it stopped."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from sprint_bench.eval.geneval.layout import sample_path, write_prompt_folder

# (captions, per-image seeds) -> (N, H, W, 3) uint8
SampleFn = Callable[[list[str], list[int]], np.ndarray]


def generate_geneval(sample_fn: SampleFn, prompts: list[dict], root: str | Path, images_per_prompt: int = 4,
                     batch_size: int = 64, seed: int = 0) -> Path:
    """Image k of prompt i uses seed ``seed + i * images_per_prompt + k`` (independent of batching)."""
    root = Path(root)
    todo: list[tuple[int, int]] = []
    for i, entry in enumerate(prompts):
        write_prompt_folder(root, i, entry)
        todo += [(i, k) for k in range(images_per_prompt) if not sample_path(root, i, k).exists()]
    with tqdm(total=len(prompts) * images_per_prompt, initial=len(prompts) * images_per_prompt - len(todo),
              desc="generating GenEval images", unit="img") as bar:
        for b in range(0, len(todo), batch_size):
            chunk = todo[b:b + batch_size]
            images = sample_fn([prompts[i]["prompt"] for i, _ in chunk],
                               [seed + i * images_per_prompt + k for i, k in chunk])
            for (i, k), img in zip(chunk, images):
                path = sample_path(root, i, k)
                tmp = path.with_name(path.stem + ".tmp.png")
                Image.fromarray(img).save(tmp)
                tmp.replace(path)
            bar.update(len(chunk))
    return root


def seeded_noise(seeds: list[int], shape: tuple[int, ...]) -> torch.Tensor:
    """One Gaussian draw per seed, stacked: the same image seed gives the same noise in any batch."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in seeds])
