"""Which generator term drives a hybrid student: the norm of the gradient that each weighted term (lambda_sCM L_sCM,
lambda_adv L_adv; SANA-Sprint Eq. 11) puts on the student's parameters, on the same batches, at initialisation or at
a training checkpoint. A diagnostic for the weight axis (paper Table 5); numbers in docs/RESULTS.md (issue 4).

    python -m sprint_bench.lit.grad_balance --config experiments/sprint/hybrid.yaml \\
        --checkpoint runs/sprint-hybrid-<hash>/checkpoints/last.ckpt
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def part_grad_norms(module, batches, k: int) -> dict[str, list[float]]:
    """||d part / d theta_student|| for each weighted generator term of ``module`` (a DistillModule) on each of
    ``batches``, with the randomness of global step ``k + i`` for batch i and the tangent warm-up at step k."""
    norms: dict[str, list[float]] = {}
    params = [p for p in module.student.parameters() if p.requires_grad]
    for i, batch in enumerate(batches):
        x0, text, mask, cond = module.batch_inputs(batch)
        parts, _ = module.generator_parts(x0, text, mask, module.step_generator(k + i), k, cond)
        for name, loss in parts.items():  # the terms' graphs share only the parameters
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            norms.setdefault(name, []).append(torch.sqrt(sum((g.double() ** 2).sum() for g in grads
                                                             if g is not None)).item())
    return norms


def main(argv=None) -> dict:
    from sprint_bench.config import load_config
    from sprint_bench.lit.train_distill import build_distill_module, load_matching_teacher

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="the student's experiment YAML")
    ap.add_argument("--checkpoint", type=Path,
                    help="a Lightning checkpoint of that config (default: the initial student)")
    ap.add_argument("--batches", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    if not (cfg.distill.uses_scm and cfg.distill.uses_adv):
        raise SystemExit(f"{args.config}: distill.loss is {cfg.distill.loss!r}; the balance needs both terms (hybrid)")
    if args.checkpoint is not None and not args.checkpoint.is_file():
        raise SystemExit(f"no checkpoint file {args.checkpoint}")
    torch.set_num_threads(args.threads)
    dm, module = build_distill_module(cfg, *load_matching_teacher(cfg))
    if args.checkpoint is not None:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)["state_dict"]
        missing, unexpected = module.load_state_dict(state, strict=False)
        if [m for m in missing if not m.startswith("text_")] or unexpected:
            raise SystemExit(f"{args.checkpoint} does not match {args.config}: missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}")
    loader = iter(dm.train_dataloader())
    batches = [next(loader) for _ in range(args.batches)]
    k = int(module.k)
    norms = {n: torch.tensor(v) for n, v in part_grad_norms(module, batches, k).items()}
    result = {"config": str(args.config), "checkpoint": str(args.checkpoint or "initial student"), "k": k,
              "batches": args.batches}
    for stat in ("median", "mean"):  # the sCM term's 1 / (sigma_d tan t) weight makes its norms heavy-tailed
        for n, v in norms.items():
            result[f"grad_norm_{n}_{stat}"] = getattr(v, stat)().item()
        result[f"adv_over_scm_{stat}"] = result[f"grad_norm_adv_{stat}"] / result[f"grad_norm_scm_{stat}"]
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
