"""CLIP score for the shapes world through open_clip.

``shapes-clip`` is a small open_clip ViT/text-transformer config (``shapes-clip.json`` in this folder, registered
with ``open_clip.add_model_config``, which names configs after the file stem) trained contrastively on shapes-world
pairs by :mod:`sprint_bench.eval.clip.train`; :mod:`sprint_bench.eval.clip.score` turns it -- or a real open_clip
model such as ViT-L/14 built from a user-supplied local weights file -- into the CLIP-score metric.

Importing this package is cheap: torch/open_clip load on first use of an exported name.
"""
from __future__ import annotations

from pathlib import Path

CONFIG_NAME = "shapes-clip"
CONFIG_FILE = Path(__file__).resolve().with_name(f"{CONFIG_NAME}.json")

__all__ = ["CONFIG_NAME", "CONFIG_FILE", "register_shapes_clip", "ClipScorer", "clip_score_metric"]


def register_shapes_clip() -> str:
    """Register the bundled ``shapes-clip`` config with open_clip (idempotent) and return its name."""
    import open_clip

    if CONFIG_NAME not in open_clip.list_models():
        if not CONFIG_FILE.is_file():
            raise FileNotFoundError(f"shapes-clip model config missing: {CONFIG_FILE}")
        open_clip.add_model_config(CONFIG_FILE)
    return CONFIG_NAME


def __getattr__(name: str):
    if name in ("ClipScorer", "clip_score_metric"):
        from sprint_bench.eval.clip import score

        return getattr(score, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
