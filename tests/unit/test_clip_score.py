"""CLIP score through open_clip: shapes-CLIP training on an easy sub-world, save/load, the real-model path, the
clamp rule and the metric protocol."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from sprint_bench.data.shapes.sampler import sample_world
from sprint_bench.eval.clip import CONFIG_NAME, register_shapes_clip
from sprint_bench.eval.clip.score import ClipScorer, clip_from_cosine, clip_score_metric
from sprint_bench.eval.clip.train import (build_shapes_clip, caption_retrieval, encode_text_trimmed,
                                          save_shapes_clip, train_clip_scorer)

TINY = {"embed_dim": 64,
        "vision_cfg": {"patch_size": 8, "width": 64, "layers": 2, "head_width": 32, "mlp_ratio": 2.0},
        "text_cfg": {"width": 64, "heads": 2, "layers": 1, "mlp_ratio": 2.0}}
FAMILIES = ("single_object", "two_object", "counting", "colors", "position", "color_attr")


@pytest.fixture(scope="module")
def easy_world():
    """Single coloured shapes only ("a photo of a red circle"): 3 shapes x 3 colours = 9 captions."""
    from sprint_bench.config import load_config
    from tests.conftest import REPO

    base = load_config(REPO / "experiments" / "base.yaml").world
    return dataclasses.replace(base, colors=["red", "green", "blue"],
                               family_weights={f: float(f == "colors") for f in FAMILIES})


@pytest.fixture(scope="module")
def trained(easy_world, tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("shapes_clip")
    meta = train_clip_scorer(easy_world, out, steps=120, batch_size=64, lr=2e-3, seed=0, train_size=1500,
                             warmup_steps=10, eval_images_per_prompt=0, model_overrides=TINY, progress=False)
    return out, meta


def test_config_registered_and_builds_offline(world):
    import open_clip

    assert register_shapes_clip() == CONFIG_NAME
    assert CONFIG_NAME in open_clip.list_models()
    model, cfg, pp = build_shapes_clip(world)
    assert cfg["vision_cfg"]["image_size"] == world.resolution
    assert open_clip.get_tokenizer(CONFIG_NAME).context_length == cfg["text_cfg"]["context_length"]
    x = torch.zeros(2, 3, world.resolution, world.resolution)
    assert model.encode_image(x).shape == (2, cfg["embed_dim"])


def test_trimmed_text_encoding_is_exact(world):
    import open_clip

    model, _, _ = build_shapes_clip(world, model_overrides=TINY)
    tokens = open_clip.get_tokenizer(CONFIG_NAME)(["a photo of a red circle", "a photo of two squares",
                                                  "a photo of a blue triangle and a white square"])
    ref = model.encode_text(tokens, normalize=True)
    torch.testing.assert_close(encode_text_trimmed(model, tokens), ref, atol=1e-5, rtol=1e-5)
    used = torch.unique(tokens)
    remap = torch.zeros(model.token_embedding.num_embeddings, dtype=torch.long)
    remap[used] = torch.arange(len(used))
    rows = model.token_embedding.weight.detach()[used]
    torch.testing.assert_close(encode_text_trimmed(model, tokens, rows, remap[tokens]), ref, atol=1e-5, rtol=1e-5)


def test_matched_captions_beat_shuffled_on_heldout_renders(trained, easy_world):
    out, meta = trained
    assert (out / "model.safetensors").is_file() and (out / "open_clip_config.json").is_file()
    saved = json.loads((out / "meta.json").read_text())
    assert saved["steps"] == 120 and saved["world"]["colors"] == ["red", "green", "blue"]
    scorer = ClipScorer.from_dir(out)
    held = sample_world(easy_world, 270, seed=987654)  # fresh renders, seed never used in training
    captions = [held.captions[i] for i in held.caption_ids]
    rng = np.random.default_rng(0)
    shuffled = [held.captions[(i + rng.integers(1, len(held.captions))) % len(held.captions)]
                for i in held.caption_ids]  # always a different caption
    matched, mismatched = scorer.score(held.images, captions), scorer.score(held.images, shuffled)
    assert matched.mean() > mismatched.mean() + 5.0, (matched.mean(), mismatched.mean())
    sim = scorer.similarity(held.images, held.captions)
    top1 = float((sim.argmax(1) == held.caption_ids).mean())
    assert top1 > 2.0 / len(held.captions), top1  # chance is 1/9; seeds 0-2 give 0.33-0.50


def test_caption_retrieval_report(trained, easy_world):
    scorer = ClipScorer.from_dir(trained[0])
    r = caption_retrieval(scorer, easy_world, images_per_prompt=1, seed=5)
    assert r["num_candidates"] == 32 and r["images"] == 553
    assert r["true_caption_satisfied"] == 1.0  # ground-truth scenes satisfy their own prompt (GenEval rules)
    assert set(r["families"]) == set(FAMILIES)
    assert 0.0 <= r["top1"] <= 1.0 and 0.0 <= r["top1_strict"] <= 1.0
    assert r["families"]["colors"]["top1"] > 2 / 32  # the family it was trained on beats chance


def test_save_load_roundtrip_gives_identical_scores(world, tmp_path):
    model, cfg, pp = build_shapes_clip(world, seed=3, model_overrides=TINY)
    model.eval()
    live = ClipScorer(model, __import__("open_clip").get_tokenizer(CONFIG_NAME), key="k", display_name="d",
                      extractor="e", image_size=world.resolution, mean=pp["mean"], std=pp["std"],
                      context_length=cfg["text_cfg"]["context_length"])
    s = sample_world(world, 16, seed=11)
    caps = [s.captions[i] for i in s.caption_ids]
    save_shapes_clip(model, cfg, pp, tmp_path, {"config_name": CONFIG_NAME})
    loaded = ClipScorer.from_dir(tmp_path)
    np.testing.assert_array_equal(live.cosine(s.images, caps), loaded.cosine(s.images, caps))
    np.testing.assert_array_equal(ClipScorer.from_dir(tmp_path).score(s.images, caps), loaded.score(s.images, caps))

    # retrained in place: the scorer's name (part of an evaluation's protocol hash) changes with its weights
    other, _, _ = build_shapes_clip(world, seed=4, model_overrides=TINY)
    save_shapes_clip(other, cfg, pp, tmp_path, {"config_name": CONFIG_NAME})
    retrained = ClipScorer.from_dir(tmp_path).extractor
    assert retrained != loaded.extractor
    assert retrained.rpartition("sha256 ")[0] == loaded.extractor.rpartition("sha256 ")[0]


def test_real_model_path_loads_local_weights_through_open_clip(trained, tmp_path, easy_world):
    """The ViT-L/14 path (named config + local weights file + open_clip's own transforms) on our tiny weights."""
    import open_clip

    out, _ = trained
    cfg = json.loads((out / "open_clip_config.json").read_text())["model_cfg"]
    (tmp_path / "shapes-clip-tiny-test.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "shapes-clip-tiny-test.json")
    real = ClipScorer.from_open_clip("shapes-clip-tiny-test", out / "model.safetensors")
    ours = ClipScorer.from_dir(out)
    s = sample_world(easy_world, 12, seed=3)
    caps = [s.captions[i] for i in s.caption_ids]
    np.testing.assert_allclose(real.cosine(s.images, caps), ours.cosine(s.images, caps), atol=1e-5)
    res = clip_score_metric(s.images, caps, real, easy_world.resolution)
    assert res.key == "clip_score_shapes_clip_tiny_test"
    assert res.protocol.metric == "CLIP score (shapes-clip-tiny-test, model.safetensors)"
    assert "centre crop" in res.protocol.resize


def test_missing_local_weights_raise_file_not_found_naming_the_path(tmp_path):
    missing = tmp_path / "ViT-L-14-openai.pt"
    with pytest.raises(FileNotFoundError, match="ViT-L-14-openai.pt"):
        ClipScorer.from_open_clip("ViT-L-14", missing)
    with pytest.raises(FileNotFoundError, match="open_clip_config.json"):
        ClipScorer.from_dir(tmp_path)


def test_clamp_negative_cosine_gives_zero(trained, easy_world, monkeypatch):
    np.testing.assert_allclose(clip_from_cosine(np.array([-0.7, -1e-9, 0.0, 0.25, 1.0])), [0, 0, 0, 25, 100])
    scorer = ClipScorer.from_dir(trained[0])
    s = sample_world(easy_world, 4, seed=1)
    caps = [s.captions[i] for i in s.caption_ids]
    monkeypatch.setattr(scorer, "cosine", lambda images, captions: np.array([-0.5, -0.2, 0.1, 0.3]))
    np.testing.assert_allclose(scorer.score(s.images, caps), [0, 0, 10, 30])
    res = clip_score_metric(s.images, caps, scorer, easy_world.resolution)
    assert res.values["clip_score_shapes"] == pytest.approx(10.0)  # per-sample clamp, then mean
    assert res.values["clip_score_shapes_noclamp"] == pytest.approx(-7.5)


def test_metric_protocol_fields(trained, easy_world):
    scorer = ClipScorer.from_dir(trained[0])
    s = sample_world(easy_world, 8, seed=2)
    caps = [s.captions[i] for i in s.caption_ids]
    res = clip_score_metric(s.images, caps, scorer, easy_world.resolution)
    assert res.key == "clip_score_shapes"
    assert set(res.values) == {"clip_score_shapes", "clip_score_shapes_noclamp"}
    assert 0.0 <= res.values["clip_score_shapes"] <= 100.0
    p = res.protocol
    assert p.metric == "CLIP score (shapes-CLIP)"
    assert p.num_images == 8 and p.resolution == easy_world.resolution and p.dtype == "float32"
    assert p.resize == f"none (native {easy_world.resolution} px)"
    assert "shapes-CLIP" in p.extractor
    for k in ("clamp", "scale", "context_length", "truncation", "preprocess", "tokenizer", "image_mean",
              "image_std"):
        assert k in p.extra, k
    assert p.extra["scale"] == 100.0 and "max(cos, 0)" in p.extra["clamp"] and p.extra["context_length"] == 32
    params = p.as_params("clip")
    assert params["clip.metric"] == "CLIP score (shapes-CLIP)"
    with pytest.raises(ValueError):
        clip_score_metric(s.images, caps, scorer, 64)
    with pytest.raises(ValueError):
        clip_score_metric(s.images.astype(np.float32), caps, scorer, easy_world.resolution)
