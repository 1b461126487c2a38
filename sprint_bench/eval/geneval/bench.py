"""Benchmark (not a test): images/s of GenEval-Shapes detection + scoring on this machine.

    python -m sprint_bench.eval.geneval.bench --n 2212
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch


def main(argv: list[str] | None = None) -> None:
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
    args = p.parse_args(argv)
    world = load_config(args.config).world
    prompts = geneval_shapes_prompts(world)
    rng = np.random.default_rng(0)
    items = []
    for j in range(args.n):
        meta = prompts[j % len(prompts)]
        img = render(realize(meta, world, rng)).astype(np.float64) + rng.normal(0, args.noise, (world.resolution,) * 2 + (3,))
        items.append((np.clip(np.rint(img), 0, 255).astype(np.uint8), meta, j % len(prompts)))
    detector = ShapesDetector(world)
    t0 = time.perf_counter()
    rows = [{"tag": m["tag"], "index": i, "correct": score_image(img, m, detector).correct} for img, m, i in items]
    dt = time.perf_counter() - t0
    print(json.dumps({"benchmark": "GenEval-Shapes detection + scoring", "images": args.n, "seconds": round(dt, 3),
                      "images_per_s": round(args.n / dt, 1), "overall_on_noisy_ground_truth": summarize(rows)["overall"],
                      "noise_std": args.noise, "resolution": world.resolution, "cpu": platform.processor() or platform.machine(),
                      "torch_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
