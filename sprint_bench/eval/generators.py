"""What the harness evaluates: a loaded generator that can sample images for captions at a step count and build a
staged pipeline for latency. Resolves a checkpoint argument (export folder, run folder, "teacher" or
"controlnet-teacher").

ControlNet generators (``.control`` is the export's ``meta["control"]``, None otherwise) look up each prompt's
GenEval-Shapes metadata entry and condition image b on :func:`~sprint_bench.data.shapes.control.condition_tensor` of
(its entry, its seed), the same definition the edge-F1 metric compares against."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from sprint_bench.data.datamodule import to_uint8
from sprint_bench.data.shapes.control import condition_tensor, entries_for, prompt_entries
from sprint_bench.data.shapes.prompts import geneval_shapes_prompts
from sprint_bench.eval.geneval.generate import seeded_noise
from sprint_bench.models.release import RELEASED_CONTROLNET_TEACHER, RELEASED_TEACHER, load_teacher
from sprint_bench.models.text_encoder import CaptionCache
from sprint_bench.samplers.flow import euler_sample


def resolve_checkpoint(spec: str | Path) -> Path:
    """An exported model folder from: "teacher" (the released teacher), "controlnet-teacher" (the released ControlNet
    teacher), an export folder, or a run folder holding ``export/``. Raises FileNotFoundError naming what was looked
    for (before any generation)."""
    path = {"teacher": RELEASED_TEACHER, "controlnet-teacher": RELEASED_CONTROLNET_TEACHER}.get(str(spec), Path(spec))
    for cand in (path, path / "export"):
        if (cand / "sprint_bench.json").exists():
            return cand.resolve()
    target = "controlnet-teacher" if str(spec) == "controlnet-teacher" else "teacher"
    raise FileNotFoundError(f"no exported model at {path} (looked for {path / 'sprint_bench.json'} and "
                            f"{path / 'export' / 'sprint_bench.json'}); train one with `make {target}` or pass a "
                            f"run folder under runs/")


def export_kind(path: Path) -> str | None:
    """The ``kind`` recorded in an exported folder's ``sprint_bench.json`` (read before any weights load)."""
    return json.loads((path / "sprint_bench.json").read_text()).get("kind")


class _Exported:
    """What every exported generator reports the same way (needs ``name``, ``cfg`` and ``meta``)."""

    @property
    def model_id(self) -> str:
        return f"{self.name}-{self.meta['config_hash']}-step{self.meta['global_step']}"

    @property
    def resolution(self) -> int:
        return self.cfg.world.resolution

    @property
    def control(self) -> dict | None:
        """The ControlNet facts of the export (num_blocks, thickness, conditioning_scale), None without one."""
        return self.meta.get("control")

    def conditions(self):
        """(prompts, seeds) -> the model's condition tensor (B, 3, H, W) at the trained thickness."""
        table = prompt_entries(geneval_shapes_prompts(self.cfg.world))
        world, thickness = self.cfg.world, int(self.control["thickness"])

        def cond(prompts: list[str], seeds: list[int]) -> torch.Tensor:
            return condition_tensor(entries_for(prompts, table), seeds, world, thickness)

        return cond

    def latency_condition(self) -> torch.Tensor:
        """The fixed condition of the latency pipelines (first GenEval-Shapes prompt, seed 0), (1, 3, H, W)."""
        from sprint_bench.data.shapes.control import latency_condition

        return latency_condition(self.cfg.world, int(self.control["thickness"]))


@dataclass
class FlowTeacher(_Exported):
    """A flow-matching teacher sampled with Euler steps + CFG."""

    path: Path
    cfg: object
    backbone: torch.nn.Module
    meta: dict
    name: str = "teacher"
    method: str = "flow matching (Euler, CFG)"

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.backbone.parameters())

    def nfe(self, steps: int, cfg_scale: float) -> int:
        return steps * (2 if cfg_scale != 1 else 1)

    def sampler_tag(self, steps: int, cfg_scale: float) -> str:
        return f"euler{steps}-cfg{cfg_scale:g}"

    def sample_fn(self, steps: int, cfg_scale: float, captions: CaptionCache):
        """(prompts, seeds) -> uint8 images; the same seed gives the same noise in any batch."""
        null_t, null_m = captions.lookup(torch.tensor([captions.null_id]))
        res = self.resolution

        def sample(prompts: list[str], seeds: list[int]):
            text, mask = captions.lookup(captions.ids_for(prompts))
            noise = seeded_noise(seeds, (3, res, res))
            return to_uint8(euler_sample(self.backbone, noise, text, mask, null_t, null_m, steps, cfg_scale))

        return sample

    def pipeline(self, steps: int, cfg_scale: float, text_encoder):
        from sprint_bench.eval.latency import teacher_pipeline

        return teacher_pipeline(self.backbone, text_encoder, self.resolution, steps, cfg_scale)


@dataclass
class ControlFlowTeacher(FlowTeacher):
    """A flow teacher with a ControlNet (``ControlledFlowBackbone``) on edge maps: Euler steps + CFG, the condition
    in both CFG halves."""

    name: str = "controlnet-teacher"
    method: str = "ControlNet teacher (Euler, CFG)"  # never "flow matching...": the report's plain-teacher prefix

    def sample_fn(self, steps: int, cfg_scale: float, captions: CaptionCache):
        """(prompts, seeds) -> uint8 images; image b is conditioned on (its prompt's entry, its seed)."""
        null_t, null_m = captions.lookup(torch.tensor([captions.null_id]))
        res, conditions = self.resolution, self.conditions()

        def sample(prompts: list[str], seeds: list[int]):
            text, mask = captions.lookup(captions.ids_for(prompts))
            noise = seeded_noise(seeds, (3, res, res))
            velocity = self.backbone.bind(conditions(prompts, seeds))
            return to_uint8(euler_sample(velocity, noise, text, mask, null_t, null_m, steps, cfg_scale))

        return sample

    def pipeline(self, steps: int, cfg_scale: float, text_encoder):
        from sprint_bench.eval.latency import controlnet_teacher_pipeline

        return controlnet_teacher_pipeline(self.backbone, text_encoder, self.resolution, steps, cfg_scale,
                                           self.latency_condition())


@dataclass
class SprintStudent(_Exported):
    """A distilled SANA-Sprint student sampled with the sCM multistep sampler (guidance through its embedding)."""

    path: Path
    cfg: object
    model: torch.nn.Module
    meta: dict

    @property
    def method(self) -> str:
        base = {"scm": "sCM only", "ladd": "LADD only", "hybrid": "sCM + LADD",
                "ode": "ODE regression only"}.get(self.meta.get("method"), "student")
        return f"{base} (ControlNet)" if self.control else base

    @property
    def name(self) -> str:
        return self.cfg.name

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.transformer.parameters())

    def nfe(self, steps: int, cfg_scale: float) -> int:
        return steps

    def timesteps(self, steps: int) -> tuple[float, ...]:
        """The schedule exported with the student for ``steps`` (paper Table 7), else the sampler's default."""
        from sprint_bench.samplers.scm import scm_timesteps

        return scm_timesteps(steps, self.meta.get("schedules", {}).get(steps))

    def guidance(self, cfg_scale: float) -> float | None:
        return cfg_scale if self.meta.get("guidance_embeds") else None

    def sampler_tag(self, steps: int, cfg_scale: float) -> str:
        ts = "-".join(f"{t:.4f}" for t in self.timesteps(steps))
        return f"scm{steps}-t{ts}-w{cfg_scale:g}" if self.guidance(cfg_scale) is not None else f"scm{steps}-t{ts}"

    def sample_fn(self, steps: int, cfg_scale: float, captions: CaptionCache, timesteps=None):
        """(prompts, seeds) -> uint8 images; image b draws all its step noises from its own seed. ``timesteps``
        overrides the exported schedule (schedule search)."""
        from sprint_bench.samplers.scm import sample_student, seeded_step_noise

        res, w = self.resolution, self.guidance(cfg_scale)
        ts = self.timesteps(steps) if timesteps is None else tuple(timesteps)
        conditions = self.conditions() if self.control else None

        def sample(prompts: list[str], seeds: list[int]):
            text, mask = captions.lookup(captions.ids_for(prompts))
            noise = seeded_step_noise(seeds, (3, res, res), steps)
            kw = {} if conditions is None else {"cond": conditions(prompts, seeds)}
            return to_uint8(sample_student(self.model, text, mask, w, noise, ts, **kw))

        return sample

    def pipeline(self, steps: int, cfg_scale: float, text_encoder):
        from sprint_bench.eval.latency import student_pipeline

        return student_pipeline(self.model, text_encoder, self.resolution, self.timesteps(steps),
                                self.guidance(cfg_scale), cond=self.latency_condition() if self.control else None)


def load_generator(spec: str | Path) -> FlowTeacher | ControlFlowTeacher | SprintStudent:
    path = resolve_checkpoint(spec)
    kind = export_kind(path)
    if kind == "flow_matching_teacher":
        return FlowTeacher(path, *load_teacher(path))
    if kind == "controlnet_teacher":
        from sprint_bench.models.control_export import load_controlnet_teacher

        return ControlFlowTeacher(path, *load_controlnet_teacher(path))
    if kind == "scm_student":
        from sprint_bench.models.export import load_student

        return SprintStudent(path, *load_student(path))
    raise ValueError(f"{path}: unknown model kind {kind!r}")
