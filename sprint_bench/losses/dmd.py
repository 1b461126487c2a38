"""Distribution matching (ours, not in SANA-Sprint; DMD, Yin et al. 2024, arXiv:2311.18828, and DMD2,
arXiv:2405.14867): the student's one-step samples x0_hat are re-noised to x_t and moved along the difference of two
denoisers there, the frozen teacher with CFG (the real score) and a "fake" denoiser trained online on the student's
own samples. The gradient (x0_fake - x0_real) / mean|x0_hat - x0_real| (per sample) points from the data
distribution towards the student's, whatever the pixels of any one sample: it judges the distribution of shapes, not
a per-pixel target."""
from __future__ import annotations

import torch

from sprint_bench.param.trigflow import SIGMA_DATA, bcast


def dmd_gradient(x0_hat: torch.Tensor, x0_real: torch.Tensor, x0_fake: torch.Tensor) -> torch.Tensor:
    """(x0_fake - x0_real) / mean_chw |x0_hat - x0_real| per sample (DMD's gradient with its per-sample
    normaliser); no gradient flows through it."""
    norm = (x0_hat - x0_real).abs().flatten(1).mean(dim=1).clamp_min(1e-8)
    return ((x0_fake - x0_real) / bcast(norm, x0_hat)).detach()


def dmd_loss(x0_hat: torch.Tensor, x0_real: torch.Tensor, x0_fake: torch.Tensor) -> torch.Tensor:
    """0.5 mean[(x0_hat - sg(x0_hat - grad))^2]: its gradient w.r.t. x0_hat is grad / numel (DMD2's surrogate)."""
    grad = dmd_gradient(x0_hat.detach(), x0_real, x0_fake)
    return 0.5 * (x0_hat.float() - (x0_hat - grad).detach().float()).pow(2).mean()


def denoising_loss(F: torch.Tensor, x0: torch.Tensor, z: torch.Tensor, t: torch.Tensor,
                   sigma_d: float = SIGMA_DATA) -> torch.Tensor:
    """TrigFlow diffusion loss of the fake denoiser: mean (F - F*)^2 with F* = (cos t z - sin t x0) / sigma_d for
    x_t = cos t x0 + sin t z (sCM paper Eq. 2's target; x0 and z in data units, z of std sigma_d)."""
    t = bcast(t, x0)
    target = (torch.cos(t) * z - torch.sin(t) * x0) / sigma_d
    return (F.float() - target.detach().float()).pow(2).mean()
