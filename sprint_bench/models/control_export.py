"""Save / load ControlNets: the ``controlnet/`` folder (weights + number of blocks) shared by ControlNet teachers and
students, and the ControlNet teacher export -- ``transformer/`` (the frozen base, so the folder is self-contained),
``controlnet/`` and ``sprint_bench.json`` (kind ``controlnet_teacher``, config, hash, step, control settings). The
suite's released ControlNet teacher lives in ``releases/controlnet-teacher/``."""
from __future__ import annotations

import json
from pathlib import Path

from diffusers import SanaTransformer2DModel
from safetensors.torch import load_file, save_file

from sprint_bench.config import config_hash, from_dict, to_dict
from sprint_bench.models.controlnet import ControlledFlowBackbone, SanaControlNet
from sprint_bench.models.sana import load_sana

WEIGHTS = "controlnet/controlnet.safetensors"
CONFIG = "controlnet/config.json"


def control_meta(cfg, controlnet: SanaControlNet) -> dict:
    """The ``control`` entry of ``sprint_bench.json``: what a loader and the harness need to condition the model."""
    return {"num_blocks": len(controlnet.transformer_blocks), "thickness": cfg.control.thickness,
            "conditioning_scale": cfg.control.conditioning_scale}


def save_controlnet(controlnet: SanaControlNet, out_dir: Path) -> None:
    (out_dir / "controlnet").mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in controlnet.state_dict().items()}
    save_file(state, out_dir / WEIGHTS)
    (out_dir / CONFIG).write_text(json.dumps({"num_blocks": len(controlnet.transformer_blocks)}) + "\n")


def load_controlnet(base: SanaTransformer2DModel, folder: Path) -> SanaControlNet:
    """The ControlNet saved under ``folder/controlnet`` rebuilt on ``base`` (strict: every weight must match)."""
    for name in (WEIGHTS, CONFIG):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"not a complete ControlNet export at {folder}: missing {name}")
    controlnet = SanaControlNet(base, json.loads((folder / CONFIG).read_text())["num_blocks"])
    controlnet.load_state_dict(load_file(folder / WEIGHTS))
    return controlnet


def export_controlnet_teacher(backbone: ControlledFlowBackbone, cfg, out_dir: str | Path, global_step: int) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    backbone.transformer.save_pretrained(out / "transformer", safe_serialization=True)
    save_controlnet(backbone.controlnet, out)
    meta = {"kind": "controlnet_teacher", "config": to_dict(cfg), "config_hash": config_hash(cfg),
            "global_step": int(global_step), "control": control_meta(cfg, backbone.controlnet)}
    (out / "sprint_bench.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def load_controlnet_teacher(path: str | Path):
    """(config, ControlledFlowBackbone in eval mode without gradients, metadata) from an exported folder."""
    path = Path(path)
    meta_file = path / "sprint_bench.json"
    if not meta_file.exists():
        raise FileNotFoundError(f"no exported ControlNet teacher at {path}: missing {meta_file.name} "
                                f"(train one with `make controlnet-teacher`)")
    meta = json.loads(meta_file.read_text())
    if meta.get("kind") != "controlnet_teacher":
        raise ValueError(f"{meta_file} describes a {meta.get('kind')!r}, not a 'controlnet_teacher'")
    cfg = from_dict(meta["config"])
    transformer = load_sana(path / "transformer")
    backbone = ControlledFlowBackbone(transformer, load_controlnet(transformer, path),
                                      conditioning_scale=meta["control"]["conditioning_scale"])
    return cfg, backbone.eval().requires_grad_(False), meta
