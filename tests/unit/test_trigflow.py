"""FM -> TrigFlow conversion (SANA-Sprint Prop. 3.1): reference values, round trips, and the 'lossless' claim of
Table 1 checked on the released teacher: the converted TrigFlow PF-ODE reproduces the teacher's own flow ODE."""
import math

import pytest
import torch

from sprint_bench.param.trigflow import (SIGMA_DATA, T_MAX, fm_input, fm_velocity, lam, prior_weight,
                                         sample_t_lognormal, t_from_sigma, t_from_tau, tau_from_t, trig_noise,
                                         trigflow_output, x0_from_F)

# method reference §3 table: t -> (tau, lambda, 1 - 2 tau)
TABLE = [(1.4, 0.8529, 0.8655, -0.7058), (1.3, 0.7827, 0.8123, -0.5654), (1.1, 0.6627, 0.7436, -0.3254),
         (1.0, 0.6090, 0.7237, -0.2180), (0.6, 0.4062, 0.7194, 0.1876), (0.0, 0.0, 1.0, 1.0)]


# method reference §5.1 table: (P_mean, P_std) -> t quantiles 5 % / 50 % / 95 % (rad)
PROPOSALS = [((0.2, 1.6), (0.174, 1.182, 1.541)), ((0.0, 1.6), (0.143, 1.107, 1.535)),
             ((-0.8, 1.6), (0.065, 0.732, 1.491)), ((-0.6, 1.0), (0.209, 0.832, 1.397))]


@pytest.mark.parametrize("proposal, quantiles", PROPOSALS)
def test_time_proposal_quantiles(proposal, quantiles):
    """log(sigma_d tan t) ~ N(P_mean, P_std^2): the sampled t's quantiles are the reference table's."""
    t = sample_t_lognormal(100_000, *proposal, generator=torch.Generator().manual_seed(0)).double()
    got = torch.quantile(t, torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64))
    assert torch.allclose(got, torch.tensor(quantiles, dtype=torch.float64), atol=4e-3)
    assert 0 < t.min() and t.max() < math.pi / 2


@pytest.mark.parametrize("t, tau, lam_, one_m_2tau", TABLE)
def test_reference_values(t, tau, lam_, one_m_2tau):
    t = torch.tensor(t, dtype=torch.float64)
    assert float(tau_from_t(t)) == pytest.approx(tau, abs=1e-4)
    assert float(lam(t)) == pytest.approx(lam_, abs=1e-4)
    assert float(1 - 2 * tau_from_t(t)) == pytest.approx(one_m_2tau, abs=1e-4)


def test_sigma_times():
    assert t_from_sigma(80) == pytest.approx(1.56455, abs=1e-5)
    assert t_from_sigma(200) == pytest.approx(1.56830, abs=1e-5)
    assert float(prior_weight(torch.tensor(math.atan(2.0)))) == pytest.approx(1.0)  # 1 / (0.5 * 2)


def test_round_trips():
    t = torch.linspace(0, math.pi / 2, 101, dtype=torch.float64)
    torch.testing.assert_close(t_from_tau(tau_from_t(t)), t, atol=1e-12, rtol=0)
    tau = torch.linspace(0, 1, 101, dtype=torch.float64)
    torch.testing.assert_close(tau_from_t(t_from_tau(tau)), tau, atol=1e-12, rtol=0)
    x, v = torch.randn(5, 3, 4, 4, dtype=torch.float64), torch.randn(5, 3, 4, 4, dtype=torch.float64)
    tt = torch.rand(5, dtype=torch.float64) * math.pi / 2
    torch.testing.assert_close(fm_velocity(x, tt, trigflow_output(x, tt, v)), v)
    # lambda^2 = tau^2 + (1 - tau)^2 and the closed form equals Eq. 8's [(1-2tau) x_FM + (1-2tau+2tau^2) v] / lambda
    ta = tau_from_t(tt).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(lam(tt) ** 2, tau_from_t(tt) ** 2 + (1 - tau_from_t(tt)) ** 2)
    eq8 = ((1 - 2 * ta) * fm_input(x, tt) + (1 - 2 * ta + 2 * ta ** 2) * v) / lam(tt).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(trigflow_output(x, tt, v), eq8)


def test_endpoints_and_exact_velocity():
    """With the exact FM velocity v = eps - u the converted F is the TrigFlow target, and f(x_t, t) returns x0."""
    u, eps = torch.randn(4, 3, 8, 8, dtype=torch.float64), torch.randn(4, 3, 8, 8, dtype=torch.float64)
    x0, z = SIGMA_DATA * u, SIGMA_DATA * eps
    for t in (0.0, 0.3, 1.1, math.pi / 2):
        tt = torch.full((4,), t, dtype=torch.float64)
        x_t = trig_noise(x0, z, tt)
        tau = tau_from_t(tt).reshape(-1, 1, 1, 1)
        x_fm = fm_input(x_t / SIGMA_DATA, tt)
        torch.testing.assert_close(x_fm, (1 - tau) * u + tau * eps)  # the FM marginal at tau(t)
        F = trigflow_output(x_t / SIGMA_DATA, tt, eps - u)
        torch.testing.assert_close(SIGMA_DATA * F, math.cos(t) * z - math.sin(t) * x0)  # dx_t/dt
        torch.testing.assert_close(x0_from_F(x_t, tt, F), x0)
    assert T_MAX > math.pi / 2 and T_MAX - math.pi / 2 < 1e-5


def _heun(f, x, grid):
    for a, b in zip(grid[:-1], grid[1:]):
        d1 = f(x, a)
        x_pred = x + (b - a) * d1
        x = x + (b - a) * 0.5 * (d1 + f(x_pred, b))
    return x


def test_converted_pf_ode_reproduces_teacher_flow_ode():
    """Table 1 ('lossless'), checked: the same noise through the teacher's flow ODE (tau: 1 -> 0) and through the
    TrigFlow PF-ODE dx/dt = sigma_d F_hat (t: pi/2 -> 0), 200 Heun steps each, gives the same image up to 1 % of
    the image RMS (measured 0.1 %; both integrators converge to the same ODE solution; the residual is discretisation error)."""
    from sprint_bench.models.release import RELEASED_TEACHER, load_teacher
    from sprint_bench.models.text_encoder import TextEncoder
    from sprint_bench.models.trigflow import TrigFlowModel

    if not (RELEASED_TEACHER / "sprint_bench.json").exists():
        pytest.skip("released teacher not present")
    cfg, backbone, _ = load_teacher()
    torch.manual_seed(0)
    text, mask = TextEncoder(cfg.text.max_length).encode(["a photo of a red circle", "a photo of two blue squares"])
    eps = torch.randn(2, 3, cfg.world.resolution, cfg.world.resolution)
    n = 200
    with torch.no_grad():
        u_fm = _heun(lambda x, tau: backbone(x, tau.expand(2), text, mask), eps, torch.linspace(1, 0, n + 1))
        trig = TrigFlowModel(backbone.transformer)
        x_end = _heun(lambda x, t: SIGMA_DATA * trig(x / SIGMA_DATA, t.expand(2), text, mask)[0], SIGMA_DATA * eps,
                      torch.linspace(math.pi / 2, 0, n + 1))
    u_trig = x_end / SIGMA_DATA
    rel = float((u_trig - u_fm).pow(2).mean().sqrt() / u_fm.pow(2).mean().sqrt())
    assert rel < 0.01, f"converted teacher drifts from the flow ODE: relative RMS {rel:.4f}"
