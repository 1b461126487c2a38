"""Continuous-time consistency (sCM) distillation loss as SANA-Sprint trains it (method reference §5; sCM: Lu & Song
2024, Alg. 1; SANA-Sprint Alg. 2). All functions work on TrigFlow tensors: x_t in data units, F in unit scale."""
from __future__ import annotations

from typing import Callable

import torch

from sprint_bench.param.trigflow import SIGMA_DATA, bcast, prior_weight

# F(x_t / sigma_d, t) -> F, with t of shape (B,)
StudentFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def teacher_cfg_velocity(F_cond: torch.Tensor, F_uncond: torch.Tensor | None, w: torch.Tensor,
                         sigma_d: float = SIGMA_DATA) -> torch.Tensor:
    """dx_t/dt = v_u + w (v_c - v_u), v = sigma_d F_T (method reference §5.2); w has shape (B,)."""
    v_c = sigma_d * F_cond
    if F_uncond is None:
        return v_c
    v_u = sigma_d * F_uncond
    return v_u + bcast(w, v_c) * (v_c - v_u)


def tangents(x_t: torch.Tensor, t: torch.Tensor, dxt_dt: torch.Tensor,
             sigma_d: float = SIGMA_DATA) -> tuple[torch.Tensor, torch.Tensor]:
    """JVP rearrangement: tangents (cos t sin t dx_t/dt / sigma_d, cos t sin t) for the primals (x_t / sigma_d, t),
    so the JVP output is J = cos t sin t dF/dt along the teacher's PF-ODE (SANA-Sprint Alg. 2)."""
    cs = torch.cos(t) * torch.sin(t)
    return bcast(cs, x_t) * dxt_dt / sigma_d, cs


def jvp_autograd(fn: StudentFn, x_scaled: torch.Tensor, t: torch.Tensor, tx: torch.Tensor,
                 tt: torch.Tensor) -> torch.Tensor:
    """J by forward-mode AD (``torch.func.jvp``), without gradients; the primal output is discarded (P4)."""
    with torch.no_grad():
        _, J = torch.func.jvp(fn, (x_scaled, t), (tx, tt))
    return J


def jvp_finite_difference(fn: StudentFn, x_scaled: torch.Tensor, t: torch.Tensor, tx: torch.Tensor,
                          tt: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """J by central finite differences: [F(x + eps tx, t + eps tt) - F(x - eps tx, t - eps tt)] / (2 eps);
    one batched call of size 2B."""
    with torch.no_grad():
        xs = torch.cat([x_scaled + eps * tx, x_scaled - eps * tx])
        ts = torch.cat([t + eps * tt, t - eps * tt])
        out = fn(xs, ts)
        plus, minus = out.chunk(2)
        return (plus - minus) / (2 * eps)


def tangent_warmup(k: int, warmup_steps: int) -> float:
    """r = min(1, k / warmup_steps), k the global (G + D) step counter (SANA-Sprint Alg. 2, line 15)."""
    return 1.0 if warmup_steps <= 0 else min(1.0, k / warmup_steps)


def scm_tangent(F_minus: torch.Tensor, dxt_dt: torch.Tensor, J: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                r: float, sigma_d: float = SIGMA_DATA) -> torch.Tensor:
    """g = -cos^2 t (sigma_d F^- - dx_t/dt) - r (cos t sin t x_t + sigma_d J)  (= cos t df^-/dt at r = 1;
    SANA-Sprint Alg. 2 lines 14-17)."""
    c, s = torch.cos(bcast(t, x_t)), torch.sin(bcast(t, x_t))
    return -c * c * (sigma_d * F_minus - dxt_dt) - r * (c * s * x_t + sigma_d * J)


def normalize_tangent(g: torch.Tensor, c: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """g / (||g|| + c), the norm per sample over all C*H*W elements (sCM tangent normalisation); returns
    (normalised g, ||g|| per sample)."""
    norm = g.flatten(1).norm(dim=1)
    return g / bcast(norm + c, g), norm


def scm_loss(F: torch.Tensor, F_minus: torch.Tensor, g: torch.Tensor, t: torch.Tensor,
             logvar: torch.Tensor | None = None, sigma_d: float = SIGMA_DATA) -> torch.Tensor:
    """L = mean[(omega(t) / e^l) (F - F^- - g)^2 + l] with omega(t) = 1 / (sigma_d tan t) (reference code form of
    SANA-Sprint Eq. 9); without a logvar head l = 0."""
    weight = prior_weight(t, sigma_d)
    sq = (F - F_minus - g).pow(2)
    if logvar is None:
        return (bcast(weight, sq) * sq).mean()
    return (bcast(weight / torch.exp(logvar), sq) * sq + bcast(logvar, sq)).mean()
