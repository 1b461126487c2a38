"""Flow-matching loss, time sampling, the Euler/CFG sampler and the LR schedule."""
import math

import torch

from sprint_bench.lit.teacher import lr_lambda, step_seed
from sprint_bench.losses.flow_matching import flow_matching_loss, interpolate
from sprint_bench.param.time import sample_tau
from sprint_bench.samplers.flow import cfg_velocity, euler_sample, flow_timesteps


def test_interpolation_endpoints_and_exact_velocity_has_zero_loss():
    x0, eps = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    assert torch.equal(interpolate(x0, eps, torch.zeros(4)), x0)
    assert torch.equal(interpolate(x0, eps, torch.ones(4)), eps)
    assert flow_matching_loss(eps - x0, x0, eps) == 0
    assert torch.isclose(flow_matching_loss(eps - x0 + 1.0, x0, eps), torch.tensor(1.0))


def test_logit_normal_and_uniform_tau():
    g = torch.Generator().manual_seed(0)
    tau = sample_tau(200_000, "logit_normal", 0.0, 1.0, generator=g)
    logit = torch.log(tau / (1 - tau))
    assert abs(logit.mean()) < 0.01 and abs(logit.std() - 1.0) < 0.01
    u = sample_tau(200_000, "uniform", generator=g)
    assert 0 <= u.min() and u.max() <= 1 and abs(u.mean() - 0.5) < 0.01


def test_euler_recovers_a_point_mass_exactly_for_any_step_count():
    # data = point mass at c: the exact velocity is v(x, tau) = (x - c) / tau, straight paths -> Euler is exact
    c = torch.full((2, 3, 4, 4), 0.3)

    def velocity(x, tau, text, mask):
        return (x - c.repeat(x.shape[0] // 2, 1, 1, 1)) / tau.view(-1, 1, 1, 1)

    noise = torch.randn(2, 3, 4, 4)
    z = torch.zeros(2, 1, 1)
    for steps in (1, 2, 7):
        out = euler_sample(velocity, noise, z, z, z[:1], z[:1], steps=steps, cfg_scale=3.0)
        assert torch.allclose(out, c, atol=1e-5)


def test_cfg_combination():
    def velocity(x, tau, text, mask):
        return text.view(-1, 1, 1, 1).expand_as(x)

    x, tau = torch.zeros(2, 1, 2, 2), torch.ones(2)
    cond, null = torch.tensor([[2.0], [4.0]]), torch.tensor([[1.0]])
    v = cfg_velocity(velocity, x, tau, cond, cond, null, null, 3.0)  # v_u + 3 (v_c - v_u)
    assert torch.allclose(v[:, 0, 0, 0], torch.tensor([4.0, 10.0]))
    assert torch.allclose(cfg_velocity(velocity, x, tau, cond, cond, null, null, 1.0)[:, 0, 0, 0],
                          torch.tensor([2.0, 4.0]))


def test_timesteps_and_lr_schedule():
    assert torch.allclose(flow_timesteps(4), torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
    assert lr_lambda(0, 10, 100, "cosine", 0.1) == 0.1
    assert lr_lambda(10, 10, 100, "cosine", 0.1) == 1.0
    assert math.isclose(lr_lambda(55, 10, 100, "cosine", 0.1), 0.55)
    assert math.isclose(lr_lambda(100, 10, 100, "cosine", 0.1), 0.1)
    assert lr_lambda(70, 10, 100, "constant", 0.1) == 1.0


def test_step_seeds_are_valid_torch_seeds_for_every_config_seed():
    for seed in (0, 1, 1_845_000, 2**32 - 1):  # the plain mix passes 2**63 from seed ~1.8e6 on
        for rank, step in ((0, 0), (7, 10**9)):
            torch.Generator().manual_seed(step_seed(seed, rank, step))
    assert step_seed(0, 0, 5) == 5 and step_seed(1, 0, 0) == 1_000_003 * 10_000_019  # small seeds: the mix itself
    assert len({step_seed(s, r, k) for s in (0, 1) for r in (0, 1) for k in range(3)}) == 12
