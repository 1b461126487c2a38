"""One resumable Lightning fit for every trainer of the suite: the MLflow run continued through its stored id, the
newest loadable checkpoint resumed, periodic checkpoints, a step progress bar and sample grids."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only

from sprint_bench.config import ConfigError, to_dict
from sprint_bench.lit.callbacks import SampleGrid, StepProgress
from sprint_bench.tracking.mlflow_store import make_logger

log = logging.getLogger(__name__)


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


EXPORT_KINDS = {"teacher": "flow_matching_teacher", "student": "scm_student",
                "controlnet-teacher": "controlnet_teacher"}


def run_facts(out: Path) -> dict:
    """What run folder ``out`` holds: {"kind", "source"} from its run.json (written when training starts), or for
    folders from before run.json the kind of its export; {} for a new folder."""
    if (out / "run.json").exists():
        return json.loads((out / "run.json").read_text())
    meta_file = out / "export" / "sprint_bench.json"
    if meta_file.exists():
        kind = json.loads(meta_file.read_text()).get("kind")
        return {"kind": {v: k for k, v in EXPORT_KINDS.items()}.get(kind, kind)}
    return {}


def finished_export(out: Path, kind: str, source: str | None = None) -> Path | None:
    """``out/export`` when the run in ``out`` finished (DONE marker and a complete export), else None. Raises
    ConfigError when ``out`` holds another kind of run (a teacher config given to `distill`, a student config to
    `train-teacher`: the two hash alike) or a run trained from another ``source`` (the teacher a student distils,
    the base of a ControlNet teacher, as ``<config hash>-step<N>``): skipping to it or resuming it would mix them."""
    facts = run_facts(out)
    if facts.get("kind") not in (None, kind):
        raise ConfigError(f"{out} holds a {facts['kind']} run, not a {kind} run: this config is for another verb "
                          f"(train-teacher, train-controlnet or distill)")
    if source is not None and facts.get("source") not in (None, source):
        raise ConfigError(f"{out} was trained from {facts['source']}, but the config's teacher is now {source}: "
                          f"move {out} away (its MLflow run stays) to train from the new one")
    export = out / "export"
    return export if (out / "DONE").exists() and (export / "sprint_bench.json").exists() else None


def mark_finished(out: Path, logger, artifact_path: str, global_step: int) -> None:
    """Log ``out/export`` to the run's MLflow artifacts under ``artifact_path`` and write the DONE marker that
    :func:`finished_export` reads."""
    logger.experiment.log_artifacts(logger.run_id, str(out / "export"), artifact_path)
    (out / "DONE").write_text(f"{global_step}\n")


def seeded_data(cfg):
    """Seed everything from ``cfg.seed`` and return the set-up shapes DataModule of ``cfg``."""
    from sprint_bench.data.datamodule import ShapesDataModule

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = ShapesDataModule(cfg)
    dm.setup("fit")
    return dm


def fit_resumable(cfg, module: L.LightningModule, dm, out: Path, tags: dict, grid_ids: torch.Tensor,
                  grid_steps: int, strategy=None, extra_callbacks=()):
    """Fit ``module`` to ``cfg.train.max_steps`` in ``out`` (config.json, mlflow_run_id, checkpoints/); returns
    (trainer, logger). Raises if training stopped early."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
    if not (out / "run.json").exists():  # what finished_export checks before a later skip or resume
        facts = {"kind": tags["kind"], "source": tags.get("teacher") or tags.get("base")}
        (out / "run.json").write_text(json.dumps(facts) + "\n")
    run_id_file = out / "mlflow_run_id"
    run_id = run_id_file.read_text().strip() if run_id_file.exists() else None
    logger = make_logger(cfg.tracking, run_name=cfg.tracking.run_name or cfg.name, run_id=run_id, tags=tags)
    if run_id is None and rank_zero_only.rank == 0:  # other DDP ranks hold a dummy MLflow logger
        run_id_file.write_text(logger.run_id + "\n")
        logger.log_hyperparams(to_dict(cfg))
        logger.experiment.log_dict(logger.run_id, to_dict(cfg), "config.json")
    ckpt_dir = out / "checkpoints"
    resume = resume_checkpoint(ckpt_dir)
    trainer = L.Trainer(
        max_steps=cfg.train.max_steps, accelerator=cfg.train.accelerator, devices=cfg.train.devices,
        strategy=strategy or cfg.train.strategy, precision=cfg.train.precision, logger=logger,
        log_every_n_steps=cfg.train.log_every, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, max_epochs=-1, default_root_dir=str(out),
        use_distributed_sampler=False,  # StepBatchSampler shards by rank itself
        callbacks=[
            ModelCheckpoint(dirpath=ckpt_dir, filename="step{step:07d}", every_n_train_steps=cfg.train.checkpoint_every,
                            save_top_k=1, save_last=True, auto_insert_metric_name=False),
            StepProgress(),
            SampleGrid(grid_ids, cfg.train.sample_every, grid_steps, cfg.sample.cfg_scale, cfg.seed),
            *extra_callbacks,
        ],
    )
    trainer.fit(module, datamodule=dm, ckpt_path=str(resume) if resume else None)
    if trainer.global_step < cfg.train.max_steps:
        raise RuntimeError(f"training stopped at step {trainer.global_step} < {cfg.train.max_steps}")
    return trainer, logger
