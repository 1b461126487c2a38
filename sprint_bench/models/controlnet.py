"""ControlNet for the SANA(-Sprint) transformer: trainable copies of the first teacher blocks fed with an edge map,
returning per-block residuals in the form diffusers' ``SanaTransformer2DModel.forward(controlnet_block_samples=...)``
consumes (method reference §10; PixArt-delta / SANA-ControlNet).

Wiring (B_i = frozen base block i, C_j = trainable deep copy of B_j, P_in and P_out,j zero-initialised Linear C->C):

    x_emb = PatchEmbed(x);   e_c = PatchEmbed(cond)                     the base's patch embedder, shared and frozen
    c_{-1} = x_emb + P_in(e_c);   c_j = C_j(c_{j-1});   r_j = scale * P_out,j(c_j)        j = 0 .. N-1
    base:  h_i = B_i(h_{i-1}) + r_{i-1}  for 1 <= i <= N   (diffusers adds sample[i-1] after block index i)

Offsets against the reference wiring (c_0 = C_0(h_0 + P_in(e_c)) with h_0 = B_0(x_emb), and r_j added to the *input* of
B_{j+1}): here, as in diffusers' ``SanaControlNetModel``, the copies start from the patch embedding (one block earlier)
and r_j lands on the *output* of B_{j+1} (one block later). The two coincide in structure up to this one-block shift of
the injection point; at initialisation both equal the base model exactly (all r_j = 0).

Residuals with no diffusers slot (r_j with j + 1 >= depth; the depth-1 micro model has no slot at all) are added to the
output of the last base block by :class:`ControlledFlowBackbone`. Default N = min(7, depth - 1), at least 1, so that
every residual has its own slot from depth 2 on.

Own module rather than diffusers' ``SanaControlNetModel``: that class builds its blocks without ``qk_norm`` and its time
embedding without the guidance embedding (``AdaLayerNormSingle`` only), so it cannot copy a SANA-Sprint teacher
(QK-RMSNorm) or student (guidance). The parameter names follow it (``input_block``, ``transformer_blocks``,
``controlnet_blocks``). The base's time embedding (with guidance when the base has it), caption projection and caption
norm are reused, frozen and shared, not copied, as in the reference (its ControlNet blocks take the base's t0 and y);
they are held outside this module's parameters and state dict.
"""
from __future__ import annotations

import copy

import torch
from diffusers import SanaTransformer2DModel
from torch import nn

MAX_BLOCKS = 7  # SANA-ControlNet default (method reference §10)


def _zero_linear(width: int) -> nn.Linear:
    lin = nn.Linear(width, width)
    nn.init.zeros_(lin.weight)
    nn.init.zeros_(lin.bias)
    return lin


def _mask_bias(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """diffusers' caption-mask convention: (B, L) keep/discard -> additive bias (B, 1, L) of 0 / -10000."""
    if mask is not None and mask.ndim == 2:
        return ((1 - mask.to(dtype)) * -10000.0).unsqueeze(1)
    return mask


class SanaControlNet(nn.Module):
    """Residuals ``[r_0, ..., r_{N-1}]`` (each (B, tokens, C)) for ``controlnet_block_samples`` of ``base``."""

    def __init__(self, base: SanaTransformer2DModel, num_blocks: int | None = None):
        super().__init__()
        depth = len(base.transformer_blocks)
        if num_blocks is None:
            num_blocks = min(MAX_BLOCKS, max(depth - 1, 1))
        if not 1 <= num_blocks <= depth:
            raise ValueError(f"num_blocks must be in [1, depth={depth}], got {num_blocks}")
        self._base = (base,)  # shared frozen parts; a tuple keeps them out of parameters() and state_dict()
        width = base.config.num_attention_heads * base.config.attention_head_dim
        self.guidance_embeds = bool(base.config.get("guidance_embeds", False))
        self.input_block = _zero_linear(width)
        self.transformer_blocks = nn.ModuleList(copy.deepcopy(base.transformer_blocks[j]) for j in range(num_blocks))
        self.transformer_blocks.requires_grad_(True)
        self.controlnet_blocks = nn.ModuleList(_zero_linear(width) for _ in range(num_blocks))

    @property
    def base(self) -> SanaTransformer2DModel:
        return self._base[0]

    def forward(self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor, timestep: torch.Tensor,
                encoder_attention_mask: torch.Tensor | None, controlnet_cond: torch.Tensor,
                guidance: torch.Tensor | None = None, conditioning_scale: float = 1.0) -> list[torch.Tensor]:
        """Inputs as the base transformer takes them (``guidance`` already times guidance_embeds_scale);
        ``controlnet_cond`` has the shape of ``hidden_states`` (an :func:`edge_condition` in the model range)."""
        if (guidance is not None) != self.guidance_embeds:
            raise ValueError(f"the base {'has' if self.guidance_embeds else 'has no'} guidance embedding: "
                             f"{'pass' if self.guidance_embeds else 'do not pass'} guidance")
        base = self.base
        b, _, h, w = hidden_states.shape
        p = base.config.patch_size
        x = base.patch_embed(hidden_states)
        x = x + self.input_block(base.patch_embed(controlnet_cond.to(x.dtype)))
        if guidance is not None:
            modulation, _ = base.time_embed(timestep, guidance=guidance, hidden_dtype=x.dtype)
        else:
            modulation, _ = base.time_embed(timestep, batch_size=b, hidden_dtype=x.dtype)
        text = base.caption_norm(base.caption_projection(encoder_hidden_states).view(b, -1, x.shape[-1]))
        mask = _mask_bias(encoder_attention_mask, x.dtype)
        residuals = []
        for block, proj in zip(self.transformer_blocks, self.controlnet_blocks):
            x = block(x, None, text, mask, modulation, h // p, w // p)
            residuals.append(proj(x) * conditioning_scale)
        return residuals


def controlnet_copy(source: SanaControlNet, base: SanaTransformer2DModel) -> SanaControlNet:
    """A ControlNet with ``source``'s weights built on ``base`` (the student's ControlNet starts as the teacher's)."""
    controlnet = SanaControlNet(base, len(source.transformer_blocks))
    controlnet.load_state_dict(source.state_dict())
    return controlnet


def controlled_forward(transformer: SanaTransformer2DModel, controlnet: SanaControlNet, x: torch.Tensor,
                       tau: torch.Tensor, text: torch.Tensor, mask: torch.Tensor, cond: torch.Tensor,
                       guidance: torch.Tensor | None = None, conditioning_scale: float = 1.0) -> torch.Tensor:
    """The velocity of ``transformer`` with the residuals of ``controlnet`` (built on that transformer) added;
    ``guidance`` already times guidance_embeds_scale."""
    residuals = controlnet(x, text, tau, mask, cond, guidance=guidance, conditioning_scale=conditioning_scale)
    slots = len(transformer.transformer_blocks) - 1  # diffusers adds sample[i-1] after block i, 0 < i
    inside, overflow = residuals[:slots], residuals[slots:]
    handle = None
    if overflow:  # no diffusers slot: add to the output of the last block
        extra = torch.stack(overflow).sum(0) if len(overflow) > 1 else overflow[0]
        handle = transformer.transformer_blocks[-1].register_forward_hook(lambda m, a, out: out + extra)
    kwargs = {} if guidance is None else {"guidance": guidance}
    try:
        return transformer(hidden_states=x, encoder_hidden_states=text, timestep=tau, encoder_attention_mask=mask,
                           controlnet_block_samples=tuple(inside) or None, return_dict=False, **kwargs)[0]
    finally:
        if handle is not None:
            handle.remove()


class ControlledFlowBackbone(nn.Module):
    """``v(x_tau, tau, text, mask, cond)``: the frozen base transformer plus the ControlNet residuals (the velocity of
    a controllable flow teacher). Only ``self.controlnet`` trains."""

    def __init__(self, transformer: SanaTransformer2DModel, controlnet: SanaControlNet | None = None,
                 num_blocks: int | None = None, freeze_base: bool = True, conditioning_scale: float = 1.0):
        super().__init__()
        self.transformer = transformer
        self.controlnet = controlnet if controlnet is not None else SanaControlNet(transformer, num_blocks)
        self.conditioning_scale = conditioning_scale
        if self.controlnet.base is not transformer:
            raise ValueError("the ControlNet was built on another transformer")
        if freeze_base:
            transformer.requires_grad_(False)

    def forward(self, x: torch.Tensor, tau: torch.Tensor, text: torch.Tensor, mask: torch.Tensor,
                cond: torch.Tensor, guidance: torch.Tensor | None = None,
                conditioning_scale: float | None = None) -> torch.Tensor:
        scale = self.conditioning_scale if conditioning_scale is None else conditioning_scale
        return controlled_forward(self.transformer, self.controlnet, x, tau, text, mask, cond, guidance, scale)

    def bind(self, cond: torch.Tensor, **kwargs):
        """A ``Velocity`` ``(x, tau, text, mask) -> v`` for the flow samplers; ``cond`` is tiled to the batch (a CFG
        batch of 2B sees the condition in both halves)."""
        def velocity(x, tau, text, mask):
            return self(x, tau, text, mask, tile_condition(cond, x.shape[0]), **kwargs)
        return velocity


def tile_condition(cond: torch.Tensor, batch: int) -> torch.Tensor:
    """``cond`` (B, C, H, W) repeated to ``batch`` rows (a CFG batch of 2B, or a single condition for a batch)."""
    if cond.shape[0] == batch:
        return cond
    if batch % cond.shape[0]:
        raise ValueError(f"a condition batch of {cond.shape[0]} does not tile a batch of {batch}")
    return cond.repeat(batch // cond.shape[0], 1, 1, 1)
