"""Can a LADD discriminator tell real samples from a student's? Fresh heads of the config's discriminator (SANA-Sprint
§3.3; method reference §6.2) are trained alone against the one-step samples of the config's student
(``distill.student_init``, else the teacher copy), then scored on held-out batches: P(real > fake), how often a real
sample's mean logit beats a student sample's, and P(real > misaligned) for rolled (image, caption) pairs; 0.5 is
chance. A diagnostic for issue 4 (numbers in docs/RESULTS.md).

    python -m sprint_bench.lit.d_probe --config experiments/sprint/ablations/ode-two-stage-20step-w033.yaml \\
        --steps 400 [--d-lr 1e-3] distill.student_init=runs/<run>/export [distill.d_norm_stats=shared]
"""
from __future__ import annotations

import argparse
import json
from itertools import islice

import torch

from sprint_bench.losses.ladd import d_hinge_loss, misaligned


def ranking(real: torch.Tensor, other: torch.Tensor) -> float:
    """P(r > o) over every pair of a real score r and another score o (ties count one half)."""
    diff = real[:, None] - other[None, :]
    return ((diff > 0).float() + 0.5 * (diff == 0).float()).mean().item()


def d_inputs(module, batch, gen: torch.Generator):
    """Real, student-fake and misaligned discriminator inputs of one batch, each with its re-noise time, as a D step
    of ``module`` (a DistillModule) builds them (translated, re-noised), plus the batch's text and mask."""
    x0, text, mask, cond = module.batch_inputs(batch)
    w = module.draw_w(x0.shape[0], gen)
    with torch.no_grad():
        x0_hat = module.one_step_x0(x0, text, mask, w, gen, cond)
    sets = []
    for x in (x0, x0_hat, misaligned(x0)):
        s = module.renoise_time(x0.shape[0], gen)
        sets.append((module.d_input(x, s, gen), s))
    return sets, text, mask


def logits(module, sets, text, mask) -> list[torch.Tensor]:
    """The (B, N * K) logits of each set from ``module.disc``: a call per set, or one pass of the heads over all sets
    when the config shares their statistics (``distill.d_norm_stats: shared``), as the training steps do."""
    if module.cfg.distill.d_norm_stats == "shared":
        return module.d_logits_joint(sets, text, mask)
    return [module.d_logits(x, s, text, mask) for x, s in sets]


def probe(module, train_batches, test_batches, lr: float, seed: int = 0) -> dict:
    """Train fresh heads (``module.disc`` is replaced) on ``train_batches`` (hinge loss, AdamW, the config's clip),
    then score them on ``test_batches``."""
    cfg = module.cfg
    torch.manual_seed(seed)
    module.disc = disc = module.new_discriminator()
    opt = torch.optim.AdamW(disc.parameters(), lr=lr, betas=tuple(cfg.train.betas))
    clip = cfg.distill.d_grad_clip or float("inf")
    losses = []
    for k, batch in enumerate(train_batches):
        sets, text, mask = d_inputs(module, batch, torch.Generator().manual_seed(seed * 10**6 + k))
        real, fake, mis = logits(module, sets, text, mask)
        loss = d_hinge_loss(real, torch.cat([fake, mis]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(disc.parameters(), clip)
        opt.step()
        losses.append(loss.item())
    scores = {"real": [], "fake": [], "misaligned": []}
    with torch.no_grad():
        for k, batch in enumerate(test_batches):
            sets, text, mask = d_inputs(module, batch, torch.Generator().manual_seed((seed + 1) * 10**6 + 10**5 + k))
            for name, out in zip(scores, logits(module, sets, text, mask)):
                scores[name].append(out.mean(dim=1))
    real, fake, mis = (torch.cat(v) for v in scores.values())
    tail = losses[-20:]
    return {"steps": len(losses), "lr": lr, "stats": cfg.distill.d_norm_stats,
            "hinge_loss_last20": sum(tail) / max(1, len(tail)), "p_real_over_fake": ranking(real, fake),
            "p_real_over_misaligned": ranking(real, mis), "test_samples": len(real),
            "logit_gap_real_minus_fake": (real.mean() - fake.mean()).item()}


def _endless(loader):
    while True:
        yield from loader


def main(argv=None) -> dict:
    from sprint_bench.config import load_config
    from sprint_bench.lit.train_distill import build_distill_module, load_matching_teacher

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="a hybrid or LADD experiment YAML")
    ap.add_argument("--steps", type=int, default=400, help="discriminator training steps")
    ap.add_argument("--test-batches", type=int, default=8)
    ap.add_argument("--d-lr", type=float, help="heads' lr (default: the config's distill.d_lr, else train.lr)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.test_batches < 1:
        raise SystemExit("--steps and --test-batches must be >= 1")
    cfg = load_config(args.config, args.overrides)
    if not cfg.distill.uses_adv:
        raise SystemExit(f"{args.config}: distill.loss is {cfg.distill.loss!r}; it has no discriminator")
    if cfg.control.enabled:
        raise SystemExit(f"{args.config}: a ControlNet student; the probe feeds the heads no edge condition")
    torch.set_num_threads(args.threads)
    dm, module = build_distill_module(cfg, *load_matching_teacher(cfg))
    module.eval()
    batches = list(islice(_endless(dm.train_dataloader()), args.steps + args.test_batches))
    lr = args.d_lr or cfg.distill.d_lr or cfg.train.lr
    result = {"config": str(args.config), "student_init": cfg.distill.student_init or "teacher copy",
              **probe(module, batches[:args.steps], batches[args.steps:], lr)}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
