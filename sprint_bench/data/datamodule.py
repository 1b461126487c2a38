"""Lightning DataModule of the shapes world: pre-rendered images (cached on disk by world hash) + cached caption
embeddings, so the training loop does no rendering and no text encoding."""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from sprint_bench.atomic import atomic_write
from sprint_bench.data.shapes.sampler import sample_world
from sprint_bench.models.text_encoder import CaptionCache

log = logging.getLogger(__name__)


def world_key(world, n: int, seed: int) -> str:
    blob = json.dumps({"world": asdict(world), "n": n, "seed": seed, "version": 1}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_or_render(world, n: int, seed: int, cache_dir: Path | None) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(images (N, 3, H, W) uint8, captions, caption_ids); rendered once and stored as .npz under cache_dir."""
    path = cache_dir / f"shapes-{world_key(world, n, seed)}.npz" if cache_dir else None
    if path is not None and path.exists():
        blob = np.load(path, allow_pickle=False)
        return blob["images"], [str(c) for c in blob["captions"]], blob["caption_ids"]
    sample = sample_world(world, n, seed, progress=True)
    images = np.ascontiguousarray(sample.images.transpose(0, 3, 1, 2))
    if path is not None:
        atomic_write(path, lambda f: np.savez(f, images=images, captions=np.array(sample.captions),
                                              caption_ids=sample.caption_ids))
    return images, sample.captions, sample.caption_ids


def to_model_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return images_uint8.float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float [-1, 1] (B, 3, H, W) -> uint8 (B, H, W, 3)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class StepBatchSampler(Sampler[list[int]]):
    """Endless batches whose content is a function of (seed, global step): batch k is slice k of the epoch
    permutation seeded by (seed, epoch). Iteration starts at ``start_step()``, so a resumed run sees exactly the
    batches it would have seen without the interruption."""

    def __init__(self, n: int, batch_size: int, seed: int, start_step=lambda: 0, rank: int = 0, world_size: int = 1):
        if n < batch_size * world_size:
            raise ValueError(f"dataset of {n} examples is smaller than one global batch ({batch_size}x{world_size})")
        self.n, self.batch_size, self.seed, self.start_step = n, batch_size, seed, start_step
        self.rank, self.world_size = rank, world_size

    def __iter__(self):
        global_batch = self.batch_size * self.world_size
        per_epoch = self.n // global_batch
        step = int(self.start_step())
        perm, perm_epoch = None, -1
        while True:
            epoch, k = divmod(step, per_epoch)
            if epoch != perm_epoch:
                perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100003 + epoch))
                perm_epoch = epoch
            start = k * global_batch + self.rank * self.batch_size
            yield perm[start:start + self.batch_size].tolist()
            step += 1


def batches_seen(trainer) -> int:
    """Batches consumed so far: the module's own step counter ``k`` where it keeps one (distillation counts steps
    skipped by its NaN guard, which the trainer's global step does not), else the global step."""
    k = getattr(trainer.lightning_module, "k", None)
    return int(k) if k is not None else trainer.global_step


def load_or_compute_edges(images: np.ndarray, key: str, thickness: int, cache_dir: Path | None) -> np.ndarray:
    """uint8 {0, 1} edge maps (N, H, W) of uint8 images (N, 3, H, W), the ControlNet condition; computed once (in
    chunks, with a progress bar) and stored under cache_dir beside the images they belong to."""
    from tqdm.auto import tqdm

    from sprint_bench.data.shapes.edges import edge_map

    path = cache_dir / f"edges-{key}-t{thickness}.npy" if cache_dir else None
    if path is not None and path.exists():
        return np.load(path)
    out = np.empty((len(images), *images.shape[2:]), np.uint8)
    for a in tqdm(range(0, len(images), 2000), desc="edge maps", unit="chunk"):
        out[a:a + 2000] = edge_map(images[a:a + 2000].transpose(0, 2, 3, 1), thickness)
    if path is not None:
        atomic_write(path, lambda f: np.save(f, out))
    return out


class ShapesDataModule(L.LightningDataModule):
    """Batches of (uint8 images (B, 3, H, W), caption ids) -- plus uint8 edge maps (B, H, W) when
    ``control.enabled`` (the ControlNet condition); ``captions`` holds the text-embedding cache."""

    def __init__(self, cfg, cache_dir: str | Path | None = None):
        super().__init__()
        self.cfg = cfg
        self.cache_dir = Path(cache_dir) if cache_dir else Path(cfg.output_dir) / "cache"
        self.images: torch.Tensor | None = None
        self.captions: CaptionCache | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.images is not None:
            return
        images, captions, ids = load_or_render(self.cfg.world, self.cfg.data.train_size, self.cfg.seed,
                                               self.cache_dir)
        self.images, self.caption_ids = torch.from_numpy(images), torch.from_numpy(ids)
        self.edges = None
        if self.cfg.control.enabled:
            key = world_key(self.cfg.world, self.cfg.data.train_size, self.cfg.seed)
            self.edges = torch.from_numpy(load_or_compute_edges(images, key, self.cfg.control.thickness,
                                                                self.cache_dir))
        self.captions = CaptionCache.build(captions, self.cfg.text.max_length, self.cache_dir)

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        sampler = StepBatchSampler(
            len(self.images), self.cfg.data.batch_size, self.cfg.seed,
            start_step=(lambda: batches_seen(trainer)) if trainer is not None else (lambda: 0),
            rank=trainer.global_rank if trainer is not None else 0,
            world_size=trainer.world_size if trainer is not None else 1)
        tensors = (self.images, self.caption_ids) + ((self.edges,) if self.edges is not None else ())
        return DataLoader(TensorDataset(*tensors), batch_sampler=sampler,
                          num_workers=self.cfg.data.num_workers)
