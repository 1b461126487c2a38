"""The cached teacher ODE-pair bank of a distillation config (``distill.ode_weight > 0``): made once per teacher,
world, caption set and pair settings under ``<output_dir>/cache/ode-pairs/``, written atomically, reused after."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch

from sprint_bench.atomic import atomic_write
from sprint_bench.data.datamodule import world_key
from sprint_bench.samplers.ode_pairs import PAIR_SEED_BASE, OdePairs, draw_pairs, make_ode_pairs

log = logging.getLogger(__name__)


def pairs_key(cfg, teacher_id: str) -> str:
    """Hash of everything the bank depends on: teacher, training set, text length, pair count, steps, w, seed and
    the noise-seed base (banks drawn before the base existed used the evaluation's seeds and are never reused)."""
    d = cfg.distill
    blob = json.dumps({"teacher": teacher_id, "data": world_key(cfg.world, cfg.data.train_size, cfg.seed),
                       "max_length": cfg.text.max_length, "n": d.ode_pairs, "steps": d.ode_steps,
                       "cfg_scales": [float(s) for s in d.cfg_scales], "seed": cfg.seed,
                       "seed_base": PAIR_SEED_BASE}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


SAVE_EVERY_BATCHES = 8  # a bank in the making is saved this often, so a killed run resumes it


def load_or_make_ode_pairs(cfg, velocity, teacher_id: str, dm, progress: bool = True,
                           batch_size: int = 256) -> OdePairs:
    """The bank for ``cfg`` (its DataModule ``dm`` set up): loaded from the cache, else integrated with the teacher
    ``velocity`` (a FlowBackbone) and saved. While it is made, ``<key>.partial.pt`` holds the endpoints so far
    (every ``SAVE_EVERY_BATCHES`` batches): a killed run continues from there, with the same batches."""
    d = cfg.distill
    path = Path(cfg.output_dir) / "cache" / "ode-pairs" / f"{pairs_key(cfg, teacher_id)}.pt"
    if path.is_file():
        log.info("teacher ODE pairs: %s", path)
        return OdePairs(**torch.load(path, weights_only=True))
    ids, w, seeds = draw_pairs(dm.caption_ids, d.ode_pairs, d.cfg_scales, cfg.seed)
    partial = path.with_name(f"{path.stem}.partial.pt")
    x0, start = None, 0
    if partial.is_file():
        state = torch.load(partial, weights_only=True)
        if state["batch_size"] == batch_size and torch.equal(state["seeds"], seeds):
            x0, start = state["x0"], int(state["done"])
            log.info("teacher ODE pairs: resuming %s at %d of %d pairs", partial, start, len(seeds))

    def save(done: int, x0: torch.Tensor) -> None:
        if done < len(seeds) and (done // batch_size) % SAVE_EVERY_BATCHES == 0:
            atomic_write(partial, lambda f: torch.save({"done": done, "batch_size": batch_size, "seeds": seeds,
                                                        "x0": x0}, f))

    cap = dm.captions
    null_t, null_m = cap.lookup(torch.tensor([cap.null_id]))
    was_training = velocity.training
    velocity.eval()
    try:
        pairs = make_ode_pairs(velocity, cap.lookup, null_t, null_m, ids, w, seeds, cfg.world.resolution,
                               d.ode_steps, batch_size, progress, x0, start, save)
    finally:
        velocity.train(was_training)
    atomic_write(path, lambda f: torch.save(pairs.state(), f))
    partial.unlink(missing_ok=True)
    log.info("teacher ODE pairs written: %s (%d pairs, %d Euler steps)", path, len(pairs), d.ode_steps)
    return pairs
