"""Few-step sampler of a TrigFlow consistency model (SANA-Sprint §3.4 / Table 7; method reference §9).

Units: x is in TrigFlow units (x0 = sigma_d u, z = sigma_d eps); the network sees x / sigma_d and returns F_theta.
Noise is passed as *unit* Gaussians eps_i (i = 0: the start, i >= 1: the re-noise before step i), so a caller that
draws eps_i per image seed gets samples independent of batch composition (see :func:`seeded_step_noise`).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from sprint_bench.param.trigflow import SIGMA_DATA, T_MAX, bcast, t_from_sigma, trig_noise, x0_from_F

Schedule = tuple[float, ...]
ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t / sigma_d, t of shape (B,)) -> F_theta
NoiseFn = Callable[[int], torch.Tensor]  # i -> unit Gaussian eps_i of shape (B, ...)

T_START = round(t_from_sigma(200.0), 4)  # 1.5683 = arctan(200 / 0.5), the 2/4-step start (paper Table 7)
PAPER_SCHEDULES: dict[int, Schedule] = {  # SANA-Sprint Table 7
    1: (T_MAX, 0.0),
    2: (T_START, 1.3, 0.0),
    4: (T_START, 1.3, 1.1, 0.6, 0.0),
}


def validate_schedule(schedule: Sequence[float], steps: int | None = None) -> Schedule:
    """The schedule as a tuple of floats, checked: t_0 > t_1 > ... > t_n = 0, t_0 <= T_MAX, n = ``steps``."""
    ts = tuple(float(t) for t in schedule)
    if steps is not None and len(ts) != steps + 1:
        raise ValueError(f"a {steps}-step schedule needs {steps + 1} timesteps (t_0 ... t_n = 0), got {len(ts)}: {ts}")
    if len(ts) < 2:
        raise ValueError(f"a schedule needs at least 2 timesteps (t_0, 0), got {ts}")
    if ts[-1] != 0.0:
        raise ValueError(f"a schedule must end at t = 0 (clean data), got last timestep {ts[-1]} in {ts}")
    if ts[0] > T_MAX:
        raise ValueError(f"first timestep {ts[0]} exceeds T_MAX = {T_MAX} (TrigFlow t lies in [0, pi/2]): {ts}")
    if any(a <= b for a, b in zip(ts[:-1], ts[1:])):
        raise ValueError(f"timesteps must be strictly decreasing: {ts}")
    return ts


def scm_timesteps(steps: int, schedule: Sequence[float] | None = None) -> Schedule:
    """Timesteps for ``steps`` steps: an explicit ``schedule`` (validated) wins, else the paper's Table 7 schedule
    for 1, 2 and 4 steps, else linspace(T_MAX, 0, steps + 1) (the diffusers / NVlabs fallback)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if schedule is not None:
        return validate_schedule(schedule, steps)
    if steps in PAPER_SCHEDULES:
        return PAPER_SCHEDULES[steps]
    return tuple(T_MAX * (1 - k / steps) for k in range(steps)) + (0.0,)


def scm_step(x: torch.Tensor, t, t_next, F: torch.Tensor, noise: torch.Tensor | None,
             sigma_d: float = SIGMA_DATA) -> tuple[torch.Tensor, torch.Tensor]:
    """One consistency step (method reference §9): x0_hat = cos t x - sin t sigma_d F (SANA-Sprint Eq. 4), then
    x_next = cos t_next x0_hat + sin t_next noise, with ``noise`` of std sigma_d. Returns (x_next, x0_hat);
    at t_next == 0 x_next is x0_hat itself (``noise`` may then be None)."""
    x0_hat = x0_from_F(x, t, F, sigma_d)
    t_next = torch.as_tensor(t_next, dtype=x.dtype, device=x.device)
    if bool((t_next == 0).all()):
        return x0_hat, x0_hat
    if noise is None:
        raise ValueError("scm_step needs noise when t_next > 0")
    return trig_noise(x0_hat, noise, bcast(t_next, x0_hat)), x0_hat


def _noise_fn(noise: NoiseFn | Sequence[torch.Tensor]) -> NoiseFn:
    if callable(noise):
        return noise
    noises = list(noise)

    def get(i: int) -> torch.Tensor:
        if i >= len(noises):
            raise ValueError(f"scm_sample needs noise {i} but only {len(noises)} noise tensors were given")
        return noises[i]

    return get


@torch.no_grad()
def scm_sample(model_fn: ModelFn, noise: NoiseFn | Sequence[torch.Tensor], timesteps: Sequence[float],
               sigma_d: float = SIGMA_DATA, device=None, dtype=torch.float32) -> torch.Tensor:
    """Multistep consistency sampling: x = sigma_d eps_0; for each step x0_hat = f(x, t_i) and re-noise to t_{i+1}
    with FRESH sigma_d eps_{i+1} (method reference §9). ``noise`` is a list [eps_0, ..., eps_{n-1}] of unit
    Gaussians or a callable i -> eps_i. Returns x0_hat in TrigFlow units (see :func:`to_model_range`)."""
    ts = validate_schedule(timesteps)
    get = _noise_fn(noise)
    eps0 = get(0)
    x = sigma_d * eps0.to(device=device or eps0.device, dtype=dtype)
    x0_hat = x
    for i, (t, t_next) in enumerate(zip(ts[:-1], ts[1:])):
        F = model_fn(x / sigma_d, torch.full((x.shape[0],), t, dtype=dtype, device=x.device)).to(dtype)
        z = None if t_next == 0 else sigma_d * get(i + 1).to(device=x.device, dtype=dtype)
        x, x0_hat = scm_step(x, t, t_next, F, z, sigma_d)
    return x0_hat


def to_model_range(x0: torch.Tensor, sigma_d: float = SIGMA_DATA) -> torch.Tensor:
    """TrigFlow data x0 = sigma_d u back to the model / VAE-latent range u = x0 / sigma_d (method reference §2)."""
    return x0 / sigma_d


def trigflow_model_fn(model, text: torch.Tensor, mask: torch.Tensor, guidance: float | torch.Tensor | None = None,
                      cond: torch.Tensor | None = None) -> ModelFn:
    """Adapter: a :class:`~sprint_bench.models.trigflow.TrigFlowModel` with fixed text, CFG scale w and (ControlNet)
    condition as a ``model_fn(x_scaled, t) -> F_theta`` (the logvar output is dropped)."""

    def model_fn(x_scaled: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        w = None if guidance is None else torch.as_tensor(guidance, dtype=x_scaled.dtype, device=x_scaled.device
                                                          ).reshape(-1).expand(x_scaled.shape[0])
        kwargs = {} if cond is None else {"cond": cond.to(x_scaled.device, x_scaled.dtype)}
        return model(x_scaled, t, text, mask, guidance=w, **kwargs)[0]

    return model_fn


def sample_student(model, text: torch.Tensor, mask: torch.Tensor, guidance: float | torch.Tensor | None,
                   noise: NoiseFn | Sequence[torch.Tensor], timesteps: Sequence[float],
                   cond: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
    """A TrigFlow student sampled over ``timesteps`` with fixed text, w and ControlNet condition, returned in model
    range u = x0 / sigma_d (what the evaluation, the latency pipeline and the training grids all need)."""
    return to_model_range(scm_sample(trigflow_model_fn(model, text, mask, guidance, cond), noise, timesteps,
                                     **kwargs))


def seeded_step_noise(seeds: Sequence[int], shape: tuple[int, ...], steps: int) -> list[torch.Tensor]:
    """[eps_0, ..., eps_{steps-1}], each (B, *shape): image b draws its eps_i in order from its own generator
    ``torch.Generator().manual_seed(seeds[b])`` (so eps_0 equals ``seeded_noise(seeds, shape)`` and a batch of one
    matches diffusers' SanaSprintPipeline with that generator)."""
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    return [torch.stack([torch.randn(shape, generator=g) for g in gens]) for _ in range(steps)]
