"""The one-step ODE regression loss (sprint_bench.losses.ode): model-range MSE or pseudo-Huber, gradient to the
student only."""
import pytest
import torch

from sprint_bench.losses.ode import HUBER_C, ode_loss
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


def test_pseudo_huber_hand_computed_and_median_seeking():
    c = 2 / 255
    x0_hat = SIGMA_DATA * torch.tensor([0.0, 1.0, 0.5])
    x0_ode = SIGMA_DATA * torch.tensor([0.0, 0.0, 0.5 + c])
    # element errors 0, 1, c -> sqrt(d^2 + c^2) - c = 0, sqrt(1 + c^2) - c, (sqrt(2) - 1) c
    want = (0.0 + ((1 + c * c) ** 0.5 - c) + (2**0.5 - 1) * c) / 3
    assert HUBER_C == c
    assert ode_loss(x0_hat, x0_ode, metric="pseudo_huber").item() == pytest.approx(want, rel=1e-6)
    # a target that is 0 three times and 1 once: l2 is smallest at the mean 0.25, pseudo-Huber near the median 0
    target = SIGMA_DATA * torch.tensor([0.0, 0.0, 0.0, 1.0])
    grid = torch.linspace(0, 1, 101)
    best = {m: grid[torch.stack([ode_loss(SIGMA_DATA * g.expand(4), target, metric=m) for g in grid]).argmin()].item()
            for m in ("l2", "pseudo_huber")}
    assert best["l2"] == pytest.approx(0.25)
    assert best["pseudo_huber"] < 0.02
    with pytest.raises(ValueError, match="unknown ODE regression metric 'l1'"):
        ode_loss(x0_hat, x0_ode, metric="l1")


def test_config_offers_exactly_the_losses_metrics():
    """`distill.ode_metric`'s choices (config validation) are the metrics `ode_loss` implements."""
    from dataclasses import fields

    from sprint_bench.config.schema import DistillConfig
    from sprint_bench.losses.ode import METRICS

    choices = next(f for f in fields(DistillConfig) if f.name == "ode_metric").metadata["choices"]
    assert sorted(choices) == sorted(METRICS)


def _scene(*boxes, h=32) -> torch.Tensor:
    """A (1, 3, h, h) grey image with a bright square per (row, col, side) box."""
    x = torch.full((1, 3, h, h), -0.1)
    for r, c, s in boxes:
        x[..., r:r + s, c:c + s] = 0.4
    return x


def _moved(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    from sprint_bench.losses.ladd import shift_images

    return shift_images(x, torch.tensor([[dy]]), torch.tensor([[dx]]))


@pytest.mark.parametrize("metric", ["l2", "pseudo_huber"])
def test_shift_tolerance_forgives_misplacements_up_to_the_shift(metric):
    target = _scene((10, 8, 10))
    plain = ode_loss(_moved(target, 1, -1), target, metric=metric)
    assert plain > 0.01
    assert ode_loss(_moved(target, 1, -1), target, metric=metric, shift=1).abs() < 1e-7
    two_off = _moved(target, 2, 0)
    assert ode_loss(two_off, target, metric=metric, shift=1) > 0.1 * plain
    assert ode_loss(two_off, target, metric=metric, shift=2).abs() < 1e-7
    # nothing to align (one grey level against another): every shift and window gives the plain error
    flat = torch.full((2, 3, 16, 16), 0.2)
    hat = flat + 0.05
    for window in (1, 5, 16):
        assert ode_loss(hat, flat, metric=metric, shift=1, window=window).item() == pytest.approx(
            ode_loss(hat, flat, metric=metric).item(), rel=1e-5)


def test_shift_is_chosen_per_window():
    """Two objects misplaced in opposite directions: one shift for the whole image (a window as large as the image)
    cannot forgive both, windows smaller than their gap do."""
    target = _scene((2, 2, 6), (20, 20, 6))
    hat = _scene((3, 1, 6), (19, 21, 6))
    whole = ode_loss(hat, target, metric="pseudo_huber", shift=1, window=32)
    assert whole > 0.005
    assert ode_loss(hat, target, metric="pseudo_huber", shift=1, window=8).abs() < 1e-7
    with pytest.raises(ValueError, match="window 33 must be in 1..32"):
        ode_loss(hat, target, shift=1, window=33)


def test_shift_tolerant_gradient_reaches_the_prediction_only():
    target = _scene((10, 8, 10)).requires_grad_(True)
    hat = (_moved(target.detach(), 2, 0) + 0.01 * torch.randn(1, 3, 32, 32)).requires_grad_(True)
    ode_loss(hat, target, metric="pseudo_huber", shift=1).backward()
    assert target.grad is None
    assert hat.grad.abs().sum() > 0
