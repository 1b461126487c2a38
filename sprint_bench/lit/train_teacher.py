"""`sprint-bench train-teacher`: train the flow-matching teacher; resumable (last checkpoint + same MLflow run)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from sprint_bench.config import config_hash, to_dict
from sprint_bench.data.datamodule import ShapesDataModule
from sprint_bench.data.shapes.prompts import geneval_shapes_prompts
from sprint_bench.lit.callbacks import SampleGrid, StepProgress
from sprint_bench.lit.teacher import TeacherModule
from sprint_bench.models.release import export_teacher
from sprint_bench.tracking.mlflow_store import make_logger

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


def resume_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest checkpoint that loads: a kill during a write can leave ``last.ckpt`` truncated, and then the
    step checkpoint written just before it is used instead."""
    for path in sorted(ckpt_dir.glob("*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            torch.load(path, map_location="cpu", weights_only=False)
            return path
        except Exception:  # noqa: BLE001 - any unreadable file is skipped
            log.warning("skipping unreadable checkpoint %s", path)
    return None


def train_teacher(cfg) -> Path:
    """Train (or resume) and export the teacher to ``run_dir(cfg)/export``; returns the export folder."""
    torch.set_num_threads(cfg.train.threads)
    out = run_dir(cfg)
    export = out / "export"
    if (out / "DONE").exists() and (export / "sprint_bench.json").exists():
        log.info("teacher already trained: %s", export)
        return export
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = ShapesDataModule(cfg)
    dm.setup("fit")
    module = TeacherModule(cfg, dm.captions)
    if cfg.train.compile:
        module.model.compile()

    run_id_file = out / "mlflow_run_id"
    run_id = run_id_file.read_text().strip() if run_id_file.exists() else None
    logger = make_logger(cfg.tracking, run_name=cfg.tracking.run_name or cfg.name, run_id=run_id,
                         tags={"kind": "teacher", "config_hash": config_hash(cfg), "config_file": cfg.source})
    if run_id is None:
        run_id_file.write_text(logger.run_id + "\n")
        logger.log_hyperparams(to_dict(cfg))
        logger.experiment.log_dict(logger.run_id, to_dict(cfg), "config.json")

    ckpt_dir = out / "checkpoints"
    resume = resume_checkpoint(ckpt_dir)
    trainer = L.Trainer(
        max_steps=cfg.train.max_steps, accelerator=cfg.train.accelerator, devices=cfg.train.devices,
        strategy=cfg.train.strategy, precision=cfg.train.precision, logger=logger,
        log_every_n_steps=cfg.train.log_every, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, max_epochs=-1, default_root_dir=str(out),
        use_distributed_sampler=False,  # StepBatchSampler shards by rank itself
        callbacks=[
            ModelCheckpoint(dirpath=ckpt_dir, filename="step{step:07d}", every_n_train_steps=cfg.train.checkpoint_every,
                            save_top_k=1, save_last=True, auto_insert_metric_name=False),
            StepProgress(),
            SampleGrid(grid_prompt_ids(cfg, dm), cfg.train.sample_every, cfg.sample.steps, cfg.sample.cfg_scale,
                       cfg.seed),
        ],
    )
    trainer.fit(module, datamodule=dm, ckpt_path=str(resume) if resume else None)
    if trainer.global_step < cfg.train.max_steps:
        raise RuntimeError(f"training stopped at step {trainer.global_step} < {cfg.train.max_steps}")
    export_teacher(module.sampling_model(), cfg, export, trainer.global_step)
    logger.experiment.log_artifacts(logger.run_id, str(export), "teacher")
    (out / "DONE").write_text(f"{trainer.global_step}\n")
    return export
