"""Teacher sampler: Euler integration of the flow ODE dx/dtau = v from tau = 1 (noise) to 0 with CFG."""
from __future__ import annotations

from typing import Callable

import torch

Velocity = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def cfg_velocity(velocity: Velocity, x: torch.Tensor, tau: torch.Tensor, text, mask, null_text, null_mask,
                 cfg_scale: float) -> torch.Tensor:
    """v_u + w (v_c - v_u) in one batched call of size 2B (w = 1: one conditional call; Ho & Salimans 2022)."""
    if cfg_scale == 1.0:
        return velocity(x, tau, text, mask)
    b = x.shape[0]
    v = velocity(torch.cat([x, x]), torch.cat([tau, tau]), torch.cat([text, null_text.expand_as(text)]),
                 torch.cat([mask, null_mask.expand_as(mask)]))
    v_c, v_u = v[:b], v[b:]
    return v_u + cfg_scale * (v_c - v_u)


def flow_timesteps(steps: int, device=None) -> torch.Tensor:
    """Uniform grid tau_0 = 1 > tau_1 > ... > tau_N = 0."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return torch.linspace(1.0, 0.0, steps + 1, device=device)


@torch.no_grad()
def euler_sample(velocity: Velocity, noise: torch.Tensor, text, mask, null_text, null_mask, steps: int = 20,
                 cfg_scale: float = 3.0) -> torch.Tensor:
    """N Euler steps x <- x + (tau_next - tau) v; NFE = N (w = 1) or 2N (CFG, batched)."""
    x = noise
    taus = flow_timesteps(steps, noise.device)
    for tau, tau_next in zip(taus[:-1], taus[1:]):
        t = tau.expand(x.shape[0])
        x = x + (tau_next - tau) * cfg_velocity(velocity, x, t, text, mask, null_text, null_mask, cfg_scale)
    return x
