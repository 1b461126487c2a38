"""The TrigFlow precondition around a flow-matching SANA transformer, for teacher and student alike:
``F(x_t / sigma_d, t, text, mask, w) -> (F, logvar)`` with the training-free conversion of
:mod:`sprint_bench.param.trigflow` (SANA-Sprint Prop. 3.1). The student adds the guidance embedding (scale x 0.1,
SANA-Sprint §4.3) and the adaptive-weight (logvar) head on the summed time + guidance embedding."""
from __future__ import annotations

import copy

import torch
from diffusers import SanaTransformer2DModel
from torch import nn

from sprint_bench.models.controlnet import controlled_forward, tile_condition
from sprint_bench.param.trigflow import fm_input, tau_from_t, trigflow_output

GUIDANCE_EMBEDS_SCALE = 0.1  # the guidance embedding sees 0.1 * w (SANA-Sprint §4.3; diffusers guidance_embeds_scale)


class SdpaMathProcessor:
    """SANA cross-attention through ``F.scaled_dot_product_attention`` under the MATH backend: the fused CPU/GPU
    kernels have no forward-mode AD, so the student's JVP pass needs this (method reference §11.1)."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, *args, **kwargs):
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel(SDPBackend.MATH):
            return self.inner(*args, **kwargs)


def use_math_attention(transformer: nn.Module) -> None:
    """Wrap every softmax-attention processor (cross-attention) of a transformer or ControlNet (anything with
    ``transformer_blocks``) so it runs on the MATH SDPA backend."""
    for block in transformer.transformer_blocks:
        attn = block.attn2
        if attn is not None and not isinstance(attn.processor, SdpaMathProcessor):
            attn.set_processor(SdpaMathProcessor(attn.processor))


def student_from_teacher(teacher: SanaTransformer2DModel, guidance_embeds: bool = True,
                         zero_init_guidance: bool = True) -> SanaTransformer2DModel:
    """A copy of the teacher transformer, with diffusers' combined time + guidance embedding when asked.

    The teacher's time embedder (``time_embed.emb.timestep_embedder``) and adaLN projection (``time_embed.linear``)
    are copied into the combined embedding; the guidance embedder keeps its fresh init, with its last Linear zeroed
    when ``zero_init_guidance`` (then the student equals the teacher at step 0; the reference keeps the random init,
    method reference §4.6)."""
    if not guidance_embeds:
        return copy.deepcopy(teacher).requires_grad_(True)
    config = dict(teacher.config)
    config.update(guidance_embeds=True, guidance_embeds_scale=GUIDANCE_EMBEDS_SCALE)
    student = SanaTransformer2DModel.from_config(config)
    state = {}
    for k, v in teacher.state_dict().items():
        state[k.replace("time_embed.emb.timestep_embedder.", "time_embed.timestep_embedder.")] = v
    missing, unexpected = student.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("time_embed.guidance_embedder.") for k in missing):
        raise RuntimeError(f"teacher -> student weight mapping failed: missing {missing}, unexpected {unexpected}")
    if zero_init_guidance:
        nn.init.zeros_(student.time_embed.guidance_embedder.linear_2.weight)
        nn.init.zeros_(student.time_embed.guidance_embedder.linear_2.bias)
    return student


class TrigFlowModel(nn.Module):
    """F_theta(x_t / sigma_d, t, y, w): a flow-matching velocity transformer seen through the TrigFlow conversion.

    ``logvar=True`` adds the adaptive-weight head l(t, w) = Linear_{C->1}(e) on the conditioning e = TimeEmb(tau) +
    GuidEmb(0.1 w) (method reference §4.5; zero-initialised here so every weight starts at 1). With a ``controlnet``
    (built on ``transformer``) the model takes the edge condition ``cond`` (SANA-Sprint §4.4)."""

    def __init__(self, transformer: SanaTransformer2DModel, logvar: bool = False, controlnet: nn.Module | None = None,
                 conditioning_scale: float = 1.0):
        super().__init__()
        self.transformer = transformer
        self.controlnet = controlnet
        self.conditioning_scale = conditioning_scale
        if controlnet is not None and controlnet.base is not transformer:
            raise ValueError("the ControlNet was built on another transformer")
        self.guidance_embeds = bool(transformer.config.get("guidance_embeds", False))
        self.logvar_head = nn.Linear(transformer.config.num_attention_heads * transformer.config.attention_head_dim,
                                     1) if logvar else None
        if self.logvar_head is not None:
            nn.init.zeros_(self.logvar_head.weight)
            nn.init.zeros_(self.logvar_head.bias)
        self._emb, self._in_forward = None, False
        if self.logvar_head is not None:
            transformer.time_embed.register_forward_hook(self._keep_embedding)

    def _keep_embedding(self, module, args, output):
        """The logvar head's input, the summed embedding e of (adaLN modulation, e), kept during this wrapper's own
        forward only: a copy of the transformer carries the hook, bound to a copy of this wrapper that nothing calls
        (a student re-wrapped after loading), and under the JVP a kept dual tensor stops inductor."""
        if self._in_forward:
            self._emb = output[1]

    def velocity(self, x_fm: torch.Tensor, tau: torch.Tensor, text: torch.Tensor, mask: torch.Tensor,
                 guidance: torch.Tensor | None = None, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The raw flow-matching velocity v(x_FM, tau, y[, w][, c])."""
        g = None
        if self.guidance_embeds:
            if guidance is None:
                raise ValueError("this model has a guidance embedding: pass the CFG scale w")
            g = guidance.to(x_fm.dtype).expand(x_fm.shape[0]) * GUIDANCE_EMBEDS_SCALE
        if (cond is not None) != (self.controlnet is not None):
            raise ValueError("a ControlNet model needs the condition `cond`" if self.controlnet is not None
                             else "this model has no ControlNet: do not pass `cond`")
        if self.controlnet is not None:
            return controlled_forward(self.transformer, self.controlnet, x_fm, tau, text, mask,
                                      tile_condition(cond.to(x_fm.dtype), x_fm.shape[0]), g, self.conditioning_scale)
        kwargs = {} if g is None else {"guidance": g}
        return self.transformer(hidden_states=x_fm, encoder_hidden_states=text, timestep=tau,
                                encoder_attention_mask=mask, return_dict=False, **kwargs)[0]

    def forward(self, x_scaled: torch.Tensor, t: torch.Tensor, text: torch.Tensor, mask: torch.Tensor,
                guidance: torch.Tensor | None = None, cond: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(F, logvar): F has the shape of x_scaled; logvar is (B,) or None. t has shape (B,)."""
        t = t.reshape(-1).to(x_scaled.dtype).expand(x_scaled.shape[0])
        self._in_forward = True
        try:
            v = self.velocity(fm_input(x_scaled, t), tau_from_t(t), text, mask, guidance, cond)
        finally:
            self._in_forward = False
        F = trigflow_output(x_scaled, t, v)
        logvar = None
        if self.logvar_head is not None:
            logvar = self.logvar_head(self._emb).reshape(-1)
        self._emb = None
        return F, logvar
