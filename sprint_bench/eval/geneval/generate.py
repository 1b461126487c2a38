"""Generate GenEval images in the official folder layout (4 per prompt by default); resumable: existing PNGs are
kept, so an interrupted generation continues where it stopped."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from sprint_bench.atomic import atomic_write
from sprint_bench.eval.geneval.layout import sample_path, write_prompt_folder

# (captions, per-image seeds) -> (N, H, W, 3) uint8
SampleFn = Callable[[list[str], list[int]], np.ndarray]


def images_folder_name(sampler_tag: str, seed: int = 0, images_per_prompt: int = 4,
                       first_prompts: int | None = None) -> str:
    """The folder name of one sampler's GenEval images: the image seeds depend on ``seed`` and
    ``images_per_prompt``, so any but the defaults (0, 4) are named in it; a smoke run on the first N prompts only
    (``first_prompts``) gets its own folder, so that its metrics never read (or replace) the full set's."""
    seed_part = f"-seed{seed}" if seed != 0 else ""
    ipp_part = f"-ipp{images_per_prompt}" if images_per_prompt != 4 else ""
    first_part = f"-first{first_prompts}" if first_prompts is not None else ""
    return sampler_tag + seed_part + ipp_part + first_part


def image_seed(seed: int, i: int, images_per_prompt: int, k: int) -> int:
    """Noise seed of image k of prompt i: ``seed + i * images_per_prompt + k`` (independent of batching)."""
    return seed + i * images_per_prompt + k


def check_seeds(root: Path, seed: int, images_per_prompt: int) -> None:
    """Record the seed rule of the images under ``root`` beside it (``<root>-seeds.json``, outside the official
    layout), or refuse to add images to a folder whose existing ones were drawn under another rule."""
    facts = {"seed": seed, "images_per_prompt": images_per_prompt}
    record = root.with_name(root.name + "-seeds.json")
    if record.exists():
        old = json.loads(record.read_text())
        if old != facts:
            raise ValueError(f"{root} holds images drawn with seed {old['seed']} and {old['images_per_prompt']} per "
                             f"prompt; this request has seed {seed} and {images_per_prompt} per prompt: give it "
                             f"another folder (keeping these images)")
        return
    atomic_write(record, lambda f: f.write((json.dumps(facts) + "\n").encode()))


def generate_geneval(sample_fn: SampleFn, prompts: list[dict], root: str | Path, images_per_prompt: int = 4,
                     batch_size: int = 64, seed: int = 0) -> Path:
    """Image k of prompt i uses seed :func:`image_seed` (independent of batching). Images already
    under ``root`` are kept only if they were drawn under the same rule (:func:`check_seeds`)."""
    root = Path(root)
    check_seeds(root, seed, images_per_prompt)
    todo: list[tuple[int, int]] = []
    for i, entry in enumerate(prompts):
        write_prompt_folder(root, i, entry)
        todo += [(i, k) for k in range(images_per_prompt) if not sample_path(root, i, k).exists()]
    with tqdm(total=len(prompts) * images_per_prompt, initial=len(prompts) * images_per_prompt - len(todo),
              desc="generating GenEval images", unit="img") as bar:
        for b in range(0, len(todo), batch_size):
            chunk = todo[b:b + batch_size]
            images = sample_fn([prompts[i]["prompt"] for i, _ in chunk],
                               [image_seed(seed, i, images_per_prompt, k) for i, k in chunk])
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
