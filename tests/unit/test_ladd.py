"""LADD losses and discriminator (method reference §6)."""
import math
from pathlib import Path

import pytest
import torch

from sprint_bench.losses.ladd import (apply_max_time, d_hinge_loss, g_adv_loss, misaligned, r1_penalty, translate,
                                      renoise)
from sprint_bench.models.discriminator import DiscBlock, DiscHead, Discriminator, LocalBatchNorm, pooled_caption
from sprint_bench.models.trigflow import TrigFlowModel
from sprint_bench.param.trigflow import T_MAX

MICRO = Path(__file__).resolve().parents[2] / "experiments" / "micro.yaml"
REAL, FAKE = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 0.3])


def test_d_hinge_hand_computed():
    # real: relu(1-2)=0, relu(0.5)=0.5, relu(2)=2 -> 2.5/3; fake: relu(-1)=0, relu(1)=1, relu(1.3)=1.3 -> 2.3/3
    assert d_hinge_loss(REAL, FAKE).item() == pytest.approx(0.8, abs=1e-6)
    # a larger fake set (misaligned pairs appended) and 2-D logits: joint means over all entries
    assert d_hinge_loss(REAL.reshape(1, 3), torch.tensor([[-2.0, 0.0, 0.3], [5.0, -3.0, -1.0]])).item() \
        == pytest.approx(0.5 * (2.5 / 3 + 8.3 / 6), abs=1e-6)


def test_g_adv_hand_computed():
    assert g_adv_loss(FAKE).item() == pytest.approx(0.5666667, abs=1e-6)


def test_r1_on_linear_discriminator():
    W = torch.tensor([[1.0, 2.0, 0.0, 0.0], [0.0, 1.0, 1.0, -1.0]], requires_grad=True)
    x = torch.randn(3, 1, 2, 2, requires_grad=True)
    logits = x.flatten(1) @ W.T  # d sum / dx = W0 + W1 = [1, 3, 1, -1] for every sample, ||.||^2 = 12
    r1 = r1_penalty(logits, x)
    assert r1.item() == pytest.approx(12.0)
    r1.backward()  # create_graph: the penalty is differentiable w.r.t. D's parameters
    assert torch.allclose(W.grad, torch.tensor([[2.0, 6.0, 2.0, -2.0]] * 2))


def test_renoise_and_misaligned():
    x0, z = torch.full((2, 1, 1, 1), 3.0), torch.full((2, 1, 1, 1), 4.0)
    out = renoise(x0, torch.tensor([0.0, math.pi / 2]), z)
    assert torch.allclose(out.flatten(), torch.tensor([3.0, 4.0]), atol=1e-6)
    r = misaligned(torch.arange(4.0).reshape(4, 1))
    assert r.flatten().tolist() == [3.0, 0.0, 1.0, 2.0]


def test_translate_shifts_each_image_and_replicates_edges():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float).reshape(2, 3, 5, 5).requires_grad_(True)
    assert translate(x, 0) is x
    g = torch.Generator().manual_seed(0)
    y = translate(x, 2, g)
    (dy, dx) = torch.randint(-2, 3, (2, 2, 1), generator=torch.Generator().manual_seed(0)).squeeze(-1).tolist()
    for b in range(2):  # output pixel (i, j) reads input pixel (clamp(i - dy), clamp(j - dx)), every channel alike
        for i in range(5):
            for j in range(5):
                src = x[b, :, min(max(i - dy[b], 0), 4), min(max(j - dx[b], 0), 4)]
                assert torch.equal(y[b, :, i, j], src)
    y.sum().backward()  # the gradient goes back to the pixels read: one unit per output pixel
    assert x.grad.sum().item() == y.numel()
    row = torch.zeros(4000, 1, 9, 9).index_fill_(2, torch.tensor([4]), 1.0)  # a bright row 4 in each image
    shifts = translate(row, 3, torch.Generator().manual_seed(1))[:, 0, :, 0].argmax(dim=1) - 4
    assert set(shifts.unique().tolist()) == set(range(-3, 4))  # every shift in [-n, n] occurs


def test_apply_max_time_probability():
    t = torch.full((4000,), 0.7)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(apply_max_time(t, 0.0, g), t)
    assert torch.all(apply_max_time(t, 1.0, g) == torch.tensor(T_MAX))
    out = apply_max_time(t, 0.5, g)
    frac = (out == torch.tensor(T_MAX)).float().mean().item()
    assert 0.47 < frac < 0.53
    assert torch.all((out == torch.tensor(T_MAX)) | (out == t))


def _manual_norm(x, eps=1e-5):
    m = x.mean(dim=(0, 2), keepdim=True)
    v = ((x - m) ** 2).mean(dim=(0, 2), keepdim=True)
    return (x - m) / torch.sqrt(v + eps)


def test_local_batchnorm_groups():
    torch.manual_seed(0)
    bn = LocalBatchNorm(5, group=4)
    x = torch.randn(11, 5, 7) * 3 + 1  # groups of 4, 4 and a smaller last group of 3
    out = bn(x)
    ref = torch.cat([_manual_norm(x[:4]), _manual_norm(x[4:8]), _manual_norm(x[8:])])
    assert torch.allclose(out, ref, atol=1e-5)
    x2 = x.clone()
    x2[4:8] = torch.randn(4, 5, 7) * 10
    out2 = bn(x2)
    assert torch.equal(out2[:4], out[:4]) and torch.equal(out2[8:], out[8:])
    assert not torch.allclose(out2[4:8], out[4:8])
    single = LocalBatchNorm(5, group=8)(x[:9])  # 8 + a lone sample, normalised over its own tokens
    assert torch.allclose(single[8:], _manual_norm(x[8:9]), atol=1e-5)
    whole = LocalBatchNorm(5, group=None)(x)  # one group: the whole call
    assert torch.allclose(whole, _manual_norm(x), atol=1e-5)
    with pytest.raises(ValueError, match="group must be >= 1 or None"):
        LocalBatchNorm(5, group=0)


def test_spectral_norm_bounds_weight():
    torch.manual_seed(0)
    block = DiscBlock(16, 9).train()
    with torch.no_grad():
        block.conv.parametrizations.weight.original.mul_(50.0)
    x = torch.randn(4, 16, 12)
    for _ in range(10):
        block(x)  # one power iteration per training forward
    sigma = torch.linalg.matrix_norm(block.conv.weight.detach().reshape(16, -1), ord=2).item()
    assert sigma == pytest.approx(1.0, abs=1e-2)


def test_head_shape():
    head = DiscHead(32)
    assert head(torch.randn(3, 10, 32)).shape == (3, 10)


def test_pooled_caption_ignores_padding():
    text = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [100.0, 100.0]], [[4.0, 0.0], [-9.0, 9.0], [7.0, 7.0]]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert torch.equal(pooled_caption(text, mask), torch.tensor([[2.0, 4.0], [4.0, 0.0]]))


def test_conditional_head_adds_the_caption_projection():
    """text_dim: each token's logit gains <W c + b, h_n> / sqrt C over the head's last hidden tokens h (B, C, N)."""
    torch.manual_seed(0)
    head = DiscHead(8, text_dim=5).eval()  # eval: spectral norm does no power iteration, so calls are comparable
    tokens, caption = torch.randn(3, 10, 8), torch.randn(3, 5)
    h = head.block1(tokens.transpose(1, 2))
    h = (head.block9(h) + h) / math.sqrt(2)
    plain = head.out(h).squeeze(1)
    proj = torch.stack([torch.stack([(head.cmap.weight @ caption[b] + head.cmap.bias) @ h[b, :, n]
                                     for n in range(10)]) for b in range(3)]) / math.sqrt(8)
    torch.testing.assert_close(head(tokens, caption), plain + proj)
    assert not torch.allclose(head(tokens, caption), head(tokens, caption.flip(0)))
    with pytest.raises(ValueError, match="caption"):
        head(tokens)
    assert DiscHead(8).cmap is None and all("cmap" not in k for k in Discriminator(8, [0, 1]).state_dict())


@pytest.fixture(scope="module")
def teacher():
    from sprint_bench.config import load_config
    from sprint_bench.config.schema import ConfigError
    from sprint_bench.models.sana import build_sana

    try:
        cfg = load_config(MICRO)
    except ConfigError:  # the default distill taps may not fit micro's depth 1
        cfg = load_config(MICRO, ["distill.head_blocks=[0]"])
    torch.manual_seed(0)
    return TrigFlowModel(build_sana(cfg.model, 3, 32).requires_grad_(False)).eval()


def _inputs(b=2):
    torch.manual_seed(1)
    x = torch.randn(b, 3, 32, 32, requires_grad=True)
    return x, torch.full((b,), 0.8), torch.randn(b, 16, 384), torch.ones(b, 16, dtype=torch.long)


def test_discriminator_forward_grads_and_hooks(teacher):
    disc = Discriminator(32, [0, 0])  # micro depth 1: tap block 0 twice -> K = 2 heads
    assert list(disc.children()) == [disc.heads]  # the teacher is not registered
    x, s, text, mask = _inputs()
    feats = disc.features(teacher, x, s, text, mask)
    n = (32 // 4) ** 2
    assert [f.shape for f in feats] == [(2, n, 32)] * 2
    out = disc(teacher, x, s, text, mask)
    assert out.shape == (2, n * 2)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in disc.parameters())
    assert len(teacher.transformer.transformer_blocks[0]._forward_hooks) == 0


def test_conditional_discriminator_reads_the_caption(teacher):
    """With text_dim the logits change with the caption beyond what reaches them through the teacher's features
    (same features, other captions), padding excepted; without it the heads see the features alone."""
    x, s, text, mask = _inputs()
    feats = Discriminator(32, [0]).features(teacher, x, s, text, mask)
    torch.manual_seed(2)
    cond = Discriminator(32, [0], text_dim=384).eval()
    other = text.flip(0)
    assert not torch.allclose(cond.head_logits(feats, text, mask), cond.head_logits(feats, other, mask))
    padded = text.clone()
    padded[:, -3:] = 50.0
    mask = mask.clone()
    mask[:, -3:] = 0
    torch.testing.assert_close(cond.head_logits(feats, padded, mask), cond.head_logits(feats, text, mask))
    plain = Discriminator(32, [0]).eval()
    assert torch.equal(plain.head_logits(feats, text, mask), plain.head_logits(feats, other, mask))
    assert cond(teacher, x, s, text, mask).shape == (2, (32 // 4) ** 2)


def test_hooks_removed_on_error_and_bad_block_ids(teacher):
    x, s, text, mask = _inputs()
    with pytest.raises(Exception):
        Discriminator(32, [0])(teacher, x, s, torch.randn(2, 16, 7), mask)  # wrong caption channels
    assert len(teacher.transformer.transformer_blocks[0]._forward_hooks) == 0
    for bad in ([1], [-1]):
        with pytest.raises(ValueError, match="out of range"):
            Discriminator(32, bad)(teacher, x, s, text, mask)
    with pytest.raises(ValueError, match="width"):
        Discriminator(64, [0])(teacher, x, s, text, mask)
    with pytest.raises(ValueError):
        Discriminator(32, [])
