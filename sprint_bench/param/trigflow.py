"""TrigFlow maths and the training-free flow-matching -> TrigFlow conversion: the single home of these formulas.

TrigFlow (SANA-Sprint §2.1): x_t = cos(t) x0 + sin(t) z, t in [0, pi/2], z ~ N(0, sigma_d^2 I); the network sees
x_t / sigma_d and predicts F with sigma_d F ~ dx_t/dt. Flow matching (our teacher): x_tau = (1 - tau) u + tau eps,
v ~ eps - u, with u = x0 / sigma_d. Conversion: SANA-Sprint Prop. 3.1, Eq. 6-8. Tensors ``t`` broadcast against
the images (shape (B,) is reshaped to (B, 1, 1, 1) where needed)."""
from __future__ import annotations

import math

import torch

SIGMA_DATA = 0.5  # sigma_d, data std in TrigFlow units (SANA-Sprint §2.1)
T_MAX = 1.57080  # the paper's 1-step start, 3.7e-6 above pi/2 (method reference pitfall P7)


def bcast(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """t of shape (B,) (or scalar) viewed as (B, 1, ..., 1) to broadcast against ``like``."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t.reshape(-1, *([1] * (like.dim() - 1))) if t.dim() else t


def tau_from_t(t: torch.Tensor) -> torch.Tensor:
    """Equal-SNR flow time tau(t) = sin t / (sin t + cos t) (Prop. 3.1)."""
    return torch.sin(t) / (torch.sin(t) + torch.cos(t))


def t_from_tau(tau: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`tau_from_t`: t = arctan(tau / (1 - tau)), continuous at tau = 1."""
    return torch.atan2(tau, 1 - tau)


def lam(t: torch.Tensor) -> torch.Tensor:
    """Input scale lambda(t) = sqrt(tau^2 + (1 - tau)^2) = 1 / (sin t + cos t) (Prop. 3.1)."""
    return 1 / (torch.sin(t) + torch.cos(t))


def fm_input(x_scaled: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The flow-matching model input x_FM = lambda(t) x_t / sigma_d for the TrigFlow input x_scaled = x_t / sigma_d."""
    return bcast(lam(t), x_scaled) * x_scaled


def trigflow_output(x_scaled: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """F = [(1 - 2 tau) x_FM + (1 - 2 tau + 2 tau^2) v] / lambda = lambda [(cos t - sin t) x_scaled + v]
    (Eq. 8, closed form): the TrigFlow output of a flow velocity v = v(x_FM, tau(t))."""
    t = bcast(t, x_scaled)
    return lam(t) * ((torch.cos(t) - torch.sin(t)) * x_scaled + v)


def fm_velocity(x_scaled: torch.Tensor, t: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`trigflow_output`: the flow velocity v at (x_FM, tau(t)) from a TrigFlow output F."""
    t = bcast(t, x_scaled)
    return F / lam(t) - (torch.cos(t) - torch.sin(t)) * x_scaled


def trig_noise(x0: torch.Tensor, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = cos t x0 + sin t z (z already has std sigma_d)."""
    t = bcast(t, x0)
    return torch.cos(t) * x0 + torch.sin(t) * z


def x0_from_F(x_t: torch.Tensor, t: torch.Tensor, F: torch.Tensor, sigma_d: float = SIGMA_DATA) -> torch.Tensor:
    """Consistency function f(x_t, t) = cos t x_t - sin t sigma_d F (SANA-Sprint Eq. 4)."""
    t = bcast(t, x_t)
    return torch.cos(t) * x_t - torch.sin(t) * sigma_d * F


def sample_t_lognormal(n: int, p_mean: float, p_std: float, sigma_d: float = SIGMA_DATA,
                       generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Time proposal log(sigma_d tan t) ~ N(p_mean, p_std^2), i.e. t = arctan(exp(p_mean + p_std n) / sigma_d)
    (sCM proposal; SANA-Sprint App. F.2)."""
    n_ = torch.randn(n, generator=generator, device=device)
    return torch.atan(torch.exp(p_mean + p_std * n_) / sigma_d)


def prior_weight(t: torch.Tensor, sigma_d: float = SIGMA_DATA) -> torch.Tensor:
    """omega(t) = 1 / (sigma_d tan t), the sCM prior weighting (reference code; see method reference §5.5)."""
    return 1 / (sigma_d * torch.tan(t))


def t_from_sigma(sigma: float, sigma_d: float = SIGMA_DATA) -> float:
    """t = arctan(sigma / sigma_d): the TrigFlow time of an EDM noise level (e.g. sigma = 80 -> 1.56455)."""
    return math.atan(sigma / sigma_d)
