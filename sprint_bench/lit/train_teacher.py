"""`sprint-bench train-teacher`: train the flow-matching teacher; resumable (last checkpoint + same MLflow run)."""
from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch

from sprint_bench.config import config_hash
from sprint_bench.data.datamodule import ShapesDataModule
from sprint_bench.data.shapes.prompts import geneval_shapes_prompts
from sprint_bench.lit.fit import fit_resumable, resume_checkpoint  # noqa: F401 - resume_checkpoint re-exported
from sprint_bench.lit.teacher import TeacherModule
from sprint_bench.models.release import export_teacher

log = logging.getLogger(__name__)


def run_dir(cfg) -> Path:
    """One folder per (experiment name, config hash): re-running the same config resumes it."""
    return Path(cfg.output_dir).resolve() / f"{cfg.name}-{config_hash(cfg)}"


def grid_prompt_ids(cfg, dm: ShapesDataModule, n: int = 16) -> torch.Tensor:
    """Training captions for the periodic grid: a few of each GenEval family, in training's caption set."""
    seen, ids = set(), []
    for entry in geneval_shapes_prompts(cfg.world):
        p = entry["prompt"]
        if p in dm.captions.index and p not in seen and len(ids) < n:
            seen.add(p)
            ids.append(dm.captions.index[p])
    return torch.tensor(ids, dtype=torch.long)


def train_teacher(cfg) -> Path:
    """Train (or resume) and export the teacher to ``run_dir(cfg)/export``; returns the export folder."""
    torch.set_num_threads(cfg.train.threads)
    out = run_dir(cfg)
    export = out / "export"
    if (out / "DONE").exists() and (export / "sprint_bench.json").exists():
        log.info("teacher already trained: %s", export)
        return export
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = ShapesDataModule(cfg)
    dm.setup("fit")
    module = TeacherModule(cfg, dm.captions)
    if cfg.train.compile:
        module.model.compile()
    tags = {"kind": "teacher", "config_hash": config_hash(cfg), "config_file": cfg.source}
    trainer, logger = fit_resumable(cfg, module, dm, out, tags, grid_prompt_ids(cfg, dm), cfg.sample.steps)
    export_teacher(module.sampling_model(), cfg, export, trainer.global_step)
    logger.experiment.log_artifacts(logger.run_id, str(export), "teacher")
    (out / "DONE").write_text(f"{trainer.global_step}\n")
    return export
