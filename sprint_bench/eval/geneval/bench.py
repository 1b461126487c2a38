"""Benchmark (not a test): images/s of GenEval-Shapes detection + scoring on this machine, and what the detector
scores on ground-truth renders degraded by a Gaussian blur (``--blur``, std in pixels) and pixel noise.

    python -m sprint_bench.eval.geneval.bench --n 2212 [--blur 1.0]
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
from scipy import ndimage


def main(argv: list[str] | None = None) -> dict:
    from sprint_bench.config import load_config
    from sprint_bench.data.shapes.prompts import geneval_shapes_prompts
    from sprint_bench.data.shapes.render import render
    from sprint_bench.data.shapes.scene import realize
    from sprint_bench.eval.geneval.scoring import score_image, summarize
    from sprint_bench.eval.geneval.shapes_detector import ShapesDetector

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", default="experiments/base.yaml")
    p.add_argument("--n", type=int, default=2212)
    p.add_argument("--noise", type=float, default=6.0, help="Gaussian noise std (intensity levels) added to renders")
    p.add_argument("--blur", type=float, default=0.0, help="Gaussian blur std (pixels) applied to renders first")
    args = p.parse_args(argv)
    if args.n < 1 or args.noise < 0 or args.blur < 0:
        p.error("--n must be >= 1, --noise and --blur >= 0")
    world = load_config(args.config).world
    prompts = geneval_shapes_prompts(world)
    rng = np.random.default_rng(0)
    items = []
    for j in range(args.n):
        meta = prompts[j % len(prompts)]
        img = ndimage.gaussian_filter(render(realize(meta, world, rng)).astype(np.float64), (args.blur, args.blur, 0),
                                      mode="nearest") + rng.normal(0, args.noise, (world.resolution,) * 2 + (3,))
        items.append((np.clip(np.rint(img), 0, 255).astype(np.uint8), meta, j % len(prompts)))
    detector = ShapesDetector(world)
    t0 = time.perf_counter()
    rows = [{"tag": m["tag"], "index": i, "correct": score_image(img, m, detector).correct} for img, m, i in items]
    dt = time.perf_counter() - t0
    summary = summarize(rows)
    res = {"benchmark": "GenEval-Shapes detection + scoring", "images": args.n, "seconds": round(dt, 3),
           "images_per_s": round(args.n / dt, 1), "overall_on_noisy_ground_truth": summary["overall"],
           "tasks": {k: round(v["score"], 4) for k, v in summary["tasks"].items()}, "noise_std": args.noise,
           "blur_std_px": args.blur, "resolution": world.resolution,
           "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads()}
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
