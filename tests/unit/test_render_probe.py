"""The render probe (sprint_bench.lit.render_probe): its pairs lie on the GenEval-Shapes prompts with noise outside
every evaluation and training bank, its images are scored in the order they were made, and its regressed copy
memorises the pairs (lower error on them than on fresh noise) without touching the student it copied."""
import numpy as np
import pytest
import torch

from sprint_bench.data.shapes.prompts import geneval_shapes_prompts
from sprint_bench.data.shapes.render import render
from sprint_bench.data.shapes.scene import realize
from sprint_bench.eval.geneval.generate import image_seed
from sprint_bench.eval.geneval.shapes_detector import ShapesDetector
from sprint_bench.eval.schedule_search import SEARCH_SEED_BASE
from sprint_bench.lit.render_probe import (FRESH_OFFSET, geneval_of, geneval_pairs, levels, main, memorise,
                                           one_step_images)
from sprint_bench.models.sana import FlowBackbone
from sprint_bench.models.text_encoder import HIDDEN_SIZE, CaptionCache
from sprint_bench.models.trigflow import TrigFlowModel, student_from_teacher


@pytest.fixture(scope="module")
def setup(tiny_teacher):
    cfg, teacher = tiny_teacher
    prompts = geneval_shapes_prompts(cfg.world)[::100]  # 6 prompts, one of each family
    texts = sorted({p["prompt"] for p in prompts})
    hidden = torch.randn(len(texts) + 1, cfg.text.max_length, HIDDEN_SIZE)
    mask = torch.ones(len(texts) + 1, cfg.text.max_length, dtype=torch.long)
    return cfg, teacher, prompts, CaptionCache(texts, hidden, mask)


def test_pairs_follow_the_prompts_with_noise_outside_evaluations_and_banks(setup):
    cfg, teacher, prompts, captions = setup
    pairs = geneval_pairs(FlowBackbone(teacher), captions, prompts, 2, SEARCH_SEED_BASE, 3.0, 1, 32, progress=False)
    assert len(pairs) == 12 and (pairs.w == 3.0).all()
    assert pairs.seeds.tolist() == [image_seed(SEARCH_SEED_BASE, j // 2, 2, j % 2) for j in range(12)]
    assert pairs.caption_ids.tolist() == captions.ids_for([prompts[j // 2]["prompt"] for j in range(12)]).tolist()
    for base in (0, 10**6, 2**31 - 5):
        with pytest.raises(ValueError, match="must lie in"):
            geneval_pairs(FlowBackbone(teacher), captions, prompts, 2, base, 3.0, 1, 32, progress=False)


def test_images_are_scored_in_pair_order(setup):
    cfg, _, prompts, _ = setup
    rng = np.random.default_rng(0)
    truth = np.stack([render(realize(prompts[j // 2], cfg.world, rng)) for j in range(12)])
    detector = ShapesDetector(cfg.world)
    assert geneval_of(truth, prompts, 2, detector)["overall"] == 1.0
    blank = truth.copy()
    blank[::2] = 0  # the first image of every prompt is empty: each task scores one half
    score = geneval_of(blank, prompts, 2, detector)
    assert score["overall"] == pytest.approx(0.5) and all(v == 0.5 for v in score["tasks"].values())
    assert geneval_of(truth[::-1].copy(), prompts, 2, detector)["overall"] < 1.0  # out of order, other prompts


def test_the_regressed_copy_memorises_its_pairs_and_leaves_the_student_alone(setup):
    cfg, teacher, prompts, captions = setup
    torch.manual_seed(1)
    student = TrigFlowModel(student_from_teacher(teacher)).eval().requires_grad_(False)
    original = {k: v.clone() for k, v in student.state_dict().items()}
    velocity = FlowBackbone(teacher)
    seen, fresh = (geneval_pairs(velocity, captions, prompts[:2], 2, base, 3.0, 1, 32, progress=False)
                   for base in (SEARCH_SEED_BASE, SEARCH_SEED_BASE + FRESH_OFFSET))
    colours = torch.randint(0, 256, (4, 3, 1, 1), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    seen.x0 = fresh.x0 = colours.expand(4, 3, 32, 32).clone()  # one plain colour per pair: only the noise differs
    before = levels(one_step_images(student, seen, captions.lookup), seen)
    checks = []
    copy = memorise(student, seen, captions.lookup, steps=80, lr=1e-2, batch_size=4,
                    on_check=lambda k, m: checks.append((k, m.training)))
    after = levels(one_step_images(copy, seen, captions.lookup), seen)
    elsewhere = levels(one_step_images(copy, fresh, captions.lookup), fresh)
    assert checks == [(20, False), (40, False), (60, False), (80, False)]
    assert after < 0.5 * before and elsewhere > 1.4 * after  # measured: 102.1 before, 44.0 after, 69.2 fresh
    assert all(torch.equal(v, original[k]) for k, v in student.state_dict().items())
    assert not any(p.requires_grad for p in copy.parameters())


@pytest.mark.parametrize("args, message", [(["runs/none/export"], "not a complete student export"),
                                           (["runs/none/export", "--steps", "0"], "must be positive"),
                                           (["runs/none/export", "--lr", "0"], "--lr > 0")])
def test_cli_refuses_bad_input_before_any_pair_is_made(args, message, capsys):
    with pytest.raises(SystemExit):
        main(args)
    assert message in capsys.readouterr().err
