"""One-step regression onto teacher ODE endpoints (ours, not in SANA-Sprint; the knowledge-distillation loss of
Luhman & Luhman 2021, arXiv:2101.02388): L_ODE = mean[(x0_hat - x0_ODE)^2] / sigma_d^2, i.e. the mean squared error
in the model range u = x0 / sigma_d, where x0_hat is the student's x0 from x_T = sigma_d eps at t = T_MAX and
x0_ODE the teacher's Euler + CFG endpoint from the same eps, caption and w. ``metric="pseudo_huber"`` replaces the
squared error of each element by sqrt(d^2 + c^2) - c (Charbonnier 1994; the iCT paper's pseudo-Huber, Song &
Dhariwal 2023, taken per element), c = one 8-bit level in model range (2/255): quadratic below it, absolute above,
so a pixel whose target flips between two values is pulled to the median, not to the blurred mean.

``shift=n`` (ours) makes the error tolerant to small misplacements: the error map against the target moved by each
integer (dy, dx) in [-n, n]^2 is averaged over every ``window`` x ``window`` window, and each window keeps its
smallest mean. A per-pixel mean or median of targets whose objects jitter by a pixel rounds a square's corners (a
corner pixel is covered only when both offsets fall on its side); with the tolerance an object drawn whole, a pixel
off, costs nothing."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from sprint_bench.losses.ladd import shift_images
from sprint_bench.param.trigflow import SIGMA_DATA


METRICS = ("l2", "pseudo_huber")
HUBER_C = 2 / 255  # one 8-bit level in model range [-1, 1]


def element_error(d: torch.Tensor, metric: str) -> torch.Tensor:
    """Per-element error of a difference ``d`` in model range: d^2 (``l2``) or sqrt(d^2 + c^2) - c."""
    if metric == "l2":
        return d.pow(2)
    if metric == "pseudo_huber":
        return (d.pow(2) + HUBER_C**2).sqrt() - HUBER_C
    raise ValueError(f"unknown ODE regression metric {metric!r}; choose one of {METRICS}")


def ode_loss(x0_hat: torch.Tensor, x0_ode: torch.Tensor, sigma_d: float = SIGMA_DATA,
             metric: str = "l2", shift: int = 0, window: int = 12) -> torch.Tensor:
    """Mean per-element error of the two x0 (TrigFlow data units) in model-range units: squared (``l2``) or
    pseudo-Huber; ``x0_ode`` gets no gradient. ``shift`` > 0: the smallest error over target shifts of up to
    ``shift`` pixels, taken per ``window`` x ``window`` window of images (B, C, H, W) (module docstring)."""
    target = x0_ode.detach()
    if shift == 0:
        return element_error((x0_hat - target) / sigma_d, metric).mean()
    b, _, h, w = x0_hat.shape
    if not 0 < window <= min(h, w):
        raise ValueError(f"ODE shift window {window} must be in 1..{min(h, w)} for {h}x{w} images")
    maps = []
    for dy in range(-shift, shift + 1):
        for dx in range(-shift, shift + 1):
            moved = shift_images(target, torch.full((b, 1), dy, device=target.device),
                                 torch.full((b, 1), dx, device=target.device))
            err = element_error((x0_hat - moved) / sigma_d, metric).mean(dim=1, keepdim=True)  # (B, 1, H, W)
            maps.append(F.avg_pool2d(err, window, stride=1))
    return torch.cat(maps, dim=1).amin(dim=1).mean()
