"""LADD adversarial losses and sample construction (SANA-Sprint §3.3, Alg. 2; method reference §6.3-6.6)."""
from __future__ import annotations

import torch

from sprint_bench.param.trigflow import T_MAX, trig_noise


def d_hinge_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """L_D = 1/2 [mean relu(1 - D(real)) + mean relu(1 + D(fake))] [method reference §6.5].

    Each mean runs jointly over samples x heads x tokens; the fake set may be larger (misaligned pairs appended)."""
    return 0.5 * (torch.relu(1 - real_logits.float()).mean() + torch.relu(1 + fake_logits.float()).mean())


def g_adv_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """L_G,adv = -mean D(fake) [method reference §6.5]."""
    return -fake_logits.float().mean()


def r1_penalty(real_logits: torch.Tensor, real_input: torch.Tensor) -> torch.Tensor:
    """R1 = mean over the batch of ||d sum(D(real)) / d x_real||^2 (Mescheder et al. 2018; off by default,
    method reference §6.5). ``real_input`` must require grad; the graph is kept so the penalty can be backpropagated
    into the discriminator."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_input, create_graph=True)
    return grad.float().pow(2).reshape(grad.shape[0], -1).sum(dim=1).mean()


def renoise(x0: torch.Tensor, s: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """x_s = cos s x0 + sin s z (z has std sigma_d) [method reference §6.3]."""
    return trig_noise(x0, z, s)


def misaligned(x0: torch.Tensor) -> torch.Tensor:
    """x0 rolled by one along the batch: each caption paired with its neighbour's image [method reference §6.3]."""
    return torch.roll(x0, shifts=1, dims=0)


def shift_images(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Each image of ``x`` (B, C, H, W) moved down by dy[i] and right by dx[i] pixels (integer tensors of shape
    (B, 1)), the edge rows and columns replicated into the uncovered border; differentiable in ``x``."""
    b, _, h, w = x.shape
    rows = (torch.arange(h, device=x.device) - dy).clamp(0, h - 1)  # (B, H): source row of each output row
    cols = (torch.arange(w, device=x.device) - dx).clamp(0, w - 1)
    picked = x[torch.arange(b, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return picked.permute(0, 3, 1, 2)  # advanced indexing puts the channel axis last


def translate(x: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image of ``x`` (B, C, H, W) shifted by its own integer (dy, dx), each uniform in [-n, n], the edge rows
    and columns replicated into the uncovered border (DiffAugment translation, Zhao et al. 2020). Differentiable in
    ``x``: the adversarial gradient is shifted back with the image, so no fixed pixel grid sees it. n = 0: ``x``."""
    if n == 0:
        return x
    dy, dx = torch.randint(-n, n + 1, (2, x.shape[0], 1), generator=generator, device=x.device)
    return shift_images(x, dy, dx)


def apply_max_time(t: torch.Tensor, p: float, generator: torch.Generator | None = None,
                   t_max: float = T_MAX) -> torch.Tensor:
    """Each entry of t replaced by t_max with probability p (max-time weighting) [method reference §6.6]."""
    hit = torch.rand(t.shape, generator=generator, device=t.device) < p
    return torch.where(hit, torch.full_like(t, t_max), t)
