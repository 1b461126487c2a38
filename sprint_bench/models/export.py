"""Save / load a distilled sCM student as a diffusers-style folder: `transformer/` (SanaTransformer2DModel with the
guidance embedding; the logvar head is a training-only module and is dropped), `scheduler/` (diffusers SCMScheduler,
TrigFlow prediction), `controlnet/` for a ControlNet student, and `sprint_bench.json` (config, hash, step, sampling
schedules, CFG scale w, ControlNet settings)."""
from __future__ import annotations

import filecmp
import json
import os
import shutil
import uuid
from pathlib import Path

from diffusers import SCMScheduler

from sprint_bench.config import config_hash, from_dict, to_dict
from sprint_bench.models.control_export import control_meta, load_controlnet, save_controlnet
from sprint_bench.models.sana import load_sana
from sprint_bench.models.trigflow import TrigFlowModel
from sprint_bench.param.trigflow import SIGMA_DATA
from sprint_bench.samplers.scm import validate_schedule

META = "sprint_bench.json"
_REQUIRED = ("transformer/config.json", "scheduler/scheduler_config.json")
_WEIGHTS = ("transformer/diffusion_pytorch_model.safetensors",
            "transformer/diffusion_pytorch_model.safetensors.index.json")
_RESERVED = ("kind", "config", "config_hash", "global_step", "schedules", "guidance_scale", "guidance_embeds",
             "sigma_data", "control")


def _same_tree(a: Path, b: Path) -> bool:
    """Same relative file names and byte-identical contents."""
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all(filecmp.cmp(a / f, b / f, shallow=False) for f in files_a)


def student_meta(model: TrigFlowModel, cfg, global_step: int, schedules: dict[int, tuple], guidance_scale: float,
                 extra_meta: dict | None = None) -> dict:
    """The `sprint_bench.json` content (schedules validated, keys as strings)."""
    clash = set(extra_meta or {}) & set(_RESERVED)
    if clash:
        raise ValueError(f"extra_meta may not set the reserved keys {sorted(clash)}")
    meta = {"kind": "scm_student", "config": to_dict(cfg), "config_hash": config_hash(cfg),
            "global_step": int(global_step),
            "schedules": {str(int(k)): list(validate_schedule(v, int(k))) for k, v in sorted(schedules.items())},
            "guidance_scale": float(guidance_scale), "guidance_embeds": bool(model.guidance_embeds),
            "sigma_data": SIGMA_DATA, **(extra_meta or {})}
    if model.controlnet is not None:
        meta["control"] = control_meta(cfg, model.controlnet)
    return meta


def export_student(model: TrigFlowModel, cfg, out_dir: str | Path, global_step: int, schedules: dict[int, tuple],
                   guidance_scale: float, extra_meta: dict | None = None, overwrite: bool = False) -> Path:
    """Write the student export to ``out_dir`` atomically (temp folder, then rename). An existing identical export
    is left as is; a different one (or any other folder there) raises FileExistsError unless ``overwrite``."""
    out = Path(out_dir)
    meta = student_meta(model, cfg, global_step, schedules, guidance_scale, extra_meta)
    text = json.dumps(meta, indent=2) + "\n"
    if out.exists() and not overwrite:
        old = out / META
        if not old.is_file() or old.read_text() != text:
            raise FileExistsError(f"{out} holds a different export (or other files); pass overwrite=True to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        model.transformer.save_pretrained(tmp / "transformer", safe_serialization=True)
        SCMScheduler(sigma_data=SIGMA_DATA, prediction_type="trigflow").save_pretrained(tmp / "scheduler")
        if model.controlnet is not None:
            save_controlnet(model.controlnet, tmp)
        (tmp / META).write_text(text)
        if out.exists():
            if _same_tree(tmp, out):
                shutil.rmtree(tmp)
                return out
            if not overwrite:
                raise FileExistsError(f"{out} holds an export with the same metadata but different weights; "
                                      "pass overwrite=True to replace it")
            old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def load_student(path: str | Path):
    """(config, TrigFlowModel in eval mode without gradients, metadata) from an exported folder; the metadata's
    ``schedules`` come back as {steps: tuple of t}."""
    path = Path(path)
    for name in (META, *_REQUIRED):
        if not (path / name).is_file():
            raise FileNotFoundError(f"not a complete student export at {path}: missing {name}")
    if not any((path / w).is_file() for w in _WEIGHTS):
        raise FileNotFoundError(f"not a complete student export at {path}: missing {_WEIGHTS[0]}")
    meta = json.loads((path / META).read_text())
    if meta.get("kind") != "scm_student":
        raise ValueError(f"{path / META} describes a {meta.get('kind')!r}, not an 'scm_student'")
    meta["schedules"] = {int(k): tuple(v) for k, v in meta["schedules"].items()}
    cfg = from_dict(meta["config"])
    transformer = load_sana(path / "transformer")
    control = meta.get("control")
    model = TrigFlowModel(transformer, logvar=False,
                          controlnet=load_controlnet(transformer, path) if control else None,
                          conditioning_scale=control["conditioning_scale"] if control else 1.0)
    return cfg, model.eval().requires_grad_(False), meta
