"""LADD discriminator: light heads on the token features of a frozen teacher (SANA-Sprint §3.3; method reference
§6.1-6.2, StyleGAN-T-style unconditional heads). Only the heads are parameters here; the teacher is passed in at
call time, so gradients reach the input (the student's re-noised sample) through the teacher's activations while the
teacher's own parameters stay untouched (they have ``requires_grad`` False)."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class LocalBatchNorm(nn.Module):
    """Batch norm with statistics per group of up to ``group`` consecutive samples, over (samples-in-group x tokens);
    no running statistics, affine gamma = 1, beta = 0 at init [method reference §6.2].

    Input (B, C, N). Samples are split in batch order into chunks of ``group``; when B is not a multiple of ``group``
    the last chunk is smaller (B = 11, group = 8 -> groups of 8 and 3). A lone last sample is normalised over its own
    tokens. ``group=None``: one group, the whole call. Variance is biased (divides by the count), as in ordinary
    batch norm. Train and eval behave the same."""

    def __init__(self, channels: int, group: int | None = 8, eps: float = 1e-5):
        super().__init__()
        if group is not None and group < 1:
            raise ValueError(f"group must be >= 1 or None, got {group}")
        self.group, self.eps = group, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for chunk in torch.split(x, self.group or x.shape[0], dim=0):
            mean = chunk.mean(dim=(0, 2), keepdim=True)
            var = chunk.var(dim=(0, 2), unbiased=False, keepdim=True)
            outs.append((chunk - mean) * torch.rsqrt(var + self.eps))
        return torch.cat(outs, 0) * self.weight[:, None] + self.bias[:, None]


def sn_conv1d(c_in: int, c_out: int, kernel: int) -> nn.Module:
    """Spectral-normalised Conv1d (1 power iteration per training forward), circular padding kernel // 2."""
    conv = nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, padding_mode="circular")
    return spectral_norm(conv, n_power_iterations=1)


class DiscBlock(nn.Module):
    """SN-Conv1d C->C (kernel k, circular) -> LocalBatchNorm -> LeakyReLU(0.2) on (B, C, N) [method reference §6.2]."""

    def __init__(self, channels: int, kernel: int, group: int | None = 8):
        super().__init__()
        self.conv = sn_conv1d(channels, channels, kernel)
        self.norm = LocalBatchNorm(channels, group)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


def pooled_caption(text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The caption's mean text embedding over its unmasked tokens: (B, L, D), (B, L) -> (B, D)."""
    m = mask.to(text.dtype)[..., None]
    return (text * m).sum(1) / m.sum(1).clamp(min=1.0)


class DiscHead(nn.Module):
    """Block(1) -> residual Block(9), (f(h) + h) / sqrt 2 -> SN-Conv1d C->1: tokens (B, N, C) -> logits (B, N)
    [method reference §6.2].

    ``text_dim`` (ours; None: unconditional, as the reference): a projection term is added to every token's logit,
    <W c, h_n> / sqrt C with c the pooled caption (D = ``text_dim``) and h_n the head's last hidden token
    (projection discriminator, Miyato & Koyama 2018; StyleGAN-T's conditional heads)."""

    def __init__(self, channels: int, group: int | None = 8, text_dim: int | None = None):
        super().__init__()
        self.block1 = DiscBlock(channels, 1, group)
        self.block9 = DiscBlock(channels, 9, group)
        self.out = sn_conv1d(channels, 1, 1)
        self.cmap = None if text_dim is None else nn.Linear(text_dim, channels)

    def forward(self, tokens: torch.Tensor, caption: torch.Tensor | None = None) -> torch.Tensor:
        h = self.block1(tokens.transpose(1, 2))
        h = (self.block9(h) + h) / math.sqrt(2)
        logits = self.out(h).squeeze(1)
        if self.cmap is None:
            return logits
        if caption is None:
            raise ValueError("a conditional discriminator head needs the pooled caption embedding")
        return logits + torch.einsum("bc,bcn->bn", self.cmap(caption), h) / math.sqrt(h.shape[1])


class Discriminator(nn.Module):
    """One :class:`DiscHead` per tapped teacher block; holds the heads and nothing else [method reference §6.1].

    ``block_ids`` index ``teacher.transformer.transformer_blocks``; repeats are allowed (each gets its own head).
    ``group``: the heads' batch-norm group (None: statistics over the whole call). ``text_dim``: conditional heads
    with a caption projection (:class:`DiscHead`; ours), None: unconditional (the reference)."""

    def __init__(self, width: int, block_ids: Sequence[int], group: int | None = 8, text_dim: int | None = None):
        super().__init__()
        self.block_ids = tuple(int(i) for i in block_ids)
        if not self.block_ids:
            raise ValueError("block_ids must name at least one teacher block")
        self.width, self.conditional = width, text_dim is not None
        self.heads = nn.ModuleList(DiscHead(width, group, text_dim) for _ in self.block_ids)

    def _check(self, teacher) -> nn.ModuleList:
        blocks = teacher.transformer.transformer_blocks
        bad = [i for i in self.block_ids if not 0 <= i < len(blocks)]
        if bad:
            raise ValueError(f"discriminator block_ids {bad} out of range for a teacher of depth {len(blocks)} "
                             f"(valid: 0..{len(blocks) - 1})")
        cfg = teacher.transformer.config
        inner = cfg.num_attention_heads * cfg.attention_head_dim
        if inner != self.width:
            raise ValueError(f"discriminator width {self.width} != teacher hidden size {inner}")
        return blocks

    def features(self, teacher, x_scaled: torch.Tensor, s: torch.Tensor, text: torch.Tensor,
                 mask: torch.Tensor, cond: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Token features (B, N, C) of the tapped blocks, in ``block_ids`` order, from ``teacher(x_s / sigma_d, s, y)``
        (a ControlNet teacher also gets its condition ``cond``). Not run under no-grad: gradients flow through the
        teacher's activations into ``x_scaled``."""
        blocks = self._check(teacher)
        seen: dict[int, torch.Tensor] = {}

        def keep(i):
            def hook(module, args, output):
                seen[i] = output[0] if isinstance(output, (tuple, list)) else output
            return hook

        handles = [blocks[i].register_forward_hook(keep(i)) for i in sorted(set(self.block_ids))]
        try:
            teacher(x_scaled, s, text, mask, **({} if cond is None else {"cond": cond}))
        finally:
            for h in handles:
                h.remove()
        return [seen[i] for i in self.block_ids]

    def forward(self, teacher, x_scaled: torch.Tensor, s: torch.Tensor, text: torch.Tensor,
                mask: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, N * K): each head's (B, N) output, concatenated over the K heads."""
        return self.head_logits(self.features(teacher, x_scaled, s, text, mask, cond), text, mask)

    def head_logits(self, feats: Sequence[torch.Tensor], text: torch.Tensor | None = None,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, N * K) from the K tapped blocks' token features (B, N, C), in ``block_ids`` order; conditional
        heads also take the captions (text (B, L, D), mask (B, L)), unconditional ones ignore them."""
        caption = pooled_caption(text, mask) if self.conditional and text is not None else None
        return torch.cat([head(f, caption) for head, f in zip(self.heads, feats)], dim=1)
