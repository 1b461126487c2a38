"""lit/compiled.py: the compiled JVP pass and teacher call give the eager results through a micro student (with
guidance embedding and logvar head), follow its weights as they change, and a compiler failure falls back to the
eager call with one warning."""
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
