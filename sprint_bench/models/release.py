"""Save / load a trained teacher as a self-describing folder: diffusers `transformer/` + `sprint_bench.json`
(resolved config, its hash, training step). The suite's released teacher lives in `releases/teacher/`."""
from __future__ import annotations

import json
from pathlib import Path

from sprint_bench.config import config_hash, from_dict, to_dict
from sprint_bench.models.sana import FlowBackbone, load_sana

RELEASED_TEACHER = Path(__file__).resolve().parents[2] / "releases" / "teacher"
RELEASED_CONTROLNET_TEACHER = RELEASED_TEACHER.with_name("controlnet-teacher")


def export_teacher(backbone: FlowBackbone, cfg, out_dir: str | Path, global_step: int) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    backbone.transformer.save_pretrained(out / "transformer", safe_serialization=True)
    meta = {"kind": "flow_matching_teacher", "config": to_dict(cfg), "config_hash": config_hash(cfg),
            "global_step": int(global_step)}
    (out / "sprint_bench.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def load_teacher(path: str | Path | None = None):
    """(config, FlowBackbone in eval mode, metadata) from an exported folder (default: the released teacher)."""
    path = Path(path) if path else RELEASED_TEACHER
    meta_file = path / "sprint_bench.json"
    if not meta_file.exists():
        hint = " (run `make teacher` to train it)" if path == RELEASED_TEACHER else ""
        raise FileNotFoundError(f"no exported teacher at {path}: missing {meta_file.name}{hint}")
    meta = json.loads(meta_file.read_text())
    cfg = from_dict(meta["config"])
    transformer = load_sana(path / "transformer")
    return cfg, FlowBackbone(transformer).eval().requires_grad_(False), meta


def promote_teacher(export_dir: str | Path, target: str | Path = RELEASED_TEACHER) -> Path:
    """Copy an exported teacher to ``target``; a different existing release is moved aside to
    ``<target>.bak-<step>`` (the same config hash and step is already released: nothing happens)."""
    import shutil

    export_dir, target = Path(export_dir), Path(target)
    if not (export_dir / "sprint_bench.json").exists():
        raise FileNotFoundError(f"no exported teacher at {export_dir}")
    if target.exists():
        current = json.loads((target / "sprint_bench.json").read_text())
        incoming = json.loads((export_dir / "sprint_bench.json").read_text())
        if all(current.get(k) == incoming.get(k) for k in ("config_hash", "global_step")) and \
                (target / "transformer").exists():
            return target  # already released
        old = current.get("global_step", "old")
        backup = target.with_name(f"{target.name}.bak-{old}")
        k = 1
        while backup.exists():
            backup, k = target.with_name(f"{target.name}.bak-{old}-{k}"), k + 1
        target.rename(backup)
    shutil.copytree(export_dir, target)
    return target
