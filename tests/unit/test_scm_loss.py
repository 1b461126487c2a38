"""sCM loss parts (method reference §5): JVP by forward-mode AD vs central differences through the student, the
tangent g against an independent float64 computation, weighting, normalisation and warmup."""
import copy
import math

import pytest
import torch

from sprint_bench.losses.scm import (jvp_autograd, jvp_finite_difference, normalize_tangent, scm_loss, scm_tangent,
                                     tangent_warmup, tangents, teacher_cfg_velocity)
from sprint_bench.models.sana import build_sana
from sprint_bench.models.trigflow import TrigFlowModel, student_from_teacher, use_math_attention
from sprint_bench.param.trigflow import SIGMA_DATA, trig_noise, x0_from_F


@pytest.fixture(scope="module")
def student(micro_cfg_module):
    torch.manual_seed(0)
    tr = build_sana(micro_cfg_module.model, 3, micro_cfg_module.world.resolution)
    st = student_from_teacher(tr, guidance_embeds=True, zero_init_guidance=False)
    use_math_attention(st)
    return TrigFlowModel(st, logvar=True).eval()


@pytest.fixture(scope="module")
def micro_cfg_module():
    from sprint_bench.config import load_config
    from tests.conftest import REPO

    return load_config(REPO / "experiments" / "micro.yaml", ["model.width=64", "model.depth=2"])


def _inputs(b=3, dtype=torch.float32):
    g = torch.Generator().manual_seed(1)
    x0 = SIGMA_DATA * torch.randn(b, 3, 32, 32, generator=g, dtype=dtype)
    t = torch.tensor([0.3, 0.9, 1.4][:b], dtype=dtype)
    x_t = trig_noise(x0, SIGMA_DATA * torch.randn(b, 3, 32, 32, generator=g, dtype=dtype), t)
    text = torch.randn(b, 16, 384, generator=g, dtype=dtype)
    mask = torch.ones(b, 16, dtype=dtype)
    mask[0, 10:] = 0
    dxdt = torch.randn(b, 3, 32, 32, generator=g, dtype=dtype) * 0.5
    w = torch.tensor([2.5, 3.0, 3.5][:b], dtype=dtype)
    return x_t, t, text, mask, dxdt, w


def test_jvp_matches_central_differences(student):
    x_t, t, text, mask, dxdt, w = _inputs()

    def fn(xs, ts):
        n = xs.shape[0] // x_t.shape[0]
        return student(xs, ts, text.repeat(n, 1, 1), mask.repeat(n, 1), w.repeat(n))[0]

    tx, tt = tangents(x_t, t, dxdt)
    J = jvp_autograd(fn, x_t / SIGMA_DATA, t, tx, tt)
    J_fd = jvp_finite_difference(fn, x_t / SIGMA_DATA, t, tx, tt, eps=1e-2)
    rel = float((J - J_fd).norm() / J.norm())
    assert rel < 1e-3, f"JVP vs central differences: relative error {rel:.2e}"
    assert J.abs().mean() > 1e-3  # a real derivative, not zeros


def test_tangent_matches_float64_total_derivative(student):
    """At r = 1, g = cos t * d f(x_t, t)/dt along dx_t/dt, f = cos t x_t - sin t sigma_d F (Eq. 4-5): compare our
    fp32 g (JVP rearrangement) to a float64 central difference of f along the trajectory, computed independently."""
    x_t, t, text, mask, dxdt, w = _inputs()
    s64 = TrigFlowModel(copy.deepcopy(student.transformer)).double()

    def f64(h):
        xh = x_t.double() + h * dxdt.double()
        th = t.double() + h
        return x0_from_F(xh, th, s64(xh / SIGMA_DATA, th, text.double(), mask.double(), w.double())[0])

    h = 1e-5
    with torch.no_grad():
        g_ref = torch.cos(t.double()).reshape(-1, 1, 1, 1) * (f64(h) - f64(-h)) / (2 * h)

        def fn(xs, ts):
            return student(xs, ts, text, mask, w)[0]

        F = fn(x_t / SIGMA_DATA, t)
    J = jvp_autograd(fn, x_t / SIGMA_DATA, t, *tangents(x_t, t, dxdt))
    g = scm_tangent(F, dxdt, J, x_t, t, r=1.0)
    rel = float((g.double() - g_ref).norm() / g_ref.norm())
    assert rel < 1e-3, f"g vs float64 reference: relative error {rel:.2e}"


def test_tangent_warmup_scales_only_the_second_term():
    x_t, t, _, _, dxdt, _ = _inputs()
    F, J = torch.randn_like(x_t), torch.randn_like(x_t)
    g0 = scm_tangent(F, dxdt, J, x_t, t, r=0.0)
    c = torch.cos(t).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(g0, -c * c * (SIGMA_DATA * F - dxdt))
    g1, g_half = scm_tangent(F, dxdt, J, x_t, t, 1.0), scm_tangent(F, dxdt, J, x_t, t, 0.5)
    torch.testing.assert_close(g_half, 0.5 * (g0 + g1))
    assert [tangent_warmup(k, 4000) for k in (0, 2000, 4000, 9000)] == [0.0, 0.5, 1.0, 1.0]
    assert tangent_warmup(5, 0) == 1.0


def test_normalisation_per_sample():
    g = torch.zeros(2, 1, 2, 2)
    g[0] = 3.0  # norm 6
    g[1, 0, 0, 0] = 0.4  # norm 0.4
    gn, norm = normalize_tangent(g, c=0.1)
    torch.testing.assert_close(norm, torch.tensor([6.0, 0.4]))
    torch.testing.assert_close(gn[0, 0, 0, 0], torch.tensor(3.0 / 6.1))
    torch.testing.assert_close(gn[1, 0, 0, 0], torch.tensor(0.4 / 0.5))


def test_loss_weighting_by_hand():
    """Two samples, one element each: t = arctan(2) -> omega = 1/(0.5*2) = 1; t = arctan(4) -> omega = 0.5.
    F - F^- - g = -g. logvar 0 and log 2: L = mean(1*0.25 + 0, 0.5/2*4 + log 2) = (0.25 + 1 + 0.6931)/2."""
    t = torch.tensor([math.atan(2.0), math.atan(4.0)])
    F = torch.zeros(2, 1, 1, 1, requires_grad=True)
    g = torch.tensor([0.5, 2.0]).reshape(2, 1, 1, 1)
    logvar = torch.tensor([0.0, math.log(2.0)])
    loss = scm_loss(F, F.detach(), g, t, logvar)
    assert float(loss) == pytest.approx((0.25 + 1.0 + math.log(2.0)) / 2, rel=1e-6)
    assert float(scm_loss(F, F.detach(), g, t)) == pytest.approx((0.25 + 0.5 * 4) / 2, rel=1e-6)
    loss.backward()  # dL/dF = mean of -2 omega/e^l g  -> pushes F toward F^- + g
    torch.testing.assert_close(F.grad.flatten(), torch.tensor([-2 * 1 * 0.5 / 2, -2 * 0.25 * 2.0 / 2]))


def test_teacher_cfg_velocity_by_hand():
    Fc, Fu = torch.full((2, 1, 1, 1), 2.0), torch.full((2, 1, 1, 1), 1.0)
    v = teacher_cfg_velocity(Fc, Fu, torch.tensor([1.0, 3.0]))
    # sigma_d * (Fu + w (Fc - Fu)) = 0.5 * (1 + w)
    torch.testing.assert_close(v.flatten(), torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(teacher_cfg_velocity(Fc, None, torch.tensor([4.0, 4.0])).flatten(),
                               torch.tensor([1.0, 1.0]))
