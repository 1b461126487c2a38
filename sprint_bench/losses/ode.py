"""One-step regression onto teacher ODE endpoints (ours, not in SANA-Sprint; the knowledge-distillation loss of
Luhman & Luhman 2021, arXiv:2101.02388): L_ODE = mean[(x0_hat - x0_ODE)^2] / sigma_d^2, i.e. the mean squared error
in the model range u = x0 / sigma_d, where x0_hat is the student's x0 from x_T = sigma_d eps at t = T_MAX and
x0_ODE the teacher's Euler + CFG endpoint from the same eps, caption and w. ``metric="pseudo_huber"`` replaces the
squared error of each element by sqrt(d^2 + c^2) - c (Charbonnier 1994; the iCT paper's pseudo-Huber, Song &
Dhariwal 2023, taken per element), c = one 8-bit level in model range (2/255): quadratic below it, absolute above,
so a pixel whose target flips between two values is pulled to the median, not to the blurred mean."""
from __future__ import annotations

import torch

from sprint_bench.param.trigflow import SIGMA_DATA


METRICS = ("l2", "pseudo_huber")
HUBER_C = 2 / 255  # one 8-bit level in model range [-1, 1]


def ode_loss(x0_hat: torch.Tensor, x0_ode: torch.Tensor, sigma_d: float = SIGMA_DATA,
             metric: str = "l2") -> torch.Tensor:
    """Mean per-element error of the two x0 (TrigFlow data units) in model-range units: squared (``l2``) or
    pseudo-Huber; ``x0_ode`` gets no gradient."""
    d = (x0_hat - x0_ode.detach()) / sigma_d
    if metric == "l2":
        return d.pow(2).mean()
    if metric == "pseudo_huber":
        return ((d.pow(2) + HUBER_C**2).sqrt() - HUBER_C).mean()
    raise ValueError(f"unknown ODE regression metric {metric!r}; choose one of {METRICS}")
