"""The one-step ODE regression loss (sprint_bench.losses.ode): model-range MSE, gradient to the student only."""
import torch

from sprint_bench.losses.ode import ode_loss
from sprint_bench.param.trigflow import SIGMA_DATA


def test_hand_computed_value_in_model_range_units():
    x0_hat = SIGMA_DATA * torch.tensor([[1.0, 2.0], [0.0, -1.0]])  # model range u = x0 / sigma_d
    x0_ode = SIGMA_DATA * torch.tensor([[0.0, 0.0], [0.5, -1.0]])
    # squared u errors 1, 4, 0.25, 0 -> mean 1.3125
    assert ode_loss(x0_hat, x0_ode).item() == torch.tensor(1.3125).item()
    assert ode_loss(x0_ode, x0_ode).item() == 0.0
    assert ode_loss(2 * x0_hat, 2 * x0_ode, sigma_d=2 * SIGMA_DATA).item() == ode_loss(x0_hat, x0_ode).item()


def test_gradient_reaches_the_prediction_not_the_target():
    x0_hat = torch.randn(2, 3, 4, 4, requires_grad=True)
    x0_ode = torch.randn(2, 3, 4, 4, requires_grad=True)
    ode_loss(x0_hat, x0_ode).backward()
    torch.testing.assert_close(x0_hat.grad, 2 * (x0_hat - x0_ode).detach() / x0_hat.numel() / SIGMA_DATA**2)
    assert x0_ode.grad is None
