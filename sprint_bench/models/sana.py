"""The SANA-Sprint teacher backbone: diffusers' SanaTransformer2DModel with QK RMSNorm across heads and dense time
(flow time tau in [0, 1] fed to the sinusoidal embedding directly; SANA-Sprint §3.2, Eq. 10)."""
from __future__ import annotations

import torch
from diffusers import SanaTransformer2DModel
from diffusers.utils import is_accelerate_available

from sprint_bench.models.text_encoder import HIDDEN_SIZE


def load_sana(folder) -> SanaTransformer2DModel:
    """A saved SanaTransformer2DModel from a local folder. Meta-device loading only where `accelerate` is installed:
    without it diffusers falls back to ordinary loading anyway, after a warning per call."""
    return SanaTransformer2DModel.from_pretrained(folder, low_cpu_mem_usage=is_accelerate_available())


def build_sana(model_cfg, in_channels: int, sample_size: int, caption_channels: int = HIDDEN_SIZE,
               guidance_embeds: bool = False) -> SanaTransformer2DModel:
    """A SanaTransformer2DModel from our ModelConfig (width, depth, heads, cross_heads, patch_size, mlp_ratio)."""
    width, heads = model_cfg.width, model_cfg.heads
    return SanaTransformer2DModel(
        in_channels=in_channels,
        out_channels=in_channels,
        num_attention_heads=heads,
        attention_head_dim=width // heads,
        num_layers=model_cfg.depth,
        num_cross_attention_heads=model_cfg.cross_heads,
        cross_attention_head_dim=width // model_cfg.cross_heads,
        cross_attention_dim=width,
        caption_channels=caption_channels,
        mlp_ratio=model_cfg.mlp_ratio,
        sample_size=sample_size,
        patch_size=model_cfg.patch_size,
        interpolation_scale=1 if model_cfg.pos_embed == "sincos" else None,
        guidance_embeds=guidance_embeds,
        qk_norm="rms_norm_across_heads" if model_cfg.qk_norm else None,
    )


class FlowBackbone(torch.nn.Module):
    """``v(x_tau, tau, text, mask)``: the flow-matching velocity (eps - x0) predicted by a SANA transformer."""

    def __init__(self, transformer: SanaTransformer2DModel):
        super().__init__()
        self.transformer = transformer

    def forward(self, x: torch.Tensor, tau: torch.Tensor, text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.transformer(hidden_states=x, encoder_hidden_states=text, timestep=tau,
                                encoder_attention_mask=mask, return_dict=False)[0]
