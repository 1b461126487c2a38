"""Training-cost benchmark: one sCM generator step vs one teacher flow-matching step at the same batch, same
process, same threads (median of ``--steps`` timed steps each after warm-up, the two kinds timed in turns so that a
drift in the host's speed reaches both alike). The sCM step runs with ``distill.compile`` as configured (the JSON
says which), the teacher step eagerly, as each is trained here. `make bench-distill`."""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from sprint_bench.config import load_config
from sprint_bench.data.datamodule import ShapesDataModule, to_model_range
from sprint_bench.eval.latency import device_info, pinned_threads
from sprint_bench.lit.distill import DistillModule
from sprint_bench.lit.train_distill import load_matching_teacher
from sprint_bench.losses.flow_matching import flow_matching_loss, interpolate
from sprint_bench.param.trigflow import SIGMA_DATA


def interleaved(steps: dict, n: int, warmup: int) -> dict[str, list[float]]:
    """Milliseconds of ``n`` calls of each step function, timed in turns (A, B, A, B, ...) after ``warmup`` untimed
    calls of each: on a shared host whose speed drifts, timing all of A and then all of B biases their ratio."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    out = {name: [] for name in steps}
    for _ in range(n):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            out[name].append((time.perf_counter() - t0) * 1e3)
    return out


def parse_args(argv, doc: str, config: str, steps: int, warmup: int, min_steps: int) -> argparse.Namespace:
    """The benchmarks' shared command line: a config with dotted overrides, timed steps, warm-up, threads."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--config", default=config)
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--warmup", type=int, default=warmup)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. data.batch_size=64")
    args = ap.parse_args(argv)
    if args.steps < min_steps:
        raise SystemExit(f"--steps must be >= {min_steps} (median of at least {min_steps} steps)")
    return args


def distill_module(cfg) -> tuple[ShapesDataModule, torch.nn.Module, DistillModule]:
    """(data, frozen flow-matching teacher, DistillModule in train mode) for ``cfg``."""
    dm = ShapesDataModule(cfg)
    dm.setup("fit")
    _, fm, _, _ = load_matching_teacher(cfg)
    return dm, fm, DistillModule(cfg, dm.captions, fm).train()


def main(argv=None) -> dict:
    args = parse_args(argv, __doc__, "experiments/sprint/scm.yaml", steps=20, warmup=3, min_steps=10)
    cfg = load_config(args.config, ["distill.loss=scm", "distill.scm_weight=1.0", *args.overrides])
    dm, fm, module = distill_module(cfg)
    b = cfg.data.batch_size
    images, ids = dm.images[:b], dm.caption_ids[:b]
    text, mask = module.text(ids)
    x0 = to_model_range(images)

    fm.train().requires_grad_(True)
    opt_t = torch.optim.AdamW(fm.parameters(), lr=1e-5)
    gen = torch.Generator().manual_seed(0)

    def teacher_step():
        tau = torch.sigmoid(torch.randn(b, generator=gen))
        eps = torch.randn(x0.shape, generator=gen)
        v = fm(hidden_states=interpolate(x0, eps, tau), encoder_hidden_states=text, timestep=tau,
               encoder_attention_mask=mask, return_dict=False)[0]
        loss = flow_matching_loss(v, x0, eps)
        opt_t.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(fm.parameters(), 1.0)
        opt_t.step()

    opt_s = torch.optim.AdamW(module.student.parameters(), lr=1e-5)

    def scm_step():
        loss, _ = module.generator_loss(SIGMA_DATA * x0, text, mask, gen, k=10**6)
        opt_s.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.student.parameters(), 1.0)
        opt_s.step()

    with pinned_threads(args.threads) as pin:
        t = interleaved({"teacher": teacher_step, "scm": scm_step}, args.steps, args.warmup)
    res = {"batch": b, "threads": pin["threads"], "tangent": cfg.distill.tangent, "steps_timed": args.steps,
           "scm_compiled": cfg.distill.compile, "teacher_compiled": False,
           "order": "interleaved", "teacher_fm_step_ms_median": statistics.median(t["teacher"]),
           "scm_g_step_ms_median": statistics.median(t["scm"]),
           "device": device_info("cpu")["device_name"], "dtype": "float32"}
    res["ratio"] = res["scm_g_step_ms_median"] / res["teacher_fm_step_ms_median"]
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
