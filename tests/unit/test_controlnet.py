"""SANA ControlNet: exact identity at initialisation, gradients only on the ControlNet, condition dependence after
training steps, diffusers' residual wiring; micro depth 1 and depth 3."""
import dataclasses

import pytest
import torch

from sprint_bench.models.controlnet import ControlledFlowBackbone, SanaControlNet
from sprint_bench.models.sana import build_sana
from sprint_bench.models.trigflow import student_from_teacher


def _teacher(cfg, depth):
    torch.manual_seed(0)
    return build_sana(dataclasses.replace(cfg.model, depth=depth), in_channels=3, sample_size=32).eval()


def _inputs(seed=1, b=2):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 3, 32, 32, generator=g)
    tau = torch.rand(b, generator=g)
    text = torch.randn(b, 16, 384, generator=g)
    mask = torch.ones(b, 16, dtype=torch.long)
    mask[0, 10:] = 0
    cond = torch.randn(b, 3, 32, 32, generator=g).sign()  # like an edge condition: values in {-1, 1}
    return x, tau, text, mask, cond


def _plain(tr, x, tau, text, mask, **kw):
    return tr(hidden_states=x, encoder_hidden_states=text, timestep=tau, encoder_attention_mask=mask,
              return_dict=False, **kw)[0]


@pytest.mark.parametrize("depth, num_blocks, expected", [(1, None, 1), (3, None, 2), (3, 3, 3)])
def test_identity_at_initialisation(micro_cfg, depth, num_blocks, expected):
    teacher = _teacher(micro_cfg, depth)
    model = ControlledFlowBackbone(teacher, num_blocks=num_blocks)
    assert len(model.controlnet.transformer_blocks) == expected
    assert all(k.split(".")[0] in ("input_block", "transformer_blocks", "controlnet_blocks")
               for k in model.controlnet.state_dict())  # the shared base parts are not ControlNet weights
    x, tau, text, mask, cond = _inputs()
    with torch.no_grad():
        res = model.controlnet(x, text, tau, mask, cond)
        assert len(res) == expected and all(r.shape == (2, 64, 32) for r in res)  # (B, (32/4)^2 tokens, width)
        assert torch.equal(model(x, tau, text, mask, cond), _plain(teacher, x, tau, text, mask))
        assert torch.equal(model(x, tau, text, mask, -cond), _plain(teacher, x, tau, text, mask))


def test_identity_with_guidance_embedding_student(micro_cfg):
    student = student_from_teacher(_teacher(micro_cfg, 1)).eval()
    model = ControlledFlowBackbone(student)
    x, tau, text, mask, cond = _inputs()
    w = torch.full((2,), 0.3)
    with torch.no_grad():
        assert torch.equal(model(x, tau, text, mask, cond, guidance=w), _plain(student, x, tau, text, mask, guidance=w))
    with pytest.raises(ValueError, match="guidance"):
        model(x, tau, text, mask, cond)


@pytest.mark.parametrize("depth", [1, 3])
def test_gradients_reach_only_the_controlnet_and_training_makes_it_condition_dependent(micro_cfg, depth):
    teacher = _teacher(micro_cfg, depth)
    model = ControlledFlowBackbone(teacher)
    cn = model.controlnet
    opt = torch.optim.AdamW(cn.parameters(), lr=1e-2)
    x, tau, text, mask, cond = _inputs()
    target = torch.randn_like(x)

    def step():
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x, tau, text, mask, cond), target).backward()
        opt.step()

    def out(c):
        with torch.no_grad():
            return model(x, tau, text, mask, c)

    before = out(cond)
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x, tau, text, mask, cond), target).backward()
    assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in cn.parameters())
    for proj in cn.controlnet_blocks:  # the zero-init output projections get a non-zero gradient at once
        assert proj.weight.grad.abs().sum() > 0 and proj.bias.grad.abs().sum() > 0
    # everything upstream of the zero output projections gets exactly zero gradient at step 0
    assert all(torch.count_nonzero(p.grad) == 0 for p in cn.transformer_blocks.parameters())
    assert torch.count_nonzero(cn.input_block.weight.grad) == 0
    opt.step()
    after_one = out(cond)
    assert not torch.equal(after_one, before)
    # after one step the input projection is still exactly zero, so the condition does not enter yet
    assert torch.count_nonzero(cn.input_block.weight) == 0 and torch.equal(out(-cond), after_one)
    step()
    assert torch.count_nonzero(cn.input_block.weight) > 0
    assert not torch.allclose(out(cond), out(-cond))  # after the second step the output depends on the condition
    assert all(p.grad is None for p in teacher.parameters())


def test_residuals_are_consumed_exactly_as_diffusers_adds_them(micro_cfg):
    teacher = _teacher(micro_cfg, 3)
    model = ControlledFlowBackbone(teacher)  # 2 copies: r_0 after block 1, r_1 after block 2
    torch.manual_seed(3)
    with torch.no_grad():
        for p in model.controlnet.parameters():
            p.add_(0.05 * torch.randn_like(p))
        x, tau, text, mask, cond = _inputs()
        res = model.controlnet(x, text, tau, mask, cond, conditioning_scale=0.5)
        ours = model(x, tau, text, mask, cond, conditioning_scale=0.5)
        assert torch.equal(ours, _plain(teacher, x, tau, text, mask, controlnet_block_samples=tuple(res)))
        assert not torch.allclose(ours, _plain(teacher, x, tau, text, mask), atol=1e-4)
        assert torch.equal(model(x, tau, text, mask, cond, conditioning_scale=0.0), _plain(teacher, x, tau, text, mask))
        # a CFG batch of 2B sees the bound condition in both halves
        v = model.bind(cond)
        both = v(torch.cat([x, x]), torch.cat([tau, tau]), torch.cat([text, text]), torch.cat([mask, mask]))
        assert torch.allclose(both[:2], model(x, tau, text, mask, cond), atol=1e-6)


def test_num_blocks_is_checked(micro_cfg):
    with pytest.raises(ValueError, match="num_blocks"):
        SanaControlNet(_teacher(micro_cfg, 1), num_blocks=2)
