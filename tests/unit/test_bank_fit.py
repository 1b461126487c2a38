"""The bank-fit diagnostic (sprint_bench.lit.bank_fit): its errors are the regression's own losses and the pixel
error of the one-step image, the fresh pairs never reuse a bank pair's noise, and a student fitted to a few pairs
shows as memorising them (low error on its bank, high on fresh pairs)."""
import math
from pathlib import Path

import pytest
import torch

from sprint_bench.data.datamodule import to_uint8
from sprint_bench.lit.bank_fit import bank_sample, fresh_pairs, main, one_step_errors
from sprint_bench.models.sana import FlowBackbone
from sprint_bench.models.text_encoder import HIDDEN_SIZE, CaptionCache
from sprint_bench.models.trigflow import TrigFlowModel, student_from_teacher
from sprint_bench.param.trigflow import SIGMA_DATA, T_MAX, x0_from_F
from sprint_bench.samplers.ode_pairs import OdePairs, draw_pairs

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def setup(tiny_teacher):
    cfg, teacher = tiny_teacher
    n_cap = 4
    hidden = torch.randn(n_cap + 1, cfg.text.max_length, HIDDEN_SIZE)
    mask = torch.ones(n_cap + 1, cfg.text.max_length, dtype=torch.long)
    mask[:, 5:] = 0
    captions = CaptionCache([f"caption {i}" for i in range(n_cap)], hidden, mask)
    return cfg, teacher, captions


def own_pairs(model, captions, n: int, seed: int) -> OdePairs:
    """Pairs whose endpoints are ``model``'s own one-step images."""
    ids, w, seeds = draw_pairs(torch.arange(4), n, [2.5, 3.5], seed)
    pairs = OdePairs(ids, w, seeds, torch.zeros((n, 3, 32, 32), dtype=torch.uint8))
    eps = pairs.noise(torch.arange(n))
    t = torch.full((n,), T_MAX)
    with torch.no_grad():
        x0 = x0_from_F(SIGMA_DATA * eps, t, model(eps, t, *captions.lookup(ids), w)[0])
    pairs.x0 = torch.from_numpy(to_uint8(x0 / SIGMA_DATA)).permute(0, 3, 1, 2)
    return pairs


def test_errors_are_the_regression_losses_and_the_pixel_offset(setup):
    cfg, teacher, captions = setup
    student = TrigFlowModel(student_from_teacher(teacher)).eval()
    pairs = own_pairs(student, captions, 6, seed=1)
    exact = one_step_errors(student, pairs, captions.lookup, batch_size=4)  # two batches, the second short
    assert exact["levels"] < 0.51  # its own images, up to uint8 rounding
    brighter = OdePairs(pairs.caption_ids, pairs.w, pairs.seeds, pairs.x0.clamp(max=235) + 20)
    off = one_step_errors(student, brighter, captions.lookup)
    expect = (brighter.x0.float() - pairs.x0.float()).abs().mean().item()  # 20 levels, less where clamped
    assert off["levels"] == pytest.approx(expect, abs=0.51) and expect > 15
    eps, t = brighter.noise(torch.arange(6)), torch.full((6,), T_MAX)  # the losses, computed independently
    with torch.no_grad():
        F = student(eps, t, *captions.lookup(brighter.caption_ids), brighter.w)[0]
    d = math.cos(T_MAX) * eps - math.sin(T_MAX) * F - (brighter.x0.float() / 127.5 - 1)  # x0 / sigma_d - target
    assert off["l2"] == pytest.approx(d.pow(2).mean().item(), rel=1e-5)
    assert off["pseudo_huber"] == pytest.approx(((d.pow(2) + (2 / 255) ** 2).sqrt() - 2 / 255).mean().item(), rel=1e-5)


def test_fresh_pairs_refuse_the_banks_noise(setup):
    cfg, teacher, captions = setup
    bank = OdePairs(*draw_pairs(torch.arange(4), 8, [3.0], seed=0), torch.zeros((8, 3, 32, 32), dtype=torch.uint8))
    with pytest.raises(ValueError, match="--fresh-seed 0 draws 4 noise seeds"):
        fresh_pairs(FlowBackbone(teacher), captions, torch.arange(4), bank, 4, [3.0], 0, 32, 2, progress=False)
    fresh = fresh_pairs(FlowBackbone(teacher), captions, torch.arange(4), bank, 4, [3.0], 1, 32, 2, progress=False)
    assert len(fresh) == 4 and not torch.isin(fresh.seeds, bank.seeds).any()
    sample = bank_sample(bank, 5)
    assert len(sample) == 5 and len(set(sample.seeds.tolist())) == 5 and torch.isin(sample.seeds, bank.seeds).all()
    assert len(bank_sample(bank, 100)) == 8


def colour_pairs(n: int, seed: int) -> OdePairs:
    """Pairs of captions 0, 1, 2, 3, 0, ... whose endpoints are plain images of a random colour each."""
    _, w, seeds = draw_pairs(torch.arange(4), n, [2.5, 3.5], seed)
    ids = torch.arange(n) % 4
    colours = torch.randint(0, 256, (n, 3, 1, 1), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    return OdePairs(ids, w, seeds, colours.expand(n, 3, 32, 32).clone())


def test_a_student_fitted_to_a_few_pairs_shows_as_memorising_them(setup):
    cfg, teacher, captions = setup
    seen, unseen = colour_pairs(4, seed=1), colour_pairs(16, seed=2)
    torch.manual_seed(1)
    student = TrigFlowModel(student_from_teacher(teacher))
    before = one_step_errors(student.eval(), seen, captions.lookup)["l2"]
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    eps, t = seen.noise(torch.arange(4)), torch.full((4,), T_MAX)
    text, mask = captions.lookup(seen.caption_ids)
    goal = SIGMA_DATA * (seen.x0.float() / 127.5 - 1)
    for _ in range(100):
        x0 = x0_from_F(SIGMA_DATA * eps, t, student.train()(eps, t, text, mask, seen.w)[0])
        loss = (x0 - goal).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    bank_err = one_step_errors(student.eval(), seen, captions.lookup)["l2"]
    fresh_err = one_step_errors(student, unseen, captions.lookup)["l2"]
    assert bank_err < 0.25 * before and fresh_err > 4 * bank_err  # measured: 1.72 before, 0.21 after, 1.24 fresh


def test_cli_refuses_bad_input_before_any_pair_is_made(capsys):
    yaml = str(REPO / "experiments" / "sprint" / "best" / "1-regression-3k.yaml")
    hybrid = str(REPO / "experiments" / "sprint" / "hybrid.yaml")
    cases = [
        ([yaml, "distill.ode_pairs=65536"], "name at least one exported student folder"),
        ([yaml, "runs/none/export", "--n", "0"], "--n must be positive"),
        ([yaml, "runs/none/export", "distill.ode_weight=0"], "distill.loss=ode needs ode_weight > 0"),
        ([hybrid, "runs/none/export"], "hybrid.yaml has no ODE-pair bank (distill.ode_weight is 0"),
        ([yaml, "runs/none/export"], "not a complete student export at runs/none/export"),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit):
            main(["--config", *args])
        assert message in capsys.readouterr().err
