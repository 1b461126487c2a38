"""Typed experiment schema: nested stdlib dataclasses.

Every field carries a type annotation, a default and optional constraint
metadata, read by :mod:`sprint_bench.config.load` when it validates a merged
YAML tree:

``min`` / ``max``
    inclusive bounds; ``gt`` / ``lt``: exclusive bounds.
``choices``
    the allowed values.
``length`` / ``min_items`` / ``max_items``
    size of a list / tuple / dict.
``help``
    one-line description.
``internal``
    set by the loader, not settable from YAML or the command line.

For list, tuple and dict fields the value constraints (``min``, ``max``,
``gt``, ``lt``, ``choices``) apply to each element (dict: each value).

Constraints that involve several fields live in the ``validate()`` methods;
they raise :class:`ConfigError` with ``keys`` naming the dotted keys involved
(the loader adds the files that set them).
"""
from __future__ import annotations

import copy
import difflib
import math
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from sprint_bench.data.shapes.vocab import FAMILIES, SHAPES
from sprint_bench.data.shapes.vocab import GENEVAL_COLOR_NAMES as GENEVAL_COLORS

__all__ = [
    "ConfigError",
    "WorldConfig",
    "DataConfig",
    "TextConfig",
    "ModelConfig",
    "TrainConfig",
    "SampleConfig",
    "TrackingConfig",
    "DistillConfig",
    "ExperimentConfig",
    "SHAPES",
    "GENEVAL_COLORS",
    "FAMILIES",
]


class ConfigError(ValueError):
    """An invalid experiment configuration.

    Attributes: ``key`` (dotted key at fault, if one), ``origin`` (file path or
    ``"<command line>"`` that set it, if known), ``keys`` (all dotted keys
    involved, for cross-field errors).
    """

    def __init__(self, message: str, *, key: str | None = None,
                 origin: str | None = None, keys: tuple[str, ...] = ()):
        super().__init__(message)
        self.message = message
        self.key = key
        self.origin = origin
        self.keys = tuple(keys) if keys else ((key,) if key else ())


def _field(default: Any, help: str = "", **constraints: Any) -> Any:
    """A dataclass field with constraint metadata; mutable defaults are copied."""
    meta = {"help": help, **constraints}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


def _section(cls: type) -> Any:
    return field(default_factory=cls, metadata={"help": cls.__doc__ or ""})


def _cross_error(message: str, *keys: str) -> ConfigError:
    return ConfigError(message, keys=keys)


@dataclass
class WorldConfig:
    """The synthetic shapes world (GenEval-style prompts over coloured shapes)."""

    resolution: int = _field(32, "image side in pixels", choices=[32, 64])
    shapes: list[str] = _field(list(SHAPES), "shape vocabulary", choices=list(SHAPES), min_items=1)
    colors: list[str] = _field(
        ["red", "yellow", "green", "blue", "purple", "white"],
        "colour vocabulary (subset of the 10 GenEval colours)",
        choices=list(GENEVAL_COLORS), min_items=2,
    )
    max_count: int = _field(3, "most objects of one kind in an image", min=1, max=4)
    size_range: tuple[float, float] = _field(
        (0.28, 0.36), "object size range as fractions of the resolution (lo <= hi)", gt=0.0, max=0.6
    )
    background: list[int] = _field([102, 102, 102], "background RGB", min=0, max=255, length=3)
    min_gap: float = _field(1.5, "minimum gap between objects, in pixels at resolution 32 (>= 1 so objects stay separable)", min=1.0)
    holdout_color_attr_fraction: float = _field(
        0.25, "fraction of colour-attribute combinations held out of training", min=0.0, max=0.9
    )
    holdout_position_fraction: float = _field(
        0.0, "fraction of position combinations held out of training", min=0.0, max=0.9
    )
    family_weights: dict[str, float] = _field(
        {"single_object": 1.0, "two_object": 1.5, "counting": 1.5,
         "colors": 1.0, "position": 2.0, "color_attr": 2.0},
        "sampling weight of each prompt family (keys: exactly the six families)", min=0.0,
    )

    def validate(self) -> None:
        lo, hi = self.size_range
        if lo > hi:
            raise _cross_error(
                f"world.size_range: first value {lo} must be <= second value {hi}", "world.size_range"
            )
        for name in ("shapes", "colors"):
            values = getattr(self, name)
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise _cross_error(f"world.{name}: duplicate entries {dupes}", f"world.{name}")
        unknown = [c for c in self.colors if c not in GENEVAL_COLORS]
        if unknown:
            raise _cross_error(
                f"world.colors: unknown colours {unknown}; known: {list(GENEVAL_COLORS)}", "world.colors"
            )
        unknown = [s for s in self.shapes if s not in SHAPES]
        if unknown:
            raise _cross_error(
                f"world.shapes: unknown shapes {unknown}; known: {list(SHAPES)}", "world.shapes"
            )
        keys = set(self.family_weights)
        extra = sorted(keys - set(FAMILIES))
        missing = [f for f in FAMILIES if f not in keys]
        if extra or missing:
            parts = []
            for k in extra:
                hint = difflib.get_close_matches(k, FAMILIES, n=1)
                parts.append(f"unknown family '{k}'" + (f" (did you mean '{hint[0]}'?)" if hint else ""))
            if missing:
                parts.append(f"missing families {missing}")
            raise _cross_error(
                f"world.family_weights: {'; '.join(parts)}; keys must be exactly {list(FAMILIES)}",
                "world.family_weights",
            )
        bad = {k: v for k, v in self.family_weights.items() if not (math.isfinite(v) and v >= 0)}
        if bad:
            raise _cross_error(f"world.family_weights: weights must be finite and >= 0, got {bad}",
                               "world.family_weights")
        if sum(self.family_weights.values()) <= 0:
            raise _cross_error("world.family_weights: weights must sum to > 0", "world.family_weights")


@dataclass
class DataConfig:
    """Dataset sizes and loading."""

    train_size: int = _field(100_000, "number of training examples", min=1)
    val_size: int = _field(1024, "number of validation examples", min=1)
    num_workers: int = _field(0, "DataLoader worker processes", min=0)
    batch_size: int = _field(32, "training batch size (per device)", min=1)


@dataclass
class TextConfig:
    """Frozen text encoder."""

    encoder: str = _field("all-MiniLM-L6-v2", "sentence-transformer used as text encoder",
                          choices=["all-MiniLM-L6-v2"])
    max_length: int = _field(16, "token length of encoded captions", min=4, max=128)


@dataclass
class ModelConfig:
    """Diffusion transformer (flow-matching teacher) architecture."""

    patch_size: int = _field(4, "patch side in pixels", choices=[1, 2, 4, 8])
    width: int = _field(128, "hidden size", min=8)
    depth: int = _field(6, "number of transformer blocks", min=1)
    heads: int = _field(4, "self-attention heads", min=1)
    cross_heads: int = _field(4, "cross-attention heads", min=1)
    mlp_ratio: float = _field(2.5, "MLP hidden size / width", gt=0.0)
    qk_norm: bool = _field(True, "normalise queries and keys")
    pos_embed: str = _field("sincos", "positional embedding", choices=["sincos", "none"])

    def validate(self) -> None:
        if self.width % self.heads:
            raise _cross_error(
                f"model.width={self.width} must be divisible by model.heads={self.heads}",
                "model.width", "model.heads",
            )
        if self.width % self.cross_heads:
            raise _cross_error(
                f"model.width={self.width} must be divisible by model.cross_heads={self.cross_heads}",
                "model.width", "model.cross_heads",
            )


@dataclass
class TrainConfig:
    """Optimisation and the Lightning trainer."""

    max_steps: int = _field(12_000, "optimiser steps", min=1)
    lr: float = _field(1e-3, "peak learning rate", gt=0.0, max=1.0)
    min_lr_ratio: float = _field(0.1, "final lr / peak lr for the cosine schedule", min=0.0, max=1.0)
    warmup_steps: int = _field(200, "linear warm-up steps", min=0)
    lr_schedule: str = _field("cosine", "lr schedule after warm-up", choices=["cosine", "constant"])
    weight_decay: float = _field(0.0, "AdamW weight decay", min=0.0)
    betas: tuple[float, float] = _field((0.9, 0.99), "AdamW betas", min=0.0, lt=1.0)
    grad_clip: float = _field(1.0, "gradient-norm clip (0 disables)", min=0.0)
    caption_dropout: float = _field(0.1, "probability of dropping the caption (for CFG)", min=0.0, max=1.0)
    time_sampling: str = _field("logit_normal", "training timestep distribution",
                                choices=["logit_normal", "uniform"])
    logit_mean: float = _field(0.0, "mean of the logit-normal timestep distribution")
    logit_std: float = _field(1.0, "std of the logit-normal timestep distribution", gt=0.0)
    ema_decay: float = _field(0.999, "EMA decay of the weights (0 disables)", min=0.0, lt=1.0)
    compile: bool = _field(False, "torch.compile the model")
    precision: str = _field("32-true", "Lightning precision", choices=["32-true", "bf16-mixed"])
    accelerator: str = _field("cpu", "Lightning accelerator", choices=["cpu", "gpu", "auto"])
    devices: int = _field(1, "number of devices", min=1)
    strategy: str = _field("auto", "Lightning strategy", choices=["auto", "ddp", "fsdp", "ddp_spawn"])
    checkpoint_every: int = _field(500, "steps between checkpoints", min=1)
    sample_every: int = _field(2000, "steps between sample grids", min=1)
    log_every: int = _field(50, "steps between metric logs", min=1)
    threads: int = _field(2, "torch CPU threads", min=1)


@dataclass
class SampleConfig:
    """Sampling (evaluation) settings."""

    steps: int = _field(20, "sampler steps", min=1)
    cfg_scale: float = _field(3.0, "classifier-free guidance scale", min=0.0)
    images_per_prompt: int = _field(4, "images generated per evaluation prompt", min=1)
    batch_size: int = _field(64, "sampling batch size", min=1)


TRACKING_SCHEMES = {"sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks"}


@dataclass
class TrackingConfig:
    """Experiment tracking (does not affect results; excluded from the config hash)."""

    tracking_uri: Optional[str] = _field(None, "MLflow tracking URI (null: the project's sqlite mlflow.db)")
    experiment: str = _field("sprint_bench", "MLflow experiment name")
    run_name: Optional[str] = _field(None, "MLflow run name (null: chosen automatically)")

    def validate(self) -> None:
        uri = self.tracking_uri
        if uri is not None and uri.split(":", 1)[0] not in TRACKING_SCHEMES:
            raise ConfigError(f"invalid value for 'tracking.tracking_uri': {uri!r} is not an MLflow store URI; use "
                              f"sqlite:///<path>.db (MLflow's file store is deprecated), http(s)://<server> or "
                              f"another of {', '.join(sorted(TRACKING_SCHEMES))}", key="tracking.tracking_uri")


@dataclass
class DistillConfig:
    """SANA-Sprint distillation of the teacher into a 1-4 step student (sCM, LADD or both). The generator uses
    train.lr / warmup_steps / lr_schedule / betas / grad_clip; train.max_steps counts generator + discriminator
    steps (the global step k)."""

    teacher: str = _field("teacher", "teacher to distil: 'teacher' (the released one) or an exported folder")
    loss: str = _field("hybrid", "objective: scm, ladd or hybrid (= scm_weight * L_sCM + adv_weight * L_adv); ode: "
                       "the ODE-pair regression alone (ours, a baseline; needs ode_weight > 0)",
                       choices=["scm", "ladd", "hybrid", "ode"])
    scm_weight: float = _field(1.0, "lambda_sCM", min=0.0)
    adv_weight: float = _field(0.5, "lambda_adv", min=0.0)
    p_mean: float = _field(0.2, "generator time proposal: mean of log(sigma_d tan t)")
    p_std: float = _field(1.6, "generator time proposal: std of log(sigma_d tan t)", gt=0.0)
    cfg_scales: list[float] = _field([2.5, 3.0, 3.5], "teacher CFG scales w, one drawn per sample", min=1.0,
                                     min_items=1)
    guidance_embed: bool = _field(True, "student guidance (CFG) embedding, fed 0.1 w")
    guidance_zero_init: bool = _field(True, "zero the guidance embedder's last Linear (student = teacher at step 0)")
    logvar: bool = _field(True, "adaptive-weight (logvar) head")
    tangent: str = _field("jvp", "how J = dF/dt is taken: jvp (torch.func.jvp) or finite_difference",
                          choices=["jvp", "finite_difference"])
    compile: bool = _field(True, "run the teacher's CFG call and feature passes, the student's JVP pass and its "
                           "own calls (backward passes included) through torch.compile (inductor): the same numbers, "
                           "1.2-2.6x faster each on CPU; eager if compilation fails (and for R1's pass)")
    fd_eps: float = _field(1e-3, "step of the central finite difference", gt=0.0)
    tangent_warmup_steps: int = _field(4000, "tangent warmup r = min(1, k / steps), k = global step", min=0)
    tangent_norm_c: float = _field(0.1, "tangent normalisation g / (||g|| + c)", gt=0.0)
    max_time_p: float = _field(0.5, "probability that the adversarial branch uses t = 1.5708", min=0.0, max=1.0)
    d_p_mean: float = _field(-0.6, "discriminator re-noise time: mean of log(sigma_d tan s)")
    d_p_std: float = _field(1.0, "discriminator re-noise time: std of log(sigma_d tan s)", gt=0.0)
    head_blocks: list[int] = _field([1, 3, 5], "teacher blocks tapped by discriminator heads", min=0, min_items=1)
    misaligned_pairs: bool = _field(True, "rolled real (image, caption) pairs count as fakes")
    d_translate: int = _field(0, "discriminator input augmentation: every real and fake image shifted by its own "
                              "random (dy, dx), each uniform in [-n, n] pixels, edges replicated, before re-noising "
                              "(DiffAugment translation; 0 = off, as the paper)", min=0)
    d_norm_stats: str = _field("local", "discriminator batch-norm statistics: local (real and fakes in separate "
                               "calls, groups of 8, as the reference) or shared (ours: one pass of the heads over "
                               "real, fake and misaligned sets in D and G steps alike)", choices=["local", "shared"])
    d_text_proj: bool = _field(False, "conditional discriminator heads: each token's logit plus a projection of the "
                               "pooled caption embedding onto the head's features (ours; projection discriminator, "
                               "Miyato & Koyama 2018; off = unconditional heads, as the reference)")
    d_steps: int = _field(1, "discriminator steps after each generator step (1 = strict alternation G, D, as the "
                          "reference; n: G, D x n); a D step trains the heads and/or the fake denoiser", min=1)
    r1_weight: float = _field(0.0, "R1 penalty weight on real samples (0 disables)", min=0.0)
    ode_weight: float = _field(0.0, "lambda_ODE: one-step regression onto teacher ODE endpoints (ours, not in the "
                               "paper; Luhman & Luhman 2021 knowledge distillation; 0 = off, as the paper)", min=0.0)
    ode_pairs: int = _field(32768, "teacher ODE pairs in the regression bank (made once, cached)", min=1)
    ode_steps: int = _field(8, "teacher Euler steps (CFG w per pair) for each ODE pair", min=1)
    ode_metric: str = _field("l2", "per-element error of the ODE regression: l2 (squared) or pseudo_huber "
                             "(sqrt(d^2 + c^2) - c, c = 2/255 in model range)", choices=["l2", "pseudo_huber"])
    ode_shift: int = _field(0, "ODE regression tolerant to target shifts of up to this many pixels: per window, the "
                            "smallest error over shifts (ours; 0 = off)", min=0)
    ode_shift_window: int = _field(12, "window side (pixels) over which one ODE target shift is chosen", min=1)
    dmd_weight: float = _field(0.0, "lambda_DMD: distribution matching of the one-step samples against a fake "
                               "denoiser trained on them in the D steps (ours, not in the paper; DMD2, Yin et al. "
                               "2024; 0 = off; with any loss: without heads the D steps train the fake alone)", min=0.0)
    dmd_p_mean: float = _field(0.2, "distribution-matching and fake-denoiser time: mean of log(sigma_d tan t)")
    dmd_p_std: float = _field(1.6, "distribution-matching and fake-denoiser time: std of log(sigma_d tan t)", gt=0.0)
    fake_lr: Optional[float] = _field(None, "fake denoiser learning rate (null: train.lr)", gt=0.0)
    student_init: Optional[str] = _field(None, "start the student from this exported student (a finished run's "
                                         "export folder, or an experiment YAML: its run's export) instead of a "
                                         "copy of the teacher (ours: two-stage training; null = the paper)")
    d_lr: Optional[float] = _field(None, "discriminator learning rate (null: train.lr)", gt=0.0)
    d_grad_clip: float = _field(1.0, "discriminator gradient-norm clip (0 disables)", min=0.0)
    eval_steps: list[int] = _field([1, 2, 4], "sampling steps evaluated after training", min=1, min_items=1)
    debug_nan_steps: list[int] = _field([], "test hook: global steps whose loss is forced to NaN", min=0)

    @property
    def uses_scm(self) -> bool:
        return self.loss in ("scm", "hybrid")

    @property
    def uses_adv(self) -> bool:
        return self.loss in ("ladd", "hybrid")

    @property
    def has_d_phase(self) -> bool:
        """D steps exist: to train discriminator heads (ladd, hybrid) and/or a fake denoiser (dmd_weight > 0)."""
        return self.uses_adv or self.dmd_weight > 0

    @property
    def cycle(self) -> int:
        """Global steps per generator step: 1 + d_steps with a D phase, else 1."""
        return 1 + self.d_steps if self.has_d_phase else 1

    def validate(self) -> None:
        if self.d_steps != 1 and not self.has_d_phase:
            raise _cross_error(f"distill.d_steps={self.d_steps} needs a D phase (loss ladd or hybrid, or "
                               "dmd_weight > 0)", "distill.d_steps", "distill.loss")
        if self.loss == "hybrid" and (self.scm_weight == 0 or self.adv_weight == 0):
            raise _cross_error("distill.loss=hybrid needs scm_weight > 0 and adv_weight > 0 (use loss: scm or ladd)",
                               "distill.loss", "distill.scm_weight", "distill.adv_weight")
        if self.loss == "ode" and self.ode_weight == 0:
            raise _cross_error("distill.loss=ode needs ode_weight > 0", "distill.loss", "distill.ode_weight")


@dataclass
class ControlConfig:
    """ControlNet on edge maps (SANA-Sprint §4.4; method reference §10): trainable copies of the first ``num_blocks``
    teacher blocks fed with the edge map of the image. ``enabled`` makes a teacher config train a ControlNet on top
    of ``base`` and a distillation config distil a ControlNet teacher (``distill.teacher``) into a ControlNet
    student."""

    enabled: bool = _field(False, "train / distil a ControlNet (edge-map condition)")
    base: str = _field("teacher", "frozen base teacher of the ControlNet: 'teacher' (the release) or an export folder")
    num_blocks: int = _field(3, "ControlNet blocks: copies of the first N teacher blocks", min=1)
    thickness: int = _field(1, "edge line thickness of the condition, pixels", min=1, max=4)
    conditioning_scale: float = _field(1.0, "scale of the ControlNet residuals", min=0.0)


@dataclass
class ExperimentConfig:
    """A complete, validated experiment configuration."""

    name: str = _field("teacher", "experiment name")
    seed: int = _field(0, "global random seed", min=0, max=2**32 - 1)
    output_dir: str = _field("runs", "root folder for checkpoints and caches")
    world: WorldConfig = _section(WorldConfig)
    data: DataConfig = _section(DataConfig)
    text: TextConfig = _section(TextConfig)
    model: ModelConfig = _section(ModelConfig)
    train: TrainConfig = _section(TrainConfig)
    sample: SampleConfig = _section(SampleConfig)
    tracking: TrackingConfig = _section(TrackingConfig)
    distill: DistillConfig = _section(DistillConfig)
    control: ControlConfig = _section(ControlConfig)
    source: str = field(default="", compare=False, metadata={
        "internal": True, "help": "path of the top config file (set by load_config)"})

    def validate_distill(self) -> None:
        """Checks that only matter when this config distils (the teacher configs share the schema)."""
        depth, bad = self.model.depth, [b for b in self.distill.head_blocks if b >= self.model.depth]
        if self.distill.uses_adv and bad:
            raise _cross_error(f"distill.head_blocks {bad} out of range for model.depth={depth} "
                               f"(blocks are 0..{depth - 1})", "distill.head_blocks", "model.depth")
        n = self.distill.d_translate
        if n and 2 * n >= self.world.resolution:
            raise _cross_error(f"distill.d_translate={n} must be below half of world.resolution="
                               f"{self.world.resolution}", "distill.d_translate", "world.resolution")
        if n and self.control.enabled:
            raise _cross_error("distill.d_translate is not supported with a ControlNet (the edge condition would "
                               "have to move with the image)", "distill.d_translate", "control.enabled")
        if self.distill.ode_weight and self.control.enabled:
            raise _cross_error("distill.ode_weight is not supported with a ControlNet (the ODE pairs carry no edge "
                               "condition)", "distill.ode_weight", "control.enabled")
        if self.distill.dmd_weight and self.control.enabled:
            raise _cross_error("distill.dmd_weight is not supported with a ControlNet", "distill.dmd_weight",
                               "control.enabled")
        if self.distill.student_init and self.control.enabled:
            raise _cross_error("distill.student_init is not supported with a ControlNet", "distill.student_init",
                               "control.enabled")
        res, shift = self.world.resolution, self.distill.ode_shift
        if shift and (2 * shift >= res or self.distill.ode_shift_window > res):
            raise _cross_error(f"distill.ode_shift={shift} must be below half of world.resolution={res} and "
                               f"distill.ode_shift_window={self.distill.ode_shift_window} at most {res}",
                               "distill.ode_shift", "world.resolution")
        if not self.distill.guidance_embed and len(set(self.distill.cfg_scales)) > 1:
            raise _cross_error(f"distill.guidance_embed=false: the student cannot see the teacher's CFG scale, so "
                               f"distill.cfg_scales={self.distill.cfg_scales} must be one value (the scale whose "
                               f"guided teacher it learns, e.g. sample.cfg_scale={self.sample.cfg_scale:g})",
                               "distill.cfg_scales", "distill.guidance_embed")
        if self.distill.uses_adv and self.distill.misaligned_pairs and self.data.batch_size < 2:
            raise _cross_error("distill.misaligned_pairs needs data.batch_size >= 2 (rolling a batch of one gives "
                               "back the true pair, which would be shown to the heads as a fake)",
                               "distill.misaligned_pairs", "data.batch_size")
        if self.distill.ode_weight and self.distill.ode_pairs < self.data.batch_size:
            raise _cross_error(f"distill.ode_pairs={self.distill.ode_pairs} is below data.batch_size="
                               f"{self.data.batch_size}", "distill.ode_pairs", "data.batch_size")

    def validate(self) -> None:
        """Cross-field checks; raises ConfigError naming the keys involved."""
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise ConfigError(f"name={self.name!r} must be letters, digits, '_', '.' and '-' (it names the run folder "
                              f"under output_dir)", key="name")
        self.world.validate()
        self.tracking.validate()
        self.model.validate()
        self.distill.validate()
        if self.control.enabled and self.control.num_blocks > self.model.depth:
            raise _cross_error(f"control.num_blocks={self.control.num_blocks} exceeds model.depth={self.model.depth} "
                               f"(the ControlNet copies the first N teacher blocks)", "control.num_blocks",
                               "model.depth")
        if self.world.resolution % self.model.patch_size:
            raise _cross_error(
                f"world.resolution={self.world.resolution} must be divisible by "
                f"model.patch_size={self.model.patch_size}",
                "world.resolution", "model.patch_size",
            )
