"""Training-time samplers for the flow time tau in [0, 1] (tau = 0 data, tau = 1 noise)."""
from __future__ import annotations

import torch


def sample_tau(n: int, kind: str = "logit_normal", mean: float = 0.0, std: float = 1.0,
               generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Logit-normal tau = sigmoid(mean + std * N(0,1)) (SD3, Esser et al. 2024 §3.1) or uniform tau ~ U(0, 1)."""
    if kind == "logit_normal":
        return torch.sigmoid(mean + std * torch.randn(n, generator=generator, device=device))
    if kind == "uniform":
        return torch.rand(n, generator=generator, device=device)
    raise ValueError(f"unknown time sampling {kind!r}; expected 'logit_normal' or 'uniform'")
