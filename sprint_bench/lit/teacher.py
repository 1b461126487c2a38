"""Flow-matching teacher: LightningModule around the SANA transformer (logit-normal tau, caption dropout, AdamW,
warmup + cosine LR, optional EMA). The same module trains a ControlNet teacher: the model is then a
``ControlledFlowBackbone`` (frozen base + trainable ControlNet) and batches carry edge maps (PixArt-delta / SANA-Sprint
§4.4: the ordinary flow objective with the condition)."""
from __future__ import annotations

import copy
import math

import lightning as L
import torch

from sprint_bench.data.datamodule import to_model_range
from sprint_bench.data.shapes.edges import edges_to_condition
from sprint_bench.losses.flow_matching import flow_matching_loss, interpolate
from sprint_bench.models.sana import FlowBackbone, build_sana
from sprint_bench.models.text_encoder import CaptionCache
from sprint_bench.param.time import sample_tau
from sprint_bench.samplers.flow import euler_sample


def lr_lambda(step: int, warmup: int, total: int, schedule: str, min_ratio: float) -> float:
    """Linear warmup, then constant or cosine decay to min_ratio at ``total``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def step_seed(seed: int, rank: int, step: int) -> int:
    """The torch seed of one training step on one rank; below 2**63 for every config seed (0..2**32 - 1), which
    ``manual_seed`` requires (the mix alone passes it from seed ~1.8e6 on)."""
    return ((seed * 1_000_003 + rank) * 10_000_019 + step) % (2**63 - 1)


class TeacherModule(L.LightningModule):
    def __init__(self, cfg, captions: CaptionCache, model: torch.nn.Module | None = None):
        """``model``: the network to train (default: a fresh SANA transformer); only its parameters that require
        grad are optimised (a ControlNet teacher's frozen base stays fixed)."""
        super().__init__()
        self.cfg = cfg
        res = cfg.world.resolution
        self.model = model if model is not None else FlowBackbone(build_sana(cfg.model, in_channels=3, sample_size=res))
        self.grid_cond = None  # ControlNet: the condition of each periodic-grid prompt, (n, 3, H, W)
        self.ema = copy.deepcopy(self.model).requires_grad_(False) if cfg.train.ema_decay > 0 else None
        self.register_buffer("text_hidden", captions.hidden, persistent=False)
        self.register_buffer("text_mask", captions.mask, persistent=False)
        self.null_id = captions.null_id

    def text(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.text_hidden[ids], self.text_mask[ids]

    def sampling_model(self) -> FlowBackbone:
        return self.ema if self.ema is not None else self.model

    def step_generator(self) -> torch.Generator:
        """Randomness of a training step as a function of (seed, rank, global step): resuming is exact."""
        return torch.Generator(device=self.device).manual_seed(step_seed(self.cfg.seed, self.global_rank,
                                                                         self.global_step))

    def training_step(self, batch, batch_idx):
        images, ids, *edges = batch
        cond = (edges_to_condition(edges[0]),) if edges else ()  # ControlNet teacher: the edge map of each image
        tc = self.cfg.train
        gen = self.step_generator()
        x0 = to_model_range(images)
        drop = torch.rand(ids.shape[0], device=ids.device, generator=gen) < tc.caption_dropout
        ids = torch.where(drop, torch.full_like(ids, self.null_id), ids)
        text, mask = self.text(ids)
        tau = sample_tau(x0.shape[0], tc.time_sampling, tc.logit_mean, tc.logit_std, generator=gen, device=x0.device)
        eps = torch.randn(x0.shape, generator=gen, device=x0.device)
        loss = flow_matching_loss(self.model(interpolate(x0, eps, tau), tau, text, mask, *cond), x0, eps)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"])
        return loss

    def optimizer_step(self, *args, **kwargs) -> None:
        """Optimizer step, then the EMA update -- inside the step, so a checkpoint taken at the end of the batch
        always holds an EMA that matches its weights (exact resume)."""
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None:
            with torch.no_grad():
                d = self.cfg.train.ema_decay
                # warm EMA: the effective decay grows with the step so early averages are not stuck at init
                d = min(d, (1 + self.global_step) / (10 + self.global_step))
                for pe, p in zip(self.ema.parameters(), self.model.parameters()):
                    if p.requires_grad:  # a ControlNet teacher's frozen base is equal in both already
                        pe.lerp_(p.detach(), 1 - d)

    def configure_optimizers(self):
        tc = self.cfg.train
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(trainable, lr=tc.lr, betas=tuple(tc.betas), weight_decay=tc.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: lr_lambda(s, tc.warmup_steps, tc.max_steps, tc.lr_schedule, tc.min_lr_ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        if self.cfg.train.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
            self.log("train/grad_norm", norm)

    @torch.no_grad()
    def sample(self, ids: torch.Tensor, steps: int, cfg_scale: float, generator: torch.Generator | None = None,
               use_ema: bool = True) -> torch.Tensor:
        """Images in [-1, 1] for caption ids, Euler flow ODE with CFG."""
        model = self.sampling_model() if use_ema else self.model
        if self.grid_cond is not None:
            model = model.bind(self.grid_cond.to(self.device))
        res = self.cfg.world.resolution
        noise = torch.randn(ids.shape[0], 3, res, res, generator=generator).to(self.device)
        text, mask = self.text(ids.to(self.device))
        null_t, null_m = self.text(torch.tensor([self.null_id], device=self.device))
        return euler_sample(model, noise, text, mask, null_t, null_m, steps, cfg_scale)
