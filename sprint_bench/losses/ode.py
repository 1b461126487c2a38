"""One-step regression onto teacher ODE endpoints (ours, not in SANA-Sprint; the knowledge-distillation loss of
Luhman & Luhman 2021, arXiv:2101.02388): L_ODE = mean[(x0_hat - x0_ODE)^2] / sigma_d^2, i.e. the mean squared error
in the model range u = x0 / sigma_d, where x0_hat is the student's x0 from x_T = sigma_d eps at t = T_MAX and
x0_ODE the teacher's Euler + CFG endpoint from the same eps, caption and w."""
from __future__ import annotations

import torch

from sprint_bench.param.trigflow import SIGMA_DATA


def ode_loss(x0_hat: torch.Tensor, x0_ode: torch.Tensor, sigma_d: float = SIGMA_DATA) -> torch.Tensor:
    """Mean squared error of the two x0 (TrigFlow data units) in model-range units; ``x0_ode`` gets no gradient."""
    return (x0_hat - x0_ode.detach()).pow(2).mean() / sigma_d**2
