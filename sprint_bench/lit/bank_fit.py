"""Does a student's one-step map learn the teacher's noise -> image map, or memorise its pair bank? The one-step x0 of
each student (from x_T = sigma_d eps at t = T_MAX, as the 1-step sampler draws it) against the teacher's ODE endpoints
on pairs of the config's bank (``distill.ode_pairs``, the ones a regression stage trained on) and on fresh pairs made
the same way from noise no bank pair uses. A diagnostic for issue 4 (numbers in docs/RESULTS.md).

    python -m sprint_bench.lit.bank_fit --config experiments/sprint/best/3-regression-12k-shift1.yaml \\
        runs/<run>/export [runs/<run>/export ...] [key=value ...] [--n 1024] [--fresh-seed 1000]
"""
from __future__ import annotations

import argparse

import torch

from sprint_bench.data.datamodule import to_model_range
from sprint_bench.losses.ode import ode_loss
from sprint_bench.param.trigflow import SIGMA_DATA, T_MAX, x0_from_F
from sprint_bench.samplers.ode_pairs import OdePairs, draw_pairs, make_ode_pairs

ERRORS = ("pseudo_huber", "l2", "levels")


def one_step_x0(model, pairs: OdePairs, idx: torch.Tensor, lookup) -> torch.Tensor:
    """``model``'s one-step x0 (a TrigFlowModel, data units) from pairs ``idx``'s noise at t = T_MAX, each pair's own
    w through its guidance embedding where it has one."""
    eps = pairs.noise(idx)
    t = torch.full((len(idx),), T_MAX)
    w = pairs.w[idx] if model.transformer.config.guidance_embeds else None
    F, _ = model(eps, t, *lookup(pairs.caption_ids[idx]), w)
    return x0_from_F(SIGMA_DATA * eps, t, F)


@torch.no_grad()
def one_step_errors(model, pairs: OdePairs, lookup, batch_size: int = 256) -> dict[str, float]:
    """Mean errors of ``model``'s one-step x0 (:func:`one_step_x0`) against the pairs' endpoints: the regression's
    per-element ``pseudo_huber`` and ``l2`` (losses/ode.py, model range) and the mean absolute difference in 8-bit
    ``levels`` of the clamped image."""
    sums = dict.fromkeys(ERRORS, 0.0)
    for lo in range(0, len(pairs), batch_size):
        idx = torch.arange(lo, min(len(pairs), lo + batch_size))
        x0 = one_step_x0(model, pairs, idx, lookup)
        target = SIGMA_DATA * to_model_range(pairs.x0[idx])
        for metric in ("pseudo_huber", "l2"):
            sums[metric] += len(idx) * ode_loss(x0, target, metric=metric).item()
        image = ((x0 / SIGMA_DATA).clamp(-1, 1) + 1) * 127.5
        sums["levels"] += len(idx) * (image - pairs.x0[idx].float()).abs().mean().item()
    return {k: v / len(pairs) for k, v in sums.items()}


def bank_sample(bank: OdePairs, n: int, seed: int = 0) -> OdePairs:
    """``n`` pairs of ``bank`` drawn without repeats (all of them when ``n`` >= its size)."""
    idx = torch.randperm(len(bank), generator=torch.Generator().manual_seed(seed))[:n]
    return OdePairs(bank.caption_ids[idx], bank.w[idx], bank.seeds[idx], bank.x0[idx])


def fresh_pairs(velocity, captions, train_caption_ids, bank: OdePairs, n: int, cfg_scales, seed: int,
                resolution: int, steps: int, progress: bool = True) -> OdePairs:
    """``n`` new pairs drawn as a bank is (training captions, w from ``cfg_scales``) with the noise seeds of draw
    ``seed``, integrated by the teacher ``velocity``; ValueError if any of their noise seeds is one of ``bank``'s."""
    ids, w, seeds = draw_pairs(train_caption_ids, n, cfg_scales, seed)
    shared = set(seeds.tolist()) & set(bank.seeds.tolist())
    if shared:
        raise ValueError(f"--fresh-seed {seed} draws {len(shared)} noise seeds of the bank's; choose another")
    null_t, null_m = captions.lookup(torch.tensor([captions.null_id]))
    return make_ode_pairs(velocity, captions.lookup, null_t, null_m, ids, w, seeds, resolution, steps,
                          progress=progress)


def main(argv=None) -> None:
    from sprint_bench.config import ConfigError, load_config
    from sprint_bench.lit.fit import seeded_data
    from sprint_bench.lit.train_distill import load_matching_teacher, ode_pairs_for
    from sprint_bench.models.export import load_student
    from sprint_bench.models.sana import FlowBackbone

    p = argparse.ArgumentParser(prog="python -m sprint_bench.lit.bank_fit", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="experiment YAML whose ODE-pair bank the students regressed on")
    p.add_argument("targets", nargs="+", metavar="STUDENT|KEY=VALUE",
                   help="exported student folders, and dotted config overrides (distill.ode_pairs=65536)")
    p.add_argument("--n", type=int, default=1024, help="pairs of each kind (default 1024)")
    p.add_argument("--fresh-seed", type=int, default=1000, help="draw of the fresh pairs' noise (default 1000)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    overrides = [a for a in args.targets if "=" in a]
    paths = [a for a in args.targets if "=" not in a]
    if not paths:
        p.error("name at least one exported student folder")
    if args.n < 1:
        p.error("--n must be positive")
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as e:
        p.error(str(e))
    if cfg.distill.ode_weight <= 0:
        p.error(f"{args.config} has no ODE-pair bank (distill.ode_weight is {cfg.distill.ode_weight})")
    try:  # a bad path fails before the bank and the fresh pairs are made
        students = [load_student(s) for s in paths]
    except (FileNotFoundError, ValueError) as e:
        p.error(str(e))
    torch.set_num_threads(args.threads)
    _, teacher, _, meta = load_matching_teacher(cfg)
    dm = seeded_data(cfg)
    bank = ode_pairs_for(cfg, teacher, meta, dm)
    fresh = fresh_pairs(FlowBackbone(teacher).eval(), dm.captions, dm.caption_ids, bank, args.n,
                        cfg.distill.cfg_scales, args.fresh_seed, cfg.world.resolution, cfg.distill.ode_steps)
    seen = bank_sample(bank, args.n, cfg.seed)
    print(f"one-step error against {cfg.distill.ode_steps}-step teacher endpoints, {args.n} pairs each: of the "
          f"bank ({len(bank)} pairs) / fresh")
    print("| student | pseudo-Huber | L2 | 8-bit levels |\n|---|---|---|---|")
    for path, (_, model, _) in zip(paths, students):
        a, b = (one_step_errors(model, pairs, dm.captions.lookup) for pairs in (seen, fresh))
        cells = " | ".join(f"{a[k]:.4f} / {b[k]:.4f} ({b[k] / a[k]:.2f}x)" for k in ERRORS)
        print(f"| {path} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
