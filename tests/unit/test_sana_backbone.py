"""The teacher backbone is diffusers' SanaTransformer2DModel as SANA-Sprint configures it."""
import logging

import torch
from diffusers.models.normalization import RMSNorm

from sprint_bench.models.sana import FlowBackbone, build_sana, load_sana


def test_qk_rmsnorm_across_heads_in_self_and_cross_attention(micro_cfg):
    tr = build_sana(micro_cfg.model, in_channels=3, sample_size=32)
    block = tr.transformer_blocks[0]
    width = micro_cfg.model.width
    for attn in (block.attn1, block.attn2):
        for norm in (attn.norm_q, attn.norm_k):
            assert isinstance(norm, RMSNorm)
            assert norm.weight.shape == (width,)  # over all heads together, not per head


def test_dense_time_input_is_continuous_and_differentiable(micro_cfg):
    torch.manual_seed(0)
    f = FlowBackbone(build_sana(micro_cfg.model, in_channels=3, sample_size=32)).eval()
    x, text, mask = torch.randn(2, 3, 32, 32), torch.randn(2, 16, 384), torch.ones(2, 16, dtype=torch.long)
    tau = torch.tensor([0.5, 0.5], requires_grad=True)
    out = f(x, tau, text, mask)
    assert out.shape == x.shape
    (g,) = torch.autograd.grad(out.sum(), tau)
    assert torch.all(g.abs() > 0)  # tau in [0, 1] is not cast to an integer timestep
    with torch.no_grad():
        assert not torch.allclose(f(x, tau + 1e-3, text, mask), out)


def test_caption_mask_is_respected(micro_cfg):
    torch.manual_seed(0)
    f = FlowBackbone(build_sana(micro_cfg.model, in_channels=3, sample_size=32)).eval()
    x, text = torch.randn(1, 3, 32, 32), torch.randn(1, 16, 384)
    mask = torch.zeros(1, 16, dtype=torch.long)
    mask[:, :4] = 1
    text2 = text.clone()
    text2[:, 4:] = torch.randn(1, 12, 384)  # padding tokens must not matter
    with torch.no_grad():
        assert torch.allclose(f(x, torch.tensor([0.3]), text, mask), f(x, torch.tensor([0.3]), text2, mask), atol=1e-5)


def test_load_sana_restores_the_weights_without_the_accelerate_warning(micro_cfg, tmp_path):
    torch.manual_seed(0)
    tr = build_sana(micro_cfg.model, in_channels=3, sample_size=32)
    tr.save_pretrained(tmp_path / "transformer", safe_serialization=True)
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    diffusers_logger = logging.getLogger("diffusers")  # diffusers' root logger: it does not propagate to ours
    diffusers_logger.addHandler(handler)
    try:
        loaded = load_sana(tmp_path / "transformer")
    finally:
        diffusers_logger.removeHandler(handler)
    assert not [r for r in records if "accelerate" in r.getMessage()]  # diffusers warns per load without it
    assert loaded.state_dict().keys() == tr.state_dict().keys()
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in tr.state_dict().items())
