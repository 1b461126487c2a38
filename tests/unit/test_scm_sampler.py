"""The multistep consistency sampler: schedules, agreement with diffusers' SCMScheduler, exactness on a toy."""
import math

import pytest
import torch
from diffusers import SCMScheduler

from sprint_bench.param.trigflow import SIGMA_DATA, T_MAX, trig_noise
from sprint_bench.samplers.scm import (PAPER_SCHEDULES, scm_sample, scm_step, scm_timesteps, seeded_step_noise,
                                       to_model_range, validate_schedule)

SHAPE = (2, 3, 4, 4)


def test_paper_schedules_and_fallback():
    assert PAPER_SCHEDULES[2][0] == 1.5683 and math.isclose(math.atan(200 / 0.5), 1.5683, abs_tol=5e-5)
    assert scm_timesteps(1) == (T_MAX, 0.0)
    assert scm_timesteps(2) == (1.5683, 1.3, 0.0)
    assert scm_timesteps(4) == (1.5683, 1.3, 1.1, 0.6, 0.0)
    three = scm_timesteps(3)
    assert len(three) == 4 and three[0] == T_MAX and three[-1] == 0.0
    assert all(math.isclose(a, b) for a, b in zip(three, (T_MAX, 2 * T_MAX / 3, T_MAX / 3, 0.0)))
    assert scm_timesteps(2, [math.pi / 2, 1.0, 0]) == (math.pi / 2, 1.0, 0.0)  # explicit schedule wins


@pytest.mark.parametrize("steps, schedule, match", [
    (2, (1.5, 0.0), "needs 3 timesteps"),
    (2, (1.5, 1.0, 0.1), "end at t = 0"),
    (2, (1.6, 1.0, 0.0), "exceeds T_MAX"),
    (2, (1.0, 1.2, 0.0), "strictly decreasing"),
    (2, (1.2, 1.2, 0.0), "strictly decreasing"),
    (0, None, "steps must be >= 1"),
])
def test_schedule_validation_errors(steps, schedule, match):
    with pytest.raises(ValueError, match=match):
        scm_timesteps(steps, schedule)


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_scm_step_matches_diffusers_scheduler(steps):
    """Every step of the paper schedules; diffusers' model_output = sigma_d F and its noise = randn(generator)
    sigma_d. Tolerance: 1e-6 absolute (fp32; values are O(1)) -- in practice identical."""
    ts = PAPER_SCHEDULES[steps]
    sched = SCMScheduler(sigma_data=SIGMA_DATA, prediction_type="trigflow")
    sched.set_timesteps(num_inference_steps=steps, timesteps=list(ts), max_timesteps=None,
                        intermediate_timesteps=None)
    sched.set_begin_index(0)
    g_ours, g_theirs = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    torch.manual_seed(0)
    x = SIGMA_DATA * torch.randn(SHAPE)
    for i in range(steps):
        F = torch.randn(SHAPE)
        ref_next, ref_x0 = sched.step(SIGMA_DATA * F, sched.timesteps[i], x, generator=g_theirs, return_dict=False)
        noise = SIGMA_DATA * torch.randn(SHAPE, generator=g_ours)
        x_next, x0_hat = scm_step(x, ts[i], ts[i + 1], F, noise)
        torch.testing.assert_close(x0_hat, ref_x0, rtol=0, atol=1e-6)
        torch.testing.assert_close(x_next, ref_next, rtol=0, atol=1e-6)
        x = x_next
    assert torch.equal(x, x0_hat)  # the last step (t_next = 0) returns x0_hat exactly


def _exact_model(x0: torch.Tensor):
    """Point-mass data x0: along x_t = cos t x0 + sin t z the exact F = (cos t z - sin t x0) / sigma_d, with
    z = (x_t - cos t x0) / sin t recovered from x_t."""
    def model_fn(x_scaled, t):
        t = t.view(-1, 1, 1, 1)
        x_t = SIGMA_DATA * x_scaled
        z = (x_t - torch.cos(t) * x0) / torch.sin(t)
        return (torch.cos(t) * z - torch.sin(t) * x0) / SIGMA_DATA
    return model_fn


def test_exact_velocity_recovers_the_data_in_one_step_at_t_max():
    torch.manual_seed(1)
    x0 = SIGMA_DATA * torch.randn(SHAPE, dtype=torch.float64)
    eps = torch.randn(SHAPE, dtype=torch.float64)
    out = scm_sample(_exact_model(x0), [eps], scm_timesteps(1), dtype=torch.float64)
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-9)
    # and at any start time, for one step from x_t built from x0
    t = torch.tensor(1.3, dtype=torch.float64)
    z = SIGMA_DATA * eps
    x_t = trig_noise(x0, z, t)
    F = (torch.cos(t) * z - torch.sin(t) * x0) / SIGMA_DATA
    _, x0_hat = scm_step(x_t, 1.3, 0.0, F, None)
    torch.testing.assert_close(x0_hat, x0, rtol=0, atol=1e-12)
    assert torch.allclose(to_model_range(x0_hat), x0 / SIGMA_DATA)


def test_fresh_noise_each_step():
    """A model whose x0 guess depends on its input: re-noise draws change 2-step samples, never 1-step ones."""
    def model_fn(x_scaled, t):
        return -0.5 * x_scaled  # F depends on x, so the second step sees the fresh noise
    eps0 = torch.randn(SHAPE)
    a, b = torch.randn(SHAPE), torch.randn(SHAPE)
    two = PAPER_SCHEDULES[2]
    assert not torch.allclose(scm_sample(model_fn, [eps0, a], two), scm_sample(model_fn, [eps0, b], two))
    one = PAPER_SCHEDULES[1]
    assert torch.equal(scm_sample(model_fn, [eps0, a], one), scm_sample(model_fn, [eps0, b], one))
    assert torch.equal(scm_sample(model_fn, lambda i: [eps0, a][i], two), scm_sample(model_fn, [eps0, a], two))
    with pytest.raises(ValueError, match="needs noise 1"):
        scm_sample(model_fn, [eps0], two)


def test_seeded_step_noise_is_independent_of_batch_composition():
    both = seeded_step_noise([3, 5], (3, 4, 4), steps=2)
    alone = seeded_step_noise([5], (3, 4, 4), steps=2)
    assert len(both) == 2 and all(torch.equal(both[i][1], alone[i][0]) for i in range(2))
    assert torch.equal(both[0][0], torch.randn((3, 4, 4), generator=torch.Generator().manual_seed(3)))
    assert not torch.equal(both[0], both[1])


def test_validate_schedule_returns_floats():
    assert validate_schedule([1, 0.5, 0]) == (1.0, 0.5, 0.0)
