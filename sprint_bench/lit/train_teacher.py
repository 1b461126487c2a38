"""`sprint-bench train-teacher`: train the flow-matching teacher; resumable (last checkpoint + same MLflow run)."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from sprint_bench.config import ConfigError, config_hash, run_name
from sprint_bench.data.datamodule import ShapesDataModule
from sprint_bench.data.shapes.prompts import geneval_shapes_prompts
from sprint_bench.lit.fit import resume_checkpoint  # noqa: F401 - re-exported
from sprint_bench.lit.fit import finished_export, fit_resumable, mark_finished, seeded_data
from sprint_bench.lit.teacher import TeacherModule
from sprint_bench.models.release import export_teacher

log = logging.getLogger(__name__)


def run_dir(cfg) -> Path:
    """One folder per (experiment name, config hash): re-running the same config resumes it."""
    return Path(cfg.output_dir).resolve() / run_name(cfg)


def grid_entries(cfg, dm: ShapesDataModule, n: int = 16) -> list[dict]:
    """GenEval-Shapes entries for the periodic grid: the first ``n`` distinct prompts in training's caption set."""
    seen, out = set(), []
    for entry in geneval_shapes_prompts(cfg.world):
        p = entry["prompt"]
        if p in dm.captions.index and p not in seen and len(out) < n:
            seen.add(p)
            out.append(entry)
    return out


def grid_prompt_ids(cfg, dm: ShapesDataModule, n: int = 16) -> torch.Tensor:
    """Caption ids of :func:`grid_entries`."""
    return torch.tensor([dm.captions.index[e["prompt"]] for e in grid_entries(cfg, dm, n)], dtype=torch.long)


def grid_condition(cfg, dm: ShapesDataModule, n: int = 16) -> torch.Tensor:
    """ControlNet runs: the edge condition of each grid prompt (the evaluation's condition of image seed i)."""
    from sprint_bench.data.shapes.control import condition_tensor

    entries = grid_entries(cfg, dm, n)
    return condition_tensor(entries, list(range(len(entries))), cfg.world, cfg.control.thickness)


def train_teacher(cfg) -> Path:
    """Train (or resume) and export the teacher to ``run_dir(cfg)/export``; returns the export folder."""
    if cfg.control.enabled:
        raise ConfigError("control.enabled is set: train a ControlNet teacher with `sprint-bench train-controlnet` "
                          "(`make controlnet-teacher`)", key="control.enabled")
    torch.set_num_threads(cfg.train.threads)
    out = run_dir(cfg)
    export = out / "export"
    if finished_export(out, "teacher"):
        log.info("teacher already trained: %s", export)
        return export
    dm = seeded_data(cfg)
    module = TeacherModule(cfg, dm.captions)
    if cfg.train.compile:
        module.model.compile()
    tags = {"kind": "teacher", "config_hash": config_hash(cfg), "config_file": cfg.source}
    trainer, logger = fit_resumable(cfg, module, dm, out, tags, grid_prompt_ids(cfg, dm), cfg.sample.steps)
    export_teacher(module.sampling_model(), cfg, export, trainer.global_step)
    mark_finished(out, logger, "teacher", trainer.global_step)
    return export
