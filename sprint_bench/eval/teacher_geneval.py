"""GenEval-Shapes score of an exported flow-matching teacher (Euler steps, CFG scale), in the official layout."""
from __future__ import annotations

from pathlib import Path

from sprint_bench.data.shapes.prompts import geneval_shapes_prompts
from sprint_bench.eval.generators import load_generator
from sprint_bench.eval.geneval.generate import generate_geneval, images_folder_name
from sprint_bench.eval.geneval.layout import score_folder, write_results
from sprint_bench.eval.geneval.shapes_detector import ShapesDetector
from sprint_bench.models.text_encoder import CaptionCache

FAMILY_LABELS = {"single_object": "Single", "two_object": "Two", "counting": "Counting", "colors": "Colors",
                 "position": "Position", "color_attr": "Color attr."}


def evaluate_teacher_geneval(export_dir: str | Path | None, out_dir: str | Path, steps: int, cfg_scale: float,
                             images_per_prompt: int = 4, batch_size: int = 64, seed: int = 0,
                             limit: int | None = None) -> dict:
    """Generate 4 images per GenEval-Shapes prompt and score them with the exact shapes detector."""
    model = load_generator(export_dir)
    cfg, meta = model.cfg, model.meta
    prompts = geneval_shapes_prompts(cfg.world)[:limit]
    captions = CaptionCache.build(sorted({p["prompt"] for p in prompts}), cfg.text.max_length,
                                  Path(cfg.output_dir) / "cache")
    root = Path(out_dir) / images_folder_name(f"euler{steps}-cfg{cfg_scale:g}", seed, images_per_prompt)
    fn = model.sample_fn(steps, cfg_scale, captions)
    generate_geneval(fn, prompts, root / "images", images_per_prompt, batch_size, seed)
    rows, summary = score_folder(root / "images", ShapesDetector(cfg.world))
    summary.update({"benchmark": "GenEval-Shapes", "detector": "shapes-exact (GenEval protocol, non-official detector)",
                    "sampler": "euler", "steps": steps, "cfg_scale": cfg_scale, "nfe": model.nfe(steps, cfg_scale),
                    "images": len(rows), "teacher_step": meta["global_step"], "teacher_config_hash": meta["config_hash"]})
    write_results(rows, summary, root)
    (root / "table.md").write_text(markdown_row(summary, header=True))
    return summary


def markdown_row(summary: dict, header: bool = False) -> str:
    cols = ["Overall"] + [FAMILY_LABELS[f] for f in FAMILY_LABELS]
    vals = [summary["overall"]] + [summary["tasks"].get(f, {}).get("score") for f in FAMILY_LABELS]
    head = "| steps | CFG | " + " | ".join(cols) + " |\n|---|---|" + "---|" * len(cols) + "\n" if header else ""
    cells = " | ".join("–" if v is None else f"{v:.3f}" for v in vals)
    return head + f"| {summary['steps']} | {summary['cfg_scale']:g} | {cells} |\n"
