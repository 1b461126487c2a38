"""Teacher ODE pairs (noise -> the teacher's Euler + CFG endpoint) for the one-step regression term (ours, not in
SANA-Sprint; knowledge distillation of Luhman & Luhman 2021, arXiv:2101.02388): the pair bank and its draw."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from tqdm import tqdm

from sprint_bench.eval.geneval.generate import seeded_noise
from sprint_bench.samplers.flow import euler_sample

# Bank noise seeds lie in [2**31, 2**32), so they never meet the harness's image seeds (seed + prompt *
# images_per_prompt + k, small integers): a student regressed onto a pair must not be evaluated on that pair's noise.
# Not higher: torch's CPU generator keeps only the low 32 bits of a seed (2**40 draws what 0 draws).
PAIR_SEED_BASE = 2**31


@dataclass
class OdePairs:
    """N pairs: caption id, CFG scale w and noise seed of each, and the teacher's endpoint (uint8 images, B3HW)."""

    caption_ids: torch.Tensor  # (N,) int64
    w: torch.Tensor            # (N,) float32
    seeds: torch.Tensor        # (N,) int64; noise i = seeded_noise([seeds[i]])
    x0: torch.Tensor           # (N, 3, H, W) uint8

    def __len__(self) -> int:
        return len(self.caption_ids)

    def noise(self, idx: torch.Tensor) -> torch.Tensor:
        """The unit Gaussian noise of pairs ``idx`` (the teacher's x at tau = 1 and the student's x_T / sigma_d)."""
        return seeded_noise([int(s) for s in self.seeds[idx]], tuple(self.x0.shape[1:]))

    def state(self) -> dict:
        return {"caption_ids": self.caption_ids, "w": self.w, "seeds": self.seeds, "x0": self.x0}


def draw_pairs(train_caption_ids: torch.Tensor, n: int, cfg_scales, seed: int) -> tuple[torch.Tensor, ...]:
    """(caption ids, w, noise seeds) of ``n`` pairs: captions drawn from the training set's (with repeats, so the
    prompt mix is the training mix), w uniform over ``cfg_scales``, noise seeds
    ``PAIR_SEED_BASE + (seed * 2**20 + i) mod 2**31``."""
    g = torch.Generator().manual_seed(seed)
    ids = train_caption_ids[torch.randint(len(train_caption_ids), (n,), generator=g)]
    scales = torch.tensor([float(s) for s in cfg_scales], dtype=torch.float32)
    w = scales[torch.randint(len(scales), (n,), generator=g)]
    seeds = PAIR_SEED_BASE + (seed * 2**20 + torch.arange(n, dtype=torch.int64)) % 2**31
    return ids, w, seeds


@torch.no_grad()
def make_ode_pairs(velocity, lookup, null_text, null_mask, caption_ids: torch.Tensor, w: torch.Tensor,
                   seeds: torch.Tensor, resolution: int, steps: int, batch_size: int = 256,
                   progress: bool = True, x0: torch.Tensor | None = None, start: int = 0,
                   on_batch: Callable[[int, torch.Tensor], None] | None = None) -> OdePairs:
    """Integrate the teacher's flow ODE (``steps`` Euler steps, CFG w per pair) from each pair's seeded noise;
    ``lookup(ids) -> (text, mask)``. Endpoints are stored as the uint8 images the teacher would output.

    Resuming: ``x0`` with its first ``start`` endpoints made (``start`` a multiple of ``batch_size``, so the batches
    are the same as in one go) continues from there; ``on_batch(done, x0)`` is called after every batch."""
    from sprint_bench.data.datamodule import to_uint8

    n = len(caption_ids)
    if start % batch_size or not 0 <= start <= n or (start and x0 is None):
        raise ValueError(f"resume at {start} of {n} needs x0 and a multiple of batch_size {batch_size}")
    if x0 is None:
        x0 = torch.empty((n, 3, resolution, resolution), dtype=torch.uint8)
    for lo in tqdm(range(start, n, batch_size), desc=f"teacher ODE pairs ({steps} Euler steps)",
                   disable=not progress, unit="batch", initial=start // batch_size, total=-(-n // batch_size)):
        sl = slice(lo, min(n, lo + batch_size))
        noise = seeded_noise([int(s) for s in seeds[sl]], (3, resolution, resolution))
        text, mask = lookup(caption_ids[sl])
        for scale in torch.unique(w[sl]).tolist():
            m = w[sl] == scale
            out = euler_sample(velocity, noise[m], text[m], mask[m], null_text, null_mask, steps, float(scale))
            x0[sl][m] = torch.from_numpy(to_uint8(out)).permute(0, 3, 1, 2)
        if on_batch is not None:
            on_batch(sl.stop, x0)
    return OdePairs(caption_ids.clone(), w.clone(), seeds.clone(), x0)
