"""What ``distill.compile`` buys: each compiled call of a distillation step (lit/compiled.py) against the same call
run eagerly, on the configured student and released teacher at the training batch (median of ``--steps`` calls
each after warm-up, eager and compiled timed in turns; the compilation time reported apart). Prints JSON."""
from __future__ import annotations

import json
import statistics
import time

import torch

from sprint_bench.config import load_config
from sprint_bench.eval.latency import device_info, pinned_threads
from sprint_bench.lit.bench_distill import distill_module, interleaved, parse_args
from sprint_bench.lit.compiled import model_F, model_features, model_jvp, model_out
from sprint_bench.lit.distill import DistillModule
from sprint_bench.losses.scm import tangents
from sprint_bench.param.trigflow import SIGMA_DATA, trig_noise


def flat(out) -> torch.Tensor:
    """A call's output as one flat tensor: F of (F, logvar), the features of a list concatenated."""
    out = out[0] if isinstance(out, tuple) else out
    return torch.cat([o.flatten() for o in out]) if isinstance(out, list) else out.flatten()


def with_backward(fn, wrt: list[torch.Tensor] | None):
    """``fn``, and with ``wrt`` the backward pass of a fixed random projection of its output after it, returning the
    gradient on ``wrt`` (flattened): a call that carries gradients is timed and compared with its backward."""
    if wrt is None:
        return fn
    proj = {}

    def call(*args):
        out = flat(fn(*args))
        if "w" not in proj:
            proj["w"] = torch.randn(out.numel(), generator=torch.Generator().manual_seed(1))
        grads = torch.autograd.grad((out * proj["w"]).sum(), wrt, allow_unused=True)
        return torch.cat([g.flatten() for g in grads if g is not None])
    return call


def calls(module: DistillModule, ids: torch.Tensor, gen: torch.Generator) -> dict[str, tuple]:
    """(fn, args, grad, wrt) of each compiled call for the captions ``ids`` (batch b), on inputs shaped as in
    training; ``grad``: run with gradients enabled (the JVP; the calls with a backward); ``wrt``: the tensors whose
    gradient the backward computes (None: no backward)."""
    res, b = module.cfg.world.resolution, ids.shape[0]
    text, mask = module.text(ids)
    t = torch.rand(b, generator=gen) * 1.5 + 0.05
    x_t = trig_noise(SIGMA_DATA * torch.randn(b, 3, res, res, generator=gen),
                     SIGMA_DATA * torch.randn(b, 3, res, res, generator=gen), t)
    tx, tt = tangents(x_t, t, torch.randn(b, 3, res, res, generator=gen))
    guid = module.guidance(torch.full((b,), 3.0))
    two, three = torch.cat([x_t, x_t]), torch.cat([x_t, x_t, x_t])
    student_params = [p for p in module.student.parameters() if p.requires_grad]
    out = {"teacher_cfg_call_2B": (model_F, (module.teacher, two / SIGMA_DATA, torch.cat([t, t]), text.repeat(2, 1, 1),
                                             mask.repeat(2, 1), None), False, None),
           "student_jvp_B": (model_jvp, (module.student, x_t / SIGMA_DATA, t, tx, tt, text, mask, guid), True, None),
           "student_call_backward_B": (model_out, (module.student, x_t / SIGMA_DATA, t, text, mask, guid), True,
                                       student_params)}
    if module.disc is not None:
        out["teacher_features_3B"] = (model_features, (module.disc, module.teacher, three / SIGMA_DATA,
                                                       torch.cat([t, t, t]), text.repeat(3, 1, 1), mask.repeat(3, 1)),
                                      False, None)
        fake = (x_t / SIGMA_DATA).requires_grad_(True)  # a G step's fakes: the gradient reaches them
        out["teacher_features_backward_B"] = (model_features, (module.disc, module.teacher, fake, t, text, mask),
                                              True, [fake])
    return out


def main(argv=None) -> dict:
    args = parse_args(argv, __doc__, "experiments/sprint/hybrid.yaml", steps=10, warmup=2, min_steps=5)
    cfg = load_config(args.config, args.overrides)
    if cfg.distill.tangent != "jvp":
        raise SystemExit("bench_compile times the JVP pass: use a config with distill.tangent: jvp")
    dm, _, module = distill_module(cfg)
    b = cfg.data.batch_size
    report = {"batch": b, "device": device_info("cpu")["device_name"], "dtype": "float32", "steps_timed": args.steps,
              "calls": {}}
    with pinned_threads(args.threads) as pin:
        report["threads"] = pin["threads"]
        entries = calls(module, dm.caption_ids[:b], torch.Generator().manual_seed(0))
        for name, (fn, fargs, grad, wrt) in entries.items():
            # grad mode as in training: the JVP and the calls with a backward under grad, the others under no_grad
            mode = torch.enable_grad if grad else torch.no_grad
            fn, compiled = mode()(with_backward(fn, wrt)), mode()(with_backward(torch.compile(fn), wrt))
            t0 = time.perf_counter()
            got = compiled(*fargs)
            compile_s = time.perf_counter() - t0
            ref = fn(*fargs)
            got, ref = flat(got), flat(ref)
            t = interleaved({"eager": lambda: fn(*fargs), "compiled": lambda: compiled(*fargs)}, args.steps,
                            args.warmup)
            eager_ms, comp_ms = statistics.median(t["eager"]), statistics.median(t["compiled"])
            report["calls"][name] = {"eager_ms_median": eager_ms, "compiled_ms_median": comp_ms,
                                     "speedup": eager_ms / comp_ms, "first_call_s": compile_s,
                                     "max_rel_diff": float((got - ref).abs().max() / ref.abs().max())}
            print(name, json.dumps(report["calls"][name]), flush=True)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
