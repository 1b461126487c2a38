"""`sprint-bench distill`: distil the teacher into a 1-4 step student (sCM / LADD / hybrid); resumable (newest
loadable checkpoint, same MLflow run) and exported as a diffusers folder (transformer + SCMScheduler)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only

from sprint_bench.config import ConfigError, config_hash, to_dict
from sprint_bench.data.datamodule import ShapesDataModule
from sprint_bench.eval.generators import resolve_checkpoint
from sprint_bench.lit.callbacks import SampleGrid, StepProgress
from sprint_bench.lit.distill import DistillModule
from sprint_bench.lit.train_teacher import grid_prompt_ids, resume_checkpoint, run_dir
from sprint_bench.models.export import export_student
from sprint_bench.models.release import load_teacher
from sprint_bench.samplers.scm import PAPER_SCHEDULES
from sprint_bench.tracking.mlflow_store import make_logger

log = logging.getLogger(__name__)
MUST_MATCH = ("world", "text", "model")


def load_matching_teacher(cfg):
    """The teacher transformer named by ``distill.teacher``; its world, text and model sections must equal the
    experiment's (checked before any training, ConfigError naming the keys)."""
    cfg.validate_distill()
    try:
        path = resolve_checkpoint(cfg.distill.teacher)
    except FileNotFoundError as e:
        raise ConfigError(str(e), key="distill.teacher") from None
    t_cfg, backbone, meta = load_teacher(path)
    mine, theirs = to_dict(cfg), to_dict(t_cfg)
    diff = [f"{s}.{k}" for s in MUST_MATCH for k in mine[s] if mine[s][k] != theirs[s].get(k)]
    if diff:
        raise ConfigError(f"the teacher at {path} was trained with different settings for {diff}; the student must "
                          f"use the teacher's world, text and model", key=diff[0])
    return path, backbone.transformer, meta


def strategy_for(cfg):
    """The Lightning strategy from config; DDP finds unused parameters (each phase updates only one network)."""
    if cfg.train.strategy in ("ddp", "ddp_spawn"):
        from lightning.pytorch.strategies import DDPStrategy

        backend = "gloo" if cfg.train.accelerator == "cpu" else None
        return DDPStrategy(find_unused_parameters=True, process_group_backend=backend,
                           start_method="spawn" if cfg.train.strategy == "ddp_spawn" else "popen")
    return cfg.train.strategy


def train_distill(cfg, extra_callbacks=()) -> Path:
    """Train (or resume) the student and export it to ``run_dir(cfg)/export``; returns the export folder."""
    torch.set_num_threads(cfg.train.threads)
    teacher_path, teacher, teacher_meta = load_matching_teacher(cfg)
    out = run_dir(cfg)
    export = out / "export"
    if (out / "DONE").exists() and (export / "sprint_bench.json").exists():
        log.info("student already trained: %s", export)
        return export
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = ShapesDataModule(cfg)
    dm.setup("fit")
    module = DistillModule(cfg, dm.captions, teacher)

    run_id_file = out / "mlflow_run_id"
    run_id = run_id_file.read_text().strip() if run_id_file.exists() else None
    tags = {"kind": "student", "method": cfg.distill.loss, "config_hash": config_hash(cfg),
            "config_file": cfg.source, "teacher": f"{teacher_meta['config_hash']}-step{teacher_meta['global_step']}"}
    logger = make_logger(cfg.tracking, run_name=cfg.tracking.run_name or cfg.name, run_id=run_id, tags=tags)
    if run_id is None and rank_zero_only.rank == 0:  # other DDP ranks hold a dummy MLflow logger
        run_id_file.write_text(logger.run_id + "\n")
        logger.log_hyperparams(to_dict(cfg))
        logger.experiment.log_dict(logger.run_id, to_dict(cfg), "config.json")

    ckpt_dir = out / "checkpoints"
    resume = resume_checkpoint(ckpt_dir)
    trainer = L.Trainer(
        max_steps=cfg.train.max_steps, accelerator=cfg.train.accelerator, devices=cfg.train.devices,
        strategy=strategy_for(cfg), precision=cfg.train.precision, logger=logger,
        log_every_n_steps=cfg.train.log_every, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, max_epochs=-1, default_root_dir=str(out),
        use_distributed_sampler=False,  # StepBatchSampler shards by rank itself
        callbacks=[
            ModelCheckpoint(dirpath=ckpt_dir, filename="step{step:07d}", every_n_train_steps=cfg.train.checkpoint_every,
                            save_top_k=1, save_last=True, auto_insert_metric_name=False),
            StepProgress(),
            SampleGrid(grid_prompt_ids(cfg, dm), cfg.train.sample_every, 1, cfg.sample.cfg_scale, cfg.seed),
            *extra_callbacks,
        ],
    )
    trainer.fit(module, datamodule=dm, ckpt_path=str(resume) if resume else None)
    if trainer.global_step < cfg.train.max_steps:
        raise RuntimeError(f"training stopped at step {trainer.global_step} < {cfg.train.max_steps}")
    if trainer.global_rank == 0:
        export_student(module.sampling_model(), cfg, export, trainer.global_step, PAPER_SCHEDULES,
                       cfg.sample.cfg_scale if cfg.distill.guidance_embed else 1.0,
                       extra_meta={"teacher": str(teacher_path), "skipped_steps": int(module.skipped),
                                   "k": int(module.k), "method": cfg.distill.loss})
        logger.experiment.log_artifacts(logger.run_id, str(export), "student")
        (out / "DONE").write_text(f"{trainer.global_step}\n")
    return export
