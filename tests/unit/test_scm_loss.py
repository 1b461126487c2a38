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


def test_distill_module_scm_part_matches_the_reference_equations_in_float64():
    """``DistillModule.scm_part`` as wired (time proposal, noising, teacher CFG against the null caption, guidance
    x 0.1, tangent with r = 1, normalisation c = 0.1, logvar weighting) against method reference §3 and §5 written
    out here on the raw diffusers transformers, with the tangent as d/dh of f along the teacher's PF-ODE."""
    from torch.func import jvp

    from sprint_bench.config import load_config
    from sprint_bench.lit.distill import DistillModule
    from sprint_bench.models.text_encoder import CaptionCache
    from tests.conftest import REPO

    torch.manual_seed(0)
    cfg = load_config(REPO / "experiments" / "micro.yaml", ["model.width=32", "model.depth=1", "model.heads=2",
                                                            "model.cross_heads=2", "distill.logvar=true",
                                                            "distill.loss=scm"])
    n_tok = cfg.text.max_length
    hidden, mask = torch.randn(4, n_tok, 384), torch.ones(4, n_tok, dtype=torch.long)
    mask[:, 5:], mask[3, 2:] = 0, 0  # the null caption (id 3) with a mask of its own
    m = DistillModule(cfg, CaptionCache(["a", "b", "c"], hidden, mask), build_sana(cfg.model, 3, 32))
    with torch.no_grad():  # a student that differs from the teacher, with a live guidance embedding and logvar head
        for p in m.student.transformer.time_embed.guidance_embedder.parameters():
            p.normal_(0, 0.3)
        m.student.logvar_head.weight.normal_(0, 0.3)
        for p in m.student.transformer.parameters():
            p.add_(0.02 * torch.randn_like(p))
    m = m.double()
    x0 = (SIGMA_DATA * (2 * torch.rand(3, 3, 32, 32) - 1)).double()
    text, tmask = m.text(torch.tensor([0, 1, 2]))
    w = torch.tensor([2.5, 3.0, 3.5], dtype=torch.float64)
    loss, logs = m.scm_part(x0, text, tmask, w, m.step_generator(5), k=10**6)

    sd, gen = SIGMA_DATA, m.step_generator(5)  # the same draws, in the same order
    t = torch.atan(torch.exp(cfg.distill.p_mean + cfg.distill.p_std * torch.randn(3, generator=gen)) / sd).double()
    z = sd * torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    c = lambda v: v.view(-1, 1, 1, 1)  # noqa: E731
    x_t = torch.cos(c(t)) * x0 + torch.sin(c(t)) * z

    def F_hat(transformer, x, tt, txt, msk, guid=None):  # Prop. 3.1: tau, lambda, x_FM and the output transform
        tau = torch.sin(tt) / (torch.sin(tt) + torch.cos(tt))
        lam_ = torch.sqrt(tau ** 2 + (1 - tau) ** 2)
        x_fm = c(lam_) * x
        kw = {} if guid is None else {"guidance": 0.1 * guid}
        v = transformer(hidden_states=x_fm, encoder_hidden_states=txt, timestep=tau, encoder_attention_mask=msk,
                        return_dict=False, **kw)[0]
        return ((1 - 2 * c(tau)) * x_fm + (1 - 2 * c(tau) + 2 * c(tau) ** 2) * v) / c(lam_)

    teacher, st = m.teacher.transformer, m.student.transformer
    with torch.no_grad():
        null_t, null_m = m.text(torch.full((3,), m.null_id))
        F_c, F_u = F_hat(teacher, x_t / sd, t, text, tmask), F_hat(teacher, x_t / sd, t, null_t, null_m)
        dxt_dt = sd * (F_u + c(w) * (F_c - F_u))

        def f(h):  # the consistency function along the teacher's PF-ODE through (x_t, t)
            x, tt = x_t + h * dxt_dt, t + h
            return torch.cos(c(tt)) * x - torch.sin(c(tt)) * sd * F_hat(st, x / sd, tt, text, tmask, w)

        one = torch.ones((), dtype=torch.float64)
        _, df_dh = jvp(f, (torch.zeros((), dtype=torch.float64),), (one,))
        g = torch.cos(c(t)) * df_dh  # r = 1: g = cos t df/dt
        g_norm = g.flatten(1).norm(dim=1)
        g = g / c(g_norm + 0.1)
        tau = torch.sin(t) / (torch.sin(t) + torch.cos(t))
        _, emb = st.time_embed(tau, guidance=0.1 * w, hidden_dtype=torch.float64)
        logvar = c(m.student.logvar_head(emb))
        ref = (g ** 2 / (sd * torch.tan(c(t))) / torch.exp(logvar) + logvar).mean()
    assert math.isclose(logs["g_norm"].item(), g_norm.mean().item(), rel_tol=1e-6)
    assert math.isclose(loss.item(), ref.item(), rel_tol=1e-6)
