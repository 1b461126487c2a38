"""Distribution-matching losses (sprint_bench.losses.dmd): hand-computed gradient, normaliser and the fake
denoiser's TrigFlow target."""
import math

import pytest
import torch

from sprint_bench.losses.dmd import denoising_loss, dmd_gradient, dmd_loss
from sprint_bench.param.trigflow import SIGMA_DATA, trig_noise, x0_from_F


def test_gradient_hand_computed():
    x0_hat = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    x0_real = torch.tensor([[0.0, 0.0], [1.0, -1.0]])
    x0_fake = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    # sample 0: mean|x0_hat - real| = 1.5, (fake - real) = [1, 1] -> [2/3, 2/3]; sample 1: mean 1, [-1, 1]
    torch.testing.assert_close(dmd_gradient(x0_hat, x0_real, x0_fake), torch.tensor([[2 / 3, 2 / 3], [-1.0, 1.0]]))
    # the surrogate's value is 0.5 mean(grad^2): (4/9 + 4/9 + 1 + 1) / 4 / 2
    assert dmd_loss(x0_hat, x0_real, x0_fake).item() == pytest.approx((8 / 9 + 2) / 8)


def test_loss_moves_samples_along_the_score_difference_only():
    x0_hat = torch.randn(3, 3, 4, 4, requires_grad=True)
    x0_real, x0_fake = torch.randn(3, 3, 4, 4), torch.randn(3, 3, 4, 4)
    dmd_loss(x0_hat, x0_real, x0_fake).backward()
    torch.testing.assert_close(x0_hat.grad, dmd_gradient(x0_hat, x0_real, x0_fake) / x0_hat.numel())
    # a fake denoiser that agrees with the real one gives no gradient: the student's samples already match
    x0_hat.grad = None
    dmd_loss(x0_hat, x0_real, x0_real.clone()).backward()
    assert x0_hat.grad.abs().max().item() == 0.0
    # scale-free: the normaliser makes the step the same for any distance to the real denoiser's estimate
    g1 = dmd_gradient(x0_hat.detach(), x0_real, x0_fake)
    g2 = dmd_gradient(x0_real + 2 * (x0_hat.detach() - x0_real), x0_real, x0_fake)
    torch.testing.assert_close(g2, g1 / 2)


def test_denoising_target_is_the_exact_trigflow_F():
    x0, z = torch.randn(4, 3, 2, 2) * SIGMA_DATA, torch.randn(4, 3, 2, 2) * SIGMA_DATA
    t = torch.tensor([0.1, 0.7, 1.2, 1.5])
    x_t = trig_noise(x0, z, t.reshape(-1, 1, 1, 1))
    F_star = (torch.cos(t).reshape(-1, 1, 1, 1) * z - torch.sin(t).reshape(-1, 1, 1, 1) * x0) / SIGMA_DATA
    assert denoising_loss(F_star, x0, z, t).item() == pytest.approx(0.0, abs=1e-12)
    # the exact F recovers x0 from x_t (x0 = cos t x_t - sin t sigma_d F)
    torch.testing.assert_close(x0_from_F(x_t, t.reshape(-1, 1, 1, 1), F_star), x0, atol=1e-6, rtol=0)
    # hand-computed: at t = pi/2 (pure noise) F* = -x0 / sigma_d, so F = 0 has error (x0 / sigma_d)^2 and at t = 0
    # F* = z / sigma_d
    t2, t0 = torch.full((4,), math.pi / 2), torch.zeros(4)
    assert denoising_loss(torch.zeros_like(z), x0, z, t2).item() == pytest.approx(
        (x0 / SIGMA_DATA).pow(2).mean().item(), rel=1e-5)
    assert denoising_loss(torch.zeros_like(z), x0, z, t0).item() == pytest.approx(
        (z / SIGMA_DATA).pow(2).mean().item(), rel=1e-6)
