"""lit/compiled.py: the compiled JVP pass and teacher call give the eager results through a micro student (with
guidance embedding and logvar head), follow its weights as they change, and a compiler failure falls back to the
eager call with one warning, a failure of the compiled backward too, before the caller's backward."""
import logging

import pytest
import torch

import sprint_bench.lit.compiled as cl
from sprint_bench.losses.scm import tangents
from sprint_bench.models.sana import build_sana
from sprint_bench.models.trigflow import TrigFlowModel, student_from_teacher, use_math_attention
from sprint_bench.param.trigflow import SIGMA_DATA, trig_noise


@pytest.fixture(scope="module")
def student():
    from sprint_bench.config import load_config
    from tests.conftest import REPO

    cfg = load_config(REPO / "experiments" / "micro.yaml", ["model.width=32", "model.depth=1"])
    torch.manual_seed(0)
    st = student_from_teacher(build_sana(cfg.model, 3, cfg.world.resolution), guidance_embeds=True,
                              zero_init_guidance=False)
    use_math_attention(st)
    return TrigFlowModel(st, logvar=True).requires_grad_(True)


def _args(b=4):
    g = torch.Generator().manual_seed(3)
    x0 = SIGMA_DATA * torch.randn(b, 3, 32, 32, generator=g)
    t = torch.linspace(0.2, 1.5, b)
    x_t = trig_noise(x0, SIGMA_DATA * torch.randn(b, 3, 32, 32, generator=g), t)
    tx, tt = tangents(x_t, t, 0.5 * torch.randn(b, 3, 32, 32, generator=g))
    text, mask = torch.randn(b, 16, 384, generator=g), torch.ones(b, 16)
    mask[0, 9:] = 0
    return x_t / SIGMA_DATA, t, tx, tt, text, mask, torch.full((b,), 3.0), None


def _rel(a, b) -> float:
    return float((a - b).norm() / b.norm())


def test_compiled_jvp_and_call_equal_eager(student):
    xs, t, tx, tt, text, mask, w, cond = _args()
    jvp, call = cl.Compiled(cl.model_jvp), cl.Compiled(cl.model_F)
    J_eager = cl.model_jvp(student, xs, t, tx, tt, text, mask, w, cond)
    J = jvp(student, xs, t, tx, tt, text, mask, w, cond)
    with torch.no_grad():
        F, F_eager = call(student, xs, t, text, mask, w, cond), cl.model_F(student, xs, t, text, mask, w, cond)
    assert jvp.compiled and call.compiled, "a compiled call fell back to eager on this machine"
    assert J.shape == xs.shape and not J.requires_grad
    assert _rel(J, J_eager) < 1e-5 and _rel(F, F_eager) < 1e-5
    assert J_eager.abs().mean() > 1e-3  # a real derivative, not zeros
    # new weights (an optimiser step) reach the compiled graph: its J follows the eager one
    with torch.no_grad():
        for p in student.parameters():
            p.mul_(1.05)
    try:
        J2, J2_eager = jvp(student, xs, t, tx, tt, text, mask, w, cond), cl.model_jvp(student, xs, t, tx, tt, text,
                                                                                      mask, w, cond)
    finally:
        with torch.no_grad():
            for p in student.parameters():
                p.div_(1.05)
    assert _rel(J2, J2_eager) < 1e-5 and _rel(J2_eager, J_eager) > 1e-2


@pytest.mark.slow
def test_jvp_of_a_rewrapped_student_compiles(student):
    """A student whose transformer was copied out of a wrapper and wrapped again (``distill.student_init``, the EMA)
    compiles its JVP: the copied hook of the old wrapper keeps nothing (it kept a dual tensor, which inductor cannot
    compile: every second stage's JVP ran eagerly). Slow (a ~30 s compile of its own); the fast suite checks the
    same through training in `test_second_stage_runs_every_call_compiled`."""
    import copy

    again = TrigFlowModel(copy.deepcopy(student.transformer)).requires_grad_(True)  # the fixture's has a logvar hook
    stale = [h.__self__ for h in again.transformer.time_embed._forward_hooks.values()]
    jvp = cl.Compiled(cl.model_jvp)
    args = _args(2)
    J = jvp(again, *args)
    assert jvp.compiled, "the JVP of a re-wrapped student fell back to eager"
    assert _rel(J, cl.model_jvp(again, *args)) < 1e-5
    assert len(stale) == 1 and stale[0] is not again and stale[0]._emb is None


def test_compile_failure_falls_back_to_eager(student, monkeypatch, caplog):
    def broken(*_args, **_kwargs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(cl.torch, "compile", lambda fn: broken)
    jvp = cl.Compiled(cl.model_jvp)
    args = _args(2)
    with caplog.at_level(logging.WARNING, logger=cl.__name__):
        J, J2 = jvp(student, *args), jvp(student, *args)
    assert not jvp.compiled
    assert [r.getMessage() for r in caplog.records if "torch.compile of" in r.getMessage()] == [
        "torch.compile of model_jvp failed (RuntimeError: no C++ compiler found); running it eagerly"]
    torch.testing.assert_close(J, cl.model_jvp(student, *args), rtol=0, atol=0)
    torch.testing.assert_close(J2, J, rtol=0, atol=0)


def _zero_grads(model):
    for p in model.parameters():
        p.grad = None


def _grads(model) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_compiled_call_takes_its_backward_once_and_accumulates_nothing(student):
    xs, t, _, _, text, mask, w, cond = _args()
    call = cl.Compiled(cl.model_out)
    _zero_grads(student)
    F, logvar = call(student, xs, t, text, mask, w, cond)
    assert call.compiled and len(call.backward_checked) == 1
    assert all(p.grad is None for p in student.parameters())  # the check wrote into no .grad
    (F.square().mean() + logvar.mean()).backward()  # the graph was kept for the caller
    compiled_grads = _grads(student)
    _zero_grads(student)
    F_e, logvar_e = cl.model_out(student, xs, t, text, mask, w, cond)
    (F_e.square().mean() + logvar_e.mean()).backward()
    eager_grads = _grads(student)
    _zero_grads(student)
    assert len(compiled_grads) == len(eager_grads) == sum(1 for p in student.parameters() if p.requires_grad)
    assert max(_rel(a, b) for a, b in zip(compiled_grads, eager_grads) if b.norm() > 0) < 1e-4
    call(student, xs, t, text, mask, w, cond)
    assert len(call.backward_checked) == 1  # same signature: checked once


def test_backward_compile_failure_falls_back_before_the_callers_backward(student, monkeypatch, caplog):
    from torch._dynamo.backends.common import aot_autograd

    def no_backward(_gm, _inputs):
        raise RuntimeError("backward compiler failed")

    compile_ = torch.compile
    backend = aot_autograd(fw_compiler=lambda gm, _inputs: gm, bw_compiler=no_backward)
    monkeypatch.setattr(cl.torch, "compile", lambda fn: compile_(fn, backend=backend))
    torch._dynamo.reset()
    try:
        xs, t, _, _, text, mask, w, cond = _args(2)
        call = cl.Compiled(cl.model_out)
        with torch.no_grad():
            call(student, xs, t, text, mask, w, cond)
        assert call.compiled  # no graph, no backward: the compiled forward serves
        _zero_grads(student)
        with caplog.at_level(logging.WARNING, logger=cl.__name__):
            F, logvar = call(student, xs, t, text, mask, w, cond)
        assert not call.compiled
        assert [r.getMessage() for r in caplog.records if "torch.compile of" in r.getMessage()] == [
            "torch.compile of model_out failed (RuntimeError: backward compiler failed); running it eagerly"]
        F.square().mean().backward()  # the eager graph: the caller's backward runs
        got = _grads(student)
        _zero_grads(student)
        F_e, _ = cl.model_out(student, xs, t, text, mask, w, cond)
        F_e.square().mean().backward()
        for a, b in zip(got, _grads(student), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        _zero_grads(student)
    finally:
        torch._dynamo.reset()


def test_backward_is_checked_again_for_a_new_dtype_of_inputs_or_weights(monkeypatch):
    """A new dtype of an input or of a module's weights needs a backward graph of its own, so it is checked anew; the
    same signature again is not (torch.compile stubbed by the eager function: only the bookkeeping is under test; the
    device enters the signature the same way, untestable on a CPU-only machine)."""
    monkeypatch.setattr(cl.torch, "compile", lambda fn: fn)

    def lin(m, x):
        return m(x.to(m.weight.dtype))

    call, m = cl.Compiled(lin), torch.nn.Linear(3, 2)
    x = torch.randn(4, 3, requires_grad=True)
    call(m, x)
    call(m, torch.randn(4, 3, requires_grad=True))
    assert len(call.backward_checked) == 1
    call(m, x.double())  # the input's dtype
    assert len(call.backward_checked) == 2
    call(m.double(), x)  # the weights' dtype
    assert len(call.backward_checked) == 3
    call(m, x.detach())  # the input no longer requires grad
    assert len(call.backward_checked) == 4
    with torch.no_grad():
        call(m, torch.randn(5, 3))  # no graph, nothing to check
    assert len(call.backward_checked) == 4
    assert call.compiled
