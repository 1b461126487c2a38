"""`sprint-bench train-controlnet` (`make controlnet-teacher`): train a ControlNet on top of the frozen teacher with
the flow-matching objective and the edge map of each training image as condition (SANA-Sprint §4.4, App. F.3;
method reference §10); resumable like every trainer (newest checkpoint, same MLflow run); exported self-contained
(base transformer + ControlNet); released to ``releases/controlnet-teacher`` only with ``--release`` (as
`make controlnet-teacher` passes)."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from sprint_bench.config import ConfigError, config_hash
from sprint_bench.eval.generators import export_kind, resolve_checkpoint
from sprint_bench.lit.fit import finished_export, fit_resumable, mark_finished, seeded_data
from sprint_bench.lit.teacher import TeacherModule
from sprint_bench.lit.train_distill import check_same_setup
from sprint_bench.lit.train_teacher import grid_condition, grid_prompt_ids, run_dir
from sprint_bench.models.control_export import export_controlnet_teacher
from sprint_bench.models.controlnet import ControlledFlowBackbone
from sprint_bench.models.release import load_teacher

log = logging.getLogger(__name__)


def load_base(cfg):
    """(path, frozen base transformer, metadata) named by ``control.base``; it must be a flow-matching teacher with
    the experiment's world, text and model (checked before any training)."""
    if not cfg.control.enabled:
        raise ConfigError("a ControlNet experiment needs control.enabled: true", key="control.enabled")
    try:
        path = resolve_checkpoint(cfg.control.base)
    except FileNotFoundError as e:
        raise ConfigError(str(e), key="control.base") from None
    kind = export_kind(path)
    if kind != "flow_matching_teacher":
        raise ConfigError(f"control.base {path} is a {kind!r}, not a flow-matching teacher", key="control.base")
    t_cfg, backbone, meta = load_teacher(path)
    check_same_setup(cfg, t_cfg, path)
    return path, backbone.transformer, meta


def train_controlnet_teacher(cfg) -> Path:
    """Train (or resume) the ControlNet teacher and export it to ``run_dir(cfg)/export``; returns the export."""
    base_path, base, base_meta = load_base(cfg)
    torch.set_num_threads(cfg.train.threads)
    out = run_dir(cfg)
    export = out / "export"
    base_id = f"{base_meta['config_hash']}-step{base_meta['global_step']}"
    if finished_export(out, "controlnet-teacher", base_id):
        log.info("ControlNet teacher already trained: %s", export)
        return export
    dm = seeded_data(cfg)
    model = ControlledFlowBackbone(base.train(), num_blocks=cfg.control.num_blocks,
                                   conditioning_scale=cfg.control.conditioning_scale)
    module = TeacherModule(cfg, dm.captions, model)
    module.grid_cond = grid_condition(cfg, dm)
    tags = {"kind": "controlnet-teacher", "config_hash": config_hash(cfg), "config_file": cfg.source,
            "base": base_id}
    trainer, logger = fit_resumable(cfg, module, dm, out, tags, grid_prompt_ids(cfg, dm), cfg.sample.steps)
    export_controlnet_teacher(module.sampling_model(), cfg, export, trainer.global_step)
    mark_finished(out, logger, "controlnet-teacher", trainer.global_step)
    return export
