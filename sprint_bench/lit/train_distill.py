"""`sprint-bench distill`: distil the teacher into a 1-4 step student (sCM / LADD / hybrid); resumable (newest
loadable checkpoint, same MLflow run) and exported as a diffusers folder (transformer + SCMScheduler)."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from sprint_bench.config import ConfigError, config_hash, to_dict
from sprint_bench.eval.generators import export_kind, resolve_checkpoint
from sprint_bench.lit.distill import CKPT_CONFIG_HASH, DistillModule, build_student
from sprint_bench.lit.fit import finished_export, fit_resumable, mark_finished, seeded_data
from sprint_bench.lit.ode_pairs import load_or_make_ode_pairs
from sprint_bench.lit.train_teacher import grid_condition, grid_prompt_ids, run_dir
from sprint_bench.models.export import export_student, load_student
from sprint_bench.models.release import load_teacher
from sprint_bench.models.sana import FlowBackbone
from sprint_bench.samplers.scm import PAPER_SCHEDULES

log = logging.getLogger(__name__)
MUST_MATCH = ("world", "text", "model")


CONTROL_MUST_MATCH = ("num_blocks", "thickness", "conditioning_scale")


def check_same_setup(cfg, t_cfg, path: Path, control: bool = False, what: str = "teacher") -> None:
    """ConfigError naming the keys unless ``cfg`` and the teacher's (or ``what``'s) ``t_cfg`` agree on world, text
    and model (and the ControlNet's shape and condition when ``control``)."""
    mine, theirs = to_dict(cfg), to_dict(t_cfg)
    keys = [(s, k) for s in MUST_MATCH for k in mine[s]] + [("control", k) for k in CONTROL_MUST_MATCH if control]
    diff = [f"{s}.{k}" for s, k in keys if mine[s][k] != theirs[s].get(k)]
    if diff:
        raise ConfigError(f"the {what} at {path} was trained with different settings for {diff}; this experiment "
                          f"must use the {what}'s {', '.join(MUST_MATCH)}{' and control' if control else ''}",
                          key=diff[0])


def load_matching_teacher(cfg):
    """(path, TrigFlow-ready teacher transformer, its ControlNet or None, metadata) named by ``distill.teacher``;
    its world, text and model sections (and, for a ControlNet, the control section) must equal the experiment's
    and its kind must match ``control.enabled`` (checked before any training, ConfigError naming the keys)."""
    cfg.validate_distill()
    try:
        path = resolve_checkpoint(cfg.distill.teacher)
    except FileNotFoundError as e:
        raise ConfigError(str(e), key="distill.teacher") from None
    kind = export_kind(path)
    want = "controlnet_teacher" if cfg.control.enabled else "flow_matching_teacher"
    if kind != want:
        raise ConfigError(f"distill.teacher {path} is a {kind!r} but control.enabled={cfg.control.enabled} needs a "
                          f"{want!r}", key="distill.teacher")
    if cfg.control.enabled:
        from sprint_bench.models.control_export import load_controlnet_teacher

        t_cfg, backbone, meta = load_controlnet_teacher(path)
        check_same_setup(cfg, t_cfg, path, control=True)
        return path, backbone.transformer, backbone.controlnet, meta
    t_cfg, backbone, meta = load_teacher(path)
    check_same_setup(cfg, t_cfg, path)
    return path, backbone.transformer, None, meta


def strategy_for(cfg):
    """The Lightning strategy from config; DDP finds unused parameters (each phase updates only one network)."""
    if cfg.train.strategy in ("ddp", "ddp_spawn"):
        from lightning.pytorch.strategies import DDPStrategy

        backend = "gloo" if cfg.train.accelerator == "cpu" else None
        return DDPStrategy(find_unused_parameters=True, process_group_backend=backend,
                           start_method="spawn" if cfg.train.strategy == "ddp_spawn" else "popen")
    return cfg.train.strategy


def load_student_init(cfg, teacher_path: Path, teacher_meta: dict):
    """The transformer of the exported student named by ``distill.student_init`` (None when unset). ConfigError
    unless it is a complete student export distilled from the same teacher with the experiment's world, text, model
    and guidance embedding. The same teacher: the same config hash and step (the export's ``teacher_id``, so a
    student stays usable in another checkout or after a copy); exports older than that field compare the path."""
    path = cfg.distill.student_init
    if path is None:
        return None
    try:
        s_cfg, model, meta = load_student(path)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"distill.student_init: {e}", key="distill.student_init") from None
    check_same_setup(cfg, s_cfg, Path(path), what="student")
    if meta["guidance_embeds"] != cfg.distill.guidance_embed:
        raise ConfigError(f"the student at {path} has guidance_embeds={meta['guidance_embeds']} but "
                          f"distill.guidance_embed={cfg.distill.guidance_embed}", key="distill.guidance_embed")
    same = (meta["teacher_id"] == teacher_id(teacher_meta) if "teacher_id" in meta
            else Path(meta.get("teacher", "")).resolve() == Path(teacher_path).resolve())
    if not same:
        raise ConfigError(f"the student at {path} was distilled from {meta.get('teacher')!r} "
                          f"({meta.get('teacher_id', 'no teacher_id')}), not from this experiment's teacher "
                          f"{str(teacher_path)!r} ({teacher_id(teacher_meta)})", key="distill.student_init")
    return model.transformer


def teacher_id(meta: dict) -> str:
    return f"{meta['config_hash']}-step{meta['global_step']}"


def ode_pairs_for(cfg, teacher, teacher_meta: dict, dm):
    """The teacher ODE-pair bank of ``cfg`` (made or loaded from the cache) when ``distill.ode_weight > 0``, else
    None."""
    if cfg.distill.ode_weight <= 0:
        return None
    return load_or_make_ode_pairs(cfg, FlowBackbone(teacher), teacher_id(teacher_meta), dm)


def build_distill_module(cfg, teacher_path, teacher, teacher_controlnet, teacher_meta):
    """(DataModule, DistillModule) of ``cfg`` from :func:`load_matching_teacher`'s result: the ``student_init``
    export is checked first (cheap), then the data and the ODE-pair bank (may take minutes) are made."""
    init = load_student_init(cfg, teacher_path, teacher_meta)
    dm = seeded_data(cfg)
    return dm, DistillModule(cfg, dm.captions, teacher, teacher_controlnet,
                             ode_pairs_for(cfg, teacher, teacher_meta, dm), init)


def train_distill(cfg, extra_callbacks=()) -> Path:
    """Train (or resume) the student and export it to ``run_dir(cfg)/export``; returns the export folder."""
    torch.set_num_threads(cfg.train.threads)
    teacher_path, teacher, teacher_controlnet, teacher_meta = load_matching_teacher(cfg)
    out = run_dir(cfg)
    export = out / "export"
    if finished_export(out, "student", teacher_id(teacher_meta)):
        log.info("student already trained: %s", export)
        return export
    dm, module = build_distill_module(cfg, teacher_path, teacher, teacher_controlnet, teacher_meta)
    if teacher_controlnet is not None:
        module.grid_cond = grid_condition(cfg, dm)
    tags = {"kind": "student", "method": cfg.distill.loss, "config_hash": config_hash(cfg),
            "config_file": cfg.source, "teacher": teacher_id(teacher_meta)}
    trainer, logger = fit_resumable(cfg, module, dm, out, tags, grid_prompt_ids(cfg, dm), 1, strategy_for(cfg),
                                    extra_callbacks)
    if trainer.global_rank == 0:
        _export(module.sampling_model(), cfg, export, trainer.global_step, teacher_path, teacher_meta,
                skipped_steps=int(module.skipped), k=int(module.k))
        mark_finished(out, logger, "student", trainer.global_step)
    return export


def _export(model, cfg, out: Path, global_step: int, teacher_path, teacher_meta: dict, **extra) -> Path:
    """A student export with the metadata every student carries (teacher path and id, method) and ``extra``."""
    meta = {"teacher": str(teacher_path), "teacher_id": teacher_id(teacher_meta), "method": cfg.distill.loss}
    return export_student(model, cfg, out, global_step, PAPER_SCHEDULES,
                          cfg.sample.cfg_scale if cfg.distill.guidance_embed else 1.0, extra_meta={**meta, **extra})


def export_checkpoint(cfg, checkpoint: str | Path, out: str | Path | None = None) -> Path:
    """Export the student of one training checkpoint of ``cfg``'s distillation run (its EMA when the config keeps
    one, as the end-of-training export does), to evaluate a run part-way (``sprint-bench export-checkpoint``).
    Default ``out``: ``<run folder>/snapshots/step<N>``. ValueError, before anything is written, when the
    checkpoint was saved by another config (checkpoints record their config hash) or holds no student of this
    config's shapes."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"no checkpoint file at {checkpoint}")
    teacher_path, teacher, teacher_control, teacher_meta = load_matching_teacher(cfg)
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    saved_by, mine = ckpt.get(CKPT_CONFIG_HASH), config_hash(cfg)
    if saved_by is not None and saved_by != mine:
        raise ValueError(f"{checkpoint} was saved by the config with hash {saved_by}, not by this one "
                         f"({mine}): give the run's own config and overrides")
    if saved_by is None:
        log.warning("%s records no config hash (saved before checkpoints did); trusting that it is %s's",
                    checkpoint, cfg.name)
    model = build_student(cfg, teacher, teacher_control)
    state = ckpt.get("state_dict", {})
    prefix = "ema." if cfg.train.ema_decay > 0 else "student."
    try:
        model.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    except RuntimeError as e:
        raise ValueError(f"{checkpoint} holds no {prefix[:-1]} weights of this config's student "
                         f"({str(e).splitlines()[0]})") from None
    step = int(ckpt["global_step"])
    out = Path(out) if out is not None else run_dir(cfg) / "snapshots" / f"step{step:07d}"
    return _export(model, cfg, out, step, teacher_path, teacher_meta, skipped_steps=int(state["skipped"]),
                   k=int(state["k"]), checkpoint=str(checkpoint))
