"""Distillation end to end on the micro preset: every experiment YAML trains two G/D steps and exports; the NaN
guard skips and counts; a killed run resumes with its G/D phase and warmup counter; DDP keeps ranks equal."""
import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from safetensors.torch import load_file

from sprint_bench.config import ConfigError, load_config
from sprint_bench.eval.generators import load_generator
from sprint_bench.tracking.eval_runs import NO_GUIDANCE, guidance_label

REPO = Path(__file__).resolve().parents[2]
YAMLS = sorted((REPO / "experiments" / "sprint").rglob("*.yaml"))
MICRO = ["model.width=32", "model.depth=1", "model.heads=2", "model.cross_heads=2", "data.train_size=64",
         "data.batch_size=4", "train.checkpoint_every=2", "train.sample_every=1000", "train.log_every=1",
         "train.threads=1", "distill.head_blocks=[0]", "distill.tangent_warmup_steps=2", "distill.ode_pairs=16",
         "distill.compile=false"]  # compiled once, in test_compiled_calls_give_the_eager_scm_gradients


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A micro flow-matching teacher (random weights) exported like a released one."""
    from sprint_bench.models.release import export_teacher
    from sprint_bench.models.sana import FlowBackbone, build_sana

    root = tmp_path_factory.mktemp("teacher")
    cfg = load_config(REPO / "experiments" / "base.yaml", MICRO[:4] + ["data.train_size=64", "data.batch_size=4"])
    torch.manual_seed(0)
    return export_teacher(FlowBackbone(build_sana(cfg.model, 3, cfg.world.resolution)), cfg, root / "export", 0)


def micro(path, out: Path, teacher: Path, *extra: str):
    return load_config(path, MICRO + [f"distill.teacher={teacher}", f"output_dir={out}",
                                      f"tracking.tracking_uri=sqlite:///{out / 'mlflow.db'}", *extra])


def assert_export_weights(got: dict, export: Path):
    """The state dict ``got`` holds exactly the transformer weights of the student export ``export``."""
    want = load_file(export / "transformer" / "diffusion_pytorch_model.safetensors")
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def train_micro(path, out: Path, teacher: Path, *extra: str, callbacks=()):
    """(config, export) of two micro steps of ``path``; a second stage (``distill.student_init``) starts from a micro
    run of the same YAML from the teacher, which stands in for its init."""
    from sprint_bench.lit.train_distill import train_distill

    cfg = micro(path, out, teacher, "train.max_steps=2", *extra)
    if cfg.distill.student_init:
        first = train_distill(micro(path, out / "first-stage", teacher, "train.max_steps=2",
                                    "distill.student_init=null"))
        cfg = micro(path, out, teacher, "train.max_steps=2", *extra, f"distill.student_init={first}")
    return cfg, train_distill(cfg, extra_callbacks=callbacks)


def meta(export: Path) -> dict:
    return json.loads((export / "sprint_bench.json").read_text())


@pytest.mark.parametrize("path", YAMLS, ids=[str(p.relative_to(REPO / "experiments")) for p in YAMLS])
def test_every_experiment_yaml_smoke_runs(path, tmp_path_factory, teacher):
    out = tmp_path_factory.getbasetemp() / "smoke"  # shared: the rendered data and caption cache are reused
    cfg, export = train_micro(path, out, teacher)
    m = meta(export)
    assert m["kind"] == "scm_student" and m["global_step"] == 2 and m["k"] == 2 and m["skipped_steps"] == 0
    assert (export / "transformer").is_dir() and (export / "scheduler" / "scheduler_config.json").exists()
    assert m["guidance_embeds"] == cfg.distill.guidance_embed
    # what its evaluations log as guidance: the scale only where the student's embedding uses it
    assert guidance_label(load_generator(export), 3.0) == (3.0 if cfg.distill.guidance_embed else NO_GUIDANCE)


def test_nan_guard_skips_and_counts(tmp_path, teacher):
    import mlflow

    from sprint_bench.lit.train_distill import run_dir, train_distill

    cfg = micro(REPO / "experiments/sprint/hybrid.yaml", tmp_path, teacher, "train.max_steps=6",
                "distill.debug_nan_steps=[1,2]", "distill.logvar=true")  # one D step and one G step
    export = train_distill(cfg)
    m = meta(export)
    assert m["skipped_steps"] == 2 and m["global_step"] == 6 and m["k"] == 8  # training went on past the skips
    for v in load_file(export / "transformer" / "diffusion_pytorch_model.safetensors").values():
        assert torch.isfinite(v).all()
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = (run_dir(cfg) / "mlflow_run_id").read_text().strip()
    hist = client.get_metric_history(run_id, "train/skipped_steps")
    assert max(h.value for h in hist) == 2
    names = set(client.get_run(run_id).data.metrics)
    assert {"train/loss_scm", "train/loss_g_adv", "train/loss_d", "train/g_norm", "train/grad_norm_student",
            "train/grad_norm_disc", "train/logvar"} <= names


class _Kill(L.Callback):
    def __init__(self, at: int):
        self.at = at

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if int(pl_module.k) == self.at:
            raise RuntimeError("simulated kill")


class _FirstK(L.Callback):
    k = None

    def on_train_start(self, trainer, pl_module):
        _FirstK.k = (int(pl_module.k), pl_module.phase(int(pl_module.k)), trainer.global_step)


def test_kill_and_resume_keeps_phase_and_warmup(tmp_path, teacher):
    from sprint_bench.lit.train_distill import train_distill

    extra = ("train.max_steps=8", "train.checkpoint_every=3", "distill.tangent_warmup_steps=6")
    straight = train_distill(micro(REPO / "experiments/sprint/hybrid.yaml", tmp_path / "a", teacher, *extra))
    cfg = micro(REPO / "experiments/sprint/hybrid.yaml", tmp_path / "b", teacher, *extra)
    with pytest.raises(RuntimeError, match="simulated kill"):
        train_distill(cfg, extra_callbacks=[_Kill(5)])
    resumed = train_distill(cfg, extra_callbacks=[_FirstK()])
    assert _FirstK.k == (3, "D", 3)  # restarted from the step-3 checkpoint: k = 3, a discriminator step next
    a = load_file(straight / "transformer" / "diffusion_pytorch_model.safetensors")
    b = load_file(resumed / "transformer" / "diffusion_pytorch_model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=f"resumed weights differ at {key}")
    assert meta(resumed)["k"] == 8


def test_compiled_calls_give_the_eager_scm_gradients(tmp_path, teacher):
    """distill.compile (on by default): the sCM term of one generator batch, and its gradient on the student,
    equal those of the eager teacher call and JVP pass, through the DistillModule's own wiring."""
    from sprint_bench.lit.train_distill import build_distill_module, load_matching_teacher

    out = {}
    for flag in (False, True):
        cfg = micro(REPO / "experiments/sprint/scm.yaml", tmp_path, teacher, f"distill.compile={flag}")
        torch.manual_seed(0)
        dm, module = build_distill_module(cfg, *load_matching_teacher(cfg))
        x0, text, mask, cond = module.batch_inputs(next(iter(dm.train_dataloader())))
        parts, _ = module.generator_parts(x0, text, mask, module.step_generator(10), 10, cond)
        params = [p for p in module.student.parameters() if p.requires_grad]
        grads = torch.autograd.grad(parts["scm"], params, allow_unused=True)
        out[flag] = (parts["scm"].detach(), torch.cat([g.flatten() for g in grads if g is not None]),
                     module.__dict__.get("_compiled", {}))
    assert out[False][2] == {}
    assert sorted(out[True][2]) == ["model_F", "model_jvp", "model_out"]
    assert all(c.compiled for c in out[True][2].values())
    torch.testing.assert_close(out[True][0], out[False][0], rtol=1e-5, atol=0)
    rel = float((out[True][1] - out[False][1]).norm() / out[False][1].norm())
    assert rel < 1e-4 and out[False][1].norm() > 0, f"compiled vs eager sCM gradient: relative error {rel:.2e}"


@pytest.mark.parametrize("stats,r1", [("local", 0.0), ("shared", 0.0), ("local", 1.0)])
def test_compiled_teacher_features_give_the_eager_ladd_losses(tmp_path, teacher, stats, r1):
    """distill.compile: the student's calls and the teacher's feature passes of D and G steps are compiled (R1's
    twice-differentiated pass stays eager); the D loss, the G adversarial term and their gradients equal the eager
    ones."""
    from sprint_bench.lit.train_distill import build_distill_module, load_matching_teacher

    out = {}
    for flag in (False, True):
        cfg = micro(REPO / "experiments/sprint/ladd.yaml", tmp_path, teacher, f"distill.compile={flag}",
                    f"distill.d_norm_stats={stats}", f"distill.r1_weight={r1}")
        torch.manual_seed(0)
        dm, module = build_distill_module(cfg, *load_matching_teacher(cfg))
        x0, text, mask, cond = module.batch_inputs(next(iter(dm.train_dataloader())))
        d_loss, _ = module.d_step_loss(x0, text, mask, module.step_generator(1), cond)
        d_grads = torch.autograd.grad(d_loss, list(module.disc.parameters()))
        g_adv = module.generator_parts(x0, text, mask, module.step_generator(2), 2, cond)[0]["adv"]
        g_grads = torch.autograd.grad(g_adv, [p for p in module.student.parameters() if p.requires_grad],
                                      allow_unused=True)
        flat = [torch.cat([g.flatten() for g in gs if g is not None]) for gs in (d_grads, g_grads)]
        out[flag] = (d_loss.detach(), g_adv.detach(), *flat, module.__dict__.get("_compiled", {}))
    assert out[False][4] == {}
    assert sorted(out[True][4]) == ["model_features", "model_out"] and all(c.compiled for c in out[True][4].values())
    for a, b in zip(out[True][:2], out[False][:2]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(out[True][2:4], out[False][2:4]):
        rel = float((a - b).norm() / b.norm())
        assert rel < 1e-4 and b.norm() > 0, f"compiled vs eager LADD gradient: relative error {rel:.2e}"


class _CompiledCalls(L.Callback):
    calls = None

    def on_train_end(self, trainer, pl_module):
        _CompiledCalls.calls = {n: c.compiled for n, c in pl_module.__dict__.get("_compiled", {}).items()}


def compiled_calls(path, out: Path, teacher: Path) -> dict:
    """Which calls ran compiled (none fallen back to eager) in two micro steps of ``path`` with distill.compile on."""
    _CompiledCalls.calls = None
    train_micro(path, out, teacher, "distill.compile=true", callbacks=[_CompiledCalls()])
    return _CompiledCalls.calls


def test_second_stage_runs_every_call_compiled(tmp_path, teacher):
    """`make best-student`'s last stage (a student from an export, EMA, ODE regression, DMD, heads) trains with every
    call compiled, none fallen back to eager (its JVP used to: the loaded student's transformer carried a hook of the
    loading wrapper)."""
    calls = compiled_calls(REPO / "experiments/sprint/best/4-second-stage-dmd.yaml", tmp_path, teacher)
    assert calls == {n: True for n in ("model_F", "model_features", "model_jvp", "model_out")}


@pytest.mark.slow
@pytest.mark.parametrize("path", YAMLS, ids=[str(p.relative_to(REPO / "experiments")) for p in YAMLS])
def test_every_experiment_yaml_runs_compiled(path, tmp_path_factory, teacher):
    """Every experiment YAML, two micro steps with ``distill.compile`` on as it trains by default: each compiled call
    stays compiled (a fallback to eager gives the same numbers, slower, so only this check sees one)."""
    calls = compiled_calls(path, tmp_path_factory.mktemp("compiled"), teacher)
    assert calls and all(calls.values()), calls


class _Phases(L.Callback):
    def __init__(self):
        self.phases, self.updates = [], None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.phases.append(pl_module.phase(int(pl_module.k)))

    def on_train_end(self, trainer, pl_module):
        self.updates = [int(next(iter(o.state.values()))["step"]) for o in trainer.optimizers]


def test_d_steps_runs_several_discriminator_steps_per_generator_step(tmp_path, teacher):
    """distill.d_steps=2: G, D, D, G, D, D; the generator's optimiser steps once per cycle, the heads' twice."""
    from sprint_bench.lit.train_distill import train_distill

    rec = _Phases()
    export = train_distill(micro(REPO / "experiments/sprint/hybrid.yaml", tmp_path, teacher, "train.max_steps=6",
                                 "distill.d_steps=2"), extra_callbacks=[rec])
    assert rec.phases == ["G", "D", "D", "G", "D", "D"] and rec.updates == [2, 4]
    assert meta(export)["k"] == 6
    with pytest.raises(ConfigError, match="d_steps=2 needs a D phase"):
        micro(REPO / "experiments/sprint/scm.yaml", tmp_path, teacher, "distill.d_steps=2")


def test_grad_balance_measures_each_weighted_term(tmp_path, teacher):
    """The diagnostic's per-term gradients add up to the generator loss's gradient, scale with the term weights, and
    a checkpoint of another config is refused."""
    from sprint_bench.lit.distill import DistillModule
    from sprint_bench.lit.fit import resume_checkpoint, seeded_data
    from sprint_bench.lit.grad_balance import main, part_grad_norms
    from sprint_bench.lit.train_distill import load_matching_teacher, run_dir, train_distill

    hybrid = REPO / "experiments/sprint/hybrid.yaml"
    cfg = micro(hybrid, tmp_path, teacher, "train.max_steps=4")
    train_distill(cfg)
    ckpt = resume_checkpoint(run_dir(cfg) / "checkpoints")
    _, t, _, _ = load_matching_teacher(cfg)
    dm = seeded_data(cfg)
    module = DistillModule(cfg, dm.captions, t)
    batch = next(iter(dm.train_dataloader()))
    x0, text, mask, cond = module.batch_inputs(batch)
    assert cond is None  # no ControlNet
    params = list(module.student.parameters())
    parts, _ = module.generator_parts(x0, text, mask, module.step_generator(7), 7)
    assert set(parts) == {"scm", "adv"}
    per_part = [torch.autograd.grad(v, params, allow_unused=True) for v in parts.values()]
    total, _ = module.generator_loss(x0, text, mask, module.step_generator(7), 7)
    for g_total, *g_parts in zip(torch.autograd.grad(total, params, allow_unused=True), *per_part):
        if g_total is not None:
            torch.testing.assert_close(g_total, sum(g for g in g_parts if g is not None), rtol=1e-5, atol=1e-8)

    norms = part_grad_norms(module, [batch, batch], 7)
    module.cfg.distill.adv_weight *= 2  # the adversarial gradient doubles, the sCM one stays
    doubled = part_grad_norms(module, [batch, batch], 7)
    assert all(v > 0 for v in norms["scm"] + norms["adv"]) and norms["scm"][0] != norms["scm"][1]  # step k + i
    assert doubled["scm"] == pytest.approx(norms["scm"], rel=1e-6)
    assert doubled["adv"] == pytest.approx([2 * v for v in norms["adv"]], rel=1e-5)

    overrides = MICRO + [f"distill.teacher={teacher}", f"output_dir={tmp_path}",
                         f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}"]
    out = main(["--config", str(hybrid), "--checkpoint", str(ckpt), "--batches", "2", "--threads", "1", *overrides])
    assert out["k"] == 4 and out["grad_norm_scm_median"] > 0 and out["adv_over_scm_median"] == pytest.approx(
        out["grad_norm_adv_median"] / out["grad_norm_scm_median"])
    with pytest.raises(SystemExit, match="balance needs both terms"):
        main(["--config", str(REPO / "experiments/sprint/scm.yaml"), *overrides])
    with pytest.raises(SystemExit, match="does not match"):
        main(["--config", str(hybrid), "--checkpoint", str(ckpt), *overrides, "distill.head_blocks=[0,0]"])


def test_d_probe_trains_fresh_heads_and_ranks_real_over_fake(tmp_path, teacher):
    """The discriminator diagnostic: pairwise ranking by hand; the command trains fresh heads on a micro hybrid, with
    local or shared batch-norm statistics, and refuses a config without a discriminator or with a ControlNet."""
    from sprint_bench.lit.d_probe import main, ranking

    assert ranking(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 0.0])) == 0.75  # 1>0, 3>2, 3>0 of four pairs
    assert ranking(torch.tensor([1.0]), torch.tensor([1.0])) == 0.5

    hybrid = REPO / "experiments/sprint/hybrid.yaml"
    overrides = MICRO + [f"distill.teacher={teacher}", f"output_dir={tmp_path}",
                         f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}"]
    args = ["--config", str(hybrid), "--steps", "3", "--test-batches", "2", "--threads", "1"]
    local = main(args + overrides)
    shared = main(args + ["--d-lr", "1e-3"] + overrides + ["distill.d_norm_stats=shared"])
    for out in (local, shared):
        assert out["steps"] == 3 and out["test_samples"] == 2 * 4 and out["student_init"] == "teacher copy"
        assert 0 <= out["p_real_over_fake"] <= 1 and 0 <= out["p_real_over_misaligned"] <= 1
        assert torch.isfinite(torch.tensor(out["hinge_loss_last20"]))
    assert (local["stats"], local["lr"], shared["stats"], shared["lr"]) == ("local", 2e-4, "shared", 1e-3)
    assert local["hinge_loss_last20"] != shared["hinge_loss_last20"]
    with pytest.raises(SystemExit, match="no discriminator"):
        main(["--config", str(REPO / "experiments/sprint/scm.yaml"), *overrides])
    with pytest.raises(SystemExit, match="ControlNet"):
        main(["--config", str(REPO / "experiments/controlnet/sprint.yaml"), *overrides, "control.num_blocks=1"])


def test_shared_norm_statistics_span_real_and_fakes(tmp_path, teacher):
    """distill.d_norm_stats=shared: the heads normalise over the whole call; one pass over [real, fake, misaligned]
    equals a single call on the concatenated sets, so a fake's logits depend on the reals beside it; only the sets in
    ``graph`` carry gradients back to their inputs; D and G steps both run and the adversarial term reaches the
    student."""
    from sprint_bench.lit.distill import DistillModule
    from sprint_bench.lit.fit import seeded_data
    from sprint_bench.lit.train_distill import load_matching_teacher
    from sprint_bench.models.discriminator import LocalBatchNorm

    cfg = micro(REPO / "experiments/sprint/hybrid.yaml", tmp_path, teacher, "distill.d_norm_stats=shared")
    _, t, _, _ = load_matching_teacher(cfg)
    dm = seeded_data(cfg)
    module = DistillModule(cfg, dm.captions, t)
    norms = [m for m in module.disc.modules() if isinstance(m, LocalBatchNorm)]
    assert norms and all(m.group is None for m in norms)
    x0, text, mask, _ = module.batch_inputs(next(iter(dm.train_dataloader())))
    b = x0.shape[0]
    gen = torch.Generator().manual_seed(0)
    fake = torch.randn_like(x0) * 0.1
    sets = [(module.d_input(x, torch.full((b,), s), gen), torch.full((b,), s))
            for x, s in ((x0, 0.3), (fake, 0.5), (x0.flip(0), 0.7))]
    sets[1][0].requires_grad_(True)
    sets[0][0].requires_grad_(True)
    joint = module.d_logits_joint(sets, text, mask, graph=(1,))
    one_call = module.d_logits(torch.cat([x for x, _ in sets]), torch.cat([s for _, s in sets]),
                               text.repeat(3, 1, 1), mask.repeat(3, 1)).chunk(3)
    for a, c in zip(joint, one_call):
        torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-4)
    g_fake, g_real = torch.autograd.grad(joint[1].sum(), [sets[1][0], sets[0][0]], allow_unused=True)
    assert g_fake.abs().sum() > 0 and g_real is None  # the reals enter the statistics as constants
    brighter = [(sets[0][0].detach() + 0.5, sets[0][1])] + sets[1:]
    assert not torch.allclose(module.d_logits_joint(brighter, text, mask)[1], joint[1].detach(), atol=1e-4)
    loss_d, logs = module.discriminator_loss(x0, text, mask, module.step_generator(1))
    assert torch.isfinite(loss_d) and set(logs) >= {"loss_d", "d_real", "d_fake"}
    parts, logs = module.generator_parts(x0, text, mask, module.step_generator(0), 0)
    grads = torch.autograd.grad(parts["adv"], list(module.student.parameters()), allow_unused=True)
    assert torch.isfinite(logs["loss_g_adv"]) and sum(float(g.abs().sum()) for g in grads if g is not None) > 0


def test_conditional_heads_take_each_sets_captions(tmp_path, teacher):
    """distill.d_text_proj: the heads gain caption projections; in one pass over several sets (shared statistics)
    each set is scored against the batch's captions, so other captions change every set's logits; D and G steps
    run."""
    from sprint_bench.lit.distill import DistillModule
    from sprint_bench.lit.fit import seeded_data
    from sprint_bench.lit.train_distill import load_matching_teacher

    cfg = micro(REPO / "experiments/sprint/hybrid.yaml", tmp_path, teacher, "distill.d_norm_stats=shared",
                "distill.d_text_proj=true")
    _, t, _, _ = load_matching_teacher(cfg)
    dm = seeded_data(cfg)
    module = DistillModule(cfg, dm.captions, t)
    assert module.disc.conditional and all(h.cmap.in_features == module.text_hidden.shape[-1] for h in module.disc.heads)
    x0, text, mask, _ = module.batch_inputs(next(iter(dm.train_dataloader())))
    gen = torch.Generator().manual_seed(0)
    sets = module.reference_sets(x0, gen)
    with torch.no_grad():
        a, b = (module.d_logits_joint(sets, tx, mask) for tx in (text, text.roll(1, 0)))
    assert all(not torch.allclose(p, q) for p, q in zip(a, b))
    loss_d, _ = module.discriminator_loss(x0, text, mask, module.step_generator(1))
    parts, logs = module.generator_parts(x0, text, mask, module.step_generator(0), 0)
    assert torch.isfinite(loss_d) and torch.isfinite(logs["loss_g_adv"])


def test_ode_regression_term_uses_the_bank(tmp_path, teacher):
    """With distill.ode_weight the generator loss gains lambda_ODE L_ODE on pairs from the cached bank (made on the
    first run, read on the next); its gradient reaches the student, and a module without the bank is refused."""
    from sprint_bench.lit.distill import DistillModule
    from sprint_bench.lit.fit import seeded_data
    from sprint_bench.lit.train_distill import load_matching_teacher, ode_pairs_for

    cfg = micro(REPO / "experiments/sprint/ablations/ode-regression.yaml", tmp_path, teacher, "train.max_steps=2")
    assert cfg.distill.ode_weight > 0
    _, t, _, t_meta = load_matching_teacher(cfg)
    dm = seeded_data(cfg)
    bank = ode_pairs_for(cfg, t, t_meta, dm)
    assert len(bank) == 16 and len(list((tmp_path / "cache" / "ode-pairs").glob("*.pt"))) == 1
    with pytest.raises(ValueError, match="needs the teacher ODE-pair bank"):
        DistillModule(cfg, dm.captions, t)
    module = DistillModule(cfg, dm.captions, t, None, bank)
    x0, text, mask, cond = module.batch_inputs(next(iter(dm.train_dataloader())))
    parts, logs = module.generator_parts(x0, text, mask, module.step_generator(0), 0)
    assert set(parts) == {"scm", "adv", "ode"} and logs["loss_ode"] > 0
    torch.testing.assert_close(parts["ode"], cfg.distill.ode_weight * logs["loss_ode"])
    grads = torch.autograd.grad(parts["ode"], list(module.student.parameters()), allow_unused=True)
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0
    l2 = module.ode_part(8, module.step_generator(0))  # the same 8 pairs under each metric
    cfg.distill.ode_metric = "pseudo_huber"
    huber = module.ode_part(8, module.step_generator(0))
    assert huber > 0 and not torch.isclose(huber, l2)
    cfg.distill.ode_shift, cfg.distill.ode_shift_window = 1, 3  # each 3 x 3 window keeps its best of 9 shifts
    shifted = module.ode_part(8, module.step_generator(0))
    assert 0 < shifted < huber  # (the micro student is far from its targets: shifts buy little)
    cfg.distill.ode_weight = 0.0  # off: no bank is needed and no "ode" term appears
    assert ode_pairs_for(cfg, t, t_meta, dm) is None
    off, _ = DistillModule(cfg, dm.captions, t).generator_parts(x0, text, mask, module.step_generator(0), 0)
    assert "ode" not in off


class _Weights(L.Callback):
    """The fake denoiser's and student's weights before and after each phase of the first cycle."""

    def __init__(self):
        self.seen = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append(self.flat(pl_module))

    def on_train_end(self, trainer, pl_module):
        self.seen.append(self.flat(pl_module))

    @staticmethod
    def flat(m):
        return {n: torch.cat([p.detach().flatten() for p in getattr(m, n).parameters()]).clone()
                for n in ("fake", "student", "teacher")}


def _assert_fake_trains_in_d_steps_only(cfg) -> None:
    """Four global steps G, D, G, D under Lightning: the student changes only in G steps, the fake denoiser only in D
    steps, the teacher never."""
    from sprint_bench.lit.train_distill import train_distill

    rec = _Weights()
    export = train_distill(cfg, extra_callbacks=[rec])
    changed = [[not torch.equal(a[n], b[n]) for n in ("fake", "student", "teacher")]
               for a, b in zip(rec.seen, rec.seen[1:])]
    assert changed == [[False, True, False], [True, False, False]] * 2
    assert meta(export)["k"] == 4 and meta(export)["skipped_steps"] == 0


def test_distribution_matching_term_and_fake_denoiser(tmp_path, teacher):
    """distill.dmd_weight adds lambda_DMD L_DMD to the generator loss (its gradient reaches the student, none the fake
    denoiser); the fake denoiser starts as the teacher and trains in the D steps only, the teacher never."""
    from sprint_bench.lit.distill import DistillModule
    from sprint_bench.lit.fit import seeded_data
    from sprint_bench.lit.train_distill import load_matching_teacher

    path = REPO / "experiments/sprint/hybrid.yaml"
    cfg = micro(path, tmp_path, teacher, "train.max_steps=4", "distill.dmd_weight=2.0", "distill.fake_lr=1e-3")
    _, t, _, _ = load_matching_teacher(cfg)
    dm = seeded_data(cfg)
    module = DistillModule(cfg, dm.captions, t)
    torch.testing.assert_close(_Weights.flat(module)["fake"], _Weights.flat(module)["teacher"], rtol=0, atol=0)
    x0, text, mask, _ = module.batch_inputs(next(iter(dm.train_dataloader())))
    parts, logs = module.generator_parts(x0, text, mask, module.step_generator(0), 0)
    assert set(parts) == {"scm", "adv", "dmd"} and logs["loss_dmd"] > 0  # real (CFG) and fake (no CFG) differ
    torch.testing.assert_close(parts["dmd"], 2.0 * logs["loss_dmd"])
    grads = torch.autograd.grad(parts["dmd"], list(module.student.parameters()), allow_unused=True)
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0
    assert all(p.grad is None for p in module.fake.parameters())
    l_fake = module.fake_part(text, mask, module.step_generator(1))
    assert l_fake > 0 and l_fake.requires_grad
    assert module.configure_optimizers()[0][1].param_groups[1]["lr"] == 1e-3

    _assert_fake_trains_in_d_steps_only(cfg)


def test_distribution_matching_without_heads_trains_the_fake_alone(tmp_path, teacher):
    """Regression + distribution matching (no discriminator): the D steps train the fake denoiser alone and count in
    the cycle (G, D, G, D), the student changes only in G steps."""
    cfg = micro(REPO / "experiments/sprint/ablations/ode-only.yaml", tmp_path, teacher, "train.max_steps=4",
                "distill.dmd_weight=1.0", "distill.fake_lr=1e-3")
    assert cfg.distill.cycle == 2
    _assert_fake_trains_in_d_steps_only(cfg)


def test_student_init_starts_from_an_exported_student(tmp_path, teacher):
    """distill.student_init starts the student (and its EMA) from a finished run's export instead of the teacher
    copy, also with student and teacher copied elsewhere (another checkout); an export that is missing, of another
    shape, of another guidance setting or from another teacher is a ConfigError."""
    import shutil

    from sprint_bench.lit.distill import DistillModule
    from sprint_bench.lit.fit import seeded_data
    from sprint_bench.lit.train_distill import load_matching_teacher, load_student_init, train_distill

    path = REPO / "experiments/sprint/scm.yaml"
    first = train_distill(micro(path, tmp_path / "first", teacher, "train.max_steps=2", "train.lr=1e-2"))
    cfg = micro(path, tmp_path, teacher, "train.ema_decay=0.99", f"distill.student_init={first}")
    teacher_path, t, _, teacher_meta = load_matching_teacher(cfg)
    init = load_student_init(cfg, teacher_path, teacher_meta)
    want = load_file(first / "transformer" / "diffusion_pytorch_model.safetensors")
    dm = seeded_data(cfg)
    module = DistillModule(cfg, dm.captions, t, None, None, init)
    for model in (module.student, module.ema):
        assert_export_weights(model.transformer.state_dict(), first)
    fresh = DistillModule(micro(path, tmp_path, teacher), dm.captions, t).student.transformer.state_dict()
    assert any(not torch.equal(fresh[k], want[k]) for k in want), "the export equals the teacher copy"
    assert load_student_init(micro(path, tmp_path, teacher), teacher_path, teacher_meta) is None
    for extra, match in ((f"distill.student_init={tmp_path / 'nothing'}", "not a complete student export"),
                         ("model.width=64", "the student at .* different settings for \\['model.width"),
                         ("distill.guidance_embed=false", "guidance_embeds=True but distill.guidance_embed=False")):
        bad = micro(path, tmp_path, teacher, f"distill.student_init={first}", extra)
        with pytest.raises(ConfigError, match=match):
            load_student_init(bad, teacher_path, teacher_meta)
    moved_teacher = shutil.copytree(teacher, tmp_path / "elsewhere" / "teacher")
    moved = shutil.copytree(first, tmp_path / "elsewhere" / "student")
    cfg = micro(path, tmp_path, moved_teacher, f"distill.student_init={moved}")
    moved_path, _, _, moved_meta = load_matching_teacher(cfg)
    assert_export_weights(load_student_init(cfg, moved_path, moved_meta).state_dict(), moved)
    with pytest.raises(ConfigError, match="was distilled from .*step0.*not from this experiment's teacher"):
        load_student_init(cfg, moved_path, {**moved_meta, "global_step": 1})


def test_export_checkpoint_exports_the_student_of_a_checkpoint(tmp_path, teacher, capsys):
    """`sprint-bench export-checkpoint` turns a run's checkpoint into a student export: the checkpoint of the last
    step gives the end-of-training export's weights (the EMA, not the raw student), with the run's config hash,
    step, k and teacher id; another config's checkpoint, a missing file and an occupied folder are errors, and
    nothing there is overwritten."""
    from sprint_bench.cli import main
    from sprint_bench.lit.train_distill import export_checkpoint
    from sprint_bench.models.export import load_student

    path = REPO / "experiments/sprint/hybrid.yaml"
    extra = ("train.max_steps=4", "train.lr=1e-2", "train.ema_decay=0.5")
    cfg, final = train_micro(path, tmp_path, teacher, *extra)
    last = final.parent / "checkpoints" / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=False)["state_dict"]
    assert any(not torch.equal(state[k], state["student." + k[4:]]) for k in state if k.startswith("ema."))
    out = export_checkpoint(cfg, last, tmp_path / "snap")
    got = load_file(out / "transformer" / "diffusion_pytorch_model.safetensors")
    assert_export_weights(got, final)
    m, f = meta(out), meta(final)
    assert (m["config_hash"], m["global_step"], m["k"], m["teacher_id"]) == (
        f["config_hash"], 4, f["k"], f["teacher_id"]) and m["checkpoint"] == str(last)
    load_student(out)
    cli = ["export-checkpoint", "--config", str(path), *MICRO, f"distill.teacher={teacher}", f"output_dir={tmp_path}",
           f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}", *extra, "--checkpoint", str(last)]
    assert main(cli[:-2] + ["train.lr=2e-2"] + cli[-2:]) == 2
    assert "saved by the config with hash" in capsys.readouterr().err
    assert main(cli) == 0
    assert capsys.readouterr().out.strip().endswith("snapshots/step0000004")
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        export_checkpoint(cfg, tmp_path / "none.ckpt")
    before = (final / "sprint_bench.json").read_text()
    with pytest.raises(FileExistsError):
        export_checkpoint(cfg, last, final)
    assert main(cli + ["--out", str(final)]) == 2 and "holds a different export" in capsys.readouterr().err
    assert (final / "sprint_bench.json").read_text() == before


def test_released_stage3_is_what_best_student_stage4_starts_from():
    """`make best-student-stage4`: the stage-3 student in releases/sprint-best-3 was trained by stage 3's YAML as it
    stands (same config hash) and passes every check of ``distill.student_init`` against stage 4's YAML and the
    released teacher."""
    from sprint_bench.config import config_hash
    from sprint_bench.lit.train_distill import load_matching_teacher, load_student_init

    release = REPO / "releases" / "sprint-best-3"
    meta = json.loads((release / "sprint_bench.json").read_text())
    best = REPO / "experiments" / "sprint" / "best"
    assert meta["config_hash"] == config_hash(load_config(best / "3-regression-12k-shift1.yaml"))
    assert meta["global_step"] == 3000 and meta["skipped_steps"] == 0
    cfg = load_config(best / "4-second-stage-dmd.yaml", [f"distill.student_init={release}"])
    teacher_path, _, _, teacher_meta = load_matching_teacher(cfg)
    assert_export_weights(load_student_init(cfg, teacher_path, teacher_meta).state_dict(), release)


def test_training_cost_benchmark_times_both_steps(tmp_path, teacher):
    """`make bench-distill` on the micro preset: a teacher flow-matching step and an sCM generator step (JVP), timed."""
    from sprint_bench.lit import bench_distill

    res = bench_distill.main(["--config", str(REPO / "experiments/sprint/scm.yaml"), "--steps", "10", "--warmup", "1",
                              "--threads", "1", *MICRO, f"distill.teacher={teacher}", f"output_dir={tmp_path}",
                              "data.train_size=64", "data.batch_size=4"])
    assert res["batch"] == 4 and res["tangent"] == "jvp" and res["steps_timed"] == 10 and res["threads"] == 1
    assert res["order"] == "interleaved"
    assert res["teacher_fm_step_ms_median"] > 0 and res["scm_g_step_ms_median"] > 0
    assert res["ratio"] == pytest.approx(res["scm_g_step_ms_median"] / res["teacher_fm_step_ms_median"])


def test_teacher_mismatch_is_a_config_error(tmp_path, teacher):
    from sprint_bench.lit.train_distill import load_matching_teacher

    cfg = micro(REPO / "experiments/sprint/hybrid.yaml", tmp_path, teacher, "model.width=64")
    with pytest.raises(ConfigError, match="model.width"):
        load_matching_teacher(cfg)
    with pytest.raises(ConfigError, match="no exported model"):
        load_matching_teacher(micro(REPO / "experiments/sprint/hybrid.yaml", tmp_path, tmp_path / "nothing"))
    with pytest.raises(ConfigError, match="head_blocks"):
        load_matching_teacher(micro(REPO / "experiments/sprint/hybrid.yaml", tmp_path, teacher,
                                    "distill.head_blocks=[3]"))


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_ddp_two_cpu_processes_keep_parameters_equal(tmp_path, teacher, compiled):
    """Two distillation steps (G then D) under Lightning DDP with 2 gloo processes, eager and (slow: ~2.5 min of
    compiling in two processes on 2 cores) with ``distill.compile`` (compiled backward passes still reach DDP's
    gradient all-reduce): every student and discriminator parameter is equal across ranks afterwards, and the
    student moved away from its init."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(REPO / "tests" / "integration" / "ddp_distill_run.py"), str(tmp_path), str(teacher),
           f"distill.compile={str(compiled).lower()}"]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"params_rank{r}.pt") for r in (0, 1))
    assert r0.keys() == r1.keys() and any(k.startswith("disc.") for k in r0)
    for key in r0:
        assert torch.equal(r0[key], r1[key]), f"ranks differ at {key}"
    init = torch.load(tmp_path / "params_init.pt")
    assert any(not torch.equal(init[k], r0[k]) for k in init), "no parameter changed"
    for r in (0, 1):  # which calls ran compiled (none fell back to eager)
        names = json.loads((tmp_path / f"compiled_rank{r}.json").read_text())
        assert names == ({n: True for n in ("model_F", "model_features", "model_jvp", "model_out")} if compiled
                         else {})


def test_cli_distill_then_harness_and_schedule_search(tmp_path, teacher):
    """`sprint-bench distill` trains, exports and evaluates the student through the harness (one MLflow child run
    per step count, NFE = steps); the schedule search scores candidates and stores its choice in the export."""
    import mlflow

    from sprint_bench.cli import main
    from sprint_bench.eval.schedule_search import search_schedule
    from sprint_bench.lit.train_distill import run_dir

    overrides = MICRO + [f"distill.teacher={teacher}", f"output_dir={tmp_path}", "train.max_steps=2",
                         f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}", "tracking.experiment=suite"]
    rc = main(["distill", "--config", str(REPO / "experiments/sprint/hybrid.yaml"), *overrides, "--metrics",
               "geneval,latency", "--limit-prompts", "4", "--eval-out", str(tmp_path / "eval")])
    assert rc == 0
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["suite"], filter_string="tags.`sprint_bench.kind` = 'eval-child'")
    assert sorted(runs["params.steps"].astype(int)) == [1, 2, 4]
    assert (runs["params.nfe"].astype(int) == runs["params.steps"].astype(int)).all()
    assert runs["metrics.geneval_overall"].notna().all() and runs["metrics.latency_e2e_ms_median"].gt(0).all()
    train_runs = mlflow.search_runs(experiment_names=["suite"], filter_string="tags.kind = 'student'")
    assert len(train_runs) == 1 and train_runs.loc[0, "tags.method"] == "hybrid"

    cfg = load_config(REPO / "experiments/sprint/hybrid.yaml", overrides)
    export = run_dir(cfg) / "export"
    result = search_schedule(export, steps=2, limit_prompts=4, images_per_prompt=1, apply=True)
    assert len(result["table"]) >= 9 + 5  # every t_max candidate, then every t_2 candidate
    assert load_generator(export).timesteps(2) == tuple(result["chosen"]["2"])

    from sprint_bench.eval import bench_speedup  # `make bench-speedup` on this student and its micro teacher

    res = bench_speedup.main([str(export), "--teacher", str(teacher), "--teacher-steps", "4", "--runs", "50",
                              "--rounds", "1", "--threads", "1"])
    lat, sp = res["latency_ms"], res["speedup_vs_teacher"]
    ref = next(k for k in lat if k not in sp)  # each ratio is the reference's median over the student's (one round)
    assert len(sp) == 3 and all(sp[k] == pytest.approx({s: lat[ref][s] / lat[k][s] for s in ("e2e", "denoise")})
                                for k in sp)


def test_bench_compile_times_each_compiled_call_against_its_eager_twin(tmp_path, teacher):
    """lit/bench_compile.py on a micro hybrid: the five compiled calls (two with their backward), each equal to its
    eager twin, timed."""
    from sprint_bench.lit.bench_compile import main

    overrides = [o for o in MICRO if not o.startswith("distill.compile")] + [
        f"distill.teacher={teacher}", f"output_dir={tmp_path}"]
    rep = main(["--config", str(REPO / "experiments/sprint/hybrid.yaml"), "--steps", "5", "--warmup", "1",
                "--threads", "1", *overrides])
    assert rep["batch"] == 4 and rep["threads"] == 1 and rep["dtype"] == "float32"
    assert sorted(rep["calls"]) == ["student_call_backward_B", "student_jvp_B", "teacher_cfg_call_2B",
                                    "teacher_features_3B", "teacher_features_backward_B"]
    for name, c in rep["calls"].items():
        assert c["max_rel_diff"] < 1e-5, name
        assert c["eager_ms_median"] > 0 and c["compiled_ms_median"] > 0 and c["first_call_s"] > 0
        assert c["speedup"] == pytest.approx(c["eager_ms_median"] / c["compiled_ms_median"])
