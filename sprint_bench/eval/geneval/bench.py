"""Benchmark (not a test): images/s of GenEval-Shapes detection + scoring on this machine, and what the detector
scores on images degraded by a Gaussian blur (``--blur``, std in pixels) and pixel noise (``--noise``): ground-truth
renders of the GenEval-Shapes prompts, or the images of an evaluation's GenEval folder (``--folder``).

    python -m sprint_bench.eval.geneval.bench --n 2212 [--blur 1.0]
    python -m sprint_bench.eval.geneval.bench --folder runs/eval/<model>/<sampler>/images --blur 0.5
    python -m sprint_bench.eval.geneval.bench --folder runs/eval/<model>/<sampler>/images --sharpen 1.0
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
from scipy import ndimage

RENDER_NOISE = 6.0  # default pixel noise on ground-truth renders (intensity levels)


def blurred(img: np.ndarray, sigma: float) -> np.ndarray:
    """Each channel of an (H, W, C) image convolved with a Gaussian of std ``sigma`` px (float64)."""
    return ndimage.gaussian_filter(img.astype(np.float64), (sigma, sigma, 0), mode="nearest")


def degrade(img: np.ndarray, blur: float, noise: float, rng: np.random.Generator, sharpen: float = 0.0,
            sharpen_sigma: float = 1.0) -> np.ndarray:
    """An RGB uint8 image blurred by a Gaussian of std ``blur`` px (per channel), then sharpened by the unsharp
    mask x + sharpen (x - G_sharpen_sigma * x), plus Gaussian noise of std ``noise`` intensity levels, rounded back
    to uint8."""
    out = blurred(img, blur)
    if sharpen > 0:
        out = out + sharpen * (out - blurred(out, sharpen_sigma))
    if noise > 0:
        out = out + rng.normal(0, noise, out.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> dict:
    from sprint_bench.config import load_config
    from sprint_bench.data.shapes.prompts import geneval_shapes_prompts
    from sprint_bench.data.shapes.render import render
    from sprint_bench.data.shapes.scene import realize
    from sprint_bench.eval.geneval.layout import load_image, iter_samples
    from sprint_bench.eval.geneval.scoring import summarize_images
    from sprint_bench.eval.geneval.shapes_detector import ShapesDetector

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", default="experiments/base.yaml")
    p.add_argument("--n", type=int, default=2212, help="ground-truth renders (ignored with --folder)")
    p.add_argument("--folder", help="score this GenEval image folder (<index>/metadata.jsonl, <index>/samples/*.png)")
    p.add_argument("--noise", type=float, default=None,
                   help=f"Gaussian noise std (intensity levels); default {RENDER_NOISE} on renders, 0 on a folder")
    p.add_argument("--blur", type=float, default=0.0, help="Gaussian blur std (pixels), applied before the noise")
    p.add_argument("--sharpen", type=float, default=0.0,
                   help="unsharp-mask amount a: x + a (x - G * x), after the blur and before the noise (0 = off)")
    p.add_argument("--sharpen-sigma", type=float, default=1.0, help="std (pixels) of the unsharp mask's Gaussian G")
    args = p.parse_args(argv)
    noise = args.noise if args.noise is not None else (0.0 if args.folder else RENDER_NOISE)
    if args.n < 1 or noise < 0 or args.blur < 0 or args.sharpen < 0 or args.sharpen_sigma <= 0:
        p.error("--n must be >= 1, --noise, --blur and --sharpen >= 0, --sharpen-sigma > 0")
    world = load_config(args.config).world
    rng = np.random.default_rng(0)
    if args.folder:
        samples = list(iter_samples(args.folder))
        if not samples:
            p.error(f"no GenEval samples under {args.folder}")
        items = [(degrade(load_image(png), args.blur, noise, rng, args.sharpen, args.sharpen_sigma), meta, i)
                 for i, meta, png in samples]
    else:
        prompts = geneval_shapes_prompts(world)
        items = [(degrade(render(realize(prompts[j % len(prompts)], world, rng)), args.blur, noise, rng,
                          args.sharpen, args.sharpen_sigma), prompts[j % len(prompts)], j % len(prompts))
                 for j in range(args.n)]
    detector = ShapesDetector(world)
    t0 = time.perf_counter()
    summary = summarize_images(items, detector)
    dt = time.perf_counter() - t0
    res = {"benchmark": "GenEval-Shapes detection + scoring", "images_from": args.folder or "ground-truth renders",
           "images": len(items), "seconds": round(dt, 3), "images_per_s": round(len(items) / dt, 1),
           "overall": summary["overall"], "tasks": {k: round(v["score"], 4) for k, v in summary["tasks"].items()},
           "noise_std": noise, "blur_std_px": args.blur,
           "sharpen": args.sharpen, "sharpen_std_px": args.sharpen_sigma, "resolution": world.resolution,
           "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads()}
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
