"""Can one call of a student's network draw what the GenEval-Shapes detector accepts? The teacher's ODE endpoints on
the GenEval-Shapes prompts (noise from the schedule search's seeds, 2**30 on, never an evaluation's) are scored, then
the student's one-step images from the same noise, before and after a copy of it regresses onto exactly those pairs
until it has memorised them; fresh noise for the same prompts shows what the memorising does elsewhere. If the
memorised images score as the teacher's do, the one-step network can render them, and what a student lacks on unseen
noise is the map from noise to image, not the means to draw it. A diagnostic for issue 4 (docs/RESULTS.md): the copy
trains on the benchmark's prompts, so it is never saved, exported or evaluated as a student.

    python -m sprint_bench.lit.render_probe runs/<run>/export [--steps 2000] [--lr 3e-4] [--images-per-prompt 2] \\
        [--pair-steps 8]
"""
from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import torch

from sprint_bench.data.datamodule import to_model_range, to_uint8
from sprint_bench.eval.geneval.generate import image_seed
from sprint_bench.eval.geneval.scoring import summarize_images
from sprint_bench.eval.schedule_search import SEARCH_SEED_BASE
from sprint_bench.lit.bank_fit import one_step_x0
from sprint_bench.losses.ode import ode_loss
from sprint_bench.param.trigflow import SIGMA_DATA
from sprint_bench.samplers.ode_pairs import PAIR_SEED_BASE, OdePairs, make_ode_pairs

# The memorised pairs' noise seeds start at the search's base, the fresh pairs' 2**28 above it: both above every
# evaluation seed and below the training banks' (PAIR_SEED_BASE = 2**31).
FRESH_OFFSET = 2**28


def geneval_pairs(velocity, captions, prompts: list[dict], images_per_prompt: int, seed_base: int, w: float,
                  steps: int, resolution: int, progress: bool = True) -> OdePairs:
    """The teacher's ``steps``-step Euler + CFG ``w`` endpoints for image k of prompt i from noise seed
    ``image_seed(seed_base, i, images_per_prompt, k)`` (pair i * images_per_prompt + k)."""
    n = len(prompts) * images_per_prompt
    seeds = torch.tensor([image_seed(seed_base, j // images_per_prompt, images_per_prompt, j % images_per_prompt)
                          for j in range(n)], dtype=torch.int64)
    if seeds.min() < SEARCH_SEED_BASE or seeds.max() >= PAIR_SEED_BASE:
        raise ValueError(f"seed base {seed_base}: the noise seeds must lie in [2**30, 2**31), above every evaluation "
                         f"seed and below the training banks'")
    ids = captions.ids_for([prompts[j // images_per_prompt]["prompt"] for j in range(n)])
    null_t, null_m = captions.lookup(torch.tensor([captions.null_id]))
    return make_ode_pairs(velocity, captions.lookup, null_t, null_m, ids, torch.full((n,), float(w)), seeds,
                          resolution, steps, progress=progress)


@torch.no_grad()
def one_step_images(model, pairs: OdePairs, lookup, batch_size: int = 256) -> np.ndarray:
    """(N, H, W, 3) uint8: the student's one-step images of every pair, as the 1-step sampler writes them."""
    return np.concatenate([to_uint8(one_step_x0(model, pairs, torch.arange(lo, min(len(pairs), lo + batch_size)),
                                                lookup) / SIGMA_DATA)
                           for lo in range(0, len(pairs), batch_size)])


def endpoint_images(pairs: OdePairs) -> np.ndarray:
    return pairs.x0.permute(0, 2, 3, 1).numpy()


def geneval_of(images: np.ndarray, prompts: list[dict], images_per_prompt: int, detector) -> dict:
    """GenEval-Shapes of images ordered as :func:`geneval_pairs` orders them: overall and per task."""
    s = summarize_images(((img, prompts[j // images_per_prompt], j // images_per_prompt)
                          for j, img in enumerate(images)), detector)
    return {"overall": s["overall"], "tasks": {k: v["score"] for k, v in s["tasks"].items()}}


def levels(images: np.ndarray, pairs: OdePairs) -> float:
    """Mean absolute difference from the pairs' endpoints, in 8-bit levels."""
    return float(np.abs(images.astype(np.float64) - endpoint_images(pairs).astype(np.float64)).mean())


def memorise(model, pairs: OdePairs, lookup, steps: int, lr: float, batch_size: int = 32, seed: int = 0,
             on_check=None, checks: int = 4):
    """A trainable copy of ``model`` regressed onto ``pairs`` alone (the chain's pseudo-Huber one-step loss, Adam,
    cosine lr, gradient clip 1), ``on_check(step, copy)`` called ``checks`` times along the way; returns the copy."""
    student = copy.deepcopy(model).train().requires_grad_(True)
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    for k in range(1, steps + 1):
        idx = torch.randint(len(pairs), (batch_size,), generator=gen)
        loss = ode_loss(one_step_x0(student, pairs, idx, lookup), SIGMA_DATA * to_model_range(pairs.x0[idx]),
                        metric="pseudo_huber")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        sched.step()
        if on_check is not None and k % max(1, steps // checks) == 0:
            student.eval()
            on_check(k, student)
            student.train()
    return student.eval().requires_grad_(False)


def main(argv=None) -> None:
    from sprint_bench.data.shapes.prompts import geneval_shapes_prompts
    from sprint_bench.eval.geneval.shapes_detector import ShapesDetector
    from sprint_bench.lit.train_distill import load_matching_teacher
    from sprint_bench.models.export import load_student
    from sprint_bench.models.sana import FlowBackbone
    from sprint_bench.models.text_encoder import CaptionCache

    p = argparse.ArgumentParser(prog="python -m sprint_bench.lit.render_probe", description=__doc__.split("\n\n")[0])
    p.add_argument("student", help="an exported student folder")
    p.add_argument("--steps", type=int, default=2000, help="regression steps of the copy (default 2000)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--images-per-prompt", type=int, default=2)
    p.add_argument("--pair-steps", type=int, default=8, help="the teacher's Euler steps per pair (default 8)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if min(args.steps, args.batch_size, args.images_per_prompt, args.pair_steps) < 1 or args.lr <= 0:
        p.error("--steps, --batch-size, --images-per-prompt and --pair-steps must be positive, --lr > 0")
    try:
        cfg, model, _ = load_student(args.student)
    except (FileNotFoundError, ValueError) as e:
        p.error(str(e))
    torch.set_num_threads(args.threads)
    _, teacher, _, _ = load_matching_teacher(cfg)
    prompts = geneval_shapes_prompts(cfg.world)
    captions = CaptionCache.build(sorted({q["prompt"] for q in prompts}), cfg.text.max_length,
                                  Path(cfg.output_dir) / "cache")
    detector = ShapesDetector(cfg.world)
    ipp, w = args.images_per_prompt, cfg.sample.cfg_scale
    seen, fresh = (geneval_pairs(FlowBackbone(teacher).eval(), captions, prompts, ipp, base, w, args.pair_steps,
                                 cfg.world.resolution) for base in (SEARCH_SEED_BASE, SEARCH_SEED_BASE + FRESH_OFFSET))
    print(f"GenEval-Shapes of {len(seen)} images ({ipp} per prompt, w {w:g}) on the memorised / fresh noise, the "
          f"mean distance from the teacher's {args.pair_steps}-step endpoints in 8-bit levels, and the tasks on the "
          f"memorised noise")

    def row(name, a, b, lv=None):
        ga, gb = (geneval_of(x, prompts, ipp, detector) for x in (a, b))
        if lv is None:  # the first row, the teacher's
            print(f"| images | memorised noise | fresh noise | levels, memorised / fresh | {' | '.join(ga['tasks'])} |")
            print("|---" * (4 + len(ga["tasks"])) + "|")
        lv = "–" if lv is None else f"{lv[0]:.2f} / {lv[1]:.2f}"
        cells = " | ".join(f"{v:.3f}" for v in ga["tasks"].values())
        print(f"| {name} | {ga['overall']:.3f} | {gb['overall']:.3f} | {lv} | {cells} |", flush=True)

    row(f"teacher, {args.pair_steps} Euler steps, CFG {w:g}", endpoint_images(seen), endpoint_images(fresh))

    def student_row(name, m):
        a, b = one_step_images(m, seen, captions.lookup), one_step_images(m, fresh, captions.lookup)
        row(name, a, b, (levels(a, seen), levels(b, fresh)))

    student_row("student, 1 step", model)
    memorise(model, seen, captions.lookup, args.steps, args.lr, args.batch_size,
             on_check=lambda k, m: student_row(f"student regressed {k} steps onto the memorised pairs", m))


if __name__ == "__main__":
    main()
