"""Teacher ODE pairs (sprint_bench.samplers.ode_pairs) and their cache (sprint_bench.lit.ode_pairs): each endpoint is
the teacher's own Euler + CFG sample from the pair's seeded noise, the draw is deterministic and follows the training
captions and the CFG set, and a bank is made once and then loaded."""
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from sprint_bench.config import load_config
from sprint_bench.data.datamodule import to_uint8
from sprint_bench.eval.geneval.generate import seeded_noise
from sprint_bench.lit.ode_pairs import load_or_make_ode_pairs, pairs_key
from sprint_bench.models.sana import FlowBackbone, build_sana
from sprint_bench.models.text_encoder import HIDDEN_SIZE, CaptionCache
from sprint_bench.samplers.flow import euler_sample
from sprint_bench.samplers.ode_pairs import PAIR_SEED_BASE, OdePairs, draw_pairs, make_ode_pairs

REPO = Path(__file__).resolve().parents[2]
TINY = ["model.width=32", "model.depth=1", "model.heads=2", "model.cross_heads=2"]


class Counting(FlowBackbone):
    calls = 0

    def forward(self, *args):
        Counting.calls += 1
        return super().forward(*args)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    cfg = load_config(REPO / "experiments" / "base.yaml", TINY + [f"output_dir={tmp_path_factory.mktemp('runs')}",
                                                                  "distill.ode_pairs=7", "distill.ode_steps=3"])
    torch.manual_seed(0)
    velocity = Counting(build_sana(cfg.model, 3, cfg.world.resolution)).eval()
    n_cap = 5
    hidden = torch.randn(n_cap + 1, cfg.text.max_length, HIDDEN_SIZE)
    mask = torch.ones(n_cap + 1, cfg.text.max_length, dtype=torch.long)
    mask[:, 4:] = 0
    captions = CaptionCache([f"caption {i}" for i in range(n_cap)], hidden, mask)
    dm = SimpleNamespace(caption_ids=torch.tensor([0, 1, 1, 3, 4, 4, 4]), captions=captions)
    return cfg, velocity, dm


def test_endpoints_are_the_teachers_own_samples(setup):
    cfg, velocity, dm = setup
    cap = dm.captions
    ids, w = torch.tensor([0, 1, 2, 3, 4, 0, 1]), torch.tensor([2.5, 3.0, 2.5, 3.5, 3.0, 3.5, 2.5])
    seeds = torch.arange(100, 107)
    null_t, null_m = cap.lookup(torch.tensor([cap.null_id]))
    pairs = make_ode_pairs(velocity, cap.lookup, null_t, null_m, ids, w, seeds, 32, steps=3, batch_size=3,
                           progress=False)  # batches of 3 with mixed w: the grouping by w must not mix pairs up
    assert pairs.x0.dtype == torch.uint8 and pairs.x0.shape == (7, 3, 32, 32) and len(pairs) == 7
    for i in range(7):
        text, mask = cap.lookup(ids[i:i + 1])
        one = euler_sample(velocity, seeded_noise([100 + i], (3, 32, 32)), text, mask, null_t, null_m, 3, float(w[i]))
        assert torch.equal(pairs.x0[i], torch.from_numpy(to_uint8(one))[0].permute(2, 0, 1)), i
    torch.testing.assert_close(pairs.noise(torch.tensor([4, 0])), seeded_noise([104, 100], (3, 32, 32)))


def test_draw_follows_training_captions_and_cfg_set():
    train_ids = torch.tensor([3, 3, 8, 11])
    ids, w, seeds = draw_pairs(train_ids, 400, [2.5, 3.0, 3.5], seed=2)
    assert set(ids.tolist()) == {3, 8, 11} and (ids == 3).sum() > (ids == 8).sum()  # the training mix
    assert set(w.tolist()) == {2.5, 3.0, 3.5} and len(set(seeds.tolist())) == 400
    again = draw_pairs(train_ids, 400, [2.5, 3.0, 3.5], seed=2)
    assert all(torch.equal(a, b) for a, b in zip((ids, w, seeds), again))
    assert not torch.equal(draw_pairs(train_ids, 400, [2.5, 3.0, 3.5], seed=3)[2], seeds)


def test_pair_noise_never_is_evaluation_noise():
    """The harness's image seeds are seed + prompt * images_per_prompt + k (small integers); a bank's seeds start at
    PAIR_SEED_BASE, so a student regressed onto its pairs is never evaluated on their noise (they once began at 0)."""
    assert torch.equal(seeded_noise([2**32 + 5], (3, 8, 8)), seeded_noise([5], (3, 8, 8)))  # torch: 32-bit seeds
    for seed in (0, 7, 5000):
        seeds = draw_pairs(torch.arange(5), 32768, [3.0], seed=seed)[2]
        assert seeds.min() >= PAIR_SEED_BASE == 2**31 and seeds.max() < 2**32 and len(set(seeds.tolist())) == 32768
    assert not torch.isin(seeds, torch.arange(0, 10**7)).any()  # evaluation seeds up to 10**7
    assert not torch.equal(seeded_noise([int(seeds[0])], (3, 8, 8)), seeded_noise([int(seeds[0]) % 2**31], (3, 8, 8)))


def test_bank_is_made_once_then_loaded(setup):
    cfg, velocity, dm = setup
    Counting.calls = 0
    made = load_or_make_ode_pairs(cfg, velocity, "teacher-a", dm, progress=False)
    n_calls = Counting.calls
    assert n_calls == 3 * 3  # 3 Euler steps for each of the (up to) 3 w groups in the single batch of 7
    assert len(made) == 7 and set(made.caption_ids.tolist()) <= {0, 1, 3, 4}
    path = Path(cfg.output_dir) / "cache" / "ode-pairs" / f"{pairs_key(cfg, 'teacher-a')}.pt"
    assert path.is_file() and not list(path.parent.glob(".*tmp*"))
    loaded = load_or_make_ode_pairs(cfg, velocity, "teacher-a", dm, progress=False)
    assert Counting.calls == n_calls and isinstance(loaded, OdePairs)  # no teacher call: read from the cache
    assert all(torch.equal(a, b) for a, b in zip(made.state().values(), loaded.state().values()))
    assert velocity.training is False
    other = load_config(REPO / "experiments" / "base.yaml", TINY + ["distill.ode_pairs=7", "distill.ode_steps=4"])
    assert len({pairs_key(cfg, "teacher-a"), pairs_key(cfg, "teacher-b"), pairs_key(other, "teacher-a")}) == 3


def test_bank_key_names_the_seed_base(monkeypatch):
    """Banks drawn with another noise-seed base (those before it existed drew seeds from 0) are never reused."""
    cfg = load_config(REPO / "experiments" / "base.yaml", TINY)
    key = pairs_key(cfg, "teacher-a")
    monkeypatch.setattr("sprint_bench.lit.ode_pairs.PAIR_SEED_BASE", 0)
    assert pairs_key(cfg, "teacher-a") != key


def test_a_killed_bank_resumes_where_it_stopped(setup, tmp_path, monkeypatch):
    """A bank interrupted mid-way continues from its last saved batch (no batch is integrated twice after it) and
    ends equal to one made in one go; the partial file is gone afterwards."""
    from dataclasses import replace

    import sprint_bench.lit.ode_pairs as lit_pairs

    cfg, velocity, dm = setup
    cfg = replace(cfg, output_dir=str(tmp_path))
    monkeypatch.setattr(lit_pairs, "SAVE_EVERY_BATCHES", 1)
    ids, w, seeds = draw_pairs(dm.caption_ids, 7, cfg.distill.cfg_scales, cfg.seed)
    null_t, null_m = dm.captions.lookup(torch.tensor([dm.captions.null_id]))
    Counting.calls = 0
    whole = make_ode_pairs(velocity, dm.captions.lookup, null_t, null_m, ids, w, seeds, 32, 3, batch_size=2,
                           progress=False)
    whole_calls = Counting.calls

    class Killed(Exception):
        pass

    def kill(*_):
        if Counting.calls >= 7:  # 3 Euler steps x (1-2 w groups) per batch of 2: killed in the 2nd or 3rd batch
            raise Killed

    Counting.calls = 0
    handle = velocity.register_forward_pre_hook(kill)
    try:
        with pytest.raises(Killed):
            load_or_make_ode_pairs(cfg, velocity, "teacher-r", dm, progress=False, batch_size=2)
    finally:
        handle.remove()
    partial = next((tmp_path / "cache" / "ode-pairs").glob("*.partial.pt"))
    done = torch.load(partial, weights_only=True)["done"]
    assert done in (2, 4)
    Counting.calls = 0
    made = load_or_make_ode_pairs(cfg, velocity, "teacher-r", dm, progress=False, batch_size=2)
    assert 0 < Counting.calls < whole_calls  # the saved batches were not integrated again
    assert torch.equal(made.x0, whole.x0) and torch.equal(made.seeds, whole.seeds)
    assert not partial.exists() and len(list(partial.parent.glob("*.pt"))) == 1
    with pytest.raises(ValueError, match="multiple of batch_size"):
        make_ode_pairs(velocity, dm.captions.lookup, null_t, null_m, ids, w, seeds, 32, 3, batch_size=2, start=3,
                       x0=whole.x0.clone(), progress=False)
