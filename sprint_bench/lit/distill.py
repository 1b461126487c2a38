"""SANA-Sprint distillation LightningModule: manual optimisation alternating generator (sCM and/or adversarial) and
discriminator steps (method reference §7), with a NaN/Inf guard, per-part logging and exact resume (the global
step counter k, which drives the G/D phase and the tangent warmup, is a buffer saved in every checkpoint). A
ControlNet teacher gives a ControlNet student: the edge condition of each image goes to teacher, student and the
discriminator's teacher backbone (SANA-Sprint §4.4; method reference §10)."""
from __future__ import annotations

import copy
import math

import lightning as L
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from sprint_bench.config import config_hash
from sprint_bench.data.datamodule import to_model_range
from sprint_bench.data.shapes.edges import edges_to_condition
from sprint_bench.lit.compiled import Compiled, model_F, model_features, model_jvp, model_out
from sprint_bench.lit.teacher import lr_lambda, step_seed
from sprint_bench.losses.dmd import denoising_loss, dmd_loss
from sprint_bench.losses.ladd import apply_max_time, d_hinge_loss, g_adv_loss, misaligned, r1_penalty, translate
from sprint_bench.losses.ode import ode_loss
from sprint_bench.losses.scm import (jvp_finite_difference, normalize_tangent, scm_loss, scm_tangent,
                                     tangent_warmup, tangents, teacher_cfg_velocity)
from sprint_bench.models.controlnet import controlnet_copy
from sprint_bench.models.discriminator import Discriminator
from sprint_bench.models.text_encoder import CaptionCache
from sprint_bench.models.trigflow import TrigFlowModel, student_from_teacher, use_math_attention
from sprint_bench.param.trigflow import SIGMA_DATA, T_MAX, sample_t_lognormal, trig_noise, x0_from_F
from sprint_bench.samplers.ode_pairs import OdePairs

CKPT_CONFIG_HASH = "sprint_bench_config_hash"  # the checkpoint key naming the config that saved it


def build_student(cfg, teacher_transformer, teacher_controlnet=None, student_init: nn.Module | None = None
                  ) -> TrigFlowModel:
    """The trainable student of ``cfg``: a copy of ``student_init`` or of the teacher (with the guidance embedding),
    its ControlNet a copy of the teacher's, the logvar head when sCM weights by it, attention on the MATH backend."""
    d = cfg.distill
    student = (copy.deepcopy(student_init).requires_grad_(True) if student_init is not None
               else student_from_teacher(teacher_transformer, d.guidance_embed, d.guidance_zero_init))
    control = controlnet_copy(teacher_controlnet, student) if teacher_controlnet is not None else None
    for m in (student, control):  # forward-mode AD needs the MATH SDPA backend (method reference §11.1)
        if m is not None:
            use_math_attention(m)
    return TrigFlowModel(student, logvar=d.logvar and d.uses_scm, controlnet=control,
                         conditioning_scale=cfg.control.conditioning_scale).requires_grad_(True)


class DistillModule(L.LightningModule):
    """Teacher (frozen, TrigFlow-wrapped), student (teacher copy + guidance embedding + logvar head) and the LADD
    discriminator heads on frozen-teacher features; with ``distill.dmd_weight`` also the fake denoiser of distribution
    matching (a teacher copy that trains on the student's samples in the D steps). With ``teacher_controlnet`` both
    teacher and student carry a ControlNet (the student's starts as a copy of the teacher's and trains with the
    student). ``ode_pairs`` is the teacher ODE-pair bank of the one-step regression term (needed when
    ``distill.ode_weight > 0``); ``student_init`` a student transformer to start from (``distill.student_init``)
    instead of a copy of the teacher."""

    def __init__(self, cfg, captions: CaptionCache, teacher_transformer, teacher_controlnet=None,
                 ode_pairs: OdePairs | None = None, student_init: nn.Module | None = None):
        super().__init__()
        self.automatic_optimization = False
        self.cfg, d = cfg, cfg.distill
        scale = cfg.control.conditioning_scale
        t_transformer = copy.deepcopy(teacher_transformer)
        t_control = controlnet_copy(teacher_controlnet, t_transformer) if teacher_controlnet is not None else None
        self.teacher = TrigFlowModel(t_transformer, controlnet=t_control, conditioning_scale=scale
                                     ).requires_grad_(False)
        self.student = build_student(cfg, teacher_transformer, teacher_controlnet, student_init)
        self.grid_cond = None  # ControlNet: the condition of each periodic-grid prompt, (n, 3, H, W)
        self.ema = copy.deepcopy(self.student).requires_grad_(False) if cfg.train.ema_decay > 0 else None
        # the fake denoiser of distribution matching: a trainable teacher copy fitted to the student's samples
        self.fake = (TrigFlowModel(copy.deepcopy(teacher_transformer)).requires_grad_(True) if d.dmd_weight > 0
                     else None)
        self.register_buffer("k", torch.zeros((), dtype=torch.long))  # global G + D step counter
        self.register_buffer("skipped", torch.zeros((), dtype=torch.long))  # steps skipped by the NaN/Inf guard
        self.register_buffer("text_hidden", captions.hidden, persistent=False)
        self.register_buffer("text_mask", captions.mask, persistent=False)
        self.disc = self.new_discriminator() if d.uses_adv else None
        self.null_id = captions.null_id
        self.cfg_scales = torch.tensor(d.cfg_scales, dtype=torch.float32)
        if d.ode_weight > 0 and ode_pairs is None:
            raise ValueError("distill.ode_weight > 0 needs the teacher ODE-pair bank (ode_pairs)")
        self.ode_pairs = ode_pairs if d.ode_weight > 0 else None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[CKPT_CONFIG_HASH] = config_hash(self.cfg)

    # ------------------------------------------------------------------------------------------------ helpers
    def text(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.text_hidden[ids], self.text_mask[ids]

    def batch_inputs(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(x0 in TrigFlow data units, text, mask, condition) of a DataModule batch; the condition is the ControlNet
        edge map of each image (None without ControlNet)."""
        images, ids, *edges = batch
        text, mask = self.text(ids)
        return SIGMA_DATA * to_model_range(images), text, mask, edges_to_condition(edges[0]) if edges else None

    def sampling_model(self) -> TrigFlowModel:
        return self.ema if self.ema is not None else self.student

    def phase(self, k: int) -> str:
        """G then ``d_steps`` D steps, repeated (d_steps 1: strict alternation G, D, G, D, ..., the reference code's
        order); without heads or a fake denoiser there is no D."""
        return "G" if k % self.cfg.distill.cycle == 0 else "D"

    def step_generator(self, k: int) -> torch.Generator:
        """Randomness of step k as a function of (seed, rank, k): resuming is exact."""
        return torch.Generator(device=self.device).manual_seed(step_seed(self.cfg.seed, self.global_rank, k))

    def guidance(self, w: torch.Tensor) -> torch.Tensor | None:
        return w if self.cfg.distill.guidance_embed else None

    def draw_w(self, n: int, gen: torch.Generator) -> torch.Tensor:
        idx = torch.randint(len(self.cfg_scales), (n,), generator=gen, device=self.device)
        return self.cfg_scales.to(self.device)[idx]

    def randn(self, like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return torch.randn(like.shape, generator=gen, device=like.device, dtype=like.dtype)

    # ------------------------------------------------------------------------------------------------ losses
    def teacher_velocity(self, x_t, t, text, mask, w, cond=None) -> torch.Tensor:
        """dx_t/dt of the converted teacher with CFG: one no-grad call on a 2B batch (method reference §5.2). The
        unconditional half gets the null caption with its own mask, as the teacher saw it in caption dropout (the
        reference code reuses the conditional mask there, a quirk of its own, not followed)."""
        b = x_t.shape[0]
        null_t, null_m = self.text(torch.full((b,), self.null_id, device=self.device, dtype=torch.long))
        with torch.no_grad():
            F = self.compiled(model_F)(self.teacher, torch.cat([x_t, x_t]) / SIGMA_DATA, torch.cat([t, t]),
                                       torch.cat([text, null_t]), torch.cat([mask, null_m]), None,
                                       cond)  # a condition is tiled to both halves
        F_c, F_u = F.chunk(2)
        return teacher_cfg_velocity(F_c, F_u, w)

    def scm_part(self, x0, text, mask, w, gen, k: int, cond=None) -> tuple[torch.Tensor, dict]:
        d = self.cfg.distill
        t = sample_t_lognormal(x0.shape[0], d.p_mean, d.p_std, generator=gen, device=self.device)
        x_t = trig_noise(x0, SIGMA_DATA * self.randn(x0, gen), t)
        dxt_dt = self.teacher_velocity(x_t, t, text, mask, w, cond)
        guid = self.guidance(w)

        def F_fn(xs, ts):  # the unwrapped student (never the DDP wrapper: method reference §11.3), on a 2B batch
            g_ = None if guid is None else guid.repeat(2)
            return self.student(xs, ts, text.repeat(2, 1, 1), mask.repeat(2, 1), g_, cond=cond)[0]

        tx, tt = tangents(x_t, t, dxt_dt)
        if d.tangent == "jvp":
            # the unwrapped student (never the DDP wrapper: method reference §11.3)
            J = self.compiled(model_jvp)(self.student, x_t / SIGMA_DATA, t, tx, tt, text, mask, guid, cond)
        else:
            J = jvp_finite_difference(F_fn, x_t / SIGMA_DATA, t, tx, tt, d.fd_eps)
        F, logvar = self.compiled(model_out)(self.student, x_t / SIGMA_DATA, t, text, mask, guid, cond)
        F_minus = F.detach()
        g = scm_tangent(F_minus, dxt_dt, J, x_t, t, tangent_warmup(k, d.tangent_warmup_steps))
        g, g_norm = normalize_tangent(g, d.tangent_norm_c)
        loss = scm_loss(F, F_minus, g, t, logvar)
        logs = {"g_norm": g_norm.mean().detach()}
        if logvar is not None:
            logs["logvar"] = logvar.mean().detach()
        return loss, logs

    def compiled(self, fn):
        """``fn`` (lit/compiled.py), through ``torch.compile`` when ``distill.compile``: one compiled form per
        function, made at its first use."""
        if not self.cfg.distill.compile:
            return fn
        cache = self.__dict__.setdefault("_compiled", {})
        if fn.__name__ not in cache:
            cache[fn.__name__] = Compiled(fn)
        return cache[fn.__name__]

    def one_step_x0(self, x0, text, mask, w, gen, cond=None) -> torch.Tensor:
        """Student one-step estimate from a fresh t (max-time with probability p) and fresh noise (§6.6)."""
        d = self.cfg.distill
        t = sample_t_lognormal(x0.shape[0], d.p_mean, d.p_std, generator=gen, device=self.device)
        t = apply_max_time(t, d.max_time_p, gen)
        x_t = trig_noise(x0, SIGMA_DATA * self.randn(x0, gen), t)
        F, _ = self.compiled(model_out)(self.student, x_t / SIGMA_DATA, t, text, mask, self.guidance(w), cond)
        return x0_from_F(x_t, t, F)

    def one_step_from_noise(self, eps, text, mask, w) -> torch.Tensor:
        """The student's one-step x0 from x_T = sigma_d eps at t = T_MAX, as the 1-step sampler draws it."""
        t = torch.full((eps.shape[0],), T_MAX, device=self.device)
        F, _ = self.compiled(model_out)(self.student, eps, t, text, mask, self.guidance(w))
        return x0_from_F(SIGMA_DATA * eps, t, F)

    def student_sample(self, text, mask, w, gen) -> torch.Tensor:
        """A one-step sample from fresh noise."""
        res = self.cfg.world.resolution
        eps = torch.randn((text.shape[0], 3, res, res), generator=gen, device=self.device)
        return self.one_step_from_noise(eps, text, mask, w)

    def dmd_noised(self, x0_hat, gen) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x_t, z, t): a student sample re-noised at the distribution-matching time (no gradient to the sample)."""
        d = self.cfg.distill
        t = sample_t_lognormal(x0_hat.shape[0], d.dmd_p_mean, d.dmd_p_std, generator=gen, device=self.device)
        z = SIGMA_DATA * self.randn(x0_hat, gen)
        return trig_noise(x0_hat.detach(), z, t), z, t

    def dmd_part(self, text, mask, w, gen) -> torch.Tensor:
        """L_DMD of fresh one-step samples: the teacher's CFG x0 (real) and the fake denoiser's x0 at the same
        re-noised x_t (losses/dmd.py)."""
        x0_hat = self.student_sample(text, mask, w, gen)
        x_t, _, t = self.dmd_noised(x0_hat, gen)
        F_real = self.teacher_velocity(x_t, t, text, mask, w) / SIGMA_DATA
        with torch.no_grad():
            F_fake, _ = self.fake(x_t / SIGMA_DATA, t, text, mask)
        return dmd_loss(x0_hat, x0_from_F(x_t, t, F_real), x0_from_F(x_t, t, F_fake))

    def fake_part(self, text, mask, gen) -> torch.Tensor:
        """The fake denoiser's diffusion loss on fresh (no-grad) one-step student samples."""
        with torch.no_grad():
            x0_hat = self.student_sample(text, mask, self.draw_w(text.shape[0], gen), gen)
        x_t, z, t = self.dmd_noised(x0_hat, gen)
        F, _ = self.fake(x_t / SIGMA_DATA, t, text, mask)
        return denoising_loss(F, x0_hat, z, t)

    def renoise_time(self, n: int, gen) -> torch.Tensor:
        d = self.cfg.distill
        return sample_t_lognormal(n, d.d_p_mean, d.d_p_std, generator=gen, device=self.device)

    def new_discriminator(self) -> Discriminator:
        """Fresh heads as configured: batch-norm groups of 8, or one group per call (``d_norm_stats: shared``);
        conditional on the caption with ``d_text_proj``."""
        d = self.cfg.distill
        return Discriminator(self.cfg.model.width, d.head_blocks, None if d.d_norm_stats == "shared" else 8,
                             self.text_hidden.shape[-1] if d.d_text_proj else None)

    def teacher_features(self, x_scaled, s, text, mask, cond=None, twice=False) -> list[torch.Tensor]:
        """The frozen teacher's features at the heads' blocks (compiled with ``distill.compile``): with an autograd
        graph when gradients must reach ``x_scaled`` (a G step's fakes, R1's reals), else one no-grad call. A graph
        differentiated ``twice`` (R1) is eager and on the MATH attention backend: neither a compiled backward nor
        the fused CPU attention kernel's backward is differentiable."""
        if twice:
            with sdpa_kernel(SDPBackend.MATH):
                return model_features(self.disc, self.teacher, x_scaled, s, text, mask, cond)
        with torch.set_grad_enabled(torch.is_grad_enabled() and x_scaled.requires_grad):
            return self.compiled(model_features)(self.disc, self.teacher, x_scaled, s, text, mask, cond)

    def d_logits(self, x, s, text, mask, cond=None) -> torch.Tensor:
        return self.disc.head_logits(self.teacher_features(x / SIGMA_DATA, s, text, mask, cond), text, mask)

    def d_logits_joint(self, sets, text, mask, cond=None, graph=(), twice=False) -> list[torch.Tensor]:
        """The logits of each (x, s) set (each of the batch's size, same captions) from one pass of the heads over
        all sets, so that shared batch-norm statistics span real and fakes (``d_norm_stats: shared``, ours). The
        teacher's features are taken set by set, with an autograd graph only for the sets whose index is in
        ``graph`` (the others reach the heads' statistics as constants), differentiated ``twice`` for R1."""
        feats = []
        for i, (x, s) in enumerate(sets):
            with torch.set_grad_enabled(i in graph and torch.is_grad_enabled()):
                feats.append(self.teacher_features(x / SIGMA_DATA, s, text, mask, cond, twice and i in graph))
        n = len(sets)
        return list(self.disc.head_logits([torch.cat(f) for f in zip(*feats)], text.repeat(n, 1, 1),
                                          mask.repeat(n, 1)).chunk(n))

    def reference_sets(self, x0, gen) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The real (and misaligned) discriminator inputs a G step shows the heads beside its fakes when their
        statistics are shared, drawn as a D step draws them."""
        sets = []
        for x in (x0, misaligned(x0)) if self.cfg.distill.misaligned_pairs else (x0,):
            s = self.renoise_time(x0.shape[0], gen)
            sets.append((self.d_input(x, s, gen), s))
        return sets

    def d_input(self, x0, s, gen) -> torch.Tensor:
        """A clean image as the discriminator sees it: translated (``d_translate``), then re-noised to time s."""
        return trig_noise(translate(x0, self.cfg.distill.d_translate, gen), SIGMA_DATA * self.randn(x0, gen), s)

    def generator_parts(self, x0, text, mask, gen, k: int, cond=None) -> tuple[dict[str, torch.Tensor], dict]:
        """The weighted generator loss terms {"scm": lambda_sCM L_sCM, "adv": lambda_adv L_adv} (those in use) and
        their logs; their sum is the generator loss (SANA-Sprint Eq. 11)."""
        d = self.cfg.distill
        w = self.draw_w(x0.shape[0], gen)
        parts, logs = {}, {}
        if d.uses_scm:
            l_scm, logs = self.scm_part(x0, text, mask, w, gen, k, cond)
            parts["scm"] = d.scm_weight * l_scm
            logs["loss_scm"] = l_scm.detach()
        if d.uses_adv:
            x0_hat = self.one_step_x0(x0, text, mask, w, gen, cond)
            s = self.renoise_time(x0.shape[0], gen)
            fake = self.d_input(x0_hat, s, gen)
            if d.d_norm_stats == "shared":  # the heads see [real, fake, misaligned], as in the D step
                real, *mis = self.reference_sets(x0, gen)
                fake_logits = self.d_logits_joint([real, (fake, s), *mis], text, mask, cond, graph=(1,))[1]
            else:
                fake_logits = self.d_logits(fake, s, text, mask, cond)
            l_adv = g_adv_loss(fake_logits)
            parts["adv"] = d.adv_weight * l_adv
            logs["loss_g_adv"] = l_adv.detach()
        if d.ode_weight > 0:
            l_ode = self.ode_part(x0.shape[0], gen)
            parts["ode"] = d.ode_weight * l_ode
            logs["loss_ode"] = l_ode.detach()
        if d.dmd_weight > 0:
            l_dmd = self.dmd_part(text, mask, w, gen)
            parts["dmd"] = d.dmd_weight * l_dmd
            logs["loss_dmd"] = l_dmd.detach()
        return parts, logs

    def ode_part(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """L_ODE on ``n`` pairs drawn from the bank: the student's one-step x0 from x_T = sigma_d eps at t = T_MAX
        against the teacher's ODE endpoint from the same eps, caption and w (losses/ode.py)."""
        bank = self.ode_pairs
        idx = torch.randint(len(bank), (n,), generator=gen, device=self.device).cpu()
        eps = bank.noise(idx).to(self.device)
        text, mask = self.text(bank.caption_ids[idx].to(self.device))
        x0_hat = self.one_step_from_noise(eps, text, mask, bank.w[idx].to(self.device))
        target = SIGMA_DATA * to_model_range(bank.x0[idx].to(self.device))
        d = self.cfg.distill
        return ode_loss(x0_hat, target, metric=d.ode_metric, shift=d.ode_shift, window=d.ode_shift_window)

    def generator_loss(self, x0, text, mask, gen, k: int, cond=None) -> tuple[torch.Tensor, dict]:
        parts, logs = self.generator_parts(x0, text, mask, gen, k, cond)
        return sum(parts.values(), torch.zeros((), device=self.device)), logs

    def d_step_loss(self, x0, text, mask, gen, cond=None) -> tuple[torch.Tensor, dict]:
        """The loss of a D step: the heads' hinge loss (with heads) plus the fake denoiser's (with one), which
        trains beside the heads or, without them, alone."""
        loss, logs = (self.discriminator_loss(x0, text, mask, gen, cond) if self.disc is not None
                      else (torch.zeros((), device=self.device), {}))
        if self.fake is not None:
            l_fake = self.fake_part(text, mask, gen)
            loss = loss + l_fake
            logs["loss_fake"] = l_fake.detach()
        return loss, logs

    def discriminator_loss(self, x0, text, mask, gen, cond=None) -> tuple[torch.Tensor, dict]:
        """Real = re-noised data; fake = re-noised student one-step x0 (+ rolled real pairs); hinge (§6.3-6.5)."""
        d, b = self.cfg.distill, x0.shape[0]
        w = self.draw_w(b, gen)
        with torch.no_grad():
            x0_hat = self.one_step_x0(x0, text, mask, w, gen, cond)
        s_real, s_fake = self.renoise_time(b, gen), self.renoise_time(b, gen)
        real = self.d_input(x0, s_real, gen)
        fakes, s_fakes = [self.d_input(x0_hat, s_fake, gen)], [s_fake]
        if d.misaligned_pairs:
            s_mis = self.renoise_time(b, gen)
            fakes.append(self.d_input(misaligned(x0), s_mis, gen))
            s_fakes.append(s_mis)
        n = len(fakes)
        if d.r1_weight > 0:
            real.requires_grad_(True)
        if d.d_norm_stats == "shared":
            real_logits, *fake_logits = self.d_logits_joint([(real, s_real), *zip(fakes, s_fakes)], text, mask, cond,
                                                            graph=(0,) if d.r1_weight > 0 else (),
                                                            twice=d.r1_weight > 0)
            fake_logits = torch.cat(fake_logits)
        else:  # the teacher sees real and fakes in one call (a condition is tiled to them), the heads apart
            feats = self.teacher_features(torch.cat([real, *fakes]) / SIGMA_DATA, torch.cat([s_real, *s_fakes]),
                                          text.repeat(n + 1, 1, 1), mask.repeat(n + 1, 1), cond, d.r1_weight > 0)
            real_logits = self.disc.head_logits([f[:b] for f in feats], text, mask)
            fake_logits = self.disc.head_logits([f[b:] for f in feats], text.repeat(n, 1, 1), mask.repeat(n, 1))
        loss = d_hinge_loss(real_logits, fake_logits)
        logs = {"loss_d": loss.detach(), "d_real": real_logits.mean().detach(),
                "d_fake": fake_logits.mean().detach()}
        if d.r1_weight > 0:
            r1 = r1_penalty(real_logits, real)
            loss = loss + d.r1_weight * r1
            logs["r1"] = r1.detach()
        return loss, logs

    # ------------------------------------------------------------------------------------------------ training
    def training_step(self, batch, batch_idx):
        x0, text, mask, cond = self.batch_inputs(batch)
        k = int(self.k)
        phase = self.phase(k)
        gen = self.step_generator(k)
        opts = self.optimizers()
        opt_g, opt_d = (opts if isinstance(opts, list) else [opts, None])[:2]
        tc = self.cfg.train
        if phase == "G":
            opt, groups = opt_g, {"student": (self.student, tc.grad_clip)}
            if opt_d is not None:
                self.toggle_optimizer(opt_g)
            loss, logs = self.generator_loss(x0, text, mask, gen, k, cond)
        else:
            groups = {n: (m, clip) for n, m, clip in (("disc", self.disc, self.cfg.distill.d_grad_clip),
                                                       ("fake", self.fake, tc.grad_clip)) if m is not None}
            opt = opt_d
            self.toggle_optimizer(opt_d)
            loss, logs = self.d_step_loss(x0, text, mask, gen, cond)
        if k in self.cfg.distill.debug_nan_steps:
            loss = loss * float("nan")
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        norms = {n: torch.nn.utils.clip_grad_norm_(list(m.parameters()), clip if clip > 0 else math.inf)
                 for n, (m, clip) in groups.items()}
        if all(torch.isfinite(v) for v in norms.values()):
            opt.step()
            if phase == "G":
                sched = self.lr_schedulers()
                (sched[0] if isinstance(sched, list) else sched).step()
                self.update_ema()
        else:  # NaN/Inf guard: the update is skipped and counted; training goes on
            self.skipped += 1
        opt.zero_grad(set_to_none=True)
        if opt_d is not None:
            self.untoggle_optimizer(opt)
        self.k += 1
        prefix = "train/"
        logs.update({f"grad_norm_{n}": v.detach() for n, v in norms.items()})
        logs.update({"loss" if phase == "G" else "loss_d_total": loss.detach(),
                     "skipped_steps": self.skipped.float(), "tangent_warmup_r":
                         tangent_warmup(k, self.cfg.distill.tangent_warmup_steps),
                     "lr": opt_g.param_groups[0]["lr"]})
        self.log_dict({prefix + n: v for n, v in logs.items()}, prog_bar=False)
        return loss.detach()

    def update_ema(self) -> None:
        if self.ema is None:
            return
        with torch.no_grad():
            steps = int(self.k) // self.cfg.distill.cycle
            dec = min(self.cfg.train.ema_decay, (1 + steps) / (10 + steps))
            for pe, p in zip(self.ema.parameters(), self.student.parameters()):
                pe.lerp_(p.detach(), 1 - dec)

    def configure_optimizers(self):
        tc, d = self.cfg.train, self.cfg.distill
        opt_g = torch.optim.AdamW(self.student.parameters(), lr=tc.lr, betas=tuple(tc.betas),
                                  weight_decay=tc.weight_decay)
        g_steps = tc.max_steps // d.cycle
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt_g, lambda s: lr_lambda(s, tc.warmup_steps, g_steps, tc.lr_schedule, tc.min_lr_ratio))
        if not d.has_d_phase:
            return {"optimizer": opt_g, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        groups = [{"params": list(m.parameters()), "lr": lr or tc.lr}
                  for m, lr in ((self.disc, d.d_lr), (self.fake, d.fake_lr)) if m is not None]
        opt_d = torch.optim.AdamW(groups, betas=tuple(tc.betas), weight_decay=tc.weight_decay)
        return [opt_g, opt_d], [{"scheduler": sched, "interval": "step"}]

    # ------------------------------------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, ids: torch.Tensor, steps: int, cfg_scale: float, generator: torch.Generator | None = None,
               use_ema: bool = True) -> torch.Tensor:
        """Images in model range with the sCM multistep sampler (paper schedule for ``steps``), guidance
        ``cfg_scale`` through the embedding."""
        from sprint_bench.samplers.scm import sample_student, scm_timesteps

        model = self.sampling_model() if use_ema else self.student
        res = self.cfg.world.resolution
        text, mask = self.text(ids.to(self.device))
        w = cfg_scale if self.cfg.distill.guidance_embed else None
        noise = [torch.randn((ids.shape[0], 3, res, res), generator=generator).to(self.device) for _ in range(steps)]
        cond = None if self.grid_cond is None else self.grid_cond.to(self.device)
        return sample_student(model, text, mask, w, noise, scm_timesteps(steps), cond=cond)
