"""Rectified-flow / flow-matching objective: x_tau = (1 - tau) x0 + tau eps, target v = eps - x0."""
from __future__ import annotations

import torch


def interpolate(x0: torch.Tensor, eps: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """x_tau = (1 - tau) * x0 + tau * eps, tau broadcast over (B, C, H, W)."""
    t = tau.view(-1, *([1] * (x0.dim() - 1)))
    return (1 - t) * x0 + t * eps


def flow_matching_loss(v_pred: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the predicted velocity and eps - x0 (Lipman et al. 2023; Liu et al. 2023)."""
    return torch.mean((v_pred.float() - (eps - x0).float()) ** 2)
